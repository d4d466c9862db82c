//! A fleet purge as control takes it (`POST /v1/purge`), keeps it (the purge log) and serves it to the edges
//! (`GET /v1/purges`): the wire format and its validation, shared by both sides so that what control accepts,
//! every edge can apply. A purge's paths are read as the edge reads a request's ([`read_path`],
//! [`read_prefix`]), so that they name the cache keys those requests were stored under.

use serde::{Deserialize, Serialize};

use crate::path::{normalize, NormalizedPath, PathError, PathOptions};
use crate::Invalid;

/// At most this many URLs, prefixes and tags together in one purge.
pub const MAX_TARGETS: usize = 1000;
/// The longest tag (the edges index no longer one; `Surrogate-Key` / `Cache-Tag` limits are of this order).
pub const MAX_TAG_LEN: usize = 256;
/// The longest URL or prefix.
pub const MAX_URL_LEN: usize = 4096;

/// What one purge names: URLs (every variant of each), host + path prefixes, cache tags; `soft` marks the
/// objects stale instead of removing them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<Prefix>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub soft: bool,
}

/// Every object of `host` whose path starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    pub host: String,
    pub prefix: String,
}

/// A purge in the log: its sequence number (the purge's id) and when control accepted it (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: i64,
    pub purge: Purge,
}

/// A purge is a list of things; an empty one is refused rather than taken as "nothing" or "everything".
impl Purge {
    /// Every problem, each naming the field and index it is at (`urls[2]: ...`).
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let targets = self.urls.len() + self.prefixes.len() + self.tags.len();
        if targets == 0 {
            errors.push("an empty purge: give at least one of `urls`, `prefixes`, `tags`".to_owned());
        }
        if targets > MAX_TARGETS {
            errors.push(format!("{targets} URLs, prefixes and tags: at most {MAX_TARGETS} in one purge"));
        }
        for (i, url) in self.urls.iter().enumerate() {
            if let Err(why) = check_url(url) {
                errors.push(format!("urls[{i}]: {why}"));
            }
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            if let Err(why) = check_host(&p.host) {
                errors.push(format!("prefixes[{i}].host: {why}"));
            }
            if !p.prefix.starts_with('/') || p.prefix.len() > MAX_URL_LEN || has_space(&p.prefix) {
                errors.push(format!(
                    "prefixes[{i}].prefix: `{}` is not a path (starts with /, no spaces, at most {MAX_URL_LEN} bytes)",
                    shorten(&p.prefix)
                ));
            } else if let Err(why) = read_prefix(&p.prefix) {
                errors.push(format!("prefixes[{i}].prefix: `{}`: {why}", shorten(&p.prefix)));
            }
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.len() > MAX_TAG_LEN || has_space(tag) || tag.contains(',') {
                errors.push(format!(
                    "tags[{i}]: `{}` is not a tag (1 to {MAX_TAG_LEN} bytes, no spaces or commas)",
                    shorten(tag)
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// How many things it names.
    pub fn targets(&self) -> usize {
        self.urls.len() + self.prefixes.len() + self.tags.len()
    }
}

/// An `http(s)://host[/path][?query]` URL, split: (host, path, query).
pub fn split_url(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let (host, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return None;
    }
    Some(match path_query.split_once('?') {
        Some((p, q)) => (host, p, Some(q)),
        None => (host, path_query, None),
    })
}

/// A purge's path, read as the edge reads a request's ([`crate::path::normalize`]: `/public/../premium/x` is
/// `/premium/x`, `/%7Eu` is `/~u`), so that it names the cache key the request was stored under. Read with
/// `allow_encoded_slash`: a stored path holds `%2F` only if its route allowed it, and any path the strict
/// reading accepts reads the same with it.
pub fn read_path(path: &str) -> Result<NormalizedPath<'_>, PathError> {
    normalize(path, PathOptions { allow_encoded_slash: true, ..PathOptions::default() })
}

/// Why a purge's path or prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgePathError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(
        "it ends in the dot segment `{0}`, which reads as its parent directory (`/a/..` as `/`, purging everything \
         under it): end the prefix with `/` if that is meant, or write more of the name"
    )]
    DotEnd(String),
}

/// A purge prefix read as [`read_path`] reads a path. Its last segment may be cut short (`/hls/seg-` names
/// `/hls/seg-1.ts`), so one that reads as a dot segment (`/a/..`, `/a/%2e`) is refused: `/a/..` could mean the
/// names that start with `..` as well as `/`, and `/` purges the whole host. `/a/../` says which.
pub fn read_prefix(prefix: &str) -> Result<NormalizedPath<'_>, PurgePathError> {
    let read = read_path(prefix)?;
    let last = prefix.rfind('/').map_or(prefix, |slash| &prefix[slash + 1..]);
    if !last.is_empty() && matches!(read_path(&format!("/{last}"))?.as_str(), "/" | "//") {
        return Err(PurgePathError::DotEnd(last.to_owned()));
    }
    Ok(read)
}

fn check_url(url: &str) -> Result<(), Invalid> {
    let bad = || Invalid(format!("`{}` is not an http(s)://host/path URL", shorten(url)));
    if url.len() > MAX_URL_LEN || has_space(url) || url.contains('#') {
        return Err(bad());
    }
    let (host, path, _) = split_url(url).ok_or_else(bad)?;
    check_host(host).map_err(|why| Invalid(format!("`{}`: {why}", shorten(url))))?;
    read_path(path).map(drop).map_err(|why| Invalid(format!("`{}`: the path: {why}", shorten(url))))
}

fn check_host(host: &str) -> Result<(), Invalid> {
    let ok = !host.is_empty()
        && host.len() <= 253 + 6
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!("`{}` is not a host name", shorten(host))))
    }
}

fn has_space(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A value as an error quotes it: at most 80 characters.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        return text.to_owned();
    }
    let head: String = text.chars().take(77).collect();
    format!("{head}...")
}

#[cfg(test)]
mod tests;
