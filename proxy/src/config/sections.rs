//! [`EdgeConfig`]: the checked configuration, built from [`RunArgs`] by small functions, one per section
//! (listeners, route source, clients, cache, ACME, fleet). Pure apart from reading the host name; files named by
//! settings are opened at start-up (`server::run`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::{LogFormat, RunArgs};
use crate::cache::disk::DiskSettings;
use crate::cache::CacheSettings;
use crate::downstream::ClientLimits;
use crate::source::control::ControlUrl;
use crate::upstream::Overrides;

/// Validated edge settings.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub acme: Option<crate::acme::AcmeSettings>,
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub tls_certs: Vec<crate::tls::CertPair>,
    /// Named TCP entrypoints.
    pub tcp: Vec<(String, SocketAddr)>,
    pub tcp_drain_timeout: Duration,
    pub admin: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub routes: RouteSource,
    pub threads: usize,
    pub access_log: bool,
    pub log_format: LogFormat,
    pub trusted_proxies: Vec<IpNet>,
    pub shutdown_timeout: Duration,
    pub clients: ClientLimits,
    pub resolve: Overrides,
    pub retries: usize,
    pub upstream_idle_timeout: Duration,
    pub cache: CacheSettings,
    pub admin_token_file: Option<PathBuf>,
    pub signing_keys: Option<PathBuf>,
    /// `--edge-name`, or the host name: how this edge introduces itself to control and to its peers.
    pub edge_name: String,
    pub fleet: Option<crate::fleet::FleetSettings>,
}

/// Where the route table comes from.
#[derive(Debug, Clone)]
pub enum RouteSource {
    /// A watched file.
    File(PathBuf),
    /// dime-control, pulled; the last good table kept in `state_dir`.
    Control { urls: Vec<ControlUrl>, token_file: PathBuf, state_dir: Option<PathBuf>, ca_file: Option<PathBuf> },
}

/// Parses a byte size: a number with an optional unit (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`, `k`, `m`,
/// `g` as binary units).
pub fn parse_size(text: &str) -> Result<usize, dime_routes::Invalid> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("`{text}` is not a size such as 512MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("`{text}`: unknown unit `{other}` (use KiB, MiB, GiB, KB, MB, GB)").into()),
    };
    n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large").into())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: &'static str, message: String },
    #[error("no route source: give --routes FILE or --control URL (or DIME_ROUTES / DIME_CONTROL, or `routes` / `control` in the config file)")]
    NoRoutes,
}

pub(super) fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, message: message.into() }
}

fn addr(setting: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| invalid(setting, format!("`{text}` is not an IP:PORT address (e.g. 0.0.0.0:8080)")))
}

fn addrs(setting: &'static str, texts: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    texts.iter().map(|t| addr(setting, t)).collect()
}

fn duration(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    dime_routes::parse_duration(text).map_err(|e| invalid(setting, e))
}

fn size(setting: &'static str, text: &str) -> Result<usize, ConfigError> {
    parse_size(text).map_err(|e| invalid(setting, e))
}

/// Named TCP entrypoints from `NAME=ADDR` entries.
fn tcp_entrypoints(entries: &[String]) -> Result<Vec<(String, SocketAddr)>, ConfigError> {
    let mut tcp: Vec<(String, SocketAddr)> = Vec::new();
    for entry in entries {
        let (name, address) = entry
            .split_once('=')
            .ok_or_else(|| invalid("tcp", format!("`{entry}`: expected NAME=ADDR, e.g. rtmp=0.0.0.0:1935")))?;
        if name.is_empty() || tcp.iter().any(|(n, _)| n == name) {
            return Err(invalid("tcp", format!("`{entry}`: entrypoint names must be unique and non-empty")));
        }
        tcp.push((name.to_owned(), addr("tcp", address)?));
    }
    Ok(tcp)
}

fn route_source(s: &RunArgs) -> Result<RouteSource, ConfigError> {
    match (&s.routes, s.control.is_empty()) {
        (Some(_), false) => Err(invalid("routes", "give either a routes file or control URLs, not both")),
        (Some(_), true) if s.state_dir.is_some() => {
            Err(invalid("state_dir", "only used with --control (a routes file is its own state)"))
        }
        (Some(path), true) => Ok(RouteSource::File(path.clone())),
        (None, false) => {
            let urls = s
                .control
                .iter()
                .map(|u| ControlUrl::parse(u).map_err(|e| invalid("control", e)))
                .collect::<Result<_, _>>()?;
            let token_file = s.control_token_file.clone().ok_or_else(|| {
                invalid("control_token_file", "required with --control: control refuses requests without a token")
            })?;
            Ok(RouteSource::Control { urls, token_file, state_dir: s.state_dir.clone(), ca_file: s.control_ca.clone() })
        }
        (None, true) => Err(ConfigError::NoRoutes),
    }
}

