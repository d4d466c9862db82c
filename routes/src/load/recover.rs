//! Every structural error of a document in one run.
//!
//! serde stops at the first problem (an unknown key, a wrong type, a missing field). To report all of them, the
//! document is read again without what the last error named, until it reads or nothing more can be taken out:
//! - an unknown key: that key is taken out;
//! - a wrong type or value: that value is taken out; if that leaves a required field missing, the follow-up
//!   "missing field" is not reported a second time;
//! - a missing field: the mapping that lacks it is taken out.
//!
//! Errors name paths of the document as written: a sequence item taken out does not renumber the ones after it.
//! A document that reads once only keys were taken out is handed on, so that its other problems (a bad
//! duration, a route naming no upstream) are reported in the same run; it cannot be served, as errors were
//! reported. One that lost whole mappings is only checked item by item (Traefik's unsupported features), because
//! what referred to them would be reported as wrong too.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::lines::{self, Step};
use crate::error::{Collector, Location};

/// At most this many errors are reported for one document's structure.
const MAX_ERRORS: usize = 100;

/// What reading a document gave.
pub(crate) enum Read<T> {
    /// It read (possibly after taking out keys that were reported as errors).
    Value(T),
    /// It read once whole mappings were taken out (reported as errors): what is left can be checked item by
    /// item, but not for what refers to something else.
    Pruned(T),
    /// Errors were reported, and what is left cannot be checked further.
    Failed,
}

/// serde_yaml's message split into the field path and the rest (`http.routes[0]: unknown field ...`).
pub(super) fn split(e: &serde_yaml::Error) -> (String, String) {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    };
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() => {
            (if path == "." { String::new() } else { path.to_owned() }, rest.to_owned())
        }
        _ => (String::new(), message),
    }
}

/// The name between the first pair of backticks of `message` after `prefix`.
fn quoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.strip_prefix('`')?.split('`').next()
}

/// Resolves serde_yaml's path text against the document, so that keys with dots in them are found.
fn resolve(value: &Value, path: &str) -> Option<Vec<Step>> {
    let (mut steps, mut node, mut rest) = (Vec::new(), value, path);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (n, after) = after.split_once(']')?;
            let i: usize = n.parse().ok()?;
            node = node.as_sequence()?.get(i)?;
            steps.push(Step::Index(i));
            rest = after;
            continue;
        }
        let r = if steps.is_empty() { rest } else { rest.strip_prefix('.')? };
        let (key, child) = node
            .as_mapping()?
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .filter(|(k, _)| r.starts_with(k) && matches!(r.as_bytes().get(k.len()), None | Some(b'.' | b'[')))
            .max_by_key(|(k, _)| k.len())?;
        steps.push(Step::Key(key.to_owned()));
        node = child;
        rest = &r[key.len()..];
    }
    Some(steps)
}

/// Takes out the node at `steps`; false if there is none (or it is the whole document).
fn take_out(value: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parent)) = steps.split_last() else { return false };
    let mut node = value;
    for step in parent {
        let next = match step {
            Step::Key(k) => node.as_mapping_mut().and_then(|m| m.get_mut(k.as_str())),
            Step::Index(i) => node.as_sequence_mut().and_then(|s| s.get_mut(*i)),
        };
        let Some(next) = next else { return false };
        node = next;
    }
    match last {
        Step::Key(k) => node.as_mapping_mut().and_then(|m| m.remove(k.as_str())).is_some(),
        Step::Index(i) => match node.as_sequence_mut() {
            Some(seq) if *i < seq.len() => {
                seq.remove(*i);
                true
            }
            _ => false,
        },
    }
}

/// The items taken out of sequences, as (the sequence's path as written, the item's index as written).
#[derive(Default)]
struct Renumber(Vec<(Vec<Step>, usize)>);

impl Renumber {
    /// The path as written of a path in the document with items taken out.
    fn written(&self, steps: &[Step]) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::with_capacity(steps.len());
        for step in steps {
            let step = match step {
                Step::Index(i) => {
                    let mut gone: Vec<usize> = self.0.iter().filter(|(p, _)| *p == out).map(|(_, g)| *g).collect();
                    gone.sort_unstable();
                    let mut at = *i;
                    for g in gone {
                        if g <= at {
                            at += 1;
                        }
                    }
                    Step::Index(at)
                }
                key => key.clone(),
            };
            out.push(step);
        }
        out
    }
}

