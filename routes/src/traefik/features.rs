//! What Dime says about the parts of a Traefik configuration it does not read: every unknown key at any depth,
//! every unsupported matcher in a rule, each in Traefik's words, and where Dime has an equivalent, what to write
//! instead. All of them are reported in one pass (a migration should take one run of `dime-edge check`).

use super::{Dynamic, Unknown};
use crate::error::{Collector, Location};

/// Reports the problems of one document (their lines are added at the end, by [`add_lines`]).
pub(super) struct Reporter<'a> {
    pub source: &'a str,
    pub errors: &'a mut Collector,
}

/// Where a mapping sits in a Traefik document, which decides what its keys mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Http,
    Router,
    Service,
    LoadBalancer,
    Server,
    HealthCheck,
    Middleware,
    SimpleCache,
    EncodedCharacters,
    Tcp,
    TcpRouter,
    TcpService,
    TcpLoadBalancer,
    TcpServer,
    Tls,
    TlsCertificate,
}

impl Level {
    /// The keys Dime reads at this level, for the message about a key it does not know.
    fn known(self) -> &'static str {
        match self {
            Level::Top => "http, tcp, tls",
            Level::Http => "routers, services, middlewares",
            Level::Router => "rule, service, middlewares, priority, tls",
            Level::Service => "loadBalancer",
            Level::LoadBalancer => "servers, healthCheck, passHostHeader",
            Level::Server => "url, weight",
            Level::HealthCheck => "path, interval, timeout, hostname",
            Level::Middleware => "plugin (plugin-simplecache), encodedCharacters",
            Level::SimpleCache => "path, maxExpiry, cleanup, addStatusHeader",
            Level::EncodedCharacters => {
                "allowEncodedSlash, allowEncodedBackSlash, allowEncodedNullCharacter, allowEncodedSemicolon, \
                 allowEncodedPercent, allowEncodedQuestionMark, allowEncodedHash"
            }
            Level::Tcp => "routers, services",
            Level::TcpRouter => "rule, entryPoints, service",
            Level::TcpService => "loadBalancer",
            Level::TcpLoadBalancer => "servers",
            Level::TcpServer => "address, weight",
            Level::Tls => "certificates",
            Level::TlsCertificate => "certFile, keyFile, stores",
        }
    }
}

/// A Traefik feature Dime does not have: what Traefik calls it, and what to write in Dime instead, if anything.
fn feature(level: Level, key: &str) -> Option<(&'static str, Option<&'static str>)> {
    let found = match (level, key) {
        (Level::Top, "udp") => ("Traefik UDP routers and services", None),
        (Level::LoadBalancer, "sticky") => ("Traefik sticky sessions", None),
        (Level::LoadBalancer, "serversTransport") => (
            "Traefik servers transports",
            Some("a native upstream's `tls:` (CA, server name), `connect_timeout` and `read_timeout`"),
        ),
        (Level::LoadBalancer, "responseForwarding") => ("Traefik response forwarding (flush interval)", None),
        (Level::LoadBalancer, "strategy") => ("Traefik load-balancing strategies", Some("server `weight`s")),
        (Level::Service, "weighted") => {
            ("Traefik weighted round robin services", Some("`weight` on the servers of one loadBalancer"))
        }
        (Level::Service, "mirroring") => ("Traefik traffic mirroring", None),
        (Level::Service, "failover") => {
            ("Traefik failover services", Some("a `healthCheck`: unhealthy servers are skipped"))
        }
        (Level::Router, "entryPoints") => return None, // reported by the translation, with its own reason
        (Level::Router, "observability") => {
            ("Traefik per-router observability", Some("the edge's metrics, labelled by route"))
        }
        (Level::Router, "ruleSyntax") => ("Traefik v2 rule syntax", Some("the v3 syntax, which Dime reads")),
        (Level::Middleware, name) => return middleware(name),
        _ => return None,
    };
    Some(found)
}

