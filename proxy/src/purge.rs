//! Purges on this edge, wherever they come from (the admin listener's `POST /purge`, or the fleet's purge log
//! through [`crate::source::purges`]): what a URL, prefix or tag names in the cache, applied and counted the
//! same way.

use dime_routes::purge::Purge;

use crate::cache::policy::{classify, Kind};
use crate::cache::select::Selector;
use crate::cache::{key, Cache};
use crate::state::State;

/// The selector of one URL: its primary cache key, with the query parameters its route keeps. `None`: not an
/// `http(s)://host/path` URL.
pub fn url_selector(state: &State, url: &str) -> Option<Selector> {
    let (host, path, query) = dime_routes::purge::split_url(url)?;
    let active = state.current();
    let query_keys = active
        .as_ref()
        .and_then(|a| a.table.find(host, path))
        .and_then(|r| r.cache.as_ref())
        .and_then(|p| p.query_keys.clone());
    let kind: Kind = classify(path);
    Some(Selector::Key(key::primary_key(host, path, query, kind, query_keys.as_deref())))
}

/// The selector of every object of `host` under the path `prefix`.
pub fn prefix_selector(host: &str, prefix: &str) -> Selector {
    Selector::Prefix(format!("{}\n{prefix}", dime_routes::normalize_host(host)))
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
            Some(Selector::Key(key)) => drop(keys.insert(key)),
            // Control validates the same way; a purge from a newer control may still say more than this edge reads.
            _ => tracing::warn!(url, "a fleet purge names a URL this edge cannot read; skipped"),
        }
    }
    // A URL purge looks at every stored object: all of a purge's URLs in one pass.
    if !keys.is_empty() {
        selectors.push(Selector::Keys(keys));
    }
    selectors.extend(purge.prefixes.iter().map(|p| prefix_selector(&p.host, &p.prefix)));
    selectors.extend(purge.tags.iter().map(|t| Selector::Tag(t.clone())));
    selectors.iter().fold((0, 0), |(objects, fills), what| {
        let (o, f) = purge_one(state, cache, what, purge.soft);
        (objects + o, fills + f)
    })
}
