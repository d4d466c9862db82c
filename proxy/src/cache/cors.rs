//! A page on another origin (a site's player embedding the stream) reads only the response headers listed in
//! `Access-Control-Expose-Headers`. When the origin lets other origins read a response (it carries
//! `Access-Control-Allow-Origin`), the edge adds its own headers, `Cache-Status` and `Age`, to that list, so the
//! page can tell whether a segment came from the cache. The origin's policy is not widened: without
//! `Access-Control-Allow-Origin` nothing is added, and a `*` list already exposes everything.

use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS};
use http::HeaderMap;

/// The edge's headers a cross-origin page may read.
const EDGE_HEADERS: [&str; 2] = ["Cache-Status", "Age"];

/// The `Access-Control-Expose-Headers` value to send instead of the one in `headers`, or `None` to leave them as
/// they are.
pub fn exposed(headers: &HeaderMap) -> Option<String> {
    if !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
        return None;
    }
    let listed: Vec<&str> = headers
        .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if listed.contains(&"*") {
        return None;
    }
    let missing: Vec<&str> =
        EDGE_HEADERS.into_iter().filter(|h| !listed.iter().any(|n| n.eq_ignore_ascii_case(h))).collect();
    if missing.is_empty() {
        return None;
    }
    Some(listed.into_iter().chain(missing).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_edge_headers_are_added_to_what_the_origin_exposes() {
        let allow = ("access-control-allow-origin", "*");
        assert_eq!(exposed(&headers(&[allow])).as_deref(), Some("Cache-Status, Age"));
        let some = headers(&[allow, ("access-control-expose-headers", "X-Stream, age")]);
        assert_eq!(exposed(&some).as_deref(), Some("X-Stream, age, Cache-Status"));
        let both = headers(&[allow, ("access-control-expose-headers", "cache-status, Age")]);
        assert_eq!(exposed(&both), None, "already listed");
        assert_eq!(exposed(&headers(&[allow, ("access-control-expose-headers", "*")])), None);
        assert_eq!(exposed(&headers(&[])), None, "no cross-origin read allowed: nothing added");
    }
}