/// Traefik's middlewares other than the cache plugin, by their configuration name.
fn middleware(name: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match name {
        "redirectScheme" => {
            ("Traefik RedirectScheme middleware", Some("`https: { redirect: true }` on a native route"))
        }
        "headers" => (
            "Traefik Headers middleware",
            Some("`https: { hsts: ... }` on a native route for HSTS (the edge sets X-Forwarded-* itself)"),
        ),
        "retry" => {
            ("Traefik Retry middleware", Some("the edge's --retries (connection failures go to the next server)"))
        }
        "rateLimit" => ("Traefik RateLimit middleware", None),
        "inFlightReq" => ("Traefik InFlightReq middleware", Some("the edge's --max-connections")),
        "ipAllowList" | "ipWhiteList" => ("Traefik IPAllowList middleware", Some("`allow:` on a native TCP route")),
        "basicAuth" | "digestAuth" | "forwardAuth" => {
            ("Traefik authentication middlewares", Some("signed URLs (`signed_urls:` on a native route)"))
        }
        "stripPrefix" | "stripPrefixRegex" | "addPrefix" | "replacePath" | "replacePathRegex" => {
            ("Traefik path rewriting middlewares", None)
        }
        "redirectRegex" => ("Traefik RedirectRegex middleware", None),
        "compress" => (
            "Traefik Compress middleware",
            Some("compression at the origin: the cache keeps Accept-Encoding variants apart"),
        ),
        "buffering" => ("Traefik Buffering middleware", None),
        "chain" => ("Traefik Chain middleware", Some("the middlewares listed on the router itself")),
        "circuitBreaker" => {
            ("Traefik CircuitBreaker middleware", Some("a `healthCheck` and the edge's passive ejection"))
        }
        "errors" => ("Traefik Errors middleware", None),
        "contentType" | "grpcWeb" | "passTLSClientCert" => ("a Traefik middleware", None),
        _ => return None,
    })
}

/// Matchers of Traefik's rule language that Dime does not read, with what to write instead.
fn matcher(name: &str) -> (String, Option<&'static str>) {
    let (what, instead) = match name {
        "HostRegexp" => ("Traefik host regular expressions", Some("Host(`*.example.com`) for a wildcard")),
        "PathRegexp" => ("Traefik path regular expressions", Some("PathPrefix(`/prefix/`) or Path(`/exact`)")),
        "Header" | "HeaderRegexp" | "Headers" | "HeadersRegexp" => ("Traefik header matchers", None),
        "Method" => ("Traefik method matchers", None),
        "Query" | "QueryRegexp" => ("Traefik query matchers", None),
        "ClientIP" => ("Traefik client address matchers", None),
        "HostSNI" | "HostSNIRegexp" | "ALPN" => {
            ("a Traefik TCP matcher", Some("a `tcp.routers` entry with HostSNI(`*`)"))
        }
        _ => return (format!("`{name}` is not a Traefik matcher"), Some("Host, PathPrefix or Path")),
    };
    (format!("`{name}` ({what}) is not supported by Dime"), instead)
}

fn sentence(what: String, instead: Option<&str>) -> String {
    match instead {
        Some(instead) => format!("{what}; instead, write {instead}"),
        None => what,
    }
}

