//! Active health checks: HTTP (`GET <path>`, healthy on 2xx/3xx within the timeout) and TCP connect.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an address failed its health check (logged when it leaves rotation).
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("no answer within {}ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{step}: {error}")]
    Io { step: &'static str, error: std::io::Error },
    #[error("connection closed before a status line")]
    Closed,
    #[error("not an HTTP response: {0:?}")]
    NotHttp(String),
    #[error("status {0}")]
    Status(u16),
}

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> Unhealthy {
    move |error| Unhealthy::Io { step, error }
}

/// Checks one address. `Ok(())` when healthy, otherwise why not.
pub async fn check(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<(), Unhealthy> {
    match tokio::time::timeout(timeout, probe(addr, host, path)).await {
        Ok(result) => result,
        Err(_) => Err(Unhealthy::Timeout(timeout)),
    }
}

/// TCP check: healthy if a connection opens within the timeout.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<(), Unhealthy> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(io("connect")(e)),
        Err(_) => Err(Unhealthy::Timeout(timeout)),
    }
}

async fn probe(addr: SocketAddr, host: &str, path: &str) -> Result<(), Unhealthy> {
    let mut stream = TcpStream::connect(addr).await.map_err(io("connect"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dime-edge-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io("write"))?;
    // The status line is all we need; read until it is complete.
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut chunk).await.map_err(io("read"))?;
        if n == 0 || buf.len() > 4096 {
            return Err(Unhealthy::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Unhealthy::NotHttp(line.lines().next().unwrap_or_default().to_owned()))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(Unhealthy::Status(status))
    }
}