fn client_limits(s: &RunArgs) -> Result<ClientLimits, ConfigError> {
    let clients = ClientLimits {
        header_timeout: duration("header_timeout", &s.header_timeout)?,
        keepalive_timeout: duration("keepalive_timeout", &s.keepalive_timeout)?,
        max_connections: s.max_connections,
    };
    if clients.header_timeout.is_zero() || clients.keepalive_timeout.is_zero() || clients.max_connections == 0 {
        return Err(invalid("header_timeout/keepalive_timeout/max_connections", "must be greater than 0"));
    }
    Ok(clients)
}

fn cache_settings(s: &RunArgs) -> Result<CacheSettings, ConfigError> {
    let size = size("cache_size", &s.cache_size)?;
    let max_object = match &s.cache_max_object {
        Some(t) => self::size("cache_max_object", t)?,
        None => CacheSettings::default_max_object(size),
    };
    if max_object > size {
        return Err(invalid("cache_max_object", "larger than cache_size"));
    }
    let lock_timeout = duration("cache_lock_timeout", &s.cache_lock_timeout)?;
    let disk_size = self::size("cache_disk_size", &s.cache_disk_size)?;
    if disk_size < max_object {
        return Err(invalid("cache_disk_size", "smaller than cache_max_object"));
    }
    let disk = s.cache_dir.clone().map(|dir| DiskSettings { dir, size: disk_size });
    Ok(CacheSettings { size, max_object, lock_timeout, body_dir: s.cache_body_dir.clone(), disk })
}

/// A name HTTP-01 can issue a certificate for, normalized (lower case, no trailing dot).
fn acme_name(text: &str) -> Result<String, ConfigError> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let exact = matches!(dime_routes::HostPattern::parse(&name), Ok(dime_routes::HostPattern::Exact(_)));
    if !exact || !name.contains('.') || name.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid(
            "acme_domain",
            format!("`{text}`: expected a DNS name such as video.example.com (HTTP-01 cannot issue wildcards or IP addresses)"),
        ));
    }
    Ok(name)
}

/// The fleet section: present when `--peers` or `--peer-listen` is given; every member checked
/// ([`crate::fleet::check_members`]).
fn fleet_settings(s: &RunArgs, name: &str) -> Result<Option<crate::fleet::FleetSettings>, ConfigError> {
    use crate::fleet::{check_members, FleetSettings, Member};
    if s.peers.is_empty() && s.peer_listen.is_none() {
        return Ok(None);
    }
    let listen = s.peer_listen.as_deref().ok_or_else(|| {
        invalid("peer_listen", "--peers needs a peer listener that the other edges fetch from (--peer-listen ADDR)")
    })?;
    let listen = addr("peer_listen", listen)?;
    let advertise = match &s.peer_advertise {
        Some(url) => url.clone(),
        None if listen.ip().is_unspecified() => {
            let hint = format!("give the address the other edges use: --peer-advertise http://IP:{}", listen.port());
            return Err(invalid("peer_advertise", format!("--peer-listen {listen} is every address; {hint}")));
        }
        None => format!("http://{listen}"),
    };
    if s.peers.is_empty() && s.control.is_empty() {
        let hint = "list the fleet's edges, this one included (--peers NAME=URL,...), or take them from --control";
        return Err(invalid("peers", hint));
    }
    let members =
        s.peers.iter().map(|p| Member::parse(p)).collect::<Result<Vec<_>, _>>().map_err(|e| invalid("peers", e))?;
    let name = name.to_owned();
    if !members.is_empty() {
        check_members(&name, &advertise, &members).map_err(|e| invalid("peers", e))?;
    }
    crate::fleet::peer_addr(&advertise).map_err(|e| invalid("peer_advertise", e))?;
    if !s.control.is_empty() && s.state_dir.is_none() {
        // Its peer key lives there: a new key on every restart would have the other edges refuse it until they
        // all heard the new one from control.
        let why = "an edge of a fleet from control keeps its peer key in --state-dir: give --state-dir DIR";
        return Err(invalid("state_dir", why));
    }
    let token_file = s.peer_token_file.clone();
    if token_file.is_none() && s.control.is_empty() {
        let why = "a static --peers fleet authenticates with a shared token: give --peer-token-file FILE (the same on every edge); with --control, edges sign with keys of their own";
        return Err(invalid("peer_token_file", why));
    }
    let timeout = duration("peer_timeout", &s.peer_timeout)?;
    Ok(Some(FleetSettings { name, listen, advertise, members, token_file, timeout }))
}

