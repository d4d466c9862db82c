//! Test harness: the workspace's shared test kit (the origin, the `dime-edge` harness) and the proxy tests' own
//! parts (routes documents, certificates, a live nginx-rtmp origin, a static nginx origin, requests on a raw
//! socket).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod certs;
pub mod fleet;
pub mod live;
pub mod nginx;

pub use dime_testkit::*;
use indoc::formatdoc;

/// A native routes document with one route, `name`, for `host`, to weighted servers.
pub fn one_route(name: &str, host: &str, servers: &[(&str, u32)]) -> String {
    route_doc(name, host, servers, None)
}

/// Like [`one_route`] with one server, caching on (`cache` is the YAML flow mapping of the cache options, e.g. `{}`).
pub fn cached_route(name: &str, host: &str, origin: &str, cache: &str) -> String {
    route_doc(name, host, &[(origin, 1)], Some(cache))
}

fn route_doc(name: &str, host: &str, servers: &[(&str, u32)], cache: Option<&str>) -> String {
    let servers: String =
        servers.iter().map(|(url, w)| format!("        - {{ url: \"{url}\", weight: {w} }}\n")).collect();
    let cache = cache.map(|c| format!("\n      cache: {c}")).unwrap_or_default();
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - name: {name}
                  match: [{{ hosts: ["{host}"] }}]
                  upstream: {name}{cache}
              upstreams:
                {name}:
                  servers:
            {servers}"#
    )
}

/// Sends `GET target` to `addr` exactly as written (an HTTP client library would resolve `..` itself before
/// sending), on its own connection: the status and the body. At most 10 s.
pub async fn raw_get(addr: std::net::SocketAddr, host: &str, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "{target}: no answer within 10 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
