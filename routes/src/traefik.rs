//! The subset of Traefik's dynamic configuration that the old Dime setup stored in ConfigMaps, translated into
//! the native schema. Anything outside the subset is an error that names it; nothing is dropped silently.
//!
//! Subset: `http.routers` (`rule` with Host/PathPrefix/Path, `&&`, `||`, parentheses; `service`; `middlewares`;
//! `priority`), `http.services.*.loadBalancer` (`servers[].url`, `servers[].weight`, `healthCheck`,
//! `passHostHeader`), `http.middlewares.*.plugin.plugin-simplecache` (turns caching on for the routers using it),
//! `http.middlewares.*.encodedCharacters` (`allowEncodedSlash` with `allowEncodedBackSlash`: `allow_encoded_slash`
//! on the routers using it),
//! `tls.certificates` (`certFile`/`keyFile`: file paths on the edge, or the PEM text itself, as Traefik allows).

use crate::error::Invalid;
use std::collections::BTreeMap;

/// Keys of a Traefik mapping that Dime does not read, kept (instead of refusing the first one, as
/// `deny_unknown_fields` would) so that one check reports all of them.
pub type Unknown = BTreeMap<String, serde_yaml::Value>;

use serde::Deserialize;

use crate::error::{Collector, Location};
use crate::rule::{self, Matcher};
use crate::schema::{self, CacheSpec, MatchSpec, PathSpec};

