//! The edge's one internal configuration model. Flags, `DIME_*` environment variables and the optional
//! `--config edge.toml` file are all converted into [`EdgeConfig`] and checked once, here.
//! Precedence: flag or environment variable, then the file, then the default.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

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
    /// Validate routes files: prints every error with its location, exits 1 if there is any. With --report, a
    /// migration report of Traefik configurations instead.
    Check {
        /// Routes files (native schema or the Traefik subset; several YAML documents allowed), or a
        /// `kubectl get configmap -o yaml` dump, whose data keys are read as dime-control reads them. Several
        /// files are checked together, as control compiles ConfigMaps together.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print, per router, service and middleware, whether Dime supports it as is, with a change (which), or
        /// not (why, and the nearest Dime feature). Exits 1 unless everything is supported as is.
        #[arg(long)]
        report: bool,
        /// Format of the report.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text, requires = "report")]
        format: ReportFormat,
    },
    /// Mint a signed viewer URL for a route with `signed_urls`.
    Sign(SignArgs),
}

/// `dime-edge check --report --format`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people: by file, each part with its verdict and notes.
    #[default]
    Text,
    /// For scripts: `{"entries": [{"source", "kind", "name", "verdict", "notes"}], ...}`.
    Json,
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
    /// Disk tier: objects kept here survive restarts and the cache can be larger than memory (the memory cache
    /// becomes the hot tier in front of it); unset, memory only.
    #[arg(long, env = "DIME_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Byte budget of the disk tier's files, a hard bound (e.g. 20GiB).
    #[arg(long, env = "DIME_CACHE_DISK_SIZE", value_name = "BYTES", default_value = "10GiB")]
    pub cache_disk_size: String,
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

mod sections;
use sections::invalid;
pub use sections::{parse_size, read_tokens, ConfigError, EdgeConfig, RouteSource};

#[cfg(test)]
mod tests;
