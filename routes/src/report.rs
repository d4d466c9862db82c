//! The migration report (`dime-edge check --report`): for every router, service and middleware of Traefik
//! configurations, whether Dime takes it as it is, takes it with a change (which), or does not support it (why,
//! and the nearest Dime feature where there is one). Made from the same validation as `check`, so the report and
//! the errors never disagree: each error is filed under the router, service or middleware its field names.
//!
//! Also reads a `kubectl get configmap -l traefik-config-fragment=true -o yaml` dump ([`configmap_fragments`]):
//! each data key of each ConfigMap is a fragment named `namespace/name/key`, as dime-control names them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{compile, Fragment};

/// What Dime makes of one part of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "notes")]
pub enum Verdict {
    /// Taken as it is.
    AsIs,
    /// Taken once changed as the notes say (each names what to write instead).
    WithChange(Vec<String>),
    /// Not supported: the notes say why, and the nearest Dime feature where there is one.
    NotSupported(Vec<String>),
    /// Written wrongly (a value of the wrong type, a required field missing): to fix before anything else can
    /// be said of it. The notes say what is wrong, and may name unsupported features too.
    ToFix(Vec<String>),
}

/// How many parts have each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub as_is: usize,
    pub with_change: usize,
    pub not_supported: usize,
    pub to_fix: usize,
}

/// One router, service, middleware (or the rest of a document) and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub source: String,
    /// `router`, `service`, `middleware`, `tcp router`, `tcp service`, `tls` or `document`.
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub entries: Vec<Entry>,
}

/// Where the parts of a Traefik document are, by the field prefix their errors carry.
const SECTIONS: [(&str, &str); 5] = [
    ("http.routers", "router"),
    ("http.services", "service"),
    ("http.middlewares", "middleware"),
    ("tcp.routers", "tcp router"),
    ("tcp.services", "tcp service"),
];