#[derive(Debug, Default, Deserialize)]
pub struct Dynamic {
    #[serde(default)]
    pub http: Option<Http>,
    #[serde(default)]
    pub tcp: Option<Tcp>,
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
pub struct Tls {
    #[serde(default)]
    pub certificates: Vec<TlsCertificate>,
    #[serde(default)]
    pub options: Option<serde_yaml::Value>,
    #[serde(default)]
    pub stores: Option<serde_yaml::Value>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct TlsCertificate {
    #[serde(rename = "certFile")]
    pub cert_file: String,
    #[serde(rename = "keyFile")]
    pub key_file: String,
    #[serde(default)]
    pub stores: Option<Vec<String>>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
pub struct Tcp {
    #[serde(default)]
    pub routers: Option<BTreeMap<String, TcpRouter>>,
    #[serde(default)]
    pub services: Option<BTreeMap<String, TcpService>>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct TcpRouter {
    pub rule: String,
    #[serde(rename = "entryPoints")]
    pub entry_points: Vec<String>,
    pub service: String,
    #[serde(default)]
    pub tls: Option<serde_yaml::Value>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct TcpService {
    #[serde(rename = "loadBalancer")]
    pub load_balancer: TcpLoadBalancer,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct TcpLoadBalancer {
    pub servers: Vec<TcpServer>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct TcpServer {
    pub address: String,
    #[serde(default)]
    pub weight: Option<u32>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
pub struct Http {
    #[serde(default)]
    pub routers: Option<BTreeMap<String, Router>>,
    #[serde(default)]
    pub services: Option<BTreeMap<String, Service>>,
    #[serde(default)]
    pub middlewares: Option<BTreeMap<String, Middleware>>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct Router {
    pub rule: String,
    pub service: String,
    #[serde(default)]
    pub middlewares: Vec<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default, rename = "entryPoints")]
    pub entry_points: Option<serde_yaml::Value>,
    #[serde(default)]
    pub tls: Option<serde_yaml::Value>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct Service {
    #[serde(default, rename = "loadBalancer")]
    pub load_balancer: Option<LoadBalancer>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct LoadBalancer {
    pub servers: Vec<Server>,
    #[serde(default, rename = "healthCheck")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, rename = "passHostHeader")]
    pub pass_host_header: Option<bool>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct Server {
    pub url: String,
    #[serde(default)]
    pub weight: Option<u32>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct Middleware {
    #[serde(default)]
    pub plugin: Option<BTreeMap<String, SimpleCache>>,
    #[serde(default, rename = "encodedCharacters")]
    pub encoded_characters: Option<EncodedCharacters>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// Options of the `plugin-simplecache` Traefik plugin. Dime caches in memory under `--cache-size`, so `path`
/// (its disk directory) and `cleanup` are accepted for compatibility and have no effect; `maxExpiry` (seconds)
/// bounds freshness.
#[derive(Debug, Default, Deserialize)]
pub struct SimpleCache {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, rename = "maxExpiry")]
    pub max_expiry: Option<u64>,
    #[serde(default)]
    pub cleanup: Option<u64>,
    #[serde(default, rename = "addStatusHeader")]
    pub add_status_header: Option<bool>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// Traefik's EncodedCharacters middleware: which encoded characters a router's paths may hold (Traefik refuses
/// each unless allowed). Dime refuses `%2F` and `%5C` unless a route has `allow_encoded_slash` (both together),
/// always refuses `%00`, and always accepts the other four, kept encoded as text for the origin.
#[derive(Debug, Default, Deserialize)]
pub struct EncodedCharacters {
    #[serde(default, rename = "allowEncodedSlash")]
    pub allow_encoded_slash: Option<bool>,
    #[serde(default, rename = "allowEncodedBackSlash")]
    pub allow_encoded_back_slash: Option<bool>,
    #[serde(default, rename = "allowEncodedNullCharacter")]
    pub allow_encoded_null_character: Option<bool>,
    #[serde(default, rename = "allowEncodedSemicolon")]
    pub allow_encoded_semicolon: Option<bool>,
    #[serde(default, rename = "allowEncodedPercent")]
    pub allow_encoded_percent: Option<bool>,
    #[serde(default, rename = "allowEncodedQuestionMark")]
    pub allow_encoded_question_mark: Option<bool>,
    #[serde(default, rename = "allowEncodedHash")]
    pub allow_encoded_hash: Option<bool>,
    /// Keys Dime does not read, each reported with what it is in Traefik ([`report_unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl EncodedCharacters {
    /// What the routers using it get: `allow_encoded_slash` when both slashes are allowed.
    fn allows_encoded_slash(&self) -> bool {
        self.allow_encoded_slash == Some(true) && self.allow_encoded_back_slash == Some(true)
    }

    /// Every option Dime cannot do as written, at `at(key)`.
    fn check(&self, at: &dyn Fn(&str) -> Location, errors: &mut Collector) {
        let (slash, backslash) =
            (self.allow_encoded_slash.unwrap_or(false), self.allow_encoded_back_slash.unwrap_or(false));
        if slash != backslash {
            let key = if slash { "allowEncodedSlash" } else { "allowEncodedBackSlash" };
            errors.push(
                at(key),
                "Dime allows `%2F` and `%5C` together (a route's `allow_encoded_slash`): set both allowEncodedSlash \
                 and allowEncodedBackSlash to true, or neither",
            );
        }
        if self.allow_encoded_null_character == Some(true) {
            errors.push(at("allowEncodedNullCharacter"), "Dime refuses `%00` in a path on every route");
        }
        let always = [
            ("allowEncodedSemicolon", self.allow_encoded_semicolon, "%3B"),
            ("allowEncodedPercent", self.allow_encoded_percent, "%25"),
            ("allowEncodedQuestionMark", self.allow_encoded_question_mark, "%3F"),
            ("allowEncodedHash", self.allow_encoded_hash, "%23"),
        ];
        for (key, value, escape) in always {
            if value == Some(false) {
                errors.push(
                    at(key),
                    format!(
                        "Dime does not refuse `{escape}` in a path: it keeps it encoded, as text for the origin, on \
                         every route; remove `{key}` or write true"
                    ),
                );
            }
        }
    }
}

const SIMPLECACHE: &str = "plugin-simplecache";

/// Strips Traefik's `@file` provider suffix; other providers do not exist for Dime.
fn local_name(name: &str) -> Result<&str, Invalid> {
    match name.split_once('@') {
        None => Ok(name),
        Some((base, "file")) => Ok(base),
        Some((_, provider)) => {
            Err(format!("`{name}` refers to Traefik provider `{provider}`; Dime has no providers").into())
        }
    }
}

mod features;

/// Translates one Traefik document (`text`, starting at line `first_line` of `source`) into a native one. Every
/// problem is pushed with `source` as its location: every key Dime does not read, at any depth, and every
/// unsupported matcher, in one pass.
pub(crate) fn translate(
    source: &str,
    text: &str,
    first_line: usize,
    dynamic: Dynamic,
    errors: &mut Collector,
) -> schema::Document {
    let from = errors.errors.len();
    features::Reporter { source, errors: &mut *errors }.all_unknown(&dynamic);
    let doc = translate_all(source, dynamic, errors);
    features::add_lines(errors, from, source, text, first_line);
    doc
}

/// Only the features Dime does not have, for a document that cannot be translated (parts of it were refused).
pub(crate) fn report_unsupported(
    source: &str,
    text: &str,
    first_line: usize,
    dynamic: &Dynamic,
    errors: &mut Collector,
) {
    let from = errors.errors.len();
    let mut reporter = features::Reporter { source, errors: &mut *errors };
    reporter.all_unknown(dynamic);
    for (name, router) in dynamic.http.iter().flat_map(|h| h.routers.iter().flatten()) {
        reporter.unsupported_matchers(&format!("http.routers.{name}.rule"), &router.rule);
    }
    features::add_lines(errors, from, source, text, first_line);
}

fn translate_all(source: &str, dynamic: Dynamic, errors: &mut Collector) -> schema::Document {
    let mut doc = schema::Document { version: schema::SCHEMA_VERSION, ..Default::default() };
    if let Some(tcp) = dynamic.tcp {
        translate_tcp(source, tcp, &mut doc, errors);
    }
    if let Some(tls) = dynamic.tls {
        translate_tls(source, tls, &mut doc, errors);
    }
    let Some(http) = dynamic.http else { return doc };
    let middlewares = http.middlewares.unwrap_or_default();
    for (name, mw) in &middlewares {
        check_middleware(source, name, mw, errors);
    }
    for (name, router) in http.routers.unwrap_or_default() {
        if let Some(route) = translate_router(source, &name, router, &middlewares, errors) {
            doc.http.routes.push(route);
        }
    }
    for (name, service) in http.services.unwrap_or_default() {
        match service.load_balancer {
            Some(lb) => drop(doc.http.upstreams.insert(name, translate_service(lb))),
            None if service.unknown.is_empty() => {
                errors.push(Location::new(source, format!("http.services.{name}")), "a service needs a `loadBalancer`")
            }
            None => {} // its kind is reported as unsupported
        }
    }
    doc
}

/// One middleware definition: one kind Dime reads, with options it can do.
fn check_middleware(source: &str, name: &str, mw: &Middleware, errors: &mut Collector) {
    let at = |field: &str| Location::new(source, format!("http.middlewares.{name}.{field}"));
    match (&mw.plugin, &mw.encoded_characters) {
        (Some(_), Some(_)) => errors.push(at("encodedCharacters"), "a middleware has one kind: define two middlewares"),
        (Some(plugin), None) if plugin.len() != 1 || !plugin.contains_key(SIMPLECACHE) => {
            let found: Vec<&str> = plugin.keys().map(String::as_str).collect();
            errors.push(at("plugin"), format!("unsupported plugin(s) {found:?}: Dime supports only `{SIMPLECACHE}`"));
        }
        (Some(_), None) => {}
        (None, Some(ec)) => ec.check(&|key| at(&format!("encodedCharacters.{key}")), errors),
        (None, None) if mw.unknown.is_empty() => errors.push(
            at("plugin"),
            format!(
                "a middleware needs its kind; Dime supports `plugin: {{ {SIMPLECACHE}: ... }}` and `encodedCharacters`"
            ),
        ),
        (None, None) => {} // its kind is reported as unsupported
    }
}

/// `certFile`/`keyFile` are paths, or (Traefik accepts both) the PEM text itself.
fn translate_tls(source: &str, tls: Tls, doc: &mut schema::Document, errors: &mut Collector) {
    for (key, given) in [("options", tls.options.is_some()), ("stores", tls.stores.is_some())] {
        if given {
            errors.push(
                Location::new(source, format!("tls.{key}")),
                format!("`tls.{key}` is not supported: Dime's HTTPS entrypoints use TLS 1.2+ with its own cipher suites and one certificate store"),
            );
        }
    }
    for (i, c) in tls.certificates.into_iter().enumerate() {
        if c.stores.as_ref().is_some_and(|s| s.iter().any(|s| s != "default")) {
            errors.push(
                Location::new(source, format!("tls.certificates[{i}].stores")),
                "only the `default` store exists in Dime",
            );
        }
        let pem = |t: &str| t.trim_start().starts_with("-----BEGIN");
        let mut spec = schema::CertificateSpec::default();
        if pem(&c.cert_file) {
            spec.cert_pem = Some(c.cert_file);
        } else {
            spec.cert_file = Some(c.cert_file);
        }
        if pem(&c.key_file) {
            spec.key_pem = Some(c.key_file);
        } else {
            spec.key_file = Some(c.key_file);
        }
        if (spec.cert_pem.is_some()) != (spec.key_pem.is_some()) {
            errors.push(
                Location::new(source, format!("tls.certificates[{i}]")),
                "give both certFile and keyFile as paths, or both as PEM text",
            );
            continue;
        }
        doc.tls.certificates.push(spec);
    }
}

/// `tls: {}` asks Traefik to serve the router on its TLS entrypoints; Dime serves every route on its HTTPS
/// entrypoints (--https, certificates chosen by SNI), so the empty form is accepted as is. Options are not.
fn check_router_tls(tls: Option<&serde_yaml::Value>, at: &dyn Fn(&str) -> Location, errors: &mut Collector) {
    match tls {
        None | Some(serde_yaml::Value::Null) => {}
        Some(serde_yaml::Value::Mapping(m)) => {
            for key in m.keys() {
                let key = key.as_str().unwrap_or("?");
                let message = match key {
                    "certResolver" => "`certResolver` (Traefik ACME certificate resolvers) is not supported by Dime; instead, write the edge's --acme-domain (ACME HTTP-01)".to_owned(),
                    "options" => "`options` (Traefik TLS options) is not supported by Dime: its HTTPS entrypoints use TLS 1.2+ with their own cipher suites".to_owned(),
                    _ => format!("`{key}` is not supported: certificates come from `tls.certificates` or the edge's --tls-cert, chosen by SNI"),
                };
                errors.push(at(&format!("tls.{key}")), message);
            }
        }
        Some(_) => errors.push(at("tls"), "expected `tls: {}`"),
    }
}

/// What a router's middlewares ask for: a cache (the simplecache plugin), encoded slashes allowed (an
/// EncodedCharacters middleware, checked where it is defined). Every middleware must be defined.
#[derive(Debug, Default)]
struct RouterOptions {
    cache: Option<CacheSpec>,
    allow_encoded_slash: Option<bool>,
}

fn router_options(
    names: &[String],
    middlewares: &BTreeMap<String, Middleware>,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> RouterOptions {
    let mut options = RouterOptions::default();
    for (i, mw) in names.iter().enumerate() {
        let field = format!("middlewares[{i}]");
        match local_name(mw) {
            Err(e) => errors.push(at(&field), e),
            Ok(base) => match middlewares.get(base) {
                None => errors.push(at(&field), format!("middleware `{mw}` is not defined in http.middlewares")),
                Some(def) => {
                    if let Some(plugin) = def.plugin.as_ref().and_then(|p| p.get(SIMPLECACHE)) {
                        let max_ttl = plugin.max_expiry.map(|s| format!("{s}s"));
                        options.cache = Some(CacheSpec { max_ttl, ..Default::default() });
                    }
                    if def.encoded_characters.as_ref().is_some_and(EncodedCharacters::allows_encoded_slash) {
                        options.allow_encoded_slash = Some(true);
                    }
                }
            },
        }
    }
    options
}

fn translate_router(
    source: &str,
    name: &str,
    router: Router,
    middlewares: &BTreeMap<String, Middleware>,
    errors: &mut Collector,
) -> Option<schema::RouteSpec> {
    let at = |field: &str| Location::new(source, format!("http.routers.{name}.{field}"));
    let rule_at = format!("http.routers.{name}.rule");
    let unsupported = features::Reporter { source, errors: &mut *errors }.unsupported_matchers(&rule_at, &router.rule);
    if router.entry_points.is_some() {
        errors.push(
            at("entryPoints"),
            "entryPoints on HTTP routers are not supported: every HTTP route is served on every HTTP entrypoint",
        );
    }
    check_router_tls(router.tls.as_ref(), &at, errors);
    let RouterOptions { cache, allow_encoded_slash } = router_options(&router.middlewares, middlewares, &at, errors);
    let service = match local_name(&router.service) {
        Ok(s) => s.to_owned(),
        Err(e) => {
            errors.push(at("service"), e);
            return None;
        }
    };
    if unsupported {
        return None;
    }
    let expr = match rule::parse(&router.rule) {
        Ok(e) => e,
        Err(e) => {
            errors.push(at("rule"), format!("`{}`: {e}", router.rule));
            return None;
        }
    };
    let alternatives = match rule::alternatives(&expr) {
        Ok(a) => a,
        Err(e) => {
            errors.push(at("rule"), format!("`{}`: {e}", router.rule));
            return None;
        }
    };
    // Traefik's default priority is the rule's length; writing it down keeps Traefik's order after translation.
    let priority = router.priority.unwrap_or(router.rule.len() as i64);
    let matches = merge_alternatives(alternatives);
    Some(schema::RouteSpec {
        name: name.to_owned(),
        matches,
        upstream: service,
        priority: Some(priority),
        cache,
        signed_urls: None,
        https: None,
        tier: None,
        allow_encoded_slash,
    })
}

/// Turns alternatives into match blocks, folding those that share a path condition into one block with several
/// hosts, so `Host(`a`) || Host(`b`)` reads as `hosts: [a, b]`.
fn merge_alternatives(alternatives: Vec<rule::Conjunction>) -> Vec<MatchSpec> {
    let mut blocks: Vec<MatchSpec> = Vec::new();
    for alt in alternatives {
        let paths: Vec<PathSpec> = match alt.path {
            Some(Matcher::PathPrefix(p)) => vec![PathSpec::prefix(p)],
            Some(Matcher::Path(p)) => vec![PathSpec::exact(p)],
            _ => vec![],
        };
        let hosts: Vec<String> = alt.host.into_iter().collect();
        match blocks.iter_mut().find(|b| b.paths == paths && !b.hosts.is_empty() && !hosts.is_empty()) {
            Some(block) => block.hosts.extend(hosts),
            None => blocks.push(MatchSpec { hosts, paths }),
        }
    }
    blocks
}

fn translate_service(lb: LoadBalancer) -> schema::UpstreamSpec {
    schema::UpstreamSpec {
        tls: None,
        servers: lb
            .servers
            .into_iter()
            .map(|s| schema::ServerSpec { url: s.url, service: None, weight: s.weight })
            .collect(),
        health_check: lb.health_check.map(|h| schema::HealthCheckSpec {
            path: h.path,
            interval: h.interval,
            timeout: h.timeout,
            hostname: h.hostname,
        }),
        pass_host_header: lb.pass_host_header,
        connect_timeout: None,
        read_timeout: None,
        dns_refresh: None,
    }
}

/// `tcp.routers` with ``HostSNI(`*`)`` (plain TCP: every connection of the entrypoints) and
/// `tcp.services.*.loadBalancer.servers[].address`.
fn translate_tcp(source: &str, tcp: Tcp, doc: &mut schema::Document, errors: &mut Collector) {
    for (name, router) in tcp.routers.unwrap_or_default() {
        let at = |field: &str| Location::new(source, format!("tcp.routers.{name}.{field}"));
        let compact: String = router.rule.chars().filter(|c| !c.is_whitespace()).collect();
        let every_connection = compact == "HostSNI(`*`)" || compact == "HostSNI(\"*\")";
        if !every_connection {
            errors.push(
                at("rule"),
                format!(
                    "`{}`: Dime's TCP routers take only HostSNI(`*`) (every connection of the entrypoint)",
                    router.rule
                ),
            );
        }
        if router.tls.is_some() {
            let passthrough = router.tls.as_ref().and_then(|t| t.get("passthrough")).and_then(|p| p.as_bool());
            let why = if passthrough == Some(true) {
                "TLS passthrough on TCP routers is not supported by Dime; instead, route the port with HostSNI(`*`) and no `tls`: the bytes, TLS or not, go to the server untouched"
            } else {
                "TLS on TCP routers is not supported by this version of Dime"
            };
            errors.push(at("tls"), why);
        }
        if !every_connection {
            continue;
        }
        match local_name(&router.service) {
            Ok(service) => doc.tcp.routes.push(schema::TcpRouteSpec {
                name: name.clone(),
                entrypoints: router.entry_points,
                upstream: service.to_owned(),
                allow: None,
                max_connections: None,
                idle_timeout: None,
                proxy_protocol: None,
            }),
            Err(e) => errors.push(at("service"), e),
        }
    }
    for (name, service) in tcp.services.unwrap_or_default() {
        let servers = service
            .load_balancer
            .servers
            .into_iter()
            .map(|s| schema::TcpServerSpec { address: s.address, service: None, weight: s.weight })
            .collect();
        doc.tcp.upstreams.insert(
            name,
            schema::TcpUpstreamSpec { servers, health_check: None, connect_timeout: None, dns_refresh: None },
        );
    }
}
