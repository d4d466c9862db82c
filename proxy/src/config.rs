//! The edge's one internal configuration model. Flags, `DIME_*` environment variables and the optional
//! `--config edge.toml` file are all converted into [`EdgeConfig`] and checked once, here.
//! Precedence: flag or environment variable, then the file, then the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;

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
    /// Admin listener for /metrics, /healthz, /readyz and /config [default: 127.0.0.1:9901].
    #[arg(long, env = "DIME_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// Routes file, watched: a valid edit is applied atomically, an invalid one is logged and ignored.
    #[arg(long, env = "DIME_ROUTES", value_name = "FILE")]
    pub routes: Option<PathBuf>,
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
    /// Answer a name without DNS, like curl: HOST:PORT=ADDR:PORT[,ADDR:PORT] (repeatable).
    #[arg(long, env = "DIME_RESOLVE", value_name = "HOST:PORT=ADDR:PORT", value_delimiter = ' ')]
    pub resolve: Vec<String>,
    /// Retries of an idempotent request on another server after a connect failure [default: 2].
    #[arg(long, env = "DIME_RETRIES")]
    pub retries: Option<usize>,
}

/// The settings file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<Vec<String>>,
    admin: Option<String>,
    routes: Option<PathBuf>,
    threads: Option<usize>,
    access_log: Option<bool>,
    log_format: Option<LogFormat>,
    trusted_proxies: Option<Vec<String>>,
    shutdown_timeout: Option<String>,
    resolve: Option<Vec<String>>,
    retries: Option<usize>,
}

/// Validated edge settings.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub http: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub routes: PathBuf,
    pub threads: usize,
    pub access_log: bool,
    pub log_format: LogFormat,
    pub trusted_proxies: Vec<IpNet>,
    pub shutdown_timeout: Duration,
    pub resolve: Overrides,
    pub retries: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: &'static str, message: String },
    #[error("no route source: give --routes FILE (or DIME_ROUTES, or `routes` in the config file)")]
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
        let admin = addr("admin", args.admin.or(file.admin).as_deref().unwrap_or("127.0.0.1:9901"))?;
        let routes = args.routes.or(file.routes).ok_or(ConfigError::NoRoutes)?;
        let threads = args
            .threads
            .or(file.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(invalid("threads", "must be at least 1"));
        }
        let trusted_proxies = pick(args.trusted_proxies, file.trusted_proxies)
            .iter()
            .map(|t| {
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| invalid("trusted_proxies", format!("`{t}` is not a CIDR such as 10.0.0.0/8")))
            })
            .collect::<Result<_, _>>()?;
        let shutdown_text = args.shutdown_timeout.or(file.shutdown_timeout).unwrap_or_else(|| "10s".into());
        let shutdown_timeout =
            dime_routes::parse_duration(&shutdown_text).map_err(|e| invalid("shutdown_timeout", e))?;
        let mut resolve = Overrides::default();
        for entry in pick(args.resolve, file.resolve) {
            resolve.parse_entry(&entry).map_err(|e| invalid("resolve", e))?;
        }
        Ok(EdgeConfig {
            http,
            admin,
            routes,
            threads,
            access_log: args.access_log.or(file.access_log).unwrap_or(true),
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            trusted_proxies,
            shutdown_timeout,
            resolve,
            retries: args.retries.or(file.retries).unwrap_or(2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(
            &path,
            "admin = \"127.0.0.1:9999\"\nroutes = \"/etc/dime/routes.yaml\"\nhttp = [\"127.0.0.1:81\"]\n",
        )
        .unwrap();
        let args = RunArgs { config: Some(path), http: vec!["127.0.0.1:82".into()], ..Default::default() };
        let cfg = EdgeConfig::from_args(args).unwrap();
        assert_eq!(cfg.http, vec!["127.0.0.1:82".parse().unwrap()]);
        assert_eq!(cfg.admin, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(cfg.routes, PathBuf::from("/etc/dime/routes.yaml"));
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(10));
        assert!(cfg.access_log);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let args = RunArgs { routes: Some("r.yaml".into()), admin: Some("localhost".into()), ..Default::default() };
        assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("admin: `localhost`"));
        let args =
            RunArgs { routes: Some("r.yaml".into()), trusted_proxies: vec!["nope".into()], ..Default::default() };
        assert!(EdgeConfig::from_args(args).unwrap_err().to_string().starts_with("trusted_proxies"));
        assert!(matches!(EdgeConfig::from_args(RunArgs::default()), Err(ConfigError::NoRoutes)));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let err = EdgeConfig::from_args(RunArgs { config: Some(path), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }
}
