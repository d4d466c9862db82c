//! The cache against real origins: hits, one origin fetch per object under a herd, objects streamed to waiting
//! viewers, no truncated object ever stored, the byte budget, stale serving (purge: purge.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{ask, cached_route, eventually, pattern_body, Edge, Origin};

async fn edge_with_cache(origin: &Origin, cache: &str, extra: &[&str]) -> Edge {
    Edge::start(&cached_route("c", "c.test", &origin.url(), cache), extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_request_is_a_hit_and_head_and_ranges_come_from_the_cache() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{}", &[]).await;
    let path = &ask("/obj.bin").size(1000).cache_control("max-age=60").to_string();

    let first = edge.get("c.test", path).await;
    assert_eq!((first.status, first.header("cache-status")), (200, "dime; fwd=miss; stored"));
    let second = edge.get("c.test", path).await;
    assert_eq!(second.status, 200);
    assert!(second.header("cache-status").starts_with("dime; hit; ttl="), "{}", second.header("cache-status"));
    assert_eq!(second.bytes, pattern_body(1000));

    let head = edge.request(reqwest::Method::HEAD, "c.test", path, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.header("cache-status").contains("hit"), "{}", head.header("cache-status"));
    assert_eq!(head.header("content-length"), "1000");

    let range = edge.request(reqwest::Method::GET, "c.test", path, &[("range", "bytes=10-19")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.bytes, &pattern_body(1000)[10..20]);
    assert_eq!(origin.hits_for("/obj.bin"), 1, "one origin fetch served all of them");
    // The plain GET hit was answered directly (one sendmsg of header and body); HEAD and the range were not.
    assert_eq!(edge.metric(r#"dime_cache_direct_responses_total{body="memory"}"#).await, 1.0);

    // A chunked origin response is framed correctly when served from the cache.
    let chunked = &ask("/chunked.bin").size(5000).chunks(5, Duration::ZERO).cache_control("max-age=60").to_string();
    assert_eq!(edge.get("c.test", chunked).await.bytes, pattern_body(5000));
    let hit = edge.get("c.test", chunked).await;
    assert!(hit.header("cache-status").contains("hit"), "{}", hit.header("cache-status"));
    assert_eq!(hit.bytes, pattern_body(5000));
    assert!(
        hit.header("content-length") == "5000" || hit.header("transfer-encoding") == "chunked",
        "{:?}",
        hit.headers
    );
    assert_eq!(edge.metric(r#"dime_cache_requests_total{result="hit",route="c"}"#).await, 4.0);
}

/// A player on another origin reads `Cache-Status` and `Age` only if they are in `Access-Control-Expose-Headers`:
/// the edge adds them where the origin allows cross-origin reads, on a miss, a direct hit and Pingora's hit path
/// alike, keeps what the origin listed, and adds nothing where the origin allows no cross-origin read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_pages_may_read_the_cache_status_where_the_origin_allows_them() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{}", &[]).await;
    let open = &ask("/seg.ts").size(500).cache_control("max-age=60").allow_origin("*").expose_headers("X-Stream");
    let open = &open.to_string();
    let want = "X-Stream, Cache-Status, Age";
    let miss = edge.get("c.test", open).await;
    assert_eq!(
        (miss.header("cache-status"), miss.header("access-control-expose-headers")),
        ("dime; fwd=miss; stored", want)
    );
    let direct = edge.get("c.test", open).await;
    assert!(direct.header("cache-status").contains("hit"));
    assert_eq!(direct.header("access-control-expose-headers"), want, "direct hit: {:?}", direct.headers);
    assert_eq!(direct.header("access-control-allow-origin"), "*");
    let ranged = edge.request(reqwest::Method::GET, "c.test", open, &[("range", "bytes=0-9")]).await;
    assert_eq!((ranged.status, ranged.header("access-control-expose-headers")), (206, want), "Pingora's hit path");
    assert_eq!(edge.metric(r#"dime_cache_direct_responses_total{body="memory"}"#).await, 1.0);

    let closed = &ask("/private.ts").size(500).cache_control("max-age=60").to_string();
    for _ in 0..2 {
        let r = edge.get("c.test", closed).await;
        assert_eq!(r.header("access-control-expose-headers"), "", "no cross-origin read allowed: {:?}", r.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_viewers_cause_one_origin_fetch() {
    let origin = Origin::start("o").await;
    let edge = Arc::new(edge_with_cache(&origin, "{}", &["--access-log", "false"]).await);
    // Slow to answer, and `no-cache` like nginx-rtmp: the segment TTL applies and the herd waits on one fetch.
    let path = ask("/hls/herd-1.ts").size(200_000).delay(Duration::from_millis(300)).cache_control("no-cache");
    let mut viewers = Vec::new();
    for _ in 0..500 {
        let (edge, path) = (edge.clone(), path.clone());
        viewers.push(tokio::spawn(async move { edge.get("c.test", path).await }));
    }
    for v in viewers {
        let r = v.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes.len(), 200_000);
    }
    assert_eq!(origin.hits_for("/hls/herd-1.ts"), 1);
    assert!(edge.metric(r#"dime_cache_lock_waits_total{route="c"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_viewers_receive_the_body_while_it_arrives() {
    let origin = Origin::start("o").await;
    let edge = Arc::new(edge_with_cache(&origin, "{}", &["--access-log", "false"]).await);
    // Header at once, body over ~1 s in 10 chunks.
    let path = ask("/hls/stream-2.ts").size(100_000).chunks(10, Duration::from_millis(100));
    let started = std::time::Instant::now();
    let mut viewers = Vec::new();
    for _ in 0..50 {
        let (edge, path) = (edge.clone(), path.clone());
        viewers.push(tokio::spawn(async move {
            let resp =
                edge.client.get(format!("http://{}{}", edge.http, path)).header("host", "c.test").send().await.unwrap();
            let headers_after = started.elapsed();
            let body = resp.bytes().await.unwrap();
            (headers_after, body)
        }));
    }
    for v in viewers {
        let (headers_after, body) = v.await.unwrap();
        assert!(
            headers_after < Duration::from_millis(700),
            "viewers wait for the whole object: header after {headers_after:?}"
        );
        assert_eq!(&body[..], pattern_body(100_000).as_slice());
    }
    assert_eq!(origin.hits_for("/hls/stream-2.ts"), 1);
}

async fn fetch_body(edge: &Edge, path: &str) -> Result<(u16, Vec<u8>), String> {
    let resp = edge
        .client
        .get(format!("http://{}{}", edge.http, path))
        .header("host", "c.test")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.bytes().await.map(|b| (status, b.to_vec())).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_breaks_mid_body_is_never_stored_or_served_complete() {
    let origin = Origin::start("o").await;
    let edge = Arc::new(edge_with_cache(&origin, "{}", &[]).await);
    for (variant, announce_length) in [("length", true), ("chunked", false)] {
        let broken = ask(&format!("/hls/broken-{variant}.ts"))
            .size(100_000)
            .abort_after(50_000)
            .chunks(5, Duration::from_millis(50));
        let broken = if announce_length { broken.announce_length() } else { broken }.to_string();
        let mut viewers = Vec::new();
        for _ in 0..20 {
            let (edge, broken) = (edge.clone(), broken.clone());
            viewers.push(tokio::spawn(async move { fetch_body(&edge, &broken).await }));
        }
        for v in viewers {
            // A client can only tell a broken body by the connection failing; a 200 that ends cleanly would look
            // complete to it, whatever its length.
            match v.await.unwrap() {
                Err(_) => {}
                Ok((status, body)) => {
                    assert_ne!(status, 200, "{variant}: a truncated body ({} bytes) ended as if complete", body.len())
                }
            }
        }
        let fetched = origin.hits_for(&format!("/hls/broken-{variant}.ts"));
        // The next request must go to the origin again: nothing was stored.
        let again = fetch_body(&edge, &broken).await;
        assert!(again.is_err(), "{variant}: {again:?}");
        assert_eq!(origin.hits_for(&format!("/hls/broken-{variant}.ts")), fetched + 1, "{variant}: refetched");
    }
    assert!(edge.metric("dime_cache_write_failures_total").await >= 2.0);
    assert_eq!(edge.metric("dime_cache_objects").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_budget_holds_when_filled_far_past_it() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(
        &origin,
        "{}",
        &["--cache-size", "1MiB", "--cache-max-object", "64KiB", "--access-log", "false"],
    )
    .await;
    for i in 0..200 {
        let r = edge.get("c.test", ask(&format!("/fill/{i}.bin")).size(32768).cache_control("max-age=600")).await;
        assert_eq!(r.status, 200);
    }
    // Evictions are applied just after each admission: wait for the last one.
    let e = &edge;
    let stored =
        eventually(Duration::from_secs(5), Duration::from_millis(20), "over budget", String::new, || async move {
            let stored = e.metric("dime_cache_stored_bytes").await;
            (stored <= (1 << 20) as f64).then_some(stored)
        })
        .await;
    assert!(stored > 0.0 && stored <= (1 << 20) as f64, "stored {stored} bytes with a 1 MiB budget");
    assert!(edge.metric("dime_cache_evictions_total").await > 100.0);
    // An object over the size limit passes through and is not stored.
    let big = edge.get("c.test", ask("/big.bin").size(100_000).cache_control("max-age=600")).await;
    assert_eq!(big.bytes.len(), 100_000);
    edge.get("c.test", ask("/big.bin").size(100_000).cache_control("max-age=600")).await;
    assert_eq!(origin.hits_for("/big.bin"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_cached_objects_through_an_origin_outage() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{ stale_if_error: 30s }", &[]).await;
    let path = &ask("/page.html").cache_control("max-age=1").to_string();
    assert_eq!(edge.get("c.test", path).await.status, 200);
    origin.set_down(true);
    // Fresh hits until the object's second is up; then the origin's 503 makes the edge serve it stale. A viewer
    // gets 200 throughout.
    let r =
        eventually(Duration::from_secs(5), Duration::from_millis(50), "never served stale", String::new, || async {
            let r = edge.get("c.test", path).await;
            assert_eq!(r.status, 200, "a cached object is served while the origin answers 503");
            r.header("cache-status").contains("detail=stale").then_some(r)
        })
        .await;
    assert!(r.body.starts_with("origin=o"));
    // A path never cached has nothing to fall back on.
    assert_eq!(edge.get("c.test", ask("/never.html").cache_control("max-age=1")).await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rules_apply_playlist_ttl_and_negative_caching_despite_no_cache() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{}", &[]).await;
    for _ in 0..5 {
        edge.get("c.test", ask("/hls/live.m3u8").cache_control("no-cache")).await;
        edge.get("c.test", ask("/hls/missing-9.ts").status(404).cache_control("no-cache")).await;
    }
    assert_eq!(origin.hits_for("/hls/live.m3u8"), 1, "playlist cached for its 1 s TTL");
    assert_eq!(origin.hits_for("/hls/missing-9.ts"), 1, "segment 404 cached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    edge.get("c.test", ask("/hls/live.m3u8").cache_control("no-cache")).await;
    edge.get("c.test", ask("/hls/missing-9.ts").status(404).cache_control("no-cache")).await;
    assert_eq!(origin.hits_for("/hls/live.m3u8"), 2, "refetched after the TTL");
    assert_eq!(origin.hits_for("/hls/missing-9.ts"), 2, "a 404 is kept at most 1 s");
    // Ordinary content with no-cache and no validator is not stored at all.
    edge.get("c.test", ask("/page.html").cache_control("no-cache")).await;
    let r = edge.get("c.test", ask("/page.html").cache_control("no-cache")).await;
    assert_eq!(r.header("cache-status"), "dime; fwd=miss; detail=no-cache");
    assert_eq!(origin.hits_for("/page.html"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{}", &[]).await;
    let path = &ask("/news.html").cache_control("max-age=1, stale-while-revalidate=30").to_string();
    assert_eq!(edge.get("c.test", path).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let stale = edge.get("c.test", path).await;
    assert_eq!(stale.status, 200);
    assert!(stale.header("cache-status").contains("detail=stale"), "{}", stale.header("cache-status"));
    // The background refresh lands; the next answer is fresh again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.hits_for("/news.html") < 2 {
        assert!(std::time::Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stored just after the origin answered it.
    let e = &edge;
    let fresh = eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        "never fresh again",
        String::new,
        || async move {
            let r = e.get("c.test", path).await;
            r.header("cache-status").starts_with("dime; hit; ttl=").then_some(r)
        },
    )
    .await;
    assert!(!fresh.header("cache-status").contains("ttl=-"), "{}", fresh.header("cache-status"));
    assert_eq!(origin.hits_for("/news.html"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_hands_the_fetch_to_one_waiter_not_to_the_herd() {
    let origin = Origin::start("o").await;
    let edge = Arc::new(edge_with_cache(&origin, "{}", &["--cache-lock-timeout", "1s", "--access-log", "false"]).await);
    // The origin takes 2.5 s to send its header: longer than the lock timeout.
    let path = ask("/hls/slow-1.ts").size(1000).delay(Duration::from_millis(2500));
    let mut viewers = Vec::new();
    for _ in 0..100 {
        let (edge, path) = (edge.clone(), path.clone());
        viewers.push(tokio::spawn(async move { edge.get("c.test", path).await.status }));
    }
    for v in viewers {
        assert_eq!(v.await.unwrap(), 200);
    }
    // The first writer, then one take-over per expired lock (about 3 here: 2.5 s / 1 s; a slow machine may
    // see one or two more): never one per viewer.
    let fetches = origin.hits_for("/hls/slow-1.ts");
    assert!((2..=6).contains(&fetches), "{fetches} origin fetches for 100 viewers");
}

/// One HTTP/1.1 exchange on a raw connection: writes `request`, reads the head and exactly `Content-Length` body
/// bytes. Returns the head (lower-cased) and the body.
async fn exchange<S>(conn: &mut tokio::io::BufReader<S>, request: &str) -> (String, Vec<u8>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    conn.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(conn.read_line(&mut line).await.unwrap() > 0, "connection closed in the head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length: {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_hits_are_sent_with_sendfile_intact_on_kept_alive_connections() {
    let edge = large_hits(&[]).await;
    assert!(open_files(&edge).iter().any(|f| f.starts_with("/memfd:dime-cache-body")), "{:?}", open_files(&edge));
}

/// What the edge's descriptors point at.
fn open_files(edge: &Edge) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", edge.pid())).unwrap();
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).map(|p| p.display().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_in_a_body_directory_are_unlinked_files_sent_with_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let edge = large_hits(&["--cache-body-dir", dir.path().to_str().unwrap()]).await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "body files have no names");
    let inside = format!("{}/", dir.path().display());
    assert!(open_files(&edge).iter().any(|f| f.starts_with(&inside)), "{:?}", open_files(&edge));
}

async fn large_hits(extra: &[&str]) -> Edge {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
    let origin = Origin::start("o").await;
    let edge = edge_with_cache(&origin, "{}", extra).await;
    let size = (1 << 20) + 7;
    let path = &ask("/big.bin").size(size).cache_control("max-age=60").to_string();
    assert_eq!(edge.get("c.test", &path).await.bytes.len(), size, "the miss that stores it");
    assert_eq!(edge.metric(r#"dime_cache_direct_responses_total{body="file"}"#).await, 0.0);

    // Three hits and a last one asking to close, all on one connection.
    let mut conn = BufReader::new(tokio::net::TcpStream::connect(edge.http).await.unwrap());
    let request = format!("GET {path} HTTP/1.1\r\nHost: c.test\r\n\r\n");
    for _ in 0..3 {
        let (head, body) = exchange(&mut conn, &request).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("cache-status: dime; hit; ttl="), "{head}");
        assert!(head.contains("\r\nage: "), "{head}");
        assert!(head.contains(&format!("content-length: {size}\r\n")), "{head}");
        assert!(body == pattern_body(size), "the body sent from the memory file differs from the origin's");
    }
    let closing = format!("GET {path} HTTP/1.1\r\nHost: c.test\r\nConnection: close\r\n\r\n");
    let (head, body) = exchange(&mut conn, &closing).await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(body == pattern_body(size));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the edge closed the connection after the response");
    assert_eq!(edge.metric(r#"dime_cache_direct_responses_total{body="file"}"#).await, 4.0);
    assert_eq!(edge.metric("dime_cache_sendfile_bytes_total").await, (4 * size) as f64);

    // A client with a tiny receive window that reads slowly: the edge waits for it and the body arrives whole.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = BufReader::new(socket.connect(edge.http).await.unwrap());
    slow.get_mut().write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (head, body) = exchange(&mut slow, "").await;
    assert!(head.contains("cache-status: dime; hit"), "{head}");
    assert!(body == pattern_body(size), "slow reader got a different body");

    // A client that goes away mid-body costs only its own connection.
    let mut gone = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    gone.write_all(request.as_bytes()).await.unwrap();
    let mut some = vec![0; 100_000];
    gone.read_exact(&mut some).await.unwrap();
    drop(gone);

    // Ranges, HEAD and validators still go through Pingora's hit path, from the same stored object.
    let range = edge.request(reqwest::Method::GET, "c.test", &path, &[("range", "bytes=1048570-1048580")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.bytes, &pattern_body(size)[1_048_570..1_048_581]);
    let head = edge.request(reqwest::Method::HEAD, "c.test", &path, &[]).await;
    assert_eq!((head.status, head.header("content-length")), (200, size.to_string().as_str()));
    assert!(head.header("cache-status").contains("hit"));
    let whole = edge.get("c.test", &path).await;
    assert!(whole.bytes == pattern_body(size), "a hit after the broken one is intact");
    assert_eq!(origin.hits_for("/big.bin"), 1, "every answer came from the one stored copy");
    assert_eq!(edge.metric(r#"dime_cache_requests_total{result="hit",route="c"}"#).await, 9.0);
    assert_eq!(
        edge.metric(r#"dime_cache_direct_responses_total{body="file"}"#).await,
        7.0,
        "all but the range and HEAD"
    );
    edge
}
