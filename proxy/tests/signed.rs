//! Signed viewer URLs through a real dime-edge: tokens minted by `dime-edge sign` open a stream's playlist and
//! segments; expired, tampered, wrong-prefix, missing and wrong-client tokens get 403 without any origin request;
//! tokens stay out of the cache key (two viewers' tokens share one cached segment) and out of the origin request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use indoc::formatdoc;
use std::process::Command;

use support::{Edge, Origin};

const KEYS: &str = "k1 0123456789abcdef0123456789abcdef-edge-secret\nk2 another-secret-of-at-least-32-characters\n";

fn sign(keys: &std::path::Path, args: &[&str], url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge"))
        .arg("sign")
        .arg("--keys")
        .arg(keys)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The path and query of a minted URL.
fn path_of(url: &str) -> String {
    url.split_once("://").unwrap().1.split_once('/').map(|(_, p)| format!("/{p}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_open_a_stream_and_nothing_else() {
    let origin = Origin::start("video").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, KEYS).unwrap();
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: video, match: [{{ hosts: [video.test] }}], upstream: o, cache: {{}}, signed_urls: {{ keys: [k1, k2] }} }}
                - {{ name: bound, match: [{{ hosts: [bound.test] }}], upstream: o, signed_urls: {{ keys: [k1], bind_client_ip: true }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let edge = Edge::start(&routes, &["--signing-keys", keys.to_str().unwrap()]).await;

    // One token for the stream's prefix opens the playlist and its segments.
    let url =
        sign(&keys, &["--key-id", "k1", "--prefix", "/hls/s1/", "--ttl", "10m"], "http://video.test/hls/s1/index.m3u8");
    let r = edge.get("video.test", &path_of(&url)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-seen-query"), "", "the token never reaches the origin");
    let seg = url.replace("index.m3u8", "seg-1.ts");
    assert_eq!(edge.get("video.test", &path_of(&seg)).await.status, 200);
    // Another viewer's token (other key, other expiry) gets the same cached segment: tokens are not in the key.
    let other =
        sign(&keys, &["--key-id", "k2", "--prefix", "/hls/s1/", "--ttl", "20m"], "http://video.test/hls/s1/seg-1.ts");
    let r = edge.get("video.test", &path_of(&other)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("cache-status").contains("hit"), "{}", r.header("cache-status"));
    assert_eq!(origin.hits_for("/hls/s1/seg-1.ts"), 1);

    // Refused, each for its reason, and none of them reaches the origin or the cache.
    let before = origin.hits();
    let expired =
        sign(&keys, &["--key-id", "k1", "--prefix", "/hls/s1/", "--ttl", "0s"], "http://video.test/hls/s1/seg-1.ts");
    let mut tampered = path_of(&url);
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let widened = path_of(&url).replace("dime_prefix=/hls/s1/", "dime_prefix=/hls/");
    let wrong_prefix = path_of(&url).replace("/hls/s1/index.m3u8", "/hls/s2/index.m3u8");
    for (path, reason) in [
        (path_of(&expired), "expired"),
        (tampered, "bad_signature"),
        (widened.replace("/hls/s1/index.m3u8", "/hls/s2/index.m3u8"), "bad_signature"),
        (wrong_prefix, "outside_prefix"),
        ("/hls/s1/seg-1.ts".to_owned(), "missing"),
    ] {
        let r = edge.get("video.test", &path).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.body.contains(reason), "{path}: {}", r.body);
        assert!(
            edge.metric(&format!("dime_signed_url_rejections_total{{reason=\"{reason}\",route=\"video\"}}")).await
                >= 1.0
        );
    }
    assert_eq!(origin.hits(), before, "refused requests never reach the origin");

    // Bound to a client address: valid from that address only (the test client is 127.0.0.1).
    let mine = sign(&keys, &["--key-id", "k1", "--client-ip", "127.0.0.1"], "http://bound.test/private/a");
    assert_eq!(edge.get("bound.test", &path_of(&mine)).await.status, 200);
    let theirs = sign(&keys, &["--key-id", "k1", "--client-ip", "127.0.0.2"], "http://bound.test/private/a");
    assert_eq!(edge.get("bound.test", &path_of(&theirs)).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_keys_the_edge_lacks_refuses_everything_and_says_so() {
    let origin = Origin::start("o").await;
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: locked, match: [{{ hosts: [locked.test] }}], upstream: o, signed_urls: {{ keys: [nowhere] }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let edge = Edge::start(&routes, &[]).await;
    assert_eq!(edge.get("locked.test", "/a").await.status, 403);
    let log = edge.log_with("keys this edge does not hold").await;
    assert!(log.contains("keys this edge does not hold"), "{log}");
    assert_eq!(origin.hits(), 0);
}
