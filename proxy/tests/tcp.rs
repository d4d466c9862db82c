//! TCP entrypoints against real TCP servers: forwarding with half-close, allowlist, connection limit, idle
//! timeout, failover, and reloads that leave established connections alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use indoc::formatdoc;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{closed_port, Edge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP server that reads until the client half-closes, then answers `NAME:` + everything it read, and closes.
async fn echo_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            got.extend_from_slice(&buf[..n]);
                            // Lines ending in \n are answered at once (for long-lived connection tests).
                            if got.ends_with(b"\n") {
                                let _ = s.write_all(format!("{name}:").as_bytes()).await;
                                let _ = s.write_all(&got).await;
                                got.clear();
                            }
                        }
                    }
                }
                let _ = s.write_all(format!("{name}:").as_bytes()).await;
                let _ = s.write_all(&got).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Reads one answer line (the echo server writes its name and the line separately).
async fn read_line(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\n") {
        match tokio::time::timeout(Duration::from_secs(5), c.read(&mut byte)).await.unwrap().unwrap() {
            0 => break,
            _ => out.push(byte[0]),
        }
    }
    String::from_utf8(out).unwrap()
}

fn tcp_routes(servers: &[SocketAddr], extra: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("{{ address: \"{s}\" }}")).collect();
    formatdoc!(
        r#"
            version: 1
            tcp:
              routes:
                - {{ name: echo, entrypoints: [echo], upstream: echo{extra} }}
              upstreams:
                echo: {{ servers: [{}] }}
            "#,
        servers.join(", ")
    )
}

async fn start(routes: &str) -> (Edge, SocketAddr) {
    let port = closed_port();
    let entry = format!("echo=127.0.0.1:{port}");
    let edge = Edge::start(routes, &["--tcp", &entry]).await;
    (edge, format!("127.0.0.1:{port}").parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flow_both_ways_and_half_close_reaches_the_server() {
    let server = echo_server("a").await;
    let (edge, entry) = start(&tcp_routes(&[server], "")).await;
    let mut c = TcpStream::connect(entry).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    c.shutdown().await.unwrap(); // the server answers only once it sees our end of stream
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, "a:hello");
    // Counted as the connection ends, just after the client saw it end.
    assert_eq!(edge.metric_reaches(r#"dime_tcp_connections_total{route="echo"}"#, 1.0).await, 1.0);
    assert_eq!(edge.metric_reaches(r#"dime_tcp_bytes_total{direction="to_upstream",route="echo"}"#, 5.0).await, 5.0);
    assert_eq!(edge.metric_reaches(r#"dime_tcp_bytes_total{direction="to_client",route="echo"}"#, 7.0).await, 7.0);
    assert_eq!(edge.metric(r#"dime_tcp_connections_active{route="echo"}"#).await, 0.0);
}

async fn closed_at_once(entry: SocketAddr) -> bool {
    let mut c = TcpStream::connect(entry).await.unwrap();
    let _ = c.write_all(b"x\n").await;
    let mut buf = [0u8; 16];
    matches!(tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_allowlist_are_refused() {
    let server = echo_server("a").await;
    let (edge, entry) = start(&tcp_routes(&[server], ", allow: [\"192.0.2.0/24\"]")).await;
    assert!(closed_at_once(entry).await);
    assert_eq!(edge.metric(r#"dime_tcp_refused_total{entrypoint="echo",reason="allowlist"}"#).await, 1.0);
    assert!(edge.log_with("client not in the route's allowlist").await.contains("client not in the route's allowlist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_the_extra_connection_only() {
    let server = echo_server("a").await;
    let (edge, entry) = start(&tcp_routes(&[server], ", max_connections: 1")).await;
    let mut first = TcpStream::connect(entry).await.unwrap();
    first.write_all(b"one\n").await.unwrap();
    assert_eq!(read_line(&mut first).await, "a:one\n");
    assert!(closed_at_once(entry).await, "second connection over the limit");
    assert_eq!(edge.metric(r#"dime_tcp_refused_total{entrypoint="echo",reason="limit"}"#).await, 1.0);
    first.write_all(b"still\n").await.unwrap();
    assert_eq!(read_line(&mut first).await, "a:still\n", "the first connection is unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = echo_server("a").await;
    let (_edge, entry) = start(&tcp_routes(&[server], ", idle_timeout: 400ms")).await;
    let mut c = TcpStream::connect(entry).await.unwrap();
    c.write_all(b"hi\n").await.unwrap();
    read_line(&mut c).await;
    let mut buf = [0u8; 16];
    let quiet_from = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(quiet_from.elapsed() >= Duration::from_millis(350), "not before the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_skipped() {
    let server = echo_server("alive").await;
    let dead: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let (edge, entry) = start(&tcp_routes(&[dead, server], "")).await;
    for _ in 0..4 {
        let mut c = TcpStream::connect(entry).await.unwrap();
        c.write_all(b"x").await.unwrap();
        c.shutdown().await.unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "alive:x");
    }
    assert!(edge.metric(r#"dime_tcp_connect_failures_total{route="echo"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_leave_established_connections_alone() {
    let (a, b) = (echo_server("a").await, echo_server("b").await);
    let (edge, entry) = start(&tcp_routes(&[a], "")).await;
    let mut old = TcpStream::connect(entry).await.unwrap();
    old.write_all(b"1\n").await.unwrap();
    assert_eq!(read_line(&mut old).await, "a:1\n");

    // Point the route at another server; then remove every TCP route.
    edge.write_routes(&tcp_routes(&[b], ""));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = TcpStream::connect(entry).await.unwrap();
        c.write_all(b"n").await.unwrap();
        c.shutdown().await.unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer).await;
        if answer == "b:n" {
            break;
        }
        assert!(Instant::now() < deadline, "reload not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    old.write_all(b"2\n").await.unwrap();
    assert_eq!(read_line(&mut old).await, "a:2\n", "the established connection still goes to the old server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_route_refuses_new_connections_and_drains_open_ones_within_the_bound() {
    let server = echo_server("a").await;
    let port = closed_port();
    let entry: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let edge = Edge::start(
        &tcp_routes(&[server], ""),
        &["--tcp", &format!("echo=127.0.0.1:{port}"), "--tcp-drain-timeout", "1s"],
    )
    .await;
    let mut open = TcpStream::connect(entry).await.unwrap();
    open.write_all(b"1\n").await.unwrap();
    assert_eq!(read_line(&mut open).await, "a:1\n");

    // The new table keeps an HTTP route (an empty table is never applied) and drops the TCP route.
    let origin = support::Origin::start("o").await;
    edge.write_routes(&support::one_route("web", "web.test", &[(&origin.url(), 1)]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.metric(r#"dime_config_reloads_total{result="ok"}"#).await < 2.0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed_at_once(entry).await, "new connections are refused");
    open.write_all(b"2\n").await.unwrap();
    assert_eq!(read_line(&mut open).await, "a:2\n", "the open one goes on during the drain");
    let removed = Instant::now();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "closed once the drain bound passed");
    assert!(removed.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_closes_the_client_even_if_it_is_waiting_to_read() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            // Read one byte, then reset the connection.
            let mut s = s;
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    let (_edge, entry) = start(&tcp_routes(&[server], "")).await;
    let mut c = TcpStream::connect(entry).await.unwrap();
    c.write_all(b"x").await.unwrap();
    // The client now only waits for an answer; the reset must reach it.
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "client left hanging: {read:?}");
}
