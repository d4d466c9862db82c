//! Test harness: the workspace's shared test kit (the origin, the `dime-edge` harness) and the proxy tests' own
//! parts (routes documents, certificates, a live nginx-rtmp origin).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod certs;
pub mod live;

pub use dime_testkit::*;
use indoc::formatdoc;

/// A native routes document with one route per (name, hosts, upstream servers) entry.
pub fn one_route(name: &str, host: &str, servers: &[(&str, u32)]) -> String {
    let servers: String =
        servers.iter().map(|(url, w)| format!("        - {{ url: \"{url}\", weight: {w} }}\n")).collect();
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - name: {name}
                  match: [{{ hosts: ["{host}"] }}]
                  upstream: {name}
              upstreams:
                {name}:
                  servers:
            {servers}"#
    )
}

/// Like [`one_route`], with caching on (`cache` is the YAML flow mapping of the cache options, e.g. `{}`).
pub fn cached_route(name: &str, host: &str, origin: &str, cache: &str) -> String {
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - name: {name}
                  match: [{{ hosts: ["{host}"] }}]
                  upstream: {name}
                  cache: {cache}
              upstreams:
                {name}:
                  servers: [{{ url: "{origin}" }}]
            "#
    )
}
