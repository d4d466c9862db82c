//! Documents → [`RouteTable`]: every check, every error with its location, then the deterministic compile.

use crate::error::Invalid;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::{Collector, Location, RouteErrors};
use crate::load::{Dialect, Loaded};
use crate::matcher::{HostPattern, Index, PathMatch, Rule};
use crate::schema::{self, Document};
use crate::table::{CachePolicy, HttpsPolicy, Match, Route, RouteTable, SignedUrls, TcpRoute, Tier, Upstream};
use crate::ServiceResolver;

mod certs;
mod matches;
mod upstream;

#[cfg(test)]
pub(crate) use upstream::parse_server_url;
use upstream::{compile_tcp_upstream, compile_upstream, resolve_services};

/// Where a route or upstream was written: its source (file or ConfigMap key), dialect and place in a list, to
/// name it in errors in the words of its own document. (Not "origin": that is the upstream, in this codebase.)
#[derive(Debug, Clone)]
struct Written {
    source: String,
    dialect: Dialect,
    /// Position in the native `http.routes` list (routes only).
    index: usize,
    /// The document's text and first line in `source`, for the line of a field.
    text: std::sync::Arc<str>,
    first_line: usize,
}

impl Written {
    fn at(&self, path: String) -> Location {
        let line = crate::load::lines::line_of(&self.text, &path).map(|l| l + self.first_line - 1);
        Location { line, ..Location::new(&self.source, path) }
    }

    fn route(&self, name: &str, field: &str) -> Location {
        let path = match self.dialect {
            Dialect::Native => format!("http.routes[{}] ({name}).{field}", self.index),
            Dialect::Traefik => {
                let field = match field.split_once('[').map(|(f, _)| f).unwrap_or(field) {
                    "upstream" => "service",
                    "match" => "rule",
                    "cache" | "allow_encoded_slash" => "middlewares",
                    other => other,
                };
                format!("http.routers.{name}.{field}")
            }
        };
        self.at(path)
    }

    fn tcp_route(&self, name: &str, field: &str) -> Location {
        let path = match self.dialect {
            Dialect::Native => format!("tcp.routes[{}] ({name}).{field}", self.index),
            Dialect::Traefik => {
                let field = match field {
                    "upstream" => "service",
                    "entrypoints" => "entryPoints",
                    other => other,
                };
                format!("tcp.routers.{name}.{field}")
            }
        };
        self.at(path)
    }

    fn tcp_upstream(&self, name: &str, field: &str) -> Location {
        let path = match self.dialect {
            Dialect::Native => format!("tcp.upstreams.{name}.{field}"),
            Dialect::Traefik => format!("tcp.services.{name}.loadBalancer.{field}"),
        };
        self.at(path)
    }

    fn upstream(&self, name: &str, field: &str) -> Location {
        let path = match self.dialect {
            Dialect::Native => format!("http.upstreams.{name}.{field}"),
            Dialect::Traefik => {
                let field = field.replace("health_check", "healthCheck").replace("pass_host_header", "passHostHeader");
                format!("http.services.{name}.loadBalancer.{field}")
            }
        };
        self.at(path)
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("invalid {kind} name `{name}`: use 1-128 letters, digits, `-`, `_` or `.`").into());
    }
    Ok(())
}

fn duration_or(text: &Option<String>, default: Duration, at: Location, errors: &mut Collector) -> Duration {
    match text.as_deref().map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            errors.push(at, e);
            default
        }
    }
}

