//! HTTP caching by the RFCs, through a real edge in front of the test origin: directives that forbid serving
//! stale (RFC 9111 §5.2.2), targeted cache-control fields (RFC 9213), fields named by `Connection` (RFC 9110
//! §7.6.1, RFC 9111 §3.1), and `Age` and `Date` on hits (RFC 9111 §4.2.3, §5.1; RFC 9110 §6.6.1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, SystemTime};

use support::{ask, cached_route, Edge, Origin};

const HOST: &str = "c.test";

async fn edge(origin: &Origin, cache: &str) -> Edge {
    Edge::start(&cached_route("c", HOST, &origin.url(), cache), &["--access-log", "false"]).await
}

fn hit(r: &support::Reply) -> bool {
    r.header("cache-status").contains("hit")
}

/// With the origin down, an expired object is served stale through the route's `stale_if_error` and
/// `stale_while_revalidate`, unless its response said `must-revalidate`, `proxy-revalidate`, `s-maxage` or
/// `no-cache`: then the viewer gets a 504, never the stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directives_that_forbid_stale_win_over_the_routes_stale_windows() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{ stale_if_error: 5m, stale_while_revalidate: 5m }").await;
    let plain = ask("/plain").cache_control("max-age=1");
    let forbidding = [
        ask("/must").cache_control("max-age=1, must-revalidate, stale-if-error=300"),
        ask("/proxy").cache_control("max-age=1, proxy-revalidate"),
        ask("/shared").cache_control("s-maxage=1, stale-while-revalidate=300"),
        ask("/no-cache").cache_control("no-cache").etag("v1"),
    ];
    for a in forbidding.iter().chain([&plain]) {
        let r = edge.get(HOST, a).await;
        assert_eq!(r.status, 200, "{a}");
        assert!(r.header("cache-status").contains("stored"), "{a}: {}", r.header("cache-status"));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The origin answers 503: that answer, not the stale copy.
    origin.set_down(true);
    let stale = edge.get(HOST, &plain).await;
    assert_eq!((stale.status, stale.body.starts_with("origin=")), (200, true), "the plain object is served stale");
    for a in &forbidding {
        let r = edge.get(HOST, a).await;
        assert_eq!((r.status, r.body.as_str()), (503, "origin down\n"), "{a}: {}", r.header("cache-status"));
    }
    // The origin cannot be reached at all: a 504 (RFC 9111 §4.2.4), not the stale copy.
    origin.stop();
    let stale = edge.get(HOST, &plain).await;
    assert_eq!((stale.status, stale.body.starts_with("origin=")), (200, true), "the plain object is served stale");
    for a in &forbidding {
        let r = edge.get(HOST, a).await;
        assert_eq!(r.status, 504, "{a}: {} {}", r.header("cache-status"), r.body);
    }
}

/// `CDN-Cache-Control` (and Dime's own `Dime-CDN-Cache-Control`, first) replace `Cache-Control` for the edge,
/// and viewers do not see them unless the route keeps them; `Cache-Control` goes on to viewers as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_cache_control_steers_the_edge_and_stays_with_it() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let cases = [
        // (what the origin says, stored by the edge)
        (ask("/cdn").cache_control("no-store").header("CDN-Cache-Control", "max-age=600"), true),
        (ask("/cdn-no").cache_control("max-age=600").header("CDN-Cache-Control", "no-store"), false),
        (
            ask("/dime")
                .cache_control("no-store")
                .header("CDN-Cache-Control", "no-store")
                .header("Dime-CDN-Cache-Control", "max-age=600"),
            true,
        ),
        (ask("/private").cache_control("private").header("CDN-Cache-Control", "max-age=600"), true),
        (ask("/plain").cache_control("max-age=600"), true),
        // Not a valid Structured Fields dictionary, or a directive of the wrong type: ignored, Cache-Control rules.
        (ask("/invalid").cache_control("no-store").header("CDN-Cache-Control", "max-age=10000, &&&&&"), false),
        (ask("/string").cache_control("no-store").header("CDN-Cache-Control", "max-age=\"10000\""), false),
        (ask("/invalid-ok").cache_control("max-age=600").header("CDN-Cache-Control", "max-age=10000, &&&&&"), true),
    ];
    for (a, stored) in &cases {
        let first = edge.get(HOST, a).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("cdn-cache-control"), "", "{a}: removed for viewers");
        assert_eq!(first.header("dime-cdn-cache-control"), "", "{a}");
        let second = edge.get(HOST, a).await;
        assert_eq!(hit(&second), *stored, "{a}: {}", second.header("cache-status"));
        assert_eq!(second.header("cdn-cache-control"), "", "{a}: not on hits either");
        assert!(!second.header("cache-control").is_empty(), "{a}: Cache-Control goes on to viewers");
    }
    let kept = Edge::start(&cached_route("k", "k.test", &origin.url(), "{ keep_cdn_cache_control: true }"), &[]).await;
    let a = ask("/kept").cache_control("no-store").header("CDN-Cache-Control", "max-age=600");
    assert_eq!(kept.get("k.test", &a).await.header("cdn-cache-control"), "max-age=600");
    let hit_kept = kept.get("k.test", &a).await;
    assert!(hit(&hit_kept));
    assert_eq!(hit_kept.header("cdn-cache-control"), "max-age=600", "the route keeps it");
}