/// What was taken out of a document so far, besides the sequence items ([`Renumber`]).
#[derive(Default)]
struct Taken {
    /// Values taken out for a wrong type, as (mapping as written, key): their "missing field" is not news.
    emptied: Vec<(Vec<Step>, String)>,
    /// A whole mapping was taken out for a missing field: what is left is only `Read::Pruned`.
    whole_mappings: bool,
}

impl Taken {
    /// Whether the error at `at_written` only follows from a value taken out earlier (the "missing field" of it).
    fn follows(&self, at_written: &[Step], missing: Option<&str>) -> bool {
        missing.is_some_and(|k| self.emptied.iter().any(|(m, key)| m == at_written && key == k))
    }

    /// What to take out for the error at `at` (`at_written` as written): the unknown key, the mapping that lacks a
    /// field, or the wrong value.
    fn target(
        &mut self,
        at: Vec<Step>,
        at_written: &[Step],
        unknown: Option<Step>,
        missing: Option<&str>,
    ) -> Vec<Step> {
        match (unknown, missing) {
            (Some(key), _) => [at, vec![key]].concat(),
            (None, Some(_)) => {
                self.whole_mappings = true;
                at
            }
            (None, None) => {
                if let Some((Step::Key(k), parent)) = at_written.split_last() {
                    self.emptied.push((parent.to_vec(), k.clone()));
                }
                at
            }
        }
    }
}

/// Reports one error at the path as written; an unknown key's line is its own, as serde_yaml gives for the first
/// error.
fn report(
    source: &str,
    first_line: usize,
    text: &str,
    at_written: &[Step],
    unknown: Option<&Step>,
    message: &str,
    errors: &mut Collector,
) {
    let steps = [at_written.to_vec(), unknown.into_iter().cloned().collect()].concat();
    let mut location = Location::new(source, lines::render(at_written));
    location.line = lines::line_at(text, &steps).map(|l| l + first_line - 1);
    errors.push(location, message.to_owned());
}

/// Reads `text` (one document, whose first line is `first_line` of `source`) as a `T`, reporting every
/// structural error in `errors`.
pub(crate) fn read<T: DeserializeOwned>(
    source: &str,
    first_line: usize,
    text: &str,
    errors: &mut Collector,
) -> Read<T> {
    let first = match serde_yaml::from_str::<T>(text) {
        Ok(v) => return Read::Value(v),
        Err(e) => e,
    };
    // The first error is serde_yaml's own, with its exact line; the later ones are located in `text`.
    super::yaml_error(source, first_line, text, &first, errors);
    let Ok(mut value) = serde_yaml::from_str::<Value>(text) else { return Read::Failed };
    let (mut error, mut reported) = (first, true);
    let mut renumber = Renumber::default();
    let mut taken = Taken::default();
    for _ in 0..MAX_ERRORS {
        let (path, message) = split(&error);
        let Some(at) = resolve(&value, &path) else { return Read::Failed };
        let at_written = renumber.written(&at);
        let unknown = quoted(&message, "unknown field ").map(|k| Step::Key(k.to_owned()));
        let missing = quoted(&message, "missing field ");
        if !reported && !taken.follows(&at_written, missing) {
            report(source, first_line, text, &at_written, unknown.as_ref(), &message, errors);
        }
        reported = false;
        let target = taken.target(at, &at_written, unknown, missing);
        let written = renumber.written(&target);
        if !take_out(&mut value, &target) {
            return Read::Failed;
        }
        if let Some((Step::Index(i), parent)) = written.split_last() {
            renumber.0.push((parent.to_vec(), *i));
        }
        let Ok(again) = serde_yaml::to_string(&value) else { return Read::Failed };
        error = match serde_yaml::from_str::<T>(&again) {
            Ok(v) if !taken.whole_mappings => return Read::Value(v),
            Ok(v) => return Read::Pruned(v),
            Err(e) => e,
        };
    }
    Read::Failed
}
