//! The live stream end to end through the edge, with real parts: a real ffmpeg publisher pushes RTMP to the
//! edge's TCP entrypoint, the edge passes it to a real nginx-rtmp origin, the origin writes HLS, and real
//! players read it back through the edge: ffmpeg decoding the `.m3u8` over the edge's caching HTTP route, and
//! ffmpeg pulling RTMP through the edge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::live::{Publisher, RtmpOrigin};
use support::{closed_port, Edge};

fn routes(origin: &RtmpOrigin, extra_http_route: &str) -> String {
    routes_with(origin, extra_http_route, "")
}

fn routes_with(origin: &RtmpOrigin, extra_http_route: &str, tcp_options: &str) -> String {
    format!(
        r#"version: 1
http:
  routes:
    - {{ name: live, upstream: live, cache: {{}} }}{extra_http_route}
  upstreams:
    live: {{ servers: [{{ url: "{}" }}] }}
tcp:
  routes:
    - {{ name: rtmp, entrypoints: [rtmp], upstream: rtmp{tcp_options} }}
  upstreams:
    rtmp: {{ servers: [{{ address: "{}" }}], health_check: {{ interval: 1s }} }}
"#,
        origin.url(),
        origin.rtmp
    )
}

/// The number of the newest segment in a playlist (nginx-rtmp names them `stream-N.ts`).
fn newest_segment(playlist: &str) -> u64 {
    playlist.lines().filter_map(|l| l.trim().strip_suffix(".ts")?.rsplit('-').next()?.parse().ok()).max().unwrap_or(0)
}

/// Runs a player for a few seconds of media; returns its exit success and its error output.
fn play(input: &str, seconds: u32) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", input, "-t", &seconds.to_string(), "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg must be installed");
    // Joining a live RTMP stream, ffmpeg's own null muxer may complain about repeated timestamps of the first
    // frames; that is the player's bookkeeping, not a transport or decode error, so it is not counted.
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.status.success(), errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_the_edge_and_play_back_through_the_edge() {
    let origin = RtmpOrigin::start();
    let rtmp_port = closed_port();
    let entry = format!("rtmp=127.0.0.1:{rtmp_port}");
    let edge = Edge::start(&routes(&origin, ""), &["--tcp", &entry, "--access-log", "false"]).await;

    let publisher = Publisher::ffmpeg(&format!("rtmp://127.0.0.1:{rtmp_port}/live/stream"), 60);
    let playlist_url = format!("http://{}/hls/stream.m3u8", edge.http);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = edge.get("edge.test", "/hls/stream.m3u8").await;
        if r.status == 200 && r.body.matches(".ts").count() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no HLS via the edge after 30s; ffmpeg: {}\nnginx: {}\nedge: {}",
            publisher.log_text(),
            origin.error_log(),
            edge.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        edge.metric(r#"dime_tcp_connections_active{route="rtmp"}"#).await,
        1.0,
        "the publisher goes through the edge"
    );

    // A route reload in the middle of the push: the publisher's connection is not touched.
    let before = newest_segment(&edge.get("edge.test", "/hls/stream.m3u8").await.body);
    edge.write_routes(&routes(&origin, "\n    - { name: other, match: [{ hosts: [other.test] }], upstream: live }"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.metric(r#"dime_config_reloads_total{result="ok"}"#).await < 2.0 {
        assert!(Instant::now() < deadline, "reload not applied: {}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A real player decodes the stream through the edge's HTTP route, and another pulls RTMP through the edge.
    let (hls_ok, hls_errors) = tokio::task::spawn_blocking(move || play(&playlist_url, 4)).await.unwrap();
    assert!(hls_ok && hls_errors.trim().is_empty(), "HLS playback through the edge failed:\n{hls_errors}");
    let rtmp_url = format!("rtmp://127.0.0.1:{rtmp_port}/live/stream");
    let (rtmp_ok, rtmp_errors) = tokio::task::spawn_blocking(move || play(&rtmp_url, 3)).await.unwrap();
    assert!(rtmp_ok && rtmp_errors.trim().is_empty(), "RTMP playback through the edge failed:\n{rtmp_errors}");

    let after = newest_segment(&edge.get("edge.test", "/hls/stream.m3u8").await.body);
    assert!(after > before, "the stream kept advancing across the reload ({before} -> {after})");
    assert_eq!(
        edge.metric(r#"dime_tcp_connections_total{route="rtmp"}"#).await,
        2.0,
        "one publisher connection (never re-made) plus one RTMP player"
    );
    assert!(!publisher.log_text().to_lowercase().contains("error"), "publisher: {}", publisher.log_text());
    assert!(edge.metric(r#"dime_tcp_bytes_total{direction="to_upstream",route="rtmp"}"#).await > 100_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_gstreamer_publisher_pushes_through_the_edge() {
    let origin = RtmpOrigin::start();
    let rtmp_port = closed_port();
    let entry = format!("rtmp=127.0.0.1:{rtmp_port}");
    let edge = Edge::start(&routes(&origin, ""), &["--tcp", &entry, "--access-log", "false"]).await;
    let mut publisher = Publisher::gstreamer(&format!("rtmp://127.0.0.1:{rtmp_port}/live/test"), 40);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = edge.get("edge.test", "/hls/test.m3u8").await;
        if r.status == 200 && r.body.matches(".ts").count() >= 2 {
            break;
        }
        assert!(publisher.running(), "gstreamer exited: {}", publisher.log_text());
        assert!(
            Instant::now() < deadline,
            "no HLS after 30s; gst: {}\nnginx: {}\nedge: {}",
            publisher.log_text(),
            origin.error_log(),
            edge.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let url = format!("http://{}/hls/test.m3u8", edge.http);
    let (ok, errors) = tokio::task::spawn_blocking(move || play(&url, 3)).await.unwrap();
    assert!(ok && errors.trim().is_empty(), "playback failed:\n{errors}");
    assert!(publisher.running(), "the publisher is still pushing");
    assert_eq!(edge.metric(r#"dime_tcp_connections_active{route="rtmp"}"#).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_headers_are_accepted_by_an_nginx_rtmp_that_requires_them() {
    let origin = RtmpOrigin::start_with(true);
    let rtmp_port = closed_port();
    let entry = format!("rtmp=127.0.0.1:{rtmp_port}");
    let url = format!("rtmp://127.0.0.1:{rtmp_port}/live/pp");

    // Without the header, nginx refuses the stream.
    let edge = Edge::start(&routes_with(&origin, "", ""), &["--tcp", &entry, "--access-log", "false"]).await;
    let mut refused = Publisher::ffmpeg(&url, 20);
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused.running() {
        assert!(Instant::now() < deadline, "nginx accepted a stream without a PROXY header");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(edge);

    // With `proxy_protocol: v1`, the same publisher gets through.
    let edge =
        Edge::start(&routes_with(&origin, "", ", proxy_protocol: v1"), &["--tcp", &entry, "--access-log", "false"])
            .await;
    let mut publisher = Publisher::ffmpeg(&url, 40);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = edge.get("edge.test", "/hls/pp.m3u8").await;
        if r.status == 200 && r.body.contains(".ts") {
            break;
        }
        assert!(publisher.running(), "publisher failed: {}\nnginx: {}", publisher.log_text(), origin.error_log());
        assert!(Instant::now() < deadline, "no HLS with the PROXY header; nginx: {}", origin.error_log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
