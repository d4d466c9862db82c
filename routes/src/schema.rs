//! The native route schema as it appears in files and on the wire (control → edge), version 1.
//!
//! These are the raw shapes: serde reads them with `deny_unknown_fields`, so a misspelt or unsupported key is an
//! error, and [`crate::validate`] turns them into the typed [`crate::RouteTable`]. The same structs serialize the
//! compiled table back, so what control serves is what a user could have written. Documented in `docs/routes.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One native routes document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub version: u32,
    #[serde(default, skip_serializing_if = "HttpSection::is_empty")]
    pub http: HttpSection,
    #[serde(default, skip_serializing_if = "TcpSection::is_empty")]
    pub tcp: TcpSection,
    /// Certificates for the edge's HTTPS entrypoints, in addition to its `--tls-cert` files.
    #[serde(default, skip_serializing_if = "TlsSection::is_empty")]
    pub tls: TlsSection,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateSpec>,
}

impl TlsSection {
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// One certificate and its key, from exactly one place: PEM files on the edge (`cert_file` + `key_file`), a
/// Kubernetes TLS Secret in the ConfigMap's namespace (`secret`, read by dime-control, which serves it inline),
/// or inline PEM (`cert_pem` + `key_pem`, what control serves for a Secret).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// A label for logs and metrics (control sets it to the Secret's `namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

/// TCP (layer 4) routes, e.g. RTMP publishing on port 1935.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<TcpRouteSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, TcpUpstreamSpec>,
}

impl TcpSection {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.upstreams.is_empty()
    }
}

/// A TCP route: connections to its entrypoints (named by the edge's `--tcp NAME=ADDR`) go to its upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRouteSpec {
    pub name: String,
    pub entrypoints: Vec<String>,
    pub upstream: String,
    /// Client networks allowed (CIDRs). Default: loopback and private networks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// `v1`: send a PROXY protocol v1 header to the upstream, so it sees the client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpUpstreamSpec {
    pub servers: Vec<TcpServerSpec>,
    /// TCP connect checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<TcpHealthCheckSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpServerSpec {
    /// `host:port`
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// A Kubernetes Service, `namespace/name:port`, resolved by dime-control to its LoadBalancer address
    /// (instead of `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpHealthCheckSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
}

impl HttpSection {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.upstreams.is_empty()
    }
}

/// An HTTP route: requests matching any of `match` go to `upstream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    /// Alternatives; a request matches the route if it matches any one of them. Empty or absent: every request.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchSpec>,
    pub upstream: String,
    /// Higher wins. Absent: the length of the match written as a Traefik rule (Traefik's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Only requests carrying a valid signed-URL token are served (`dime-edge sign` mints them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_urls: Option<SignedUrlsSpec>,
    /// HTTPS behaviour of the route: redirect plain HTTP, send HSTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsSpec>,
    /// The fleet tier for this caching route: absent, every edge owns its share of the keys; `none`, every edge
    /// fetches this route's misses from the origin itself; `{ shield: [edge-a, ...] }`, only these edges own keys
    /// (a shield in front of a far origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierSpec>,
    /// Accept an encoded slash or backslash (`%2F`, `%5C`) in this route's paths, kept encoded: part of a segment,
    /// not a separator, and sent on as written (default false: the edge answers such a path 400). Only for an
    /// origin that reads `%2F` as text; a dot segment next to one (`..%2F`) is refused even here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_encoded_slash: Option<bool>,
}

/// `tier: none` or `tier: { shield: [...] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TierSpec {
    Mode(String),
    Shield(ShieldSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldSpec {
    pub shield: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSpec {
    /// Answer plain-HTTP requests with a 308 to the same URL over https (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<bool>,
    /// Send `Strict-Transport-Security` on HTTPS responses with this max-age (a duration, e.g. `8760h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts_max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts_include_subdomains: Option<bool>,
}

/// Signed viewer URLs: an HMAC-SHA256 token with an expiry, scoped to a path prefix, optionally bound to the
/// client's address. The keys themselves are never in a routes document: edges hold them (`--signing-keys`), the
/// route names which key ids it accepts (several, for rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlsSpec {
    pub keys: Vec<String>,
    /// The token is valid only from the client address it was minted for (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_client_ip: Option<bool>,
}

/// Host AND path conditions. Within `hosts` any one host matches; within `paths` any one path matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathSpec>,
}

/// A path condition: exactly one of `prefix` and `exact`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// The request path starts with this string (`/hls` matches `/hls`, `/hls/a.ts` and `/hlsx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The request path (without query) is exactly this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

impl PathSpec {
    pub fn prefix(text: impl Into<String>) -> Self {
        PathSpec { prefix: Some(text.into()), exact: None }
    }
    pub fn exact(text: impl Into<String>) -> Self {
        PathSpec { prefix: None, exact: Some(text.into()) }
    }
}

/// Caching on a route. Present (even `{}`) turns caching on with the defaults below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Upper bound on how long any object of this route stays fresh, e.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    /// Freshness for ordinary responses that carry no explicit lifetime (default: none, such responses are not
    /// stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
    /// How long a stale object may be served while the origin fails (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_if_error: Option<String>,
    /// How long a stale object may be served while it is refreshed in the background (default: the origin's
    /// `stale-while-revalidate`, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate: Option<String>,
    /// Freshness of HLS/DASH playlists (`.m3u8`, `.mpd`), default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist_ttl: Option<String>,
    /// Freshness of HLS/DASH segments (`.ts`, `.m4s`, `.mp4`, `.aac`, ...), default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_ttl: Option<String>,
    /// Freshness of a 404 for a playlist or segment, default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_ttl: Option<String>,
    /// Follow the origin's Cache-Control for playlists and segments too (default false: the TTLs above win over
    /// the `no-cache` that live origins such as nginx-rtmp send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_origin: Option<bool>,
    /// Query parameters kept in the cache key. Default: all of them for ordinary paths; for playlists and
    /// segments only `_HLS_msn`, `_HLS_part` and `_HLS_skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_keys: Option<Vec<String>>,
    /// Pass the origin's `Surrogate-Key` and `Cache-Tag` headers on to viewers (default false: they are the
    /// cache's, for purging by tag, and removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_tag_headers: Option<bool>,
    /// Pass the origin's `CDN-Cache-Control` and `Dime-CDN-Cache-Control` on to viewers (default false: they
    /// tell the edge how to cache, RFC 9213, and are removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_cdn_cache_control: Option<bool>,
}

/// Never prints an inline private key.
impl std::fmt::Debug for CertificateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSpec")
            .field("name", &self.name)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("secret", &self.secret)
            .field("cert_pem", &self.cert_pem.as_ref().map(|_| ".."))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A pool of origin servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub servers: Vec<ServerSpec>,
    /// For `https://` servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Send the client's Host header to the origin (default true, as Traefik's `passHostHeader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_host_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    /// How often server hostnames are resolved again (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// `http://host[:port]`
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// A Kubernetes Service, `namespace/name:port`, resolved by dime-control to `http://` + its LoadBalancer
    /// address (instead of `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// TLS to an upstream's `https://` servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// A PEM CA bundle on the edge (absolute path); default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The name sent as SNI and verified in the certificate; default: the server's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any certificate. Only for tests; logged as a warning at every load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Active HTTP health check against every resolved address of every server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Host header to send (default: the server's host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}