fn compile_tcp_route(
    spec: &schema::TcpRouteSpec,
    origin: &Written,
    upstreams: &BTreeMap<String, Upstream>,
    errors: &mut Collector,
) -> TcpRoute {
    let name = spec.name.as_str();
    let at = |f: &str| origin.tcp_route(name, f);
    if let Err(e) = check_name("route", name) {
        errors.push(at("name"), e);
    }
    if !upstreams.contains_key(&spec.upstream) {
        errors.push(at("upstream"), format!("`{}` is not a defined TCP upstream/service", spec.upstream));
    }
    if spec.entrypoints.is_empty() {
        errors.push(
            at("entrypoints"),
            "a TCP route needs at least one entrypoint (e.g. `rtmp`, as in --tcp rtmp=0.0.0.0:1935)",
        );
    }
    for (i, e) in spec.entrypoints.iter().enumerate() {
        if let Err(msg) = check_name("entrypoint", e) {
            errors.push(at(&format!("entrypoints[{i}]")), msg);
        }
    }
    let allow_text: Vec<String> = match &spec.allow {
        Some(list) => list.clone(),
        None => TcpRoute::DEFAULT_ALLOW.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut allow = Vec::new();
    for (i, text) in allow_text.iter().enumerate() {
        match crate::parse_cidr(text) {
            Ok(net) => allow.push(net),
            Err(e) => errors.push(at(&format!("allow[{i}]")), e),
        }
    }
    if spec.max_connections == Some(0) {
        errors.push(at("max_connections"), "must be at least 1 (remove the route to refuse every connection)");
    }
    TcpRoute {
        name: name.to_owned(),
        entrypoints: spec.entrypoints.clone(),
        upstream: spec.upstream.clone(),
        allow,
        max_connections: spec.max_connections,
        idle_timeout: duration_or(&spec.idle_timeout, TcpRoute::DEFAULT_IDLE_TIMEOUT, at("idle_timeout"), errors),
        proxy_protocol: match spec.proxy_protocol.as_deref() {
            None => false,
            Some("v1") => true,
            Some(other) => {
                errors.push(at("proxy_protocol"), format!("`{other}`: the supported version is `v1`"));
                false
            }
        },
    }
}

fn compile_route(
    spec: &schema::RouteSpec,
    origin: &Written,
    upstreams: &BTreeMap<String, Upstream>,
    errors: &mut Collector,
) -> Route {
    let name = spec.name.as_str();
    if let Err(e) = check_name("route", name) {
        errors.push(origin.route(name, "name"), e);
    }
    if !upstreams.contains_key(&spec.upstream) {
        errors.push(origin.route(name, "upstream"), format!("`{}` is not a defined upstream/service", spec.upstream));
    }
    let allow_encoded_slash = spec.allow_encoded_slash.unwrap_or(false);
    let matches = matches::compile_matches(spec, allow_encoded_slash, &|f: &str| origin.route(name, f), errors);
    let cache = spec.cache.as_ref().map(|c| compile_cache(c, &|f: &str| origin.route(name, f), errors));
    let signed = spec.signed_urls.as_ref().map(|s| compile_signed(s, &|f: &str| origin.route(name, f), errors));
    let https = spec
        .https
        .as_ref()
        .map_or_else(HttpsPolicy::default, |h| compile_https(h, &|f: &str| origin.route(name, f), errors));
    let tier = spec
        .tier
        .as_ref()
        .map_or(Tier::Fleet, |t| compile_tier(t, cache.is_some(), &|f: &str| origin.route(name, f), errors));
    Route {
        name: name.to_owned(),
        matches,
        upstream: spec.upstream.clone(),
        priority: spec.priority,
        cache,
        signed,
        https,
        tier,
        allow_encoded_slash,
    }
}

fn compile_tier(t: &schema::TierSpec, caching: bool, at: &dyn Fn(&str) -> Location, errors: &mut Collector) -> Tier {
    if !caching {
        errors.push(at("tier"), "the fleet tier is for caching routes: add `cache:` or remove `tier`");
    }
    match t {
        schema::TierSpec::Mode(m) if m == "none" => Tier::Off,
        schema::TierSpec::Mode(m) if m == "fleet" => Tier::Fleet,
        schema::TierSpec::Mode(m) => {
            errors.push(at("tier"), format!("`{m}`: write `none`, `fleet` or `{{ shield: [EDGE, ...] }}`"));
            Tier::Fleet
        }
        schema::TierSpec::Shield(s) => {
            if s.shield.is_empty() {
                errors.push(at("tier.shield"), "name at least one edge");
            }
            for (i, name) in s.shield.iter().enumerate() {
                if let Err(e) = check_name("edge", name) {
                    errors.push(at(&format!("tier.shield[{i}]")), e);
                }
            }
            Tier::Shield(s.shield.clone())
        }
    }
}

fn compile_signed(s: &schema::SignedUrlsSpec, at: &dyn Fn(&str) -> Location, errors: &mut Collector) -> SignedUrls {
    if s.keys.is_empty() {
        errors.push(at("signed_urls.keys"), "name at least one signing key id");
    }
    for (i, k) in s.keys.iter().enumerate() {
        if let Err(e) = check_name("signing key id", k) {
            errors.push(at(&format!("signed_urls.keys[{i}]")), e);
        }
    }
    SignedUrls { keys: s.keys.clone(), bind_client_ip: s.bind_client_ip.unwrap_or(false) }
}

fn compile_https(h: &schema::HttpsSpec, at: &dyn Fn(&str) -> Location, errors: &mut Collector) -> HttpsPolicy {
    let hsts = h.hsts_max_age.as_ref().and_then(|text| match parse_duration(text) {
        Ok(d) => Some(format!(
            "max-age={}{}",
            d.as_secs(),
            if h.hsts_include_subdomains.unwrap_or(false) { "; includeSubDomains" } else { "" }
        )),
        Err(e) => {
            errors.push(at("https.hsts_max_age"), e);
            None
        }
    });
    if h.hsts_include_subdomains.is_some() && h.hsts_max_age.is_none() {
        errors.push(at("https.hsts_include_subdomains"), "needs https.hsts_max_age");
    }
    HttpsPolicy { redirect: h.redirect.unwrap_or(false), hsts }
}

fn compile_cache(c: &schema::CacheSpec, at: &dyn Fn(&str) -> Location, errors: &mut Collector) -> CachePolicy {
    let d = CachePolicy::default();
    let mut opt = |text: &Option<String>, field: &str| match text.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(at(&format!("cache.{field}")), e);
            None
        }
    };
    let policy = CachePolicy {
        max_ttl: opt(&c.max_ttl, "max_ttl"),
        default_ttl: opt(&c.default_ttl, "default_ttl"),
        stale_if_error: opt(&c.stale_if_error, "stale_if_error").unwrap_or(d.stale_if_error),
        stale_while_revalidate: opt(&c.stale_while_revalidate, "stale_while_revalidate"),
        playlist_ttl: opt(&c.playlist_ttl, "playlist_ttl").unwrap_or(d.playlist_ttl),
        segment_ttl: opt(&c.segment_ttl, "segment_ttl").unwrap_or(d.segment_ttl),
        negative_ttl: opt(&c.negative_ttl, "negative_ttl").unwrap_or(d.negative_ttl),
        respect_origin: c.respect_origin.unwrap_or(false),
        query_keys: c.query_keys.clone(),
        keep_tag_headers: c.keep_tag_headers.unwrap_or(false),
        keep_cdn_cache_control: c.keep_cdn_cache_control.unwrap_or(false),
    };
    if let Some(keys) = &policy.query_keys {
        if keys.iter().any(|k| k.is_empty() || k.contains(['&', '=', '#', ' '])) {
            errors.push(
                at("cache.query_keys"),
                "query parameter names must be non-empty, without `&`, `=`, `#` or spaces",
            );
        }
    }
    policy
}

