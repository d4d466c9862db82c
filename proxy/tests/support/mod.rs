//! Test harness: the workspace's shared test kit (the origin, the `dime-edge` harness) and the proxy tests' own
//! parts (routes documents, certificates, a live nginx-rtmp origin).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod certs;
pub mod live;

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
