//! Reading route text: YAML (or JSON) with one or more documents, each either a native document (it has
//! `version:`) or a Traefik dynamic configuration (it has `http:` or `tcp:`).

use recover::Read;

use crate::error::{Collector, Location};
use crate::schema::{self, Document};
use crate::traefik;

/// Which surface a document came from, so errors can name the field the user actually wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Native,
    Traefik,
}

/// A document ready for validation, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: String,
    pub dialect: Dialect,
    pub document: Document,
    /// The document's text and the line of `source` it starts on, to give later errors their lines.
    pub text: std::sync::Arc<str>,
    pub first_line: usize,
}

/// Splits `text` into YAML documents with the line each starts on (1-based).
pub(crate) fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1usize, String::new())];
    for (i, line) in text.lines().enumerate() {
        let is_marker = line.strip_prefix("---").is_some_and(|rest| rest.trim().is_empty() || rest.starts_with(' '));
        if is_marker {
            docs.push((i + 2, String::new()));
            continue;
        }
        if let Some((_, doc)) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

/// serde_yaml's error in the document `doc`, which starts on line `first_line` of `source`.
fn yaml_error(source: &str, first_line: usize, doc: &str, e: &serde_yaml::Error, errors: &mut Collector) {
    let (field, message) = recover::split(e);
    let mut location = Location::new(source, field);
    // libyaml puts the end of the stream on the line after the last one (a line the file may not have): an error
    // there, such as an unterminated string, is on the document's last line.
    let last = first_line + doc.lines().count().max(1) - 1;
    location.line = e.location().map(|l| (l.line() + first_line - 1).min(last));
    errors.push(location, message);
}

/// Reads every document in `text`. `source` names it in errors (a file path, or `namespace/name/key`).
pub(crate) fn load(source: &str, text: &str, errors: &mut Collector) -> Vec<Loaded> {
    let mut out = Vec::new();
    for (line, doc) in split_documents(text) {
        load_one(source, line, &doc, errors, &mut out);
    }
    out
}

fn load_one(source: &str, line: usize, doc: &str, errors: &mut Collector, out: &mut Vec<Loaded>) {
    let Some(mapping) = top_mapping(source, line, doc, errors) else { return };
    let has = |key: &str| mapping.contains_key(key);
    if has("version") {
        out.extend(load_native(source, line, doc, &mapping, errors));
    } else if has("http") || has("tcp") || has("tls") {
        out.extend(load_traefik(source, line, doc, errors));
    } else {
        errors.push(
            at_line(source, "", line),
            "neither a Dime routes document (needs `version: 1`) nor a Traefik dynamic configuration (`http:`, `tcp:` or `tls:`)",
        );
    }
}

/// The document's top-level mapping; `None` for an empty document, and (with its error) for one that is not YAML
/// or not a mapping.
fn top_mapping(source: &str, line: usize, doc: &str, errors: &mut Collector) -> Option<serde_yaml::Mapping> {
    let value: serde_yaml::Value = match serde_yaml::from_str(doc) {
        Ok(v) => v,
        Err(e) => {
            yaml_error(source, line, doc, &e, errors);
            return None;
        }
    };
    match value {
        serde_yaml::Value::Null => None,
        serde_yaml::Value::Mapping(m) => Some(m),
        _ => {
            errors.push(at_line(source, "", line), "expected a mapping at the top of the document");
            None
        }
    }
}

/// A native document (it has `version:`), if it is of the version this build reads and its structure reads.
fn load_native(
    source: &str,
    line: usize,
    doc: &str,
    mapping: &serde_yaml::Mapping,
    errors: &mut Collector,
) -> Option<Loaded> {
    let version = mapping.get("version").and_then(serde_yaml::Value::as_u64);
    if version != Some(u64::from(schema::SCHEMA_VERSION)) {
        errors.push(
            at_line(source, "version", line),
            format!("unsupported schema version (this build reads `version: {}`)", schema::SCHEMA_VERSION),
        );
        return None;
    }
    let Read::Value(document) = recover::read::<Document>(source, line, doc, errors) else { return None };
    Some(Loaded { source: source.to_owned(), dialect: Dialect::Native, document, text: doc.into(), first_line: line })
}

/// A Traefik dynamic configuration, translated; one that read only with whole mappings taken out is checked for
/// unsupported features and gives nothing.
fn load_traefik(source: &str, line: usize, doc: &str, errors: &mut Collector) -> Option<Loaded> {
    match recover::read::<traefik::Dynamic>(source, line, doc, errors) {
        Read::Value(dynamic) => {
            let document = traefik::translate(source, doc, line, dynamic, errors);
            Some(Loaded {
                source: source.to_owned(),
                dialect: Dialect::Traefik,
                document,
                text: doc.into(),
                first_line: line,
            })
        }
        Read::Pruned(dynamic) => {
            traefik::report_unsupported(source, doc, line, &dynamic, errors);
            None
        }
        Read::Failed => None,
    }
}

/// `field` of `source`, on the document's first line.
fn at_line(source: &str, field: &str, line: usize) -> Location {
    let mut at = Location::new(source, field);
    at.line = Some(line);
    at
}

pub(crate) mod lines;
mod recover;
#[cfg(test)]
mod tests;
