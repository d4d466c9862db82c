//! One reading of a request's path, tried as an attacker would: an open route (`/public/`) beside a signed one
//! (`/premium/`) on the same host, and requests that try to climb from the first into the second with dot
//! segments written raw, percent-encoded, mixed-case, double-encoded, with an encoded slash or a backslash; and a
//! route that allows encoded slashes (`/files/`), where they reach the origin encoded and still climb nowhere.
//! The requests are written on a raw socket: an HTTP client library resolves `..` itself before sending.
//! (The same against nginx, which resolves `..` itself: paths_nginx.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use indoc::formatdoc;

use support::{Edge, Origin};

const KEYS: &str = "k1 0123456789abcdef0123456789abcdef-edge-secret\n";

/// Sends `target` to the edge as written ([`support::raw_get`]).
async fn raw_get(edge: &Edge, host: &str, target: &str) -> (u16, String) {
    support::raw_get(edge.http, host, target).await
}

async fn open_and_signed() -> (Origin, Edge, tempfile::TempDir) {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, KEYS).unwrap();
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: open, match: [{{ hosts: [v.test], paths: [{{ prefix: /public/ }}] }}], upstream: o, cache: {{}} }}
                - {{ name: premium, match: [{{ hosts: [v.test], paths: [{{ prefix: /premium/ }}] }}], upstream: o, cache: {{}}, signed_urls: {{ keys: [k1] }} }}
                - {{ name: files, match: [{{ hosts: [v.test], paths: [{{ prefix: /files/ }}] }}], upstream: o, cache: {{}}, allow_encoded_slash: true }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let edge = Edge::start(&routes, &["--signing-keys", keys.to_str().unwrap()]).await;
    (origin, edge, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_dot_segment_climbs_from_an_open_route_into_a_signed_one() {
    let (origin, edge, _dir) = open_and_signed().await;
    // Each climbs out of /public/ into /premium/x.ts (or would, on an origin that resolves it like nginx).
    let climbs = [
        "/public/../premium/x.ts",
        "/public/./../premium/x.ts",
        "/public/a/../../premium/x.ts",
        "/public/%2e%2e/premium/x.ts",
        "/public/%2E%2E/premium/x.ts",
        "/public/%2e%2E/premium/x.ts",
        "/public/.%2e/premium/x.ts",
        "/public/%2e./premium/x.ts",
        "/public/%2e/%2e%2e/premium/x.ts",
        "/public/..//premium/x.ts",
        "/public/%2e%2e//premium/x.ts",
        "/public/..%2fpremium/x.ts",
        "/public/..%2Fpremium/x.ts",
        "/public/%2e%2e%2fpremium/x.ts",
        "/public/%2e%2e%2Fpremium/x.ts",
        "/public/..%5cpremium/x.ts",
        "/public/..%5Cpremium/x.ts",
        "/public/..\\premium/x.ts",
        "/public\\..\\premium/x.ts",
        "/public/..;/premium/x.ts",
        "/public/.;/../premium/x.ts",
        "/public/..%3b/premium/x.ts",
        "/public/..%00/premium/x.ts",
        "/public/%00/../premium/x.ts",
        "/public/%2e%2e%00/premium/x.ts",
        "/PUBLIC/../premium/x.ts",
        "/public/../PREMIUM/../premium/x.ts",
        "/public/../premium/./x.ts",
        "/public/../premium//x.ts",
        "/public/%2e%2e/%70remium/x.ts",
        "/public/%2e%2e/premium/%78.ts",
        "/public/..%2f..%2fpremium/x.ts",
        "/public/.%2E/premium/x.ts",
        "/public/%2E./premium/x.ts",
        "/public/sub/%2e%2e/%2e%2e/premium/x.ts",
        "/public/%%32%65%%32%65/premium/x.ts",
        "/./premium/x.ts",
        "/../premium/x.ts",
        "//premium/x.ts",
        "/public/../premium/x.ts?dime_sig=forged&dime_exp=9999999999",
    ];
    for target in climbs {
        let (status, body) = raw_get(&edge, "v.test", target).await;
        assert!(matches!(status, 400 | 403 | 404), "{target}: {status} {body}");
        assert!(!body.contains("origin=o"), "{target}: the origin's bytes reached the viewer: {body}");
    }
    assert_eq!(origin.hits(), 0, "a climb reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_paths_with_escapes_still_work_and_the_origin_gets_the_normalized_path() {
    let (origin, edge, _dir) = open_and_signed().await;
    let cases = [
        ("/public/caf%7Ee.html", "/public/caf~e.html"),
        ("/public/a%20b.html", "/public/a%20b.html"),
        ("/public/a%3fb.html", "/public/a%3Fb.html"),
        ("/public/x/../y.html", "/public/y.html"),
        ("/public/./z.html", "/public/z.html"),
        ("/public//w.html", "/public/w.html"),
        // `..` after an empty segment removes the empty one (RFC 3986): an open path, sent as read.
        ("/public//../premium/x.ts", "/public/premium/x.ts"),
        // Encoded once more, or an overlong UTF-8 dot: text to the origin (nginx decodes once), not a segment.
        ("/public/%252e%252e/premium/x.ts", "/public/%252e%252e/premium/x.ts"),
        ("/public/%c0%ae%c0%ae/premium/x.ts", "/public/%C0%AE%C0%AE/premium/x.ts"),
    ];
    for (target, seen) in cases {
        let (status, body) = raw_get(&edge, "v.test", target).await;
        assert_eq!(status, 200, "{target}: {body}");
        assert!(body.contains(&format!("path={seen}\n")), "{target}: the origin saw {body}");
    }
    // One cache key per reading: two spellings of one path are one object.
    for target in ["/public/k/../key.html?cache_control=max-age%3D60", "/public/key.html?cache_control=max-age%3D60"] {
        assert_eq!(raw_get(&edge, "v.test", target).await.0, 200, "{target}");
    }
    assert_eq!(origin.hits_for("/public/key.html"), 1, "two spellings of one path are one object");
    let (status, body) = raw_get(&edge, "v.test", "/public/a%2fb.html").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("encoded slash"), "the refusal says why: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_allows_encoded_slashes_gets_them_encoded_and_only_that_route() {
    let (origin, edge, _dir) = open_and_signed().await;
    // Kept encoded (uppercased), one segment: the origin sees `%2F`, not a separator.
    for (target, seen) in [
        ("/files/a%2Fb.html", "/files/a%2Fb.html"),
        ("/files/a%2fb.html", "/files/a%2Fb.html"),
        ("/files/x/../a%5cb.html", "/files/a%5Cb.html"),
        ("/files/%7e/a%2F%2Fb.html", "/files/~/a%2F%2Fb.html"),
    ] {
        let (status, body) = raw_get(&edge, "v.test", target).await;
        assert_eq!(status, 200, "{target}: {body}");
        assert!(body.contains(&format!("path={seen}\n")), "{target}: the origin saw {body}");
    }
    // One reading, one cache key: two spellings of one path with an encoded slash are one object.
    for target in ["/files/k%2fey.html?cache_control=max-age%3D60", "/files/./k%2Fey.html?cache_control=max-age%3D60"] {
        assert_eq!(raw_get(&edge, "v.test", target).await.0, 200, "{target}");
    }
    assert_eq!(origin.hits_for("/files/k%2Fey.html"), 1, "two spellings of one path are one object");
    // Other routes still refuse them, and so does the allowing route when they hide a dot segment.
    let before = origin.hits();
    for target in [
        "/public/a%2fb.html",
        "/premium/a%2Fb.html",
        "/a%2Fb.html",
        "/files/..%2fpremium/x.ts",
        "/files/..%2Fpremium/x.ts",
        "/files/%2e%2e%2fpremium/x.ts",
        "/files/a%2f..%2f..%2fpremium/x.ts",
        "/files/..%5cpremium/x.ts",
        "/files/.%2fx/../../premium/x.ts",
        "/files/..;%2fpremium/x.ts",
        "/files/a%2Fb/..%2F..%2F..%2Fpremium/x.ts",
        "/files/../premium/a%2Fx.ts",
    ] {
        let (status, body) = raw_get(&edge, "v.test", target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(
            body.contains("encoded slash") || body.contains("encoded backslash") || body.contains("dot segment"),
            "{target}: {body}"
        );
    }
    assert_eq!(origin.hits(), before, "a refused path reached the origin");
}
