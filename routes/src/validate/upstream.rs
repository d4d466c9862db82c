//! Upstreams (HTTP and TCP): server URLs and addresses, TLS to origins, health checks, and the Kubernetes
//! Services that dime-control resolves to addresses.

use crate::error::Invalid;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{check_name, duration_or, Written};
use crate::error::{Collector, Location};
use crate::matcher::{HostPattern, PathMatch};
use crate::schema;
use crate::table::{HealthCheck, Probe, Server, Upstream, UpstreamTls};
use crate::{ServiceRef, ServiceResolver};

/// Parses `http(s)://host[:port][/]`: host, port, and whether it is https.
pub(crate) fn parse_server_url(url: &str) -> Result<(String, u16, bool), Invalid> {
    if url.is_empty() {
        return Err("missing: a server needs `url` (or, with dime-control, `service: namespace/name:port`)".into());
    }
    let (rest, https) = match url.split_once("://") {
        Some(("http", rest)) => (rest, false),
        Some(("https", rest)) => (rest, true),
        Some((scheme, _)) => {
            return Err(format!("`{url}`: unsupported scheme `{scheme}` (use http:// or https://)").into())
        }
        None => return Err(format!("`{url}`: expected a URL such as http://origin.example.com:8080").into()),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!("`{url}`: only scheme, host and port are allowed (no path, query or credentials)").into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']').ok_or_else(|| format!("`{url}`: unclosed `[`"))?;
        (host, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None if https => 443,
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("`{url}`: invalid port `{p}`"))?,
    };
    if host.is_empty() {
        return Err(format!("`{url}`: missing host").into());
    }
    if !authority.starts_with('[') {
        HostPattern::parse(host)
            .ok()
            .filter(|h| matches!(h, HostPattern::Exact(_)))
            .ok_or_else(|| format!("`{url}`: invalid host `{host}`"))?;
    }
    Ok((host.to_ascii_lowercase(), port, https))
}

pub(super) fn compile_upstream(
    name: &str,
    spec: &schema::UpstreamSpec,
    origin: &Written,
    errors: &mut Collector,
) -> Upstream {
    if let Err(e) = check_name("upstream", name) {
        errors.push(origin.upstream(name, ""), e);
    }
    let at = |f: &str| origin.upstream(name, f);
    let (servers, https) = compile_servers(spec, &at, errors);
    let health_check = spec.health_check.as_ref().map(|h| compile_health_check(h, &at, errors));
    let tls = compile_tls(spec.tls.as_ref(), https, &at, errors);
    Upstream {
        name: name.to_owned(),
        servers,
        tls,
        health_check,
        pass_host_header: spec.pass_host_header.unwrap_or(true),
        connect_timeout: duration_or(
            &spec.connect_timeout,
            Upstream::DEFAULT_CONNECT_TIMEOUT,
            at("connect_timeout"),
            errors,
        ),
        read_timeout: duration_or(&spec.read_timeout, Upstream::DEFAULT_READ_TIMEOUT, at("read_timeout"), errors),
        dns_refresh: duration_or(&spec.dns_refresh, Upstream::DEFAULT_DNS_REFRESH, at("dns_refresh"), errors),
    }
}