/// The default priority of one (host, path) condition: the length of the Traefik rule that says the same
/// (`Host(`h`) && PathPrefix(`/p`)`), which is Traefik's default. Longer, more specific conditions win; a native
/// route listing several hosts gets no boost from the list. Traefik routes carry their own rule length as an
/// explicit priority, so they keep Traefik's order exactly.
pub fn default_priority(host: Option<&HostPattern>, path: Option<&PathMatch>) -> i64 {
    let host_len = host.map_or(0, |h| "Host(``)".len() + h.to_string().len());
    let path_len = match path {
        None => 0,
        Some(PathMatch::Prefix(p)) => "PathPrefix(``)".len() + p.len(),
        Some(PathMatch::Exact(p)) => "Path(``)".len() + p.len(),
    };
    let and = if host.is_some() && path.is_some() { " && ".len() } else { 0 };
    (host_len + and + path_len) as i64
}

fn compile_rules(routes: &[Route]) -> Vec<Rule> {
    let mut rules = Vec::new();
    let any = [Match { hosts: vec![], paths: vec![] }];
    for (i, route) in routes.iter().enumerate() {
        let blocks = if route.matches.is_empty() { &any[..] } else { &route.matches[..] };
        for m in blocks {
            let hosts: Vec<Option<&HostPattern>> =
                if m.hosts.is_empty() { vec![None] } else { m.hosts.iter().map(Some).collect() };
            let paths: Vec<Option<&PathMatch>> =
                if m.paths.is_empty() { vec![None] } else { m.paths.iter().map(Some).collect() };
            for &host in &hosts {
                for &path in &paths {
                    let priority = route.priority.unwrap_or_else(|| default_priority(host, path));
                    rules.push(Rule { route: i, host: host.cloned(), path: path.cloned(), priority });
                }
            }
        }
    }
    // Highest priority first; ties go to the route whose name sorts first, then the more specific path.
    rules.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| routes[a.route].name.cmp(&routes[b.route].name))
            .then_with(|| b.path.as_ref().map(path_len).cmp(&a.path.as_ref().map(path_len)))
    });
    rules
}

