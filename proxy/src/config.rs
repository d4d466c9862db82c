//! The edge's one internal configuration model. Flags, `DIME_*` environment variables and the optional
//! `--config edge.toml` file are all converted into [`EdgeConfig`] and checked once, here.
//! Precedence: flag or environment variable, then the file, then the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Optional TOML file with any of the settings below (same names, snake_case).
    #[arg(long, env = "DIME_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP entrypoint address (repeatable) [default: 0.0.0.0:8080].
    #[arg(long, env = "DIME_HTTP", value_name = "ADDR", value_delimiter = ',')]
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
    /// How long open connections of a removed TCP route may go on before they are closed [default: 5m].
    #[arg(long, env = "DIME_TCP_DRAIN_TIMEOUT", value_name = "DURATION")]
    pub tcp_drain_timeout: Option<String>,
    /// Admin listener for /metrics, /healthz, /readyz and /config [default: 127.0.0.1:9901].
    #[arg(long, env = "DIME_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// A listener serving only /metrics, /healthz and /readyz (e.g. on the overlay address for Prometheus, while
    /// the admin listener stays on loopback).
    #[arg(long, env = "DIME_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Routes file, watched: a valid edit is applied atomically, an invalid one is logged and ignored.
    #[arg(long, env = "DIME_ROUTES", value_name = "FILE", conflicts_with = "control")]
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
    #[arg(long, env = "DIME_THREADS")]
    pub threads: Option<usize>,
    /// Log one line per request [default: true].
    #[arg(long, env = "DIME_ACCESS_LOG", value_name = "BOOL")]
    pub access_log: Option<bool>,
    /// Log format [default: text].
    #[arg(long, env = "DIME_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Clients whose X-Forwarded-For/-Proto/-Host are kept (comma-separated CIDRs); others' are replaced.
    #[arg(long, env = "DIME_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Longest time SIGTERM waits for open requests before exiting [default: 10s].
    #[arg(long, env = "DIME_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// A client connection must send a complete request header within this long of connecting [default: 15s].
    #[arg(long, env = "DIME_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// An idle kept-alive client connection is closed after this long without a new request [default: 60s].
    #[arg(long, env = "DIME_KEEPALIVE_TIMEOUT", value_name = "DURATION")]
    pub keepalive_timeout: Option<String>,
    /// Most client connections open at once on the HTTP/HTTPS entrypoints; more are closed at once [default: 10000].
    #[arg(long, env = "DIME_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Answer a name without DNS, like curl: HOST:PORT=ADDR:PORT[,ADDR:PORT] (repeatable).
    #[arg(long, env = "DIME_RESOLVE", value_name = "HOST:PORT=ADDR:PORT", value_delimiter = ' ')]
    pub resolve: Vec<String>,
    /// Retries of an idempotent request on another server after a connect failure [default: 2].
    #[arg(long, env = "DIME_RETRIES")]
    pub retries: Option<usize>,
    /// Memory budget of the cache, a hard bound (e.g. 512MiB, 2GiB) [default: 256MiB].
    #[arg(long, env = "DIME_CACHE_SIZE", value_name = "BYTES")]
    pub cache_size: Option<String>,
    /// Largest object the cache admits; larger responses pass through [default: cache size / 8].
    #[arg(long, env = "DIME_CACHE_MAX_OBJECT", value_name = "BYTES")]
    pub cache_max_object: Option<String>,
    /// How long one request may hold an object's fill lock before a waiting request takes over [default: 10s].
    #[arg(long, env = "DIME_CACHE_LOCK_TIMEOUT", value_name = "DURATION")]
    pub cache_lock_timeout: Option<String>,
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
    /// ACME directory URL [default: Let's Encrypt production].
    #[arg(long, env = "DIME_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
    /// Contact address for the ACME account.
    #[arg(long, env = "DIME_ACME_EMAIL", value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// PEM roots trusted for the ACME server (a private ACME CA) [default: the system's roots].
    #[arg(long, env = "DIME_ACME_CA", value_name = "FILE")]
    pub acme_ca: Option<PathBuf>,
    /// Where the ACME account key and certificates are kept [default: /var/lib/dime/acme].
    #[arg(long, env = "DIME_ACME_DIR", value_name = "DIR")]
    pub acme_dir: Option<PathBuf>,
    /// Renew a certificate this long before it expires [default: 720h, 30 days].
    #[arg(long, env = "DIME_ACME_RENEW_BEFORE", value_name = "DURATION")]
    pub acme_renew_before: Option<String>,
}

