//! Reading route text: YAML (or JSON) with one or more documents, each either a native document (it has
//! `version:`) or a Traefik dynamic configuration (it has `http:` or `tcp:`).

use serde::de::DeserializeOwned;

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
}

/// Splits `text` into YAML documents with the line each starts on (1-based).
fn split_documents(text: &str) -> Vec<(usize, String)> {
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

fn yaml_error(source: &str, first_line: usize, e: &serde_yaml::Error, errors: &mut Collector) {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    };
    let (field, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() => (path.to_owned(), rest.to_owned()),
        _ => (String::new(), message),
    };
    let mut location = Location::new(source, field);
    location.line = e.location().map(|l| l.line() + first_line - 1);
    errors.push(location, message);
}

fn typed<T: DeserializeOwned>(source: &str, line: usize, text: &str, errors: &mut Collector) -> Option<T> {
    match serde_yaml::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            yaml_error(source, line, &e, errors);
            None
        }
    }
}

/// Reads every document in `text`. `source` names it in errors (a file path, or `namespace/name/key`).
pub(crate) fn load(source: &str, text: &str, errors: &mut Collector) -> Vec<Loaded> {
    let mut out = Vec::new();
    for (line, doc) in split_documents(text) {
        let value: serde_yaml::Value = match serde_yaml::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                yaml_error(source, line, &e, errors);
                continue;
            }
        };
        let mapping = match value {
            serde_yaml::Value::Null => continue,
            serde_yaml::Value::Mapping(m) => m,
            _ => {
                let mut at = Location::new(source, "");
                at.line = Some(line);
                errors.push(at, "expected a mapping at the top of the document");
                continue;
            }
        };
        let has = |key: &str| mapping.contains_key(key);
        if has("version") {
            let version = mapping.get("version").and_then(serde_yaml::Value::as_u64);
            if version != Some(u64::from(schema::SCHEMA_VERSION)) {
                let mut at = Location::new(source, "version");
                at.line = Some(line);
                errors.push(
                    at,
                    format!("unsupported schema version (this build reads `version: {}`)", schema::SCHEMA_VERSION),
                );
                continue;
            }
            if let Some(document) = typed::<Document>(source, line, &doc, errors) {
                out.push(Loaded { source: source.to_owned(), dialect: Dialect::Native, document });
            }
        } else if has("http") || has("tcp") || has("tls") {
            if let Some(dynamic) = typed::<traefik::Dynamic>(source, line, &doc, errors) {
                let document = traefik::translate(source, &doc, line, dynamic, errors);
                out.push(Loaded { source: source.to_owned(), dialect: Dialect::Traefik, document });
            }
        } else {
            let mut at = Location::new(source, "");
            at.line = Some(line);
            errors.push(
                at,
                "neither a Dime routes document (needs `version: 1`) nor a Traefik dynamic configuration (`http:`, `tcp:` or `tls:`)",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
