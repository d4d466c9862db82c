//! The edge's one internal configuration model. Flags, `DIME_*` environment variables and the optional
//! `--config edge.toml` file are all converted into [`EdgeConfig`] and checked once, here.
//! Precedence: flag or environment variable, then the file, then the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cache::CacheSettings;
use crate::downstream::ClientLimits;
use crate::source::control::ControlUrl;
use crate::upstream::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "dime-edge",
    version,
    about = "Dime's caching reverse proxy edge (HTTP routing by host and path, Prometheus metrics, hot-reloaded routes)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the edge.
    Run(Box<RunArgs>),
    /// Validate a routes file: prints every error with its location, exits 1 if there is any.
    Check {
        /// Routes file (native schema or the Traefik subset; several YAML documents allowed).
        file: PathBuf,
    },
    /// Mint a signed viewer URL for a route with `signed_urls`.
    Sign(SignArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The edge's key file (`ID SECRET` lines).
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Which key signs.
    #[arg(long, value_name = "ID")]
    pub key_id: String,
    /// Path prefix the token covers (default: the URL's path).
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// How long the URL is valid, e.g. 2h.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Bind the token to this client address (for routes with bind_client_ip).
    #[arg(long, value_name = "ADDR")]
    pub client_ip: Option<std::net::IpAddr>,
    /// The URL to sign, e.g. https://video.example.com/hls/stream/index.m3u8.
    pub url: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every setting of `dime-edge run`, declared once: the flag, its environment variable, its TOML key (the field
/// name), its default and its help text. The settings file is parsed into this same struct, and
/// [`RunArgs::layered`] merges flags/environment over the file over the defaults field by field, by name, so a
/// new setting needs nothing more than its field here and its use (see docs/development.md).
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunArgs {
    /// Optional TOML file with any of the settings below (same names, snake_case).
    #[arg(long, env = "DIME_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTP entrypoint address (repeatable).
    #[arg(long, env = "DIME_HTTP", value_name = "ADDR", value_delimiter = ',', default_value = "0.0.0.0:8080")]
    pub http: Vec<String>,
    /// HTTPS entrypoint address (repeatable). Certificates: --tls-cert, the route table's tls.certificates, ACME.
    #[arg(long, env = "DIME_HTTPS", value_name = "ADDR", value_delimiter = ',')]
    pub https: Vec<String>,
    /// Certificate and key, PEM: CERT_FILE:KEY_FILE (repeatable; chosen by SNI, the first is the default).
    /// Reloaded when the files change; a pair that does not load keeps the previous certificate.
    #[arg(long, env = "DIME_TLS_CERT", value_name = "CERT:KEY", value_delimiter = ',')]
    pub tls_cert: Vec<String>,
    /// TCP entrypoint NAME=ADDR (repeatable), e.g. rtmp=0.0.0.0:1935; TCP routes name the entrypoints they serve.
    #[arg(long = "tcp", env = "DIME_TCP", value_name = "NAME=ADDR", value_delimiter = ',')]
    pub tcp: Vec<String>,
    /// How long open connections of a removed TCP route may go on before they are closed.
    #[arg(long, env = "DIME_TCP_DRAIN_TIMEOUT", value_name = "DURATION", default_value = "5m")]
    pub tcp_drain_timeout: String,
    /// Admin listener for /metrics, /healthz, /readyz and /config.
    #[arg(long, env = "DIME_ADMIN", value_name = "ADDR", default_value = "127.0.0.1:9901")]
    pub admin: String,
    /// A listener serving only /metrics, /healthz and /readyz (e.g. on the overlay address for Prometheus, while
    /// the admin listener stays on loopback).
    #[arg(long, env = "DIME_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Routes file, watched: a valid edit is applied atomically, an invalid one is logged and ignored.
    #[arg(long, env = "DIME_ROUTES", value_name = "FILE")]
    pub routes: Option<PathBuf>,
    /// dime-control URL to pull routes from (repeatable: tried in order, the next one when one fails).
    #[arg(long, env = "DIME_CONTROL", value_name = "URL", value_delimiter = ',')]
    pub control: Vec<String>,
    /// File with the bearer token for dime-control (first non-comment line).
    #[arg(long, env = "DIME_CONTROL_TOKEN_FILE", value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
    /// PEM CA bundle that https control URLs must chain to (pinned; default: the system's roots).
    #[arg(long, env = "DIME_CONTROL_CA", value_name = "FILE")]
    pub control_ca: Option<PathBuf>,
    /// Directory where the last good route table from control is kept, to start from when control is down.
    #[arg(long, env = "DIME_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Worker threads for the HTTP entrypoints [default: number of CPUs].
    #[arg(long, env = "DIME_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Log one line per request.
    #[arg(long, env = "DIME_ACCESS_LOG", value_name = "BOOL", action = ArgAction::Set, default_value_t = true)]
    pub access_log: bool,
    /// Log format.
    #[arg(long, env = "DIME_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Clients whose X-Forwarded-For/-Proto/-Host are kept (comma-separated CIDRs); others' are replaced.
    #[arg(long, env = "DIME_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Longest time SIGTERM waits for open requests before exiting.
    #[arg(long, env = "DIME_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "10s")]
    pub shutdown_timeout: String,
    /// A client connection must send a complete request header within this long of connecting.
    #[arg(long, env = "DIME_HEADER_TIMEOUT", value_name = "DURATION", default_value = "15s")]
    pub header_timeout: String,
    /// An idle kept-alive client connection is closed after this long without a new request.
    #[arg(long, env = "DIME_KEEPALIVE_TIMEOUT", value_name = "DURATION", default_value = "60s")]
    pub keepalive_timeout: String,
    /// Most client connections open at once on the HTTP/HTTPS entrypoints; more are closed at once.
    #[arg(long, env = "DIME_MAX_CONNECTIONS", value_name = "N", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Answer a name without DNS, like curl: HOST:PORT=ADDR:PORT[,ADDR:PORT] (repeatable).
    #[arg(long, env = "DIME_RESOLVE", value_name = "HOST:PORT=ADDR:PORT", value_delimiter = ' ')]
    pub resolve: Vec<String>,
    /// How long an idle connection to an upstream server is kept for reuse.
    #[arg(long, env = "DIME_UPSTREAM_IDLE_TIMEOUT", value_name = "DURATION", default_value = "60s")]
    pub upstream_idle_timeout: String,
    /// Retries of an idempotent request on another server after a connect failure.
    #[arg(long, env = "DIME_RETRIES", value_name = "N", default_value_t = 2)]
    pub retries: usize,
    /// Memory budget of the cache, a hard bound (e.g. 512MiB, 2GiB).
    #[arg(long, env = "DIME_CACHE_SIZE", value_name = "BYTES", default_value = "256MiB")]
    pub cache_size: String,
    /// Largest object the cache admits; larger responses pass through [default: cache size / 8].
    #[arg(long, env = "DIME_CACHE_MAX_OBJECT", value_name = "BYTES")]
    pub cache_max_object: Option<String>,
    /// How long one request may hold an object's fill lock before a waiting request takes over.
    #[arg(long, env = "DIME_CACHE_LOCK_TIMEOUT", value_name = "DURATION", default_value = "10s")]
    pub cache_lock_timeout: String,
    /// Where bodies of 128 KiB and more live: unset, anonymous memory files; a directory, unlinked files in it
    /// (page cache: on ext4 or xfs the kernel uses large pages, which makes sending them cheaper).
    #[arg(long, env = "DIME_CACHE_BODY_DIR", value_name = "DIR")]
    pub cache_body_dir: Option<PathBuf>,
    /// Signed-URL keys, lines of `ID SECRET` (secret at least 32 characters); routes with `signed_urls` name the
    /// ids they accept.
    #[arg(long, env = "DIME_SIGNING_KEYS", value_name = "FILE")]
    pub signing_keys: Option<PathBuf>,
    /// File with admin tokens, one per line (several allowed, for rotation); purge requires one. Without it,
    /// purge is disabled.
    #[arg(long, env = "DIME_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Obtain and renew a certificate for this name with ACME HTTP-01 (repeatable; one certificate per name).
    /// The name must reach this edge's HTTP entrypoint on port 80.
    #[arg(long, env = "DIME_ACME_DOMAIN", value_name = "NAME", value_delimiter = ',')]
    pub acme_domain: Vec<String>,
    /// ACME directory URL (the default is Let's Encrypt production).
    #[arg(long, env = "DIME_ACME_DIRECTORY", value_name = "URL", default_value = crate::acme::LETS_ENCRYPT)]
    pub acme_directory: String,
    /// Contact address for the ACME account.
    #[arg(long, env = "DIME_ACME_EMAIL", value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// PEM roots trusted for the ACME server (a private ACME CA) [default: the system's roots].
    #[arg(long, env = "DIME_ACME_CA", value_name = "FILE")]
    pub acme_ca: Option<PathBuf>,
    /// Where the ACME account key and certificates are kept.
    #[arg(long, env = "DIME_ACME_DIR", value_name = "DIR", default_value = "/var/lib/dime/acme")]
    pub acme_dir: PathBuf,
    /// Renew a certificate this long before it expires (720h: 30 days).
    #[arg(long, env = "DIME_ACME_RENEW_BEFORE", value_name = "DURATION", default_value = "720h")]
    pub acme_renew_before: String,
    /// This edge's name in the fleet [default: the host name].
    #[arg(long, env = "DIME_EDGE_NAME", value_name = "NAME")]
    pub edge_name: Option<String>,
    /// Peer listener: other edges fetch the cache misses this edge owns here (e.g. its overlay address).
    #[arg(long, env = "DIME_PEER_LISTEN", value_name = "ADDR")]
    pub peer_listen: Option<String>,
    /// The URL other edges reach the peer listener at, http://IP:PORT [default: http://<--peer-listen>].
    #[arg(long, env = "DIME_PEER_ADVERTISE", value_name = "URL")]
    pub peer_advertise: Option<String>,
    /// The fleet, without control: NAME=URL of every edge, this one included (the same list on every edge).
    #[arg(long, env = "DIME_PEERS", value_name = "NAME=URL", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Tokens edges present to each other, one per line (the first is the one sent; several for rotation).
    #[arg(long, env = "DIME_PEER_TOKEN_FILE", value_name = "FILE")]
    pub peer_token_file: Option<PathBuf>,
    /// How long a peer may take to accept a connection before the next member (or the origin) is asked.
    #[arg(long, env = "DIME_PEER_TIMEOUT", value_name = "DURATION", default_value = "200ms")]
    pub peer_timeout: String,
}

type Fields = serde_json::Map<String, serde_json::Value>;

fn fields(args: &RunArgs) -> Fields {
    match serde_json::to_value(args) {
        Ok(serde_json::Value::Object(map)) => map,
        // A struct of strings, numbers and lists always serializes to an object.
        _ => Fields::new(),
    }
}

impl RunArgs {
    /// The settings in force: each field from the command line or the environment if given there, else from
    /// the `--config` file if set there, else its default.
    pub fn layered(matches: &ArgMatches) -> Result<RunArgs, ConfigError> {
        let given = RunArgs::from_arg_matches(matches).map_err(|e| invalid("arguments", e.to_string()))?;
        let mut merged = Fields::new();
        let mut explicit = Fields::new();
        for (name, value) in fields(&given) {
            match matches.value_source(&name) {
                Some(ValueSource::DefaultValue) => {
                    merged.insert(name, value);
                }
                Some(_) => {
                    explicit.insert(name, value);
                }
                None => {}
            }
        }
        if let Some(path) = &given.config {
            merged.extend(read_file(path)?);
        }
        merged.extend(explicit);
        let mut settings: RunArgs = serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| invalid("settings", e.to_string()))?;
        settings.config = given.config;
        Ok(settings)
    }

    /// Parses `dime-edge run` arguments (without the program and subcommand names) and layers them: for tests
    /// and tools that build settings without a process.
    pub fn from_argv<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(
        argv: I,
    ) -> Result<RunArgs, ConfigError> {
        let command = RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
        let matches = command.try_get_matches_from(argv).map_err(|e| invalid("arguments", e.to_string()))?;
        RunArgs::layered(&matches)
    }
}

/// The settings a file sets: parsed into [`RunArgs`] (types checked, unknown keys refused, with toml's line and
/// column), then only the keys the file names.
fn read_file(path: &Path) -> Result<Fields, ConfigError> {
    let file_err = |message: String| ConfigError::File { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let parsed: RunArgs = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    let named: toml::Table = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    Ok(fields(&parsed).into_iter().filter(|(name, _)| named.contains_key(name)).collect())
}

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

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
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
    Ok(CacheSettings { size, max_object, lock_timeout, body_dir: s.cache_body_dir.clone() })
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
fn fleet_settings(s: &RunArgs) -> Result<Option<crate::fleet::FleetSettings>, ConfigError> {
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
    let name = edge_name(s);
    if !members.is_empty() {
        check_members(&name, &advertise, &members).map_err(|e| invalid("peers", e))?;
    }
    crate::fleet::peer_addr(&advertise).map_err(|e| invalid("peer_advertise", e))?;
    let token_file = s.peer_token_file.clone().ok_or_else(|| {
        invalid(
            "peer_token_file",
            "edges authenticate each other: give --peer-token-file FILE (the same on every edge)",
        )
    })?;
    let timeout = duration("peer_timeout", &s.peer_timeout)?;
    Ok(Some(FleetSettings { name, listen, advertise, members, token_file, timeout }))
}

fn edge_name(s: &RunArgs) -> String {
    s.edge_name.clone().unwrap_or_else(host_name)
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
            edge_name: edge_name(&s),
            fleet: fleet_settings(&s)?,
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

#[cfg(test)]
mod tests;