/// `--edge-name`, refused unless it is a DNS-1123 label (never folded into one: control and the fleet know an
/// edge by it). Without it, the host name's first label when that is one; else, for an edge that names itself to
/// nobody (no control, no fleet), `dime-edge`, and for one that does, an error asking for `--edge-name`.
fn edge_name(s: &RunArgs) -> Result<String, ConfigError> {
    let rule = dime_routes::wire::EDGE_NAME_RULE;
    if let Some(name) = &s.edge_name {
        return match dime_routes::wire::edge_name_ok(name) {
            true => Ok(name.clone()),
            false => Err(invalid("edge_name", format!("`{name}`: {rule}"))),
        };
    }
    let host = host_name();
    let first = host.split('.').next().unwrap_or_default();
    if dime_routes::wire::edge_name_ok(first) {
        return Ok(first.to_owned());
    }
    if s.control.is_empty() && s.peer_listen.is_none() {
        return Ok("dime-edge".to_owned());
    }
    let why = format!("the host name `{host}` is not an edge name ({rule}): give --edge-name");
    Err(invalid("edge_name", why))
}

/// The kernel's host name (the default edge name), or `dime-edge` if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dime-edge".to_owned())
}

fn acme_settings(s: &RunArgs, https: &[SocketAddr]) -> Result<Option<crate::acme::AcmeSettings>, ConfigError> {
    if s.acme_domain.is_empty() {
        return Ok(None);
    }
    if https.is_empty() {
        return Err(invalid("acme_domain", "ACME certificates are served on HTTPS entrypoints: add --https"));
    }
    let mut domains = Vec::new();
    for d in &s.acme_domain {
        let name = acme_name(d)?;
        if !domains.contains(&name) {
            domains.push(name);
        }
    }
    if !s.acme_directory.starts_with("https://") {
        return Err(invalid("acme_directory", format!("`{}`: must be an https:// URL", s.acme_directory)));
    }
    Ok(Some(crate::acme::AcmeSettings {
        domains,
        directory: s.acme_directory.clone(),
        email: s.acme_email.clone(),
        ca_file: s.acme_ca.clone(),
        dir: s.acme_dir.clone(),
        renew_before: duration("acme_renew_before", &s.acme_renew_before)?,
    }))
}

impl EdgeConfig {
    /// Checks the layered settings and builds the edge's configuration. Pure: files named by settings (tokens,
    /// keys, directories) are read or created at start-up, by [`crate::server::run`].
    pub fn from_settings(s: RunArgs) -> Result<Self, ConfigError> {
        // The default (the host name) is read once, here.
        let name = edge_name(&s)?;
        let https = addrs("https", &s.https)?;
        let threads = s.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(invalid("threads", "must be at least 1"));
        }
        let mut resolve = Overrides::default();
        for entry in &s.resolve {
            resolve.parse_entry(entry).map_err(|e| invalid("resolve", e))?;
        }
        Ok(EdgeConfig {
            acme: acme_settings(&s, &https)?,
            http: addrs("http", &s.http)?,
            tls_certs: s
                .tls_cert
                .iter()
                .map(|t| crate::tls::CertPair::parse(t).map_err(|e| invalid("tls_cert", e.to_string())))
                .collect::<Result<_, _>>()?,
            https,
            tcp: tcp_entrypoints(&s.tcp)?,
            tcp_drain_timeout: duration("tcp_drain_timeout", &s.tcp_drain_timeout)?,
            admin: addr("admin", &s.admin)?,
            metrics: s.metrics.as_deref().map(|m| addr("metrics", m)).transpose()?,
            routes: route_source(&s)?,
            threads,
            access_log: s.access_log,
            log_format: s.log_format,
            trusted_proxies: s
                .trusted_proxies
                .iter()
                .map(|t| dime_routes::parse_cidr(t).map_err(|e| invalid("trusted_proxies", e)))
                .collect::<Result<_, _>>()?,
            shutdown_timeout: duration("shutdown_timeout", &s.shutdown_timeout)?,
            clients: client_limits(&s)?,
            resolve,
            retries: s.retries,
            upstream_idle_timeout: duration("upstream_idle_timeout", &s.upstream_idle_timeout)?,
            cache: cache_settings(&s)?,
            admin_token_file: s.admin_token_file.clone(),
            signing_keys: s.signing_keys.clone(),
            fleet: fleet_settings(&s, &name)?,
            edge_name: name,
        })
    }

    /// `from_settings` of `RunArgs::from_argv`: the configuration `dime-edge run ARGS…` would start with.
    pub fn from_argv<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(
        argv: I,
    ) -> Result<Self, ConfigError> {
        EdgeConfig::from_settings(RunArgs::from_argv(argv)?)
    }
}

/// Bearer tokens from a token file ([`dime_routes::read_token_file`]). Read at start-up.
pub fn read_tokens(path: &Path) -> Result<Vec<String>, ConfigError> {
    dime_routes::read_token_file(path).map_err(|e| match e {
        dime_routes::TokenFileError::Read { path, error } => ConfigError::File { path, message: error.to_string() },
        dime_routes::TokenFileError::Format { path, error } => ConfigError::File { path, message: error.to_string() },
    })
}
