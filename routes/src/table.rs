//! The validated, compiled route table: immutable once built, shared by reference, swapped whole.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::matcher::{normalize_host, HostPattern, Index, PathMatch};
use crate::path::{normalize, NormalizedPath, PathError, PathOptions};
use crate::schema;

/// A validated route table. Build one with [`crate::parse`] or [`crate::compile`]; it cannot hold an invalid
/// value, and two tables built from the same routes have the same [`RouteTable::version`].
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub(crate) version: String,
    pub(crate) document: schema::Document,
    pub(crate) routes: Vec<Route>,
    pub(crate) upstreams: BTreeMap<String, Upstream>,
    pub(crate) index: Index,
    pub(crate) tcp_routes: Vec<TcpRoute>,
    pub(crate) tcp_upstreams: BTreeMap<String, Upstream>,
    pub(crate) certificates: Vec<Certificate>,
}

impl RouteTable {
    /// A table with no routes (what an edge or control holds when there is genuinely nothing to serve).
    pub fn empty() -> Self {
        let document = schema::Document { version: schema::SCHEMA_VERSION, ..Default::default() };
        RouteTable {
            version: content_version(&document),
            document,
            routes: Vec::new(),
            upstreams: BTreeMap::new(),
            index: Index::default(),
            tcp_routes: Vec::new(),
            tcp_upstreams: BTreeMap::new(),
            certificates: Vec::new(),
        }
    }

    /// Content hash of the canonical document (16 hex digits): the same routes give the same version everywhere.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The route for a request, given its Host header (any case, port and trailing dot allowed) and its path
    /// (without the query string).
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.find_index(host, path).map(|i| &self.routes[i])
    }

    /// Like [`RouteTable::find`], giving the route's position in [`RouteTable::routes`].
    pub fn find_index(&self, host: &str, path: &str) -> Option<usize> {
        self.index.find(&normalize_host(host), path)
    }

    /// Reads a request's path (without its query) for `host` as the route that serves it wants it read
    /// ([`crate::path::normalize`]): strictly first. A path refused only for an encoded slash or backslash is read
    /// again with [`PathOptions::allow_encoded_slash`], and that reading stands if the route it finds for `host`
    /// allows them; otherwise the strict reading's refusal. Whatever is refused with them too (`..%2F`, a bad
    /// escape further on) is refused with that reason, on any route.
    ///
    /// The route is looked up with the path as it is then read, so the route that allowed the reading is the
    /// route the request is matched to, checked against and cached under.
    pub fn read_path<'a>(&self, host: &str, raw: &'a str) -> Result<NormalizedPath<'a>, PathError> {
        let strict = normalize(raw, PathOptions::default());
        if !matches!(strict, Err(PathError::EncodedSlash { .. } | PathError::EncodedBackslash { .. })) {
            return strict;
        }
        let lenient = normalize(raw, PathOptions { allow_encoded_slash: true, ..PathOptions::default() })?;
        match self.find(host, &lenient) {
            Some(route) if route.allow_encoded_slash => Ok(lenient),
            _ => strict,
        }
    }

    /// Routes, sorted by name.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn upstreams(&self) -> &BTreeMap<String, Upstream> {
        &self.upstreams
    }

    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// TCP routes, sorted by name. At most one per entrypoint.
    pub fn tcp_routes(&self) -> &[TcpRoute] {
        &self.tcp_routes
    }

    /// The TCP route serving an entrypoint.
    pub fn tcp_route_for(&self, entrypoint: &str) -> Option<&TcpRoute> {
        self.tcp_routes.iter().find(|r| r.entrypoints.iter().any(|e| e == entrypoint))
    }

    pub fn tcp_upstreams(&self) -> &BTreeMap<String, Upstream> {
        &self.tcp_upstreams
    }

    /// Certificates for the HTTPS entrypoints, in document order.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// The table in the native schema, canonical form (what control serves), private keys included.
    pub fn document(&self) -> &schema::Document {
        &self.document
    }

    /// [`RouteTable::document`] with inline private keys replaced by `<redacted>`: what `/config` shows.
    pub fn redacted_document(&self) -> schema::Document {
        let mut doc = self.document.clone();
        for c in &mut doc.tls.certificates {
            if c.key_pem.is_some() {
                c.key_pem = Some("<redacted>".into());
            }
        }
        doc
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.document).unwrap_or_default()
    }

    /// The compiled (host, path) rules in precedence order, for `/config` and debugging.
    pub fn rules(&self) -> &[crate::matcher::Rule] {
        self.index.rules()
    }
}

/// A certificate for the HTTPS entrypoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// How logs and metrics name it: its `name`, else its certificate file.
    pub label: String,
    pub source: CertificateSource,
}