fn path_len(p: &PathMatch) -> usize {
    match p {
        PathMatch::Prefix(t) | PathMatch::Exact(t) => t.len(),
    }
}

/// How a kind of named spec is called in errors and located.
struct Kind {
    what: &'static str,
    field: &'static str,
    locate: fn(&Written, &str, &str) -> Location,
}

/// Keeps the first spec of each name; a later one with the same name is an error naming both places.
fn insert_once<S>(
    specs: &mut BTreeMap<String, (S, Written)>,
    name: String,
    spec: S,
    at: Written,
    kind: Kind,
    errors: &mut Collector,
) {
    if let Some((_, first)) = specs.get(&name) {
        let what = format!("{} `{name}` is also defined at {}", kind.what, (kind.locate)(first, &name, kind.field));
        errors.push((kind.locate)(&at, &name, kind.field), what);
        return;
    }
    specs.insert(name, (spec, at));
}

/// Validates and compiles documents (from one or many sources) into one table. Names share one namespace across
/// all of them: a route or upstream defined twice is an error naming both places.
/// Every document's specs by name (a name defined twice is reported, the first kept), and its certificates.
#[derive(Default)]
struct Specs {
    upstreams: BTreeMap<String, (schema::UpstreamSpec, Written)>,
    routes: BTreeMap<String, (schema::RouteSpec, Written)>,
    tcp_upstreams: BTreeMap<String, (schema::TcpUpstreamSpec, Written)>,
    tcp_routes: BTreeMap<String, (schema::TcpRouteSpec, Written)>,
    certificate_specs: Vec<schema::CertificateSpec>,
    certificates: Vec<crate::Certificate>,
}