impl Reporter<'_> {
    fn unknown(&mut self, path: &str, keys: &Unknown, level: Level) {
        for key in keys.keys() {
            let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            let message = match feature(level, key) {
                Some((what, instead)) => sentence(format!("`{key}` ({what}) is not supported by Dime"), instead),
                None if level == Level::Router && key == "entryPoints" => continue,
                None if level == Level::Middleware => {
                    format!("`{key}` is not a Traefik middleware Dime knows (Dime reads `plugin: {{ plugin-simplecache: ... }}` and `encodedCharacters`)")
                }
                None => format!("`{key}` is not a field Dime reads here (it reads: {})", level.known()),
            };
            self.errors.push(Location::new(self.source, field), message);
        }
    }

    /// Every unsupported matcher in `rule`, each reported at `path`; whether there was any.
    pub fn unsupported_matchers(&mut self, path: &str, rule: &str) -> bool {
        let names = matcher_names(rule);
        let mut any = false;
        for name in names.into_iter().filter(|n| !matches!(*n, "Host" | "PathPrefix" | "Path")) {
            let (what, instead) = matcher(name);
            self.errors.push(Location::new(self.source, path), format!("`{rule}`: {}", sentence(what, instead)));
            any = true;
        }
        any
    }

    /// Every key of `dynamic` that Dime does not read, at any depth.
    pub fn all_unknown(&mut self, d: &Dynamic) {
        self.unknown("", &d.unknown, Level::Top);
        if let Some(http) = &d.http {
            self.unknown("http", &http.unknown, Level::Http);
            for (name, r) in http.routers.iter().flatten() {
                self.unknown(&format!("http.routers.{name}"), &r.unknown, Level::Router);
            }
            for (name, s) in http.services.iter().flatten() {
                let path = format!("http.services.{name}");
                self.unknown(&path, &s.unknown, Level::Service);
                let Some(lb) = &s.load_balancer else { continue };
                self.unknown(&format!("{path}.loadBalancer"), &lb.unknown, Level::LoadBalancer);
                for (i, server) in lb.servers.iter().enumerate() {
                    self.unknown(&format!("{path}.loadBalancer.servers[{i}]"), &server.unknown, Level::Server);
                }
                if let Some(h) = &lb.health_check {
                    self.unknown(&format!("{path}.loadBalancer.healthCheck"), &h.unknown, Level::HealthCheck);
                }
            }
            for (name, m) in http.middlewares.iter().flatten() {
                let path = format!("http.middlewares.{name}");
                self.unknown(&path, &m.unknown, Level::Middleware);
                for (plugin, options) in m.plugin.iter().flatten() {
                    self.unknown(&format!("{path}.plugin.{plugin}"), &options.unknown, Level::SimpleCache);
                }
                if let Some(ec) = &m.encoded_characters {
                    self.unknown(&format!("{path}.encodedCharacters"), &ec.unknown, Level::EncodedCharacters);
                }
            }
        }
        if let Some(tcp) = &d.tcp {
            self.unknown("tcp", &tcp.unknown, Level::Tcp);
            for (name, r) in tcp.routers.iter().flatten() {
                self.unknown(&format!("tcp.routers.{name}"), &r.unknown, Level::TcpRouter);
            }
            for (name, s) in tcp.services.iter().flatten() {
                let path = format!("tcp.services.{name}");
                self.unknown(&path, &s.unknown, Level::TcpService);
                self.unknown(&format!("{path}.loadBalancer"), &s.load_balancer.unknown, Level::TcpLoadBalancer);
                for (i, server) in s.load_balancer.servers.iter().enumerate() {
                    self.unknown(&format!("{path}.loadBalancer.servers[{i}]"), &server.unknown, Level::TcpServer);
                }
            }
        }
        if let Some(tls) = &d.tls {
            self.unknown("tls", &tls.unknown, Level::Tls);
            for (i, c) in tls.certificates.iter().enumerate() {
                self.unknown(&format!("tls.certificates[{i}]"), &c.unknown, Level::TlsCertificate);
            }
        }
    }
}

/// Gives the errors of `source` pushed since the `from`-th one that name a field but no line the line `text`
/// (which starts at line `first_line` of `source`) shows for their field.
pub(super) fn add_lines(errors: &mut Collector, from: usize, source: &str, text: &str, first_line: usize) {
    for e in errors.errors.iter_mut().skip(from) {
        if e.location.line.is_none() && e.location.source == source && !e.location.field.is_empty() {
            e.location.line = crate::load::lines::line_of(text, &e.location.field).map(|l| l + first_line - 1);
        }
    }
}

/// The names of the matcher calls in a rule (identifiers followed by `(`, outside quoted arguments).
fn matcher_names(rule: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let (bytes, mut i, mut quote) = (rule.as_bytes(), 0, None::<u8>);
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'`' || c == b'"' => quote = Some(c),
            None if c.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let rest = rule[i..].trim_start();
                if rest.starts_with('(') {
                    names.push(&rule[start..i]);
                }
                continue;
            }
            None => {}
        }
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_names_skip_quoted_text() {
        let rule = "Host(`a(b).com`) && (HostRegexp(`x`) || Headers(`k`, `v`)) && Method(`GET`)";
        assert_eq!(matcher_names(rule), ["Host", "HostRegexp", "Headers", "Method"]);
    }
}