/// The parts of one fragment: (kind, name, field prefix), in the document's order of sections; and whether a
/// document of it is not YAML at all.
///
/// The documents are split as the loader splits them, and each is read on its own: a document that does not
/// read (its error is the loader's to report) has no parts, and the ones after it still do. serde_yaml's
/// multi-document iterator is not used: after a syntax error it yields the same error forever.
fn parts(text: &str) -> (Vec<(&'static str, String, String)>, bool) {
    let (mut out, mut unreadable) = (Vec::new(), false);
    for (_, doc) in crate::load::split_documents(text) {
        let top = match serde_yaml::from_str(&doc) {
            Ok(serde_yaml::Value::Mapping(top)) => top,
            Ok(_) => continue,
            Err(_) => {
                unreadable = true;
                continue;
            }
        };
        if top.contains_key("version") {
            continue; // a native document: reported as one
        }
        for (prefix, kind) in SECTIONS {
            let (section, table) = prefix.split_once('.').unwrap_or((prefix, ""));
            let names = top.get(section).and_then(|s| s.get(table)).and_then(serde_yaml::Value::as_mapping);
            for name in names.into_iter().flat_map(|m| m.keys()).filter_map(serde_yaml::Value::as_str) {
                out.push((kind, name.to_owned(), format!("{prefix}.{name}")));
            }
        }
        if top.contains_key("tls") {
            out.push(("tls", "tls".to_owned(), "tls".to_owned()));
        }
    }
    (out, unreadable)
}

/// The report for `fragments`, compiled together as control compiles them (a router may use a service of
/// another fragment).
pub fn migration_report(fragments: &[Fragment<'_>]) -> Report {
    let errors: Vec<crate::RouteError> = match compile(fragments) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    };
    let mut report = Report::default();
    let mut filed = vec![false; errors.len()];
    for f in fragments {
        let (parts, unreadable) = parts(f.text);
        for (kind, name, prefix) in parts {
            let mut notes = Vec::new();
            for (i, e) in errors.iter().enumerate() {
                let field = &e.location.field;
                let under = field == &prefix
                    || field.starts_with(&format!("{prefix}."))
                    || field.starts_with(&format!("{prefix}["));
                if e.location.source == f.source && under && !filed[i] {
                    filed[i] = true;
                    notes.push(note(e));
                }
            }
            report.entries.push(Entry { source: f.source.to_owned(), kind, name, verdict: verdict(notes) });
        }
        // What no part claims (a document-level problem, a native document, `udp`): one entry per fragment.
        let mut rest = Vec::new();
        for (i, e) in errors.iter().enumerate() {
            if !filed[i] && e.location.source == f.source {
                filed[i] = true;
                rest.push(note(e));
            }
        }
        if !rest.is_empty() || report.entries.iter().all(|e| e.source != f.source) {
            // A document that is not YAML (an unterminated string, a bad indentation) is to fix before anything.
            let verdict = if unreadable && !rest.is_empty() { Verdict::ToFix(rest) } else { verdict(rest) };
            let entry = Entry { source: f.source.to_owned(), kind: "document", name: String::new(), verdict };
            report.entries.push(entry);
        }
    }
    report
}

/// An error as a note: its line and field, then what it says.
fn note(e: &crate::RouteError) -> String {
    match e.location.line {
        Some(line) if e.location.field.is_empty() => format!("line {line}: {}", e.message),
        Some(line) => format!("line {line}: {}: {}", e.location.field, e.message),
        None if e.location.field.is_empty() => e.message.clone(),
        None => format!("{}: {}", e.location.field, e.message),
    }
}

/// serde's words for a value that does not have the shape the schema asks for.
const MISTAKES: [&str; 6] = [
    "invalid type: ",
    "invalid value: ",
    "missing field `",
    "invalid length ",
    "unknown variant `",
    "duplicate field `",
];

fn verdict(notes: Vec<String>) -> Verdict {
    let mistake = |n: &String| MISTAKES.iter().any(|m| n.contains(&format!(": {m}")));
    if notes.is_empty() {
        Verdict::AsIs
    } else if notes.iter().any(mistake) {
        Verdict::ToFix(notes)
    } else if notes.iter().all(|n| n.contains("; instead, write ")) {
        Verdict::WithChange(notes)
    } else {
        Verdict::NotSupported(notes)
    }
}

impl Report {
    /// How many entries have each verdict.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for e in &self.entries {
            match e.verdict {
                Verdict::AsIs => counts.as_is += 1,
                Verdict::WithChange(_) => counts.with_change += 1,
                Verdict::NotSupported(_) => counts.not_supported += 1,
                Verdict::ToFix(_) => counts.to_fix += 1,
            }
        }
        counts
    }

    /// The report for people: by source, each part with its verdict and notes, then the totals.
    pub fn to_text(&self) -> String {
        let mut by_source: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in &self.entries {
            by_source.entry(&e.source).or_default().push(e);
        }
        let mut out = String::new();
        for (source, entries) in by_source {
            out += &format!("{source}\n");
            for e in entries {
                let (label, notes) = match &e.verdict {
                    Verdict::AsIs => ("supported as is", &[][..]),
                    Verdict::WithChange(n) => ("supported with a change", &n[..]),
                    Verdict::NotSupported(n) => ("not supported", &n[..]),
                    Verdict::ToFix(n) => ("to fix (written wrongly)", &n[..]),
                };
                let name = if e.name.is_empty() { String::new() } else { format!(" {}", e.name) };
                out += &format!("  {}{name}: {label}\n", e.kind);
                for n in notes {
                    out += &format!("    - {n}\n");
                }
            }
        }
        let c = self.counts();
        out += &format!(
            "{} supported as is, {} supported with a change, {} not supported, {} to fix\n",
            c.as_is, c.with_change, c.not_supported, c.to_fix
        );
        out
    }
}

/// The fragments of a `kubectl get configmap ... -o yaml` (or `-o json`) dump: a `List` of ConfigMaps or one
/// ConfigMap. Each data key is a fragment named `namespace/name/key`. `None` when `text` is not such a dump.
pub fn configmap_fragments(text: &str) -> Option<Vec<(String, String)>> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let kind = value.get("kind")?.as_str()?;
    let items: Vec<&serde_yaml::Value> = match kind {
        "List" | "ConfigMapList" => value.get("items")?.as_sequence()?.iter().collect(),
        "ConfigMap" => vec![&value],
        _ => return None,
    };
    let mut out = Vec::new();
    for item in items {
        let meta = item.get("metadata");
        let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(serde_yaml::Value::as_str).unwrap_or("default");
        let (namespace, name) = (field("namespace"), field("name"));
        for (key, data) in item.get("data").and_then(serde_yaml::Value::as_mapping).into_iter().flatten() {
            if let (Some(key), Some(data)) = (key.as_str(), data.as_str()) {
                out.push((format!("{namespace}/{name}/{key}"), data.to_owned()));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