/// The settings file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<Vec<String>>,
    https: Option<Vec<String>>,
    tls_cert: Option<Vec<String>>,
    tcp: Option<Vec<String>>,
    tcp_drain_timeout: Option<String>,
    admin: Option<String>,
    metrics: Option<String>,
    routes: Option<PathBuf>,
    control: Option<Vec<String>>,
    control_token_file: Option<PathBuf>,
    control_ca: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    threads: Option<usize>,
    access_log: Option<bool>,
    log_format: Option<LogFormat>,
    trusted_proxies: Option<Vec<String>>,
    shutdown_timeout: Option<String>,
    header_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    max_connections: Option<usize>,
    resolve: Option<Vec<String>>,
    retries: Option<usize>,
    cache_size: Option<String>,
    cache_max_object: Option<String>,
    cache_lock_timeout: Option<String>,
    cache_body_dir: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    signing_keys: Option<PathBuf>,
    acme_domain: Option<Vec<String>>,
    acme_directory: Option<String>,
    acme_email: Option<String>,
    acme_ca: Option<PathBuf>,
    acme_dir: Option<PathBuf>,
    acme_renew_before: Option<String>,
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
    pub cache: CacheSettings,
    pub admin_tokens: Vec<String>,
    pub signing_keys: Option<PathBuf>,
}

/// Where the route table comes from.
#[derive(Debug, Clone)]
pub enum RouteSource {
    /// A watched file.
    File(PathBuf),
    /// dime-control, pulled; the last good table kept in `state_dir`.
    Control { urls: Vec<ControlUrl>, token: String, state_dir: Option<PathBuf>, ca_file: Option<PathBuf> },
}