/// Fields the origin names in `Connection` are for that hop only: not stored, not forwarded, on a miss or a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_named_by_connection_are_neither_stored_nor_forwarded() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let a = ask("/hop")
        .cache_control("max-age=600")
        .header("Connection", "X-Hop-Secret, x-other-hop")
        .header("X-Hop-Secret", "for the edge only")
        .header("X-Other-Hop", "also")
        .header("X-Kept", "end to end");
    for round in ["miss", "hit", "hit again"] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = edge.request(method.clone(), HOST, &a, &[]).await;
            assert_eq!(r.status, 200);
            assert_eq!((r.header("x-hop-secret"), r.header("x-other-hop")), ("", ""), "{round} {method}");
            assert_eq!(r.header("x-kept"), "end to end", "{round} {method}");
        }
    }
    assert_eq!(origin.hits_for("/hop"), 1);
}

/// A hit's `Age` counts the age the response arrived with (its `Age`, or how long ago its `Date` was) plus the
/// time held, and the origin's `Date` stays; an `Age` that cannot be read (a list) makes the response stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hits_age_includes_the_age_it_arrived_with_and_its_date_is_the_origins() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let date = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
    let aged = ask("/aged").cache_control("max-age=3600").header("Age", "100");
    let dated = ask("/dated").cache_control("max-age=3600").header("Date", &date);
    for a in [&aged, &dated] {
        edge.get(HOST, a).await;
    }
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let r = edge.request(method.clone(), HOST, &aged, &[]).await;
        assert!(hit(&r), "{method}");
        let age: u64 = r.header("age").parse().unwrap();
        assert!((100..110).contains(&age), "{method}: Age {age}, the origin said 100");
        let r = edge.request(method.clone(), HOST, &dated, &[]).await;
        assert!(hit(&r), "{method}");
        let age: u64 = r.header("age").parse().unwrap();
        assert!((30..40).contains(&age), "{method}: Age {age}, the origin's Date was 30 s ago");
        if method == reqwest::Method::GET {
            // A plain GET hit keeps the origin's Date (answers through Pingora's phases get the edge's: its
            // HTTP/1 and HTTP/2 writers set it, see docs/cache.md).
            assert_eq!(r.header("date"), date, "{method}: the origin's Date");
        }
    }
    // `Age: 7200, 0`: two Age fields merged; the first counts, and max-age=3600 is long past.
    let listed = ask("/listed").cache_control("max-age=3600").header("Age", "7200, 0");
    for _ in 0..2 {
        assert!(!hit(&edge.get(HOST, &listed).await));
    }
    assert_eq!(origin.hits_for("/listed"), 2, "never fresh");
}

/// A `304` updates the stored header with every field it carries (RFC 9111 §3.2, §4.3.4), not only the few
/// Pingora merges: what the origin changed (its fetch counter here, its `Date`) is what the next hits show, and
/// its `Date` makes the object fresh again for its whole lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_updates_the_stored_header_with_every_field_it_carries() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let a = ask("/revalidated").size(3000).etag("v1").cache_control("max-age=2");
    let first = edge.get(HOST, &a).await;
    assert_eq!(first.header("x-origin-fetch"), "1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let revalidated = edge.get(HOST, &a).await;
    assert_eq!(origin.not_modified.load(std::sync::atomic::Ordering::SeqCst), 1, "revalidated with a 304");
    assert_eq!(revalidated.bytes.len(), 3000);
    for r in [revalidated, edge.get(HOST, &a).await, edge.request(reqwest::Method::HEAD, HOST, &a, &[]).await] {
        assert_eq!(r.header("x-origin-fetch"), "2", "{}", r.header("cache-status"));
    }
    let again = edge.get(HOST, &a).await;
    assert!(hit(&again), "fresh again after the 304: {}", again.header("cache-status"));
    assert_eq!(origin.hits_for("/revalidated"), 2);
}

