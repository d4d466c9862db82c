//! `dime-routes`: Dime's route model.
//!
//! Pure code, no I/O: route documents (the native schema of [`schema`], or the Traefik dynamic-configuration
//! subset of [`traefik`]) are read, validated with every error located, and compiled into an immutable
//! [`RouteTable`] that answers "which route serves this host and path". The edge and the control plane both use
//! it, so a table that validates in one validates in the other. [`path::normalize`] reads a request's path once
//! (percent-encoding, dot segments, slashes) so that what is matched is what the origin is sent.
//!
//! ```
//! let table = dime_routes::parse("example.yaml", r#"
//! version: 1
//! http:
//!   routes:
//!     - name: web
//!       match: [{ hosts: [www.example.com] }]
//!       upstream: web
//!   upstreams:
//!     web: { servers: [{ url: "http://10.0.0.1:8080" }] }
//! "#).unwrap();
//! assert_eq!(table.find("WWW.example.com:443", "/").unwrap().name, "web");
//! ```
//! The schema is documented in `docs/routes.md`; `examples/routes.yaml` in the repository is a working file.

pub mod clock;
pub mod duration;
pub mod error;
mod load;
pub mod matcher;
pub mod path;
pub mod purge;
pub mod report;
pub mod rule;
pub mod schema;
mod table;
pub mod tokens;
pub mod traefik;
mod validate;
pub mod wire;

pub use duration::{format_duration, parse_duration};
pub use error::{Invalid, Location, RouteError, RouteErrors};
pub use load::Dialect;
pub use matcher::{normalize_host, HostPattern, PathMatch};
pub use path::{NormalizedPath, PathError, PathOptions};
pub use table::{
    CachePolicy, Certificate, CertificateSource, HealthCheck, Match, Probe, Route, RouteTable, Server, SignedUrls,
    TcpRoute, Tier, Upstream,
};
pub use tokens::{parse_tokens, read_token_file, token_accepted, TokenFileError};
pub use validate::default_priority;

/// Parses a network as route files and flags write it: a CIDR (`10.0.0.0/8`) or a single address.
pub fn parse_cidr(text: &str) -> Result<ipnet::IpNet, Invalid> {
    text.trim()
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.trim().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| Invalid(format!("`{text}` is not a CIDR such as 10.0.0.0/8")))
}

/// Route text from one place: `source` names it in errors (a file path, or `namespace/name/key`).
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub source: &'a str,
    pub text: &'a str,
}

/// Reads, validates and compiles one routes file (one or more YAML/JSON documents).
pub fn parse(source: &str, text: &str) -> Result<RouteTable, RouteErrors> {
    compile(&[Fragment { source, text }])
}

/// Reads, validates and compiles fragments from several places into one table. All errors of all fragments are
/// returned together; no table is produced if there is any. Servers that name a Kubernetes Service are an error
/// here (only dime-control resolves them: [`compile_with`]).
pub fn compile(fragments: &[Fragment<'_>]) -> Result<RouteTable, RouteErrors> {
    compile_with(fragments, &NoCluster)
}

/// [`compile`], resolving servers that name a Kubernetes Service with `services`. The table holds the resolved
/// addresses (as `url`/`address`), so its version changes when a Service's address does.
pub fn compile_with(fragments: &[Fragment<'_>], services: &dyn ServiceResolver) -> Result<RouteTable, RouteErrors> {
    let mut errors = error::Collector::default();
    let mut loaded = Vec::new();
    for f in fragments {
        loaded.extend(load::load(f.source, f.text, &mut errors));
    }
    validate::compile(loaded, services, errors)
}

/// A server's `service: namespace/name:port` reference. `port` is the Service port's number or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub port: &'a str,
}

impl<'a> ServiceRef<'a> {
    pub fn parse(text: &'a str) -> Result<Self, Invalid> {
        let bad =
            || Invalid(format!("`{text}`: expected a Service as namespace/name:port, e.g. video/nginx-rtmp:1935"));
        let (namespace, rest) = text.split_once('/').ok_or_else(bad)?;
        let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !label(namespace) || !label(name) || !label(port) {
            return Err(bad());
        }
        Ok(ServiceRef { namespace, name, port })
    }
}

impl std::fmt::Display for ServiceRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Turns a [`ServiceRef`] into the host (an address or a DNS name) and port to connect to, or says why not.
pub trait ServiceResolver {
    fn resolve(&self, service: &ServiceRef<'_>) -> Result<(String, u16), Invalid>;

    /// The PEM certificate chain and private key of the Kubernetes TLS Secret `name`, asked for by the fragment
    /// `source` (`namespace/configmap/key`), and the label to give it. Only dime-control has a cluster to ask.
    fn secret(&self, source: &str, name: &str) -> Result<TlsSecret, Invalid> {
        let _ = (source, name);
        Err("Kubernetes Secrets are read by dime-control only; a routes file gives `cert_file` and `key_file`".into())
    }
}

/// A TLS Secret's contents, as [`ServiceResolver::secret`] returns them.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSecret {
    /// `namespace/name`.
    pub label: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSecret").field("label", &self.label).finish_non_exhaustive()
    }
}

/// Outside dime-control there is no cluster to ask: every Service reference and Secret is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCluster;

impl ServiceResolver for NoCluster {
    fn resolve(&self, _: &ServiceRef<'_>) -> Result<(String, u16), Invalid> {
        Err("Kubernetes Service references are resolved by dime-control only; a routes file needs `url` (HTTP) or `address` (TCP)".into())
    }
}

#[cfg(test)]
mod tests;
