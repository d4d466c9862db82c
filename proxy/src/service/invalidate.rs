//! RFC 9111 §4.4: a successful answer to an unsafe request (`POST`, `PUT`, `DELETE`, `PATCH`...) invalidates
//! what this edge stored for its URL, and for the URLs its `Location` and `Content-Location` name on the same
//! host, so the next `GET` fetches what the change made. Each is one lookup ([`crate::cache::Cache::invalidate`]).
//! Other edges of a fleet keep their copies until they expire (see docs/cache.md).

use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::{request_host, DimeProxy, RequestCtx};
use crate::cache::{key, policy};

/// After the origin's answer to `session`'s request: invalidates what it names when the request was unsafe,
/// the route caches, and the answer is not an error (2xx or 3xx).
pub(super) fn after_unsafe(proxy: &DimeProxy, session: &Session, resp: &ResponseHeader, ctx: &RequestCtx) {
    let req = session.req_header();
    // The methods RFC 9110 defines as unsafe; extension methods (WebDAV's PROPFIND, REPORT...) are left alone.
    let unsafe_method = matches!(req.method.as_str(), "POST" | "PUT" | "DELETE" | "PATCH");
    let status = resp.status.as_u16();
    if !unsafe_method || !(200..400).contains(&status) {
        return;
    }
    let Some(cache) = ctx.cache_policy() else { return };
    let host = request_host(req);
    let mut invalidated = 0;
    let primary = |path: &str, query: Option<&str>, query_keys: Option<&[String]>| {
        key::primary_key(host, path, query, policy::classify(path), query_keys)
    };
    invalidated +=
        u64::from(proxy.cache.invalidate(&primary(req.uri.path(), req.uri.query(), cache.query_keys.as_deref())));
    // `Location` names what a `201` created; `Content-Location` the resource the answer represents. (Not the
    // `Location` of a redirect: a login form's `302` to `/` would purge the home page at every login.)
    let mut named = Vec::new();
    if status == 201 {
        named.push(http::header::LOCATION);
    }
    if status < 300 {
        named.push(http::header::CONTENT_LOCATION);
    }
    let active = proxy.state.current();
    for name in named {
        let Some((path, query)) =
            resp.headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| same_host_target(host, v))
        else {
            continue;
        };
        // Keyed as its own route keys it, if that route caches.
        let route = active.as_ref().and_then(|a| a.table.find(host, &path));
        let Some(target) = route.and_then(|r| r.cache.as_ref()) else { continue };
        invalidated +=
            u64::from(proxy.cache.invalidate(&primary(&path, query.as_deref(), target.query_keys.as_deref())));
    }
    if invalidated > 0 {
        proxy.state.metrics.cache.invalidations.inc_by(invalidated);
        tracing::debug!(method = %req.method, path = req.uri.path(), invalidated, "stored objects invalidated");
    }
}

/// The path and query a `Location` or `Content-Location` value names when it is on `host`: an absolute path, or
/// an `http(s)` URL of the same host. The path is read as a request's is; `None` for anything else (another
/// host, a relative reference, a path that does not read).
fn same_host_target(host: &str, value: &str) -> Option<(String, Option<String>)> {
    let value = value.split('#').next().unwrap_or("");
    let (raw, query) = if value.starts_with('/') && !value.starts_with("//") {
        match value.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (value, None),
        }
    } else {
        let (h, p, q) = dime_routes::purge::split_url(value)?;
        if dime_routes::normalize_host(h) != dime_routes::normalize_host(host) {
            return None;
        }
        (p, q)
    };
    let path = dime_routes::purge::read_path(raw).ok()?;
    Some((path.as_str().to_owned(), query.map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::same_host_target;

    #[test]
    fn only_targets_on_the_same_host_are_named() {
        let t = |v: &str| same_host_target("c.test:8080", v);
        assert_eq!(t("/items/5?x=1#top"), Some(("/items/5".to_owned(), Some("x=1".to_owned()))));
        assert_eq!(t("https://C.test/items/6"), Some(("/items/6".to_owned(), None)));
        assert_eq!(t("http://c.test/a/../b"), Some(("/b".to_owned(), None)), "read as a request's path is");
        for other in ["http://elsewhere.test/items/5", "//elsewhere.test/x", "items/5", "ftp://c.test/x", ""] {
            assert_eq!(t(other), None, "{other:?}");
        }
    }
}