/// A `101 Switching Protocols` keeps its `Upgrade` field though its `Connection` names it: the upgrade is the
/// protocol's own (a WebSocket through the edge), and the bytes then flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_its_upgrade_field_and_carries_bytes_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(&buf[..n]).await.unwrap();
    });
    let edge = Edge::start(&support::one_route("ws", "ws.test", &[(&format!("http://{upstream}"), 1)]), &[]).await;
    let mut c = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read_head = async {
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut byte).await.unwrap(), 1, "the edge closed before the answer's head");
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head).await.expect("an answer within 10 s");
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    c.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut echo)).await.unwrap().unwrap();
    assert_eq!(&echo, b"ping");
}

/// A successful unsafe request invalidates the stored copy of its URL and of the same-host URLs its `Location`
/// and `Content-Location` name (RFC 9111 §4.4); an error answer, a safe method or another host invalidates
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_requests_invalidate_what_they_change() {
    use reqwest::Method;
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let cached = |path: &str| ask(path).cache_control("max-age=600").to_string();
    let paths = ["/item", "/item2", "/item3", "/item4", "/item5", "/kept"];
    for p in paths {
        edge.get(HOST, cached(p).as_str()).await;
        assert!(hit(&edge.get(HOST, cached(p).as_str()).await), "{p}");
    }
    let unsafe_ = |method: Method, a: support::Ask| {
        let edge = &edge;
        async move { edge.request(method, HOST, a, &[]).await.status }
    };
    // The URL itself (same path and query as the stored GET), by POST, PUT and DELETE alike.
    assert_eq!(unsafe_(Method::POST, ask("/item").cache_control("max-age=600")).await, 200);
    assert_eq!(unsafe_(Method::PUT, ask("/item5").cache_control("max-age=600")).await, 200);
    // What the answer names on this host; not another host's.
    let named = ask("/create")
        .header("Location", "/item2?cache_control=max-age%3D600")
        .header("Content-Location", &format!("http://{HOST}/item3?cache_control=max-age%3D600"))
        .status(201);
    assert_eq!(unsafe_(Method::POST, named).await, 201);
    let elsewhere = ask("/create").header("Location", "http://elsewhere.test/kept?cache_control=max-age%3D600");
    assert_eq!(unsafe_(Method::DELETE, elsewhere).await, 200);
    // An error answer changes nothing.
    assert_eq!(unsafe_(Method::POST, ask("/item4").cache_control("max-age=600").status(500)).await, 500);
    for (p, invalidated) in
        [("/item", true), ("/item2", true), ("/item3", true), ("/item4", false), ("/item5", true), ("/kept", false)]
    {
        let r = edge.get(HOST, cached(p).as_str()).await;
        assert_eq!(!hit(&r), invalidated, "{p}: {}", r.header("cache-status"));
    }
    assert_eq!(edge.metric("dime_cache_invalidations_total").await, 4.0);
}

/// Invalidation retires every variant of a URL (`Vary: Accept-Encoding`), not only the one in the primary slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_retires_every_variant() {
    let origin = Origin::start("o").await;
    let edge = edge(&origin, "{}").await;
    let a = ask("/varied").cache_control("max-age=600").vary_encoding();
    let get = |encoding: &'static str| {
        let (edge, a) = (&edge, a.clone());
        async move { edge.request(reqwest::Method::GET, HOST, a, &[("accept-encoding", encoding)]).await }
    };
    for encoding in ["gzip", "br", "gzip", "br"] {
        get(encoding).await;
    }
    assert!(hit(&get("gzip").await) && hit(&get("br").await), "both variants stored");
    let fetched = origin.hits_for("/varied");
    let posted = edge.request(reqwest::Method::POST, HOST, &a, &[]).await;
    assert_eq!(posted.status, 200);
    for encoding in ["br", "gzip"] {
        let r = get(encoding).await;
        assert!(!hit(&r), "{encoding}: {}", r.header("cache-status"));
        assert!(r.body.starts_with(&format!("encoding={encoding}\n")), "{encoding}: {}", r.body);
    }
    assert_eq!(origin.hits_for("/varied"), fetched + 3, "the POST and one fetch per variant");
}
