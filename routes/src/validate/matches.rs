//! A route's `match` list: its hosts, and its paths checked against the edge's reading of request paths
//! ([`crate::path::normalize`]). The edge matches a request by its path as read, so a match path written in
//! another form (`/a/../b`, `/caf%7ee`, `//a`, a lowercase `%2f`) or one the edge refuses (`%2F` on a route
//! without `allow_encoded_slash`, a bad escape) would never match: an error that says what to write instead.

use crate::error::{Collector, Invalid, Location};
use crate::matcher::{HostPattern, PathMatch};
use crate::path::{normalize, PathError, PathOptions};
use crate::schema;
use crate::table::Match;

/// Each entry's hosts and paths, every bad one reported where it was written (`at` names a field of the route).
pub(super) fn compile_matches(
    spec: &schema::RouteSpec,
    allow_encoded_slash: bool,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> Vec<Match> {
    let mut matches = Vec::new();
    for (j, m) in spec.matches.iter().enumerate() {
        let mut hosts = Vec::new();
        for (k, h) in m.hosts.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(p) => hosts.push(p),
                Err(e) => errors.push(at(&format!("match[{j}].hosts[{k}]")), e),
            }
        }
        let mut paths = Vec::new();
        for (k, p) in m.paths.iter().enumerate() {
            let parsed = match (&p.prefix, &p.exact) {
                (Some(t), None) => PathMatch::check(t).map(|()| PathMatch::Prefix(t.clone())),
                (None, Some(t)) => PathMatch::check(t).map(|()| PathMatch::Exact(t.clone())),
                _ => Err(Invalid::from("give exactly one of `prefix` and `exact`")),
            };
            match parsed.and_then(|m| check_read_form(&m, allow_encoded_slash).map(|()| m)) {
                Ok(m) => paths.push(m),
                Err(e) => errors.push(at(&format!("match[{j}].paths[{k}]")), e),
            }
        }
        matches.push(Match { hosts, paths });
    }
    matches
}

/// `Ok` when the path of `m` is one the edge can read a request's path as, on a route that allows encoded slashes
/// or not.
fn check_read_form(m: &PathMatch, allow_encoded_slash: bool) -> Result<(), Invalid> {
    let (PathMatch::Prefix(text) | PathMatch::Exact(text)) = m;
    let options = PathOptions { allow_encoded_slash, ..PathOptions::default() };
    match normalize(text, options) {
        Ok(read) if read.is_unchanged() => Ok(()),
        Ok(read) => Err(format!(
            "`{text}` never matches: the edge matches a request by its path as read (docs/edge.md, \"How the edge \
             reads a path\"); write `{read}`"
        )
        .into()),
        Err(e @ (PathError::EncodedSlash { .. } | PathError::EncodedBackslash { .. })) => Err(format!(
            "`{text}` never matches: {e}; add `allow_encoded_slash: true` to the route if its origin reads them as \
             text"
        )
        .into()),
        Err(e) => Err(format!("`{text}` never matches: a request with this path is refused ({e})").into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_match_path_must_be_written_as_the_edge_reads_paths() {
        let prefix = |t: &str| PathMatch::Prefix(t.to_owned());
        for ok in ["/", "/hls", "/hls/", "/a.b/.well-known/", "/a%20b", "/%C3%A9", "/a;v=1/", "/a/...", "/~u"] {
            assert_eq!(check_read_form(&prefix(ok), false), Ok(()), "{ok}");
            assert_eq!(check_read_form(&PathMatch::Exact(ok.to_owned()), false), Ok(()), "{ok}");
        }
        assert_eq!(check_read_form(&prefix("/a%2Fb/"), true), Ok(()), "allowed, in the form the edge reads");
        let cases = [
            ("/a/../b/", false, "write `/b/`"),
            ("/caf%7ee", false, "write `/caf~e`"),
            ("//hls/", false, "write `/hls/`"),
            ("/a%3fb", false, "write `/a%3Fb`"),
            ("/a/.", false, "write `/a/`"),
            ("/a%2Fb/", false, "add `allow_encoded_slash: true` to the route"),
            ("/a%5cb/", false, "encoded backslash"),
            ("/a%2fb/", true, "write `/a%2Fb/`"),
            ("/a%2F../", true, "a dot segment behind an encoded slash"),
            ("/a%zz", false, "a request with this path is refused (bad percent-encoding"),
            ("/a\\b", true, "refused (backslash at byte 2"),
            ("/a/..;/b", false, "dot segment with `;` parameters"),
        ];
        for (text, allow, want) in cases {
            let got = check_read_form(&prefix(text), allow).unwrap_err().to_string();
            assert!(got.starts_with(&format!("`{text}` never matches")), "{text}: {got}");
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