#[derive(Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// PEM files on the edge, re-read when they change.
    Files { cert: String, key: String },
    /// PEM text (from a Kubernetes Secret, served by dime-control).
    Pem { cert: String, key: String },
}

/// Never prints a private key.
impl std::fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateSource::Files { cert, key } => {
                f.debug_struct("Files").field("cert", cert).field("key", key).finish()
            }
            CertificateSource::Pem { .. } => f.write_str("Pem { .. }"),
        }
    }
}

/// An HTTP route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub matches: Vec<Match>,
    pub upstream: String,
    pub priority: Option<i64>,
    pub cache: Option<CachePolicy>,
    pub signed: Option<SignedUrls>,
    pub https: HttpsPolicy,
    pub tier: Tier,
    /// Paths with `%2F` or `%5C` are read with [`crate::PathOptions::allow_encoded_slash`] on this route.
    pub allow_encoded_slash: bool,
}

/// Which edges own a caching route's keys in a fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tier {
    /// Every member, on the ring.
    #[default]
    Fleet,
    /// None: each edge fetches from the origin.
    Off,
    /// Only these members (by edge name), in ring order.
    Shield(Vec<String>),
}

/// A route's HTTPS behaviour (defaults: no redirect, no HSTS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpsPolicy {
    pub redirect: bool,
    /// The full `Strict-Transport-Security` value, when set.
    pub hsts: Option<String>,
}

/// A route's signed-URL requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrls {
    /// Key ids accepted, as held by the edge.
    pub keys: Vec<String>,
    pub bind_client_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub hosts: Vec<HostPattern>,
    pub paths: Vec<PathMatch>,
}

/// A route's cache policy, with every default filled in (see [`crate::schema::CacheSpec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub max_ttl: Option<Duration>,
    pub default_ttl: Option<Duration>,
    pub stale_if_error: Duration,
    pub stale_while_revalidate: Option<Duration>,
    pub playlist_ttl: Duration,
    pub segment_ttl: Duration,
    pub negative_ttl: Duration,
    pub respect_origin: bool,
    pub query_keys: Option<Vec<String>>,
    /// `Surrogate-Key` and `Cache-Tag` go on to viewers.
    pub keep_tag_headers: bool,
    /// `CDN-Cache-Control` and `Dime-CDN-Cache-Control` go on to viewers.
    pub keep_cdn_cache_control: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            max_ttl: None,
            default_ttl: None,
            stale_if_error: Duration::from_secs(60),
            stale_while_revalidate: None,
            playlist_ttl: Duration::from_secs(1),
            segment_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(1),
            respect_origin: false,
            query_keys: None,
            keep_tag_headers: false,
            keep_cdn_cache_control: false,
        }
    }
}

/// A pool of origin servers and how to talk to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<Server>,
    /// Set for `https://` servers.
    pub tls: Option<UpstreamTls>,
    pub health_check: Option<HealthCheck>,
    pub pass_host_header: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub dns_refresh: Duration,
}

/// How the edge speaks TLS to an upstream's servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM CA bundle on the edge to verify the servers with (default: the system roots).
    pub ca_file: Option<String>,
    /// SNI and the name verified (default: the server's host).
    pub server_name: Option<String>,
    /// false only with `insecure_skip_verify: true`.
    pub verify: bool,
}

impl Upstream {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
}

/// One origin server: a host name or IP literal, a port, and its share of the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

impl Server {
    /// `host:port` as a resolver takes it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What a health check does to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET path` with `Host: hostname` (default: the server's host); healthy on 2xx/3xx.
    Http { path: String, hostname: Option<String> },
    /// Open a TCP connection; healthy if it connects.
    Connect,
}

impl HealthCheck {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
}

/// A TCP route: every connection to one of its entrypoints goes to its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRoute {
    pub name: String,
    pub entrypoints: Vec<String>,
    pub upstream: String,
    /// Clients allowed to connect.
    pub allow: Vec<ipnet::IpNet>,
    /// Most connections open at once; further ones are refused.
    pub max_connections: Option<u32>,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Send a PROXY protocol v1 header to the upstream first.
    pub proxy_protocol: bool,
}

impl TcpRoute {
    /// The default allowlist: loopback and private networks (RFC 1918, RFC 4193, and CGNAT's 100.64/10). A publish
    /// port is never open to the whole Internet unless a route says `allow: ["0.0.0.0/0", "::/0"]`.
    pub const DEFAULT_ALLOW: &'static [&'static str] =
        &["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// The content hash of a canonical document: 16 hex digits of its SHA-256.
pub(crate) fn content_version(document: &schema::Document) -> String {
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