impl Specs {
    fn gather(loaded: Vec<Loaded>, services: &dyn ServiceResolver, errors: &mut Collector) -> Specs {
        let mut specs = Specs::default();
        for doc in loaded {
            let Document { http, tcp, tls, .. } = doc.document;
            for (index, mut spec) in tls.certificates.into_iter().enumerate() {
                let compiled = certs::compile_certificate(&mut spec, &doc.source, doc.dialect, index, services, errors);
                specs.certificates.extend(compiled);
                specs.certificate_specs.push(spec);
            }
            let written = |index| Written {
                source: doc.source.clone(),
                dialect: doc.dialect,
                index,
                text: doc.text.clone(),
                first_line: doc.first_line,
            };
            for (name, spec) in tcp.upstreams {
                let kind = Kind { what: "TCP upstream", field: "", locate: Written::tcp_upstream };
                insert_once(&mut specs.tcp_upstreams, name, spec, written(0), kind, errors);
            }
            for (index, spec) in tcp.routes.into_iter().enumerate() {
                let kind = Kind { what: "TCP route", field: "name", locate: Written::tcp_route };
                insert_once(&mut specs.tcp_routes, spec.name.clone(), spec, written(index), kind, errors);
            }
            for (name, spec) in http.upstreams {
                let kind = Kind { what: "upstream", field: "", locate: Written::upstream };
                insert_once(&mut specs.upstreams, name, spec, written(0), kind, errors);
            }
            for (index, spec) in http.routes.into_iter().enumerate() {
                let kind = Kind { what: "route", field: "name", locate: Written::route };
                insert_once(&mut specs.routes, spec.name.clone(), spec, written(index), kind, errors);
            }
        }
        resolve_services(&mut specs.upstreams, &mut specs.tcp_upstreams, services, errors);
        specs
    }

    /// The table's document: what was accepted, in Dime's native schema (what `/config` shows and the version is
    /// computed from).
    fn document(self) -> Document {
        Document {
            version: schema::SCHEMA_VERSION,
            http: schema::HttpSection {
                routes: self.routes.into_values().map(|(s, _)| s).collect(),
                upstreams: self.upstreams.into_iter().map(|(n, (s, _))| (n, s)).collect(),
            },
            tcp: schema::TcpSection {
                routes: self.tcp_routes.into_values().map(|(s, _)| s).collect(),
                upstreams: self.tcp_upstreams.into_iter().map(|(n, (s, _))| (n, s)).collect(),
            },
            tls: schema::TlsSection { certificates: self.certificate_specs },
        }
    }
}

/// Without SNI there is nothing to tell two TCP routes of one entrypoint apart: each entrypoint has one route.
fn check_entrypoints(
    routes: &[TcpRoute],
    specs: &BTreeMap<String, (schema::TcpRouteSpec, Written)>,
    errors: &mut Collector,
) {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for route in routes {
        for e in &route.entrypoints {
            if let Some(other) = owner.insert(e, &route.name) {
                errors.push(
                    specs[&route.name].1.tcp_route(&route.name, "entrypoints"),
                    format!("entrypoint `{e}` is already served by TCP route `{other}`"),
                );
            }
        }
    }
}

/// Validates and compiles documents (from one or many sources) into one table. Names share one namespace across
/// all of them: a route or upstream defined twice is an error naming both places.
pub(crate) fn compile(
    loaded: Vec<Loaded>,
    services: &dyn ServiceResolver,
    mut errors: Collector,
) -> Result<RouteTable, RouteErrors> {
    let mut specs = Specs::gather(loaded, services, &mut errors);
    let upstreams: BTreeMap<String, Upstream> = specs
        .upstreams
        .iter()
        .map(|(name, (spec, origin))| (name.clone(), compile_upstream(name, spec, origin, &mut errors)))
        .collect();
    let routes: Vec<Route> =
        specs.routes.values().map(|(spec, origin)| compile_route(spec, origin, &upstreams, &mut errors)).collect();
    let tcp_upstreams: BTreeMap<String, Upstream> = specs
        .tcp_upstreams
        .iter()
        .map(|(name, (spec, origin))| (name.clone(), compile_tcp_upstream(name, spec, origin, &mut errors)))
        .collect();
    let tcp_routes: Vec<TcpRoute> = specs
        .tcp_routes
        .values()
        .map(|(spec, origin)| compile_tcp_route(spec, origin, &tcp_upstreams, &mut errors))
        .collect();
    check_entrypoints(&tcp_routes, &specs.tcp_routes, &mut errors);
    let certificates = std::mem::take(&mut specs.certificates);
    let document = specs.document();
    let rules = compile_rules(&routes);
    let version = crate::table::content_version(&document);
    errors.sort_by_place();
    errors.finish(RouteTable {
        version,
        document,
        routes,
        upstreams,
        index: Index::new(rules),
        tcp_routes,
        tcp_upstreams,
        certificates,
    })
}
