//! Host and path matching, and the priority-ordered index a request is looked up in.

use crate::error::Invalid;
use std::collections::HashMap;
use std::fmt;

/// A host a route answers for: exact (`video.example.com`) or wildcard (`*.example.com`, which matches any name
/// with at least one more label, never `example.com` itself). Stored lower-case, without trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    Exact(String),
    /// The suffix including its leading dot: `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a host pattern as written in a routes document.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let lower = text.trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() {
            return Err(format!("invalid host `{text}`: empty name").into());
        }
        let bracketed_ipv6 = name.starts_with('[') && name.ends_with(']');
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
        if !bracketed_ipv6 && !name.chars().all(ok) {
            return Err(format!(
                "invalid host `{text}`: only letters, digits, `-`, `_` and `.` are allowed (no port, no scheme); \
                 a wildcard is written `*.example.com`"
            )
            .into());
        }
        if name.split('.').any(str::is_empty) && !bracketed_ipv6 {
            return Err(format!("invalid host `{text}`: empty label").into());
        }
        Ok(if wild { HostPattern::Wildcard(format!(".{name}")) } else { HostPattern::Exact(name.to_owned()) })
    }

    /// Does this pattern match an already normalized host (see [`normalize_host`])?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Prefix(p) => write!(f, "prefix `{p}`"),
            PathMatch::Exact(p) => write!(f, "exactly `{p}`"),
        }
    }
}

/// Normalizes a request's Host (or `:authority`): drops the port and a trailing dot, lower-cases. Borrows when
/// nothing needs changing, which is the common case.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let trimmed = without_port.trim_end_matches('.');
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Exact(exact) => path == exact,
        }
    }

    pub(crate) fn check(text: &str) -> Result<(), Invalid> {
        if !text.starts_with('/') {
            return Err(format!("invalid path `{text}`: must start with `/`").into());
        }
        if text.chars().any(|c| c.is_whitespace() || c == '?' || c == '#') {
            return Err(
                format!("invalid path `{text}`: no whitespace, `?` or `#` (query strings are not matched)").into()
            );
        }
        Ok(())
    }
}

/// One (host, path) condition of a route, with its place in the precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub route: usize,
    pub host: Option<HostPattern>,
    pub path: Option<PathMatch>,
    pub priority: i64,
}

impl Rule {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.host.as_ref().is_none_or(|h| h.matches(host)) && self.path.as_ref().is_none_or(|p| p.matches(path))
    }
}

/// The lookup structure: rules in precedence order, with hash lookups so a request looks only at the rules that
/// can match its host — an exact host by one lookup, a wildcard by one lookup per label of the request's host —
/// whatever the number of routes.
#[derive(Debug, Clone, Default)]
pub struct Index {
    rules: Vec<Rule>,
    /// Exact host → indices into `rules` of every rule that can match it (its own, wildcards that cover it, and
    /// host-less ones), in precedence order.
    by_host: HashMap<String, Vec<usize>>,
    /// Wildcard suffix (`.example.com`) → its rules, in precedence order, for hosts with no exact rule.
    by_suffix: HashMap<String, Vec<usize>>,
    /// Host-less rules, in precedence order.
    any_host: Vec<usize>,
}

impl Index {
    /// Builds the index. `rules` must already be in precedence order (highest priority first, ties broken
    /// deterministically by the caller).
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut by_host: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_suffix: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_host = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match &rule.host {
                Some(HostPattern::Exact(name)) => by_host.entry(name.clone()).or_default().push(i),
                Some(HostPattern::Wildcard(suffix)) => by_suffix.entry(suffix.clone()).or_default().push(i),
                None => any_host.push(i),
            }
        }
        for (name, list) in by_host.iter_mut() {
            for (pos, _) in name.match_indices('.').filter(|&(pos, _)| pos > 0) {
                list.extend(by_suffix.get(&name[pos..]).into_iter().flatten());
            }
            list.extend(any_host.iter().copied());
            list.sort_unstable();
        }
        Index { rules, by_host, by_suffix, any_host }
    }

    /// The route index of the highest-precedence rule matching a normalized host and a path.
    pub fn find(&self, host: &str, path: &str) -> Option<usize> {
        let path_ok = |i: usize| self.rules[i].path.as_ref().is_none_or(|p| p.matches(path));
        let found = match self.by_host.get(host) {
            Some(list) => list.iter().copied().find(|&i| path_ok(i)),
            None => {
                // Each candidate list is in precedence order: its first path match is its best; the lowest of
                // those wins. A suffix must leave at least one label in front (`*.a.b` never matches `a.b`).
                let best_of = |list: &[usize]| list.iter().copied().find(|&i| path_ok(i));
                let suffixes = host
                    .match_indices('.')
                    .filter(|&(pos, _)| pos > 0)
                    .filter_map(|(pos, _)| self.by_suffix.get(&host[pos..]));
                suffixes.chain(std::iter::once(&self.any_host)).filter_map(|l| best_of(l)).min()
            }
        };
        found.map(|i| self.rules[i].route)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests;