/// Parses a byte size: a number with an optional unit (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`, `k`, `m`,
/// `g` as binary units).
pub fn parse_size(text: &str) -> Result<usize, String> {
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
        other => return Err(format!("`{text}`: unknown unit `{other}` (use KiB, MiB, GiB, KB, MB, GB)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
}

fn read_tokens(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File { path: path.display().to_string(), message: e.to_string() })?;
    let tokens: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
    if tokens.iter().any(|t| t.len() < 16) {
        return Err(ConfigError::File {
            path: path.display().to_string(),
            message: "tokens must be at least 16 characters".into(),
        });
    }
    if tokens.is_empty() {
        return Err(ConfigError::File { path: path.display().to_string(), message: "no token in the file".into() });
    }
    Ok(tokens)
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let file_err = |message: String| ConfigError::File { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| file_err(e.to_string()))
}

impl EdgeConfig {
    pub fn from_args(args: RunArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let pick = |flag: Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag
            }
        };
        let http_text = pick(args.http, file.http);
        let http = if http_text.is_empty() {
            vec![addr("http", "0.0.0.0:8080")?]
        } else {
            http_text.iter().map(|t| addr("http", t)).collect::<Result<_, _>>()?
        };
        let https: Vec<SocketAddr> =
            pick(args.https, file.https).iter().map(|t| addr("https", t)).collect::<Result<_, _>>()?;
        let tls_certs: Vec<crate::tls::CertPair> = pick(args.tls_cert, file.tls_cert)
            .iter()
            .map(|t| crate::tls::CertPair::parse(t).map_err(|e| invalid("tls_cert", e)))
            .collect::<Result<_, _>>()?;
        let mut tcp = Vec::new();
        for entry in pick(args.tcp, file.tcp) {
            let (name, address) = entry
                .split_once('=')
                .ok_or_else(|| invalid("tcp", format!("`{entry}`: expected NAME=ADDR, e.g. rtmp=0.0.0.0:1935")))?;
            if name.is_empty() || tcp.iter().any(|(n, _): &(String, SocketAddr)| n == name) {
                return Err(invalid("tcp", format!("`{entry}`: entrypoint names must be unique and non-empty")));
            }
            tcp.push((name.to_owned(), addr("tcp", address)?));
        }
        let defaults = ClientLimits::default();
        let duration_or = |name: &'static str, text: Option<String>, default: Duration| match text {
            Some(t) => dime_routes::parse_duration(&t).map_err(|e| invalid(name, e)),
            None => Ok(default),
        };
        let clients = ClientLimits {
            header_timeout: duration_or(
                "header_timeout",
                args.header_timeout.or(file.header_timeout),
                defaults.header_timeout,
            )?,
            keepalive_timeout: duration_or(
                "keepalive_timeout",
                args.keepalive_timeout.or(file.keepalive_timeout),
                defaults.keepalive_timeout,
            )?,
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections),
        };
        if clients.header_timeout.is_zero() || clients.keepalive_timeout.is_zero() || clients.max_connections == 0 {
            return Err(invalid("header_timeout/keepalive_timeout/max_connections", "must be greater than 0"));
        }
        let tcp_drain_timeout = match args.tcp_drain_timeout.or(file.tcp_drain_timeout) {
            Some(t) => dime_routes::parse_duration(&t).map_err(|e| invalid("tcp_drain_timeout", e))?,
            None => Duration::from_secs(300),
        };
        let admin = addr("admin", args.admin.or(file.admin).as_deref().unwrap_or("127.0.0.1:9901"))?;
        let metrics = args.metrics.or(file.metrics).map(|m| addr("metrics", &m)).transpose()?;
        let control = pick(args.control, file.control);
        let routes_file = args.routes.or(file.routes);
        let state_dir = args.state_dir.or(file.state_dir);
        let routes = match (routes_file, control.is_empty()) {
            (Some(_), false) => return Err(invalid("routes", "give either a routes file or control URLs, not both")),
            (Some(path), true) => {
                if state_dir.is_some() {
                    return Err(invalid("state_dir", "only used with --control (a routes file is its own state)"));
                }
                RouteSource::File(path)
            }
            (None, false) => {
                let urls = control
                    .iter()
                    .map(|u| ControlUrl::parse(u).map_err(|e| invalid("control", e)))
                    .collect::<Result<_, _>>()?;
                let token_file = args.control_token_file.or(file.control_token_file).ok_or_else(|| {
                    invalid("control_token_file", "required with --control: control refuses requests without a token")
                })?;
                let token = read_tokens(&token_file)?.swap_remove(0);
                RouteSource::Control { urls, token, state_dir, ca_file: args.control_ca.or(file.control_ca) }
            }
            (None, true) => return Err(ConfigError::NoRoutes),
        };
        let threads = args
            .threads
            .or(file.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(invalid("threads", "must be at least 1"));
        }
        let trusted_proxies = pick(args.trusted_proxies, file.trusted_proxies)
            .iter()
            .map(|t| dime_routes::parse_cidr(t).map_err(|e| invalid("trusted_proxies", e)))
            .collect::<Result<_, _>>()?;
        let shutdown_text = args.shutdown_timeout.or(file.shutdown_timeout).unwrap_or_else(|| "10s".into());
        let shutdown_timeout =
            dime_routes::parse_duration(&shutdown_text).map_err(|e| invalid("shutdown_timeout", e))?;
        let mut resolve = Overrides::default();
        for entry in pick(args.resolve, file.resolve) {
            resolve.parse_entry(&entry).map_err(|e| invalid("resolve", e))?;
        }
        let size = match args.cache_size.or(file.cache_size) {
            Some(t) => parse_size(&t).map_err(|e| invalid("cache_size", e))?,
            None => CacheSettings::DEFAULT_SIZE,
        };
        let max_object = match args.cache_max_object.or(file.cache_max_object) {
            Some(t) => parse_size(&t).map_err(|e| invalid("cache_max_object", e))?,
            None => CacheSettings::default_max_object(size),
        };
        if max_object > size {
            return Err(invalid("cache_max_object", "larger than cache_size"));
        }
        let lock_timeout = match args.cache_lock_timeout.or(file.cache_lock_timeout) {
            Some(t) => dime_routes::parse_duration(&t).map_err(|e| invalid("cache_lock_timeout", e))?,
            None => CacheSettings::DEFAULT_LOCK_TIMEOUT,
        };
        let body_dir = args.cache_body_dir.or(file.cache_body_dir);
        if let Some(dir) = &body_dir {
            crate::cache::body::BodyFile::prepare_dir(dir)
                .map_err(|e| invalid("cache_body_dir", format!("{}: {e}", dir.display())))?;
        }
        let admin_tokens = match args.admin_token_file.or(file.admin_token_file) {
            Some(path) => read_tokens(&path)?,
            None => Vec::new(),
        };
        let acme_domains = pick(args.acme_domain, file.acme_domain);
        let acme = if acme_domains.is_empty() {
            None
        } else {
            if https.is_empty() {
                return Err(invalid("acme_domain", "ACME certificates are served on HTTPS entrypoints: add --https"));
            }
            let mut domains = Vec::new();
            for d in &acme_domains {
                let name = d.trim().trim_end_matches('.').to_ascii_lowercase();
                if !matches!(dime_routes::HostPattern::parse(&name), Ok(dime_routes::HostPattern::Exact(_)))
                    || !name.contains('.')
                    || name.parse::<std::net::IpAddr>().is_ok()
                {
                    return Err(invalid(
                        "acme_domain",
                        format!("`{d}`: expected a DNS name such as video.example.com (HTTP-01 cannot issue wildcards or IP addresses)"),
                    ));
                }
                if !domains.contains(&name) {
                    domains.push(name);
                }
            }
            let directory =
                args.acme_directory.or(file.acme_directory).unwrap_or_else(|| crate::acme::LETS_ENCRYPT.into());
            if !directory.starts_with("https://") {
                return Err(invalid("acme_directory", format!("`{directory}`: must be an https:// URL")));
            }
            let renew_before = match args.acme_renew_before.or(file.acme_renew_before) {
                Some(t) => dime_routes::parse_duration(&t).map_err(|e| invalid("acme_renew_before", e))?,
                None => Duration::from_secs(30 * 24 * 3600),
            };
            Some(crate::acme::AcmeSettings {
                domains,
                directory,
                email: args.acme_email.or(file.acme_email),
                ca_file: args.acme_ca.or(file.acme_ca),
                dir: args.acme_dir.or(file.acme_dir).unwrap_or_else(|| PathBuf::from("/var/lib/dime/acme")),
                renew_before,
            })
        };
        Ok(EdgeConfig {
            acme,
            http,
            https,
            tls_certs,
            tcp,
            tcp_drain_timeout,
            admin,
            metrics,
            routes,
            threads,
            access_log: args.access_log.or(file.access_log).unwrap_or(true),
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            trusted_proxies,
            shutdown_timeout,
            clients,
            resolve,
            retries: args.retries.or(file.retries).unwrap_or(2),
            cache: CacheSettings { size, max_object, lock_timeout, body_dir },
            admin_tokens,
            signing_keys: args.signing_keys.or(file.signing_keys),
        })
    }
}

#[cfg(test)]
mod tests;
