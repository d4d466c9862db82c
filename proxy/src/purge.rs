//! Purges on this edge, wherever they come from (the admin listener's `POST /purge`, or the fleet's purge log
//! through [`crate::source::purges`]): what a URL, prefix or tag names in the cache, applied and counted the
//! same way. A purge's paths are read as a request's path is ([`dime_routes::purge::read_path`]), so
//! `/public/../premium/` purges what `/premium/` cached.

use dime_routes::purge::{Purge, PurgePathError};

use crate::cache::policy::{classify, Kind};
use crate::cache::select::Selector;
use crate::cache::{key, Cache};
use crate::state::State;

/// Why a purge's URL names nothing this edge can purge.
#[derive(Debug, thiserror::Error)]
pub enum BadUrl {
    #[error("`{0}` is not an http(s)://host/path URL")]
    NotUrl(String),
    #[error("`{url}`: the path: {error}")]
    Path { url: String, error: dime_routes::PathError },
}

/// The selector of one URL: the primary cache key of its path as read, with the query parameters its route
/// keeps.
pub fn url_selector(state: &State, url: &str) -> Result<Selector, BadUrl> {
    let (host, raw, query) = dime_routes::purge::split_url(url).ok_or_else(|| BadUrl::NotUrl(url.to_owned()))?;
    let path = dime_routes::purge::read_path(raw).map_err(|error| BadUrl::Path { url: url.to_owned(), error })?;
    let path = path.as_str();
    let active = state.current();
    let query_keys = active
        .as_ref()
        .and_then(|a| a.table.find(host, path))
        .and_then(|r| r.cache.as_ref())
        .and_then(|p| p.query_keys.clone());
    let kind: Kind = classify(path);
    Ok(Selector::Key(key::primary_key(host, path, query, kind, query_keys.as_deref())))
}

/// The selector of every object of `host` under the path `prefix`, as read ([`dime_routes::purge::read_prefix`]).
pub fn prefix_selector(host: &str, prefix: &str) -> Result<Selector, PurgePathError> {
    let prefix = dime_routes::purge::read_prefix(prefix)?;
    Ok(Selector::Prefix(format!("{}\n{prefix}", dime_routes::normalize_host(host))))
}

/// Purges one selector and counts it in `dime_cache_purged_total{kind}`; (objects purged, fills abandoned).
pub fn purge_one(state: &State, cache: &Cache, what: &Selector, soft: bool) -> (usize, usize) {
    let (purged, fills) = cache.purge(what, soft);
    state.metrics.purge.purged(what).inc_by(purged as u64);
    (purged, fills)
}

/// Applies a fleet purge: every URL, prefix and tag it names. (objects purged, fills abandoned).
pub fn apply(state: &State, cache: &Cache, purge: &Purge) -> (usize, usize) {
    let mut selectors: Vec<Selector> = Vec::with_capacity(purge.targets());
    let mut keys = std::collections::HashSet::new();
    for url in &purge.urls {
        match url_selector(state, url) {
            Ok(Selector::Key(key)) => drop(keys.insert(key)),
            // Control validates the same way; a purge from a newer control may still say more than this edge reads.
            Ok(_) => tracing::warn!(url, "a fleet purge names a URL this edge cannot read; skipped"),
            Err(error) => tracing::warn!(url, %error, "a fleet purge names a URL this edge cannot read; skipped"),
        }
    }
    // A URL purge looks at every stored object: all of a purge's URLs in one pass.
    if !keys.is_empty() {
        selectors.push(Selector::Keys(keys));
    }
    for p in &purge.prefixes {
        match prefix_selector(&p.host, &p.prefix) {
            Ok(selector) => selectors.push(selector),
            Err(error) => {
                tracing::warn!(host = p.host, prefix = p.prefix, %error, "a fleet purge names a prefix this edge cannot read; skipped")
            }
        }
    }
    selectors.extend(purge.tags.iter().map(|t| Selector::Tag(t.clone())));
    selectors.iter().fold((0, 0), |(objects, fills), what| {
        let (o, f) = purge_one(state, cache, what, purge.soft);
        (objects + o, fills + f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_names_the_keys_of_its_path_as_read() {
        let prefix = |host: &str, p: &str| match prefix_selector(host, p) {
            Ok(Selector::Prefix(key)) => Ok(key),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(prefix("V.test:8080", "/public/../premium/"), Ok("v.test\n/premium/".to_owned()));
        assert_eq!(prefix("v.test", "/public/x/%2e%2E/%7eu/"), Ok("v.test\n/public/~u/".to_owned()));
        assert_eq!(prefix("v.test", "/hls/seg-"), Ok("v.test\n/hls/seg-".to_owned()));
        assert!(prefix("v.test", "/public/..").unwrap_err().contains("ends in the dot segment `..`"));
        assert!(prefix("v.test", "/a%zz/").unwrap_err().contains("bad percent-encoding"));
    }
}
