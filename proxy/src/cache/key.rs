//! The cache key: host, path, and only the query parameters that change the response.

use super::policy::Kind;

/// Query parameters of Low-Latency HLS that select a different playlist or part; kept by default on streaming
/// paths, where every other parameter (session ids, cache busters, tokens) is dropped.
pub const LIVE_QUERY_KEYS: &[&str] = &["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// The primary key: `host` (normalized: lower case, no port), a newline (never part of a host, so the framing is
/// unambiguous), the path, and the kept query parameters in their original order.
///
/// `query_keys` is the route's list; without one, ordinary paths keep their whole query and streaming paths keep
/// [`LIVE_QUERY_KEYS`].
pub fn primary_key(host: &str, path: &str, query: Option<&str>, kind: Kind, query_keys: Option<&[String]>) -> String {
    let host = dime_routes::normalize_host(host);
    let mut key = String::with_capacity(host.len() + path.len() + query.map_or(0, str::len) + 2);
    key.push_str(&host);
    key.push('\n');
    key.push_str(path);
    let Some(query) = query.filter(|q| !q.is_empty()) else { return key };
    let keep = |name: &str| {
        !crate::signed::is_reserved(name)
            && match query_keys {
                Some(list) => list.iter().any(|k| k == name),
                None if kind == Kind::Other => true,
                None => LIVE_QUERY_KEYS.contains(&name),
            }
    };
    // `dime_*` parameters (signed-URL tokens) are Dime's own: never part of the key, so every viewer's token
    // shares one cached object.
    if query_keys.is_none() && kind == Kind::Other && !query.contains("dime_") {
        key.push('?');
        key.push_str(query);
        return key;
    }
    // The kept pairs go into the key byte for byte as the viewer sent them (so the key is the URL the origin is
    // asked for); only their names are looked at, and the names that matter are plain ASCII. `form_urlencoded`
    // decodes every pair, which would make two spellings of one value one key; so this splits on `&` itself.
    let mut first = true;
    for pair in query.split('&') {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if keep(name) {
            key.push(if first { '?' } else { '&' });
            key.push_str(pair);
            first = false;
        }
    }
    key
}

/// The cache key of a request for `host` and `uri`: [`primary_key`], hashed once (pingora-cache hashes the
/// primary key each time it needs it: lookup, lock, eviction).
pub fn cache_key(host: &str, uri: &http::Uri, kind: Kind, query_keys: Option<&[String]>) -> pingora_cache::CacheKey {
    let primary = primary_key(host, uri.path(), uri.query(), kind, query_keys);
    let hash = pingora_cache::key::hash_key(&primary);
    let mut cache_key = pingora_cache::CacheKey::new(primary, "");
    cache_key.set_primary_bin_override(hash);
    cache_key
}

/// The host part of a primary key, and the rest; for purging by host and prefix.
pub fn split_primary(key: &str) -> (&str, &str) {
    key.split_once('\n').unwrap_or((key, ""))
}

/// The variant of a stored object a request gets: objects that say `Vary: Accept-Encoding` are kept per
/// normalized (lower-cased, sorted, deduplicated, without q-values) Accept-Encoding of the request; `None` (one
/// variant) for the others.
pub fn encoding_variance(
    stored: &http::HeaderMap,
    request: &http::HeaderMap,
) -> Option<pingora_cache::key::HashBinary> {
    let varies = stored
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|h| h.trim().eq_ignore_ascii_case("accept-encoding")));
    if !varies {
        return None;
    }
    let mut encodings: Vec<String> = request
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|e| e.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    encodings.sort();
    encodings.dedup();
    let mut variance = pingora_cache::VarianceBuilder::new();
    variance.add_owned_value("accept-encoding", encodings.join(",").into_bytes());
    variance.finalize()
}

#[cfg(test)]
mod tests;
