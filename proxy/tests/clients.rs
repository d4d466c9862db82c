//! Client connections at the edge of the edge: a starting edge never answers with an error because it is
//! starting, and slow, idle or too many client connections are closed without touching anyone else's. Real
//! sockets against the real binary.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::live::{OriginOptions, RtmpOrigin};
use support::{free_addr, one_route, Edge, Origin};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n";

/// Reads until the peer closes or `limit` passes; whether it closed (EOF or reset) in time.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// One request on its own connection; the status code, or 0 when the connection failed.
async fn status_of_one_request(addr: std::net::SocketAddr) -> u16 {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await else { return 0 };
    if s.write_all(b"GET / HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n").await.is_err() {
        return 0;
    }
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut head)).await;
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hammering_the_port_while_the_edge_starts_sees_no_5xx() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, one_route("r", "r.test", &[(&origin.url(), 1)])).unwrap();
    let (http, admin) = (free_addr(), free_addr());
    // The client starts first and keeps asking (bounded: 20 s, 2,000 requests).
    let hammer = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) && statuses.len() < 2000 {
            match status_of_one_request(http).await {
                0 => tokio::time::sleep(Duration::from_millis(2)).await,
                s => {
                    statuses.push(s);
                    if statuses.iter().filter(|s| **s == 200).count() >= 50 {
                        break;
                    }
                }
            }
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dime-edge"))
        .args(["run", "--routes"])
        .arg(&routes)
        .args(["--http", &http.to_string(), "--admin", &admin.to_string(), "--threads", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let statuses = hammer.await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let errors: Vec<_> = statuses.iter().filter(|s| **s >= 500).collect();
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 50, "the edge answered: {statuses:?}");
    assert!(errors.is_empty(), "{} error answers while starting, e.g. {:?}", errors.len(), errors.first());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_at_the_header_timeout_and_others_are_served() {
    let origin = Origin::start("o").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &["--header-timeout", "2s"]).await;
    let mut slow = TcpStream::connect(edge.http).await.unwrap();
    let started = Instant::now();
    // One byte a second: every read makes progress, the header never completes.
    let mut closed = false;
    for byte in GET.iter().take(10) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        // Meanwhile a normal client is served.
        assert_eq!(edge.get("r.test", "/").await.status, 200);
        if closed_within(&mut slow, Duration::from_secs(1)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection sending one byte a second was still open after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    assert_eq!(edge.metric(r#"dime_downstream_closed_total{reason="header-timeout"}"#).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed_at_the_keepalive_timeout() {
    let origin = Origin::start("o").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &["--keepalive-timeout", "2s"]).await;
    let mut conn = TcpStream::connect(edge.http).await.unwrap();
    conn.write_all(GET).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    // Still usable within the timeout...
    tokio::time::sleep(Duration::from_secs(1)).await;
    conn.write_all(GET).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // ...and closed once idle for longer.
    let idle = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(5)).await, "idle connection not closed");
    assert!(
        idle.elapsed() >= Duration::from_millis(1500),
        "closed too early: {:?}\n{}",
        idle.elapsed(),
        edge.log_text()
    );
    let (_, m) = edge.admin("/metrics").await;
    assert_eq!(
        edge.metric(r#"dime_downstream_closed_total{reason="keepalive-timeout"}"#).await,
        1.0,
        "{}",
        m.lines().filter(|l| l.contains("downstream")).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_counted() {
    let origin = Origin::start("o").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &["--max-connections", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(edge.http).await.unwrap());
    }
    assert_eq!(edge.metric_reaches("dime_http_connections_open", 3.0).await, 3.0, "the edge took the three");
    let mut extra = TcpStream::connect(edge.http).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await, "the fourth connection was not closed");
    assert_eq!(edge.metric(r#"dime_downstream_closed_total{reason="max-connections"}"#).await, 1.0);
    // The held connections are unaffected and serve requests.
    held[0].write_all(GET).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = held[0].read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Room again once one goes.
    drop(held.pop());
    assert_eq!(edge.metric_reaches("dime_http_connections_open", 2.0).await, 2.0, "the edge saw one go");
    assert_eq!(status_of_one_request(edge.http).await, 200);
}

/// Pass-through load against an nginx origin that closes idle keep-alive connections after 1 s (so pooled
/// upstream connections go away under the edge, as they do in production): the edge logs no ERROR line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_load_with_an_origin_closing_idle_connections_logs_no_errors() {
    let origin = RtmpOrigin::start_opts(OriginOptions { keepalive: "1s", ..Default::default() });
    std::fs::write(origin.hls_dir().join("page.txt"), vec![b'x'; 1024]).unwrap();
    let edge = std::sync::Arc::new(Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &[]).await);
    // Bounded: 3 bursts of 16 clients x 50 requests, with pauses longer than the origin's idle timeout.
    for _ in 0..3 {
        let mut clients = Vec::new();
        for _ in 0..16 {
            let edge = edge.clone();
            clients.push(tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(edge.get("r.test", "/hls/page.txt").await.status, 200);
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let log = edge.log_text();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ") || l.contains(r#""level":"ERROR""#)).collect();
    assert!(log.contains("dime::access"), "the access log was written");
    assert!(errors.is_empty(), "ERROR lines in normal operation:\n{}", errors.join("\n"));
}