/// The servers, and whether they are `https://` (one scheme per upstream).
fn compile_servers(
    spec: &schema::UpstreamSpec,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> (Vec<Server>, bool) {
    if spec.servers.is_empty() {
        errors.push(at("servers"), "an upstream needs at least one server");
    }
    let mut servers = Vec::new();
    let mut schemes = Vec::new();
    for (i, s) in spec.servers.iter().enumerate() {
        match parse_server_url(&s.url) {
            Ok((host, port, https)) => {
                servers.push(Server { host, port, weight: s.weight.unwrap_or(1) });
                schemes.push(https);
            }
            Err(e) => errors.push(at(&format!("servers[{i}].url")), e),
        }
        if s.weight.is_some_and(|w| w > 1000) {
            errors.push(at(&format!("servers[{i}].weight")), "weight must be between 0 and 1000");
        }
    }
    if !servers.is_empty() && servers.iter().all(|s| s.weight == 0) {
        errors.push(at("servers"), "every server has weight 0: nothing could be sent anywhere");
    }
    let https = schemes.first().copied().unwrap_or(false);
    if schemes.iter().any(|&s| s != https) {
        errors.push(at("servers"), "mixes http:// and https:// servers; use one upstream for each");
    }
    (servers, https)
}

fn compile_health_check(
    h: &schema::HealthCheckSpec,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> HealthCheck {
    if let Err(e) = PathMatch::check(h.path.split('?').next().unwrap_or_default()) {
        errors.push(at("health_check.path"), e);
    }
    let interval = duration_or(&h.interval, HealthCheck::DEFAULT_INTERVAL, at("health_check.interval"), errors);
    let timeout = duration_or(&h.timeout, HealthCheck::DEFAULT_TIMEOUT, at("health_check.timeout"), errors);
    if interval < Duration::from_millis(100) {
        errors.push(at("health_check.interval"), "interval must be at least 100ms");
    }
    HealthCheck { probe: Probe::Http { path: h.path.clone(), hostname: h.hostname.clone() }, interval, timeout }
}

/// TLS to the servers: for `https://` upstreams only (verified unless `insecure_skip_verify`).
fn compile_tls(
    spec: Option<&schema::UpstreamTlsSpec>,
    https: bool,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> Option<UpstreamTls> {
    if !https {
        if spec.is_some() {
            errors.push(at("tls"), "TLS options need https:// servers");
        }
        return None;
    }
    let t = spec.cloned().unwrap_or_default();
    if let Some(sni) = &t.server_name {
        if !matches!(HostPattern::parse(sni), Ok(HostPattern::Exact(_))) {
            errors.push(at("tls.server_name"), format!("`{sni}` is not a host name"));
        }
    }
    if t.ca_file.as_deref().is_some_and(|f| !f.starts_with('/')) {
        errors.push(at("tls.ca_file"), "must be an absolute path on the edge");
    }
    Some(UpstreamTls {
        ca_file: t.ca_file,
        server_name: t.server_name,
        verify: !t.insecure_skip_verify.unwrap_or(false),
    })
}

/// Parses `host:port` (IPv6 as `[addr]:port`).
pub(crate) fn parse_address(address: &str) -> Result<(String, u16), Invalid> {
    if address.is_empty() {
        return Err("missing: a server needs `address` (or, with dime-control, `service: namespace/name:port`)".into());
    }
    let (host, port) = if let Some(v6) = address.strip_prefix('[') {
        let (host, tail) = v6.split_once(']').ok_or_else(|| format!("`{address}`: unclosed `[`"))?;
        (host, tail.strip_prefix(':').unwrap_or(""))
    } else {
        address
            .rsplit_once(':')
            .ok_or_else(|| format!("`{address}`: expected host:port, e.g. nginx.example.com:1935"))?
    };
    let port =
        port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("`{address}`: invalid port `{port}`"))?;
    if host.is_empty() {
        return Err(format!("`{address}`: missing host").into());
    }
    if !address.starts_with('[') && !matches!(HostPattern::parse(host), Ok(HostPattern::Exact(_))) {
        return Err(format!("`{address}`: invalid host `{host}`").into());
    }
    Ok((host.to_ascii_lowercase(), port))
}

pub(super) fn compile_tcp_upstream(
    name: &str,
    spec: &schema::TcpUpstreamSpec,
    origin: &Written,
    errors: &mut Collector,
) -> Upstream {
    let at = |f: &str| origin.tcp_upstream(name, f);
    if let Err(e) = check_name("upstream", name) {
        errors.push(at(""), e);
    }
    if spec.servers.is_empty() {
        errors.push(at("servers"), "an upstream needs at least one server");
    }
    let mut servers = Vec::new();
    for (i, s) in spec.servers.iter().enumerate() {
        match parse_address(&s.address) {
            Ok((host, port)) => servers.push(Server { host, port, weight: s.weight.unwrap_or(1) }),
            Err(e) => errors.push(at(&format!("servers[{i}].address")), e),
        }
        if s.weight.is_some_and(|w| w > 1000) {
            errors.push(at(&format!("servers[{i}].weight")), "weight must be between 0 and 1000");
        }
    }
    let health_check = spec.health_check.as_ref().map(|h| HealthCheck {
        probe: Probe::Connect,
        interval: duration_or(&h.interval, HealthCheck::DEFAULT_INTERVAL, at("health_check.interval"), errors),
        timeout: duration_or(&h.timeout, HealthCheck::DEFAULT_TIMEOUT, at("health_check.timeout"), errors),
    });
    Upstream {
        name: name.to_owned(),
        servers,
        tls: None,
        health_check,
        pass_host_header: true,
        connect_timeout: duration_or(
            &spec.connect_timeout,
            Upstream::DEFAULT_CONNECT_TIMEOUT,
            at("connect_timeout"),
            errors,
        ),
        read_timeout: Upstream::DEFAULT_READ_TIMEOUT,
        dns_refresh: duration_or(&spec.dns_refresh, Upstream::DEFAULT_DNS_REFRESH, at("dns_refresh"), errors),
    }
}

/// One server's `url`/`address` or `service` (exactly one of them): the `service` one is replaced by its
/// resolved address, so the compiled document names only addresses.
fn resolve_one(
    direct: &mut String,
    service: &mut Option<String>,
    services: &dyn ServiceResolver,
    format: impl Fn(&str, u16) -> String,
) -> Result<(), (&'static str, String)> {
    let Some(reference) = service.take() else {
        return Ok(());
    };
    if !direct.is_empty() {
        return Err(("service", "give either a Service or a direct address, not both".into()));
    }
    let parsed = ServiceRef::parse(&reference).map_err(|e| ("service", e.0))?;
    let (host, port) = services.resolve(&parsed).map_err(|e| ("service", format!("`{reference}`: {e}")))?;
    *direct = if host.contains(':') { format(&format!("[{host}]"), port) } else { format(&host, port) };
    Ok(())
}

pub(super) fn resolve_services(
    http: &mut BTreeMap<String, (schema::UpstreamSpec, Written)>,
    tcp: &mut BTreeMap<String, (schema::TcpUpstreamSpec, Written)>,
    services: &dyn ServiceResolver,
    errors: &mut Collector,
) {
    for (name, (spec, origin)) in http.iter_mut() {
        for (i, s) in spec.servers.iter_mut().enumerate() {
            if let Err((field, e)) = resolve_one(&mut s.url, &mut s.service, services, |h, p| format!("http://{h}:{p}"))
            {
                errors.push(origin.upstream(name, &format!("servers[{i}].{field}")), e);
            }
        }
    }
    for (name, (spec, origin)) in tcp.iter_mut() {
        for (i, s) in spec.servers.iter_mut().enumerate() {
            if let Err((field, e)) = resolve_one(&mut s.address, &mut s.service, services, |h, p| format!("{h}:{p}")) {
                errors.push(origin.tcp_upstream(name, &format!("servers[{i}].{field}")), e);
            }
        }
    }
}
