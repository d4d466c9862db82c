//! Assembles the Pingora server: the HTTP entrypoints, the admin listener, the route source, the upstream
//! upkeep loop and the shutdown drain.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

use crate::admin::Admin;
use crate::cache::Cache;
use crate::config::{EdgeConfig, RouteSource};
use crate::downstream::Downstream;
use crate::metrics::Metrics;
use crate::service::{DimeProxy, ProxySettings};
use crate::source::control::ControlSource;
use crate::source::FileSource;
use crate::state::State;
use crate::tcp::TcpProxy;
use crate::upstream::{SystemResolver, Upkeep};

/// On SIGTERM Pingora stops accepting and lets keep-alive connections finish their current request; this exits
/// as soon as no client connection is left, instead of sleeping out the whole grace period.
struct Drain {
    metrics: Arc<Metrics>,
    /// `--shutdown-timeout`: past it the edge exits with connections still open.
    bound: Duration,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let open = self.metrics.connections_open.get();
        tracing::info!(open_connections = open, "SIGTERM: draining");
        // Exit just before Pingora's grace period (the bound less a second) ends and it stops the runtimes, so
        // the buffered log lines are written out first.
        let wait = self.bound.saturating_sub(Duration::from_millis(1100)).max(Duration::from_millis(100));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let open = self.metrics.connections_open.get();
            if open <= 0 || tokio::time::Instant::now() >= deadline {
                if open <= 0 {
                    tracing::info!("drained; exiting");
                } else {
                    tracing::warn!(open_connections = open, "shutdown timeout reached; exiting with connections open");
                }
                crate::logging::flush();
                std::process::exit(0);
            }
        }
    }
}

/// The route source in use.
enum Routes {
    File(FileSource),
    Control(ControlSource),
}

#[async_trait]
impl BackgroundService for Routes {
    async fn start(&self, shutdown: ShutdownWatch) {
        match self {
            Routes::File(s) => s.start(shutdown).await,
            Routes::Control(s) => s.start(shutdown).await,
        }
    }
}

/// Checks that `dir` takes a file.
fn tempfile_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

/// Raises the soft limit on open files to the hard limit, as nginx's `worker_rlimit_nofile` does: every client
/// connection, upstream connection and large cached body (a file each) holds a descriptor.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let from = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::debug!(?from, to = ?limit.maximum, "raised the open files limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
        }
    }
}

/// Runs the edge until SIGTERM (drain, bounded by `shutdown_timeout`) or SIGINT (immediate).
pub fn run(cfg: EdgeConfig) -> Result<(), String> {
    raise_open_files_limit();
    let metrics = Arc::new(Metrics::new()?);
    let admin_tokens = match &cfg.admin_token_file {
        Some(path) => crate::config::read_tokens(path).map_err(|e| format!("admin_token_file: {e}"))?,
        None => Vec::new(),
    };
    if let Some(dir) = &cfg.cache.body_dir {
        crate::cache::body::BodyFile::prepare_dir(dir)
            .map_err(|e| format!("cache_body_dir: {}: {e}", dir.display()))?;
    }
    let resolver = Arc::new(SystemResolver { overrides: cfg.resolve.clone() });
    let keys = Arc::new(match &cfg.signing_keys {
        Some(path) => crate::signed::Keys::load(path).map_err(|e| format!("signing keys: {e}"))?,
        None => crate::signed::Keys::default(),
    });
    let certs = if cfg.https.is_empty() {
        None
    } else {
        let store = crate::tls::CertStore::new(cfg.tls_certs.clone(), metrics.clone())?;
        if cfg.tls_certs.is_empty() {
            tracing::warn!("HTTPS entrypoints without --tls-cert: handshakes fail until the route table or ACME provides a certificate");
        }
        Some(store)
    };
    let mut state = State::new(metrics.clone(), resolver);
    state.certs = certs.clone();
    state.tcp_entrypoints = cfg.tcp.iter().map(|(name, _)| name.clone()).collect();
    state.signing_key_ids = keys.ids().map(str::to_owned).collect();
    let state = Arc::new(state);
    let source = match &cfg.routes {
        RouteSource::File(path) => {
            let source = FileSource { path: path.clone(), state: state.clone() };
            // Refuse to start on a broken file: there is no last good table to fall back on yet.
            let first = source.load().map_err(|e| format!("routes file rejected:\n{e}"))?;
            tracing::info!(path = %path.display(), version = first.version(), routes = first.routes().len(), "routes file is valid");
            Routes::File(source)
        }
        RouteSource::Control { urls, token_file, state_dir, ca_file } => {
            let token =
                crate::config::read_tokens(token_file).map_err(|e| format!("control_token_file: {e}"))?.swap_remove(0);
            if let Some(dir) = state_dir {
                // A state dir that cannot be written would only be noticed in the outage it is meant for.
                std::fs::create_dir_all(dir)
                    .and_then(|()| tempfile_probe(dir))
                    .map_err(|e| format!("state dir {}: {e}", dir.display()))?;
            }
            let controls: Vec<&str> = urls.iter().map(|u| u.text.as_str()).collect();
            tracing::info!(?controls, state_dir = ?state_dir, "routes from dime-control");
            let tls = if urls.iter().any(|u| u.tls_name.is_some()) {
                Some(
                    crate::source::control::tls_connector(ca_file.as_deref())
                        .map_err(|e| format!("control CA: {e}"))?,
                )
            } else {
                None
            };
            Routes::Control(ControlSource {
                urls: urls.clone(),
                tls,
                token,
                state_dir: state_dir.clone(),
                state: state.clone(),
            })
        }
    };

    // Pingora sleeps the grace period, then gives runtimes their shutdown timeout; together they are the bound.
    let bound = cfg.shutdown_timeout.as_secs().max(1);
    let conf = ServerConf {
        threads: cfg.threads,
        grace_period_seconds: Some(bound.saturating_sub(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Pingora counts attempts, not retries: the first try plus `retries` more.
        max_retries: cfg.retries + 1,
        // One single-threaded runtime per worker thread: connections stay on the thread that accepted them,
        // which avoids cross-thread wake-ups on every request (measured in docs/benchmarks.md).
        work_stealing: false,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let conf = server.configuration.clone();

    let settings = ProxySettings {
        https_port: cfg.https.first().map(|a| a.port()),
        trusted_proxies: cfg.trusted_proxies.clone(),
        access_log: cfg.access_log && crate::access::enabled(),
        log_format: cfg.log_format,
        retries: cfg.retries,
        // Past the watchdog's latest close: it closes idle connections (and counts them), Pingora's wait is a backstop.
        keepalive_secs: cfg.clients.keepalive_timeout.as_secs() * 2 + 1,
    };
    let cache = Arc::new(Cache::new(cfg.cache, metrics.clone()));
    let challenges = Arc::new(crate::acme::Challenges::default());
    let acme = match (&cfg.acme, &certs) {
        (Some(settings), Some(store)) => {
            let manager = crate::acme::AcmeManager::new(
                settings.clone(),
                challenges.clone(),
                store.clone(),
                metrics.clone(),
                cfg.http.clone(),
            );
            manager.load_saved();
            tracing::info!(domains = ?settings.domains, directory = %settings.directory, dir = %settings.dir.display(), "ACME certificates");
            Some(manager)
        }
        _ => None,
    };
    let mut proxy = pingora_proxy::http_proxy(
        &conf,
        DimeProxy { state: state.clone(), settings, cache: cache.clone(), keys, challenges },
    );
    // HTTP/2 streams run outside the connection's task, so its watchdog cannot see them; Pingora closes idle h2
    // connections instead.
    let mut options = pingora_core::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(cfg.clients.keepalive_timeout);
    proxy.server_options = Some(options);
    let downstream =
        Downstream { inner: Arc::new(proxy), metrics: metrics.clone(), state: state.clone(), limits: cfg.clients };
    let mut http = Service::new("dime http".to_owned(), downstream);
    for addr in &cfg.http {
        http.add_tcp(&addr.to_string());
    }
    if let Some(store) = &certs {
        for addr in &cfg.https {
            let mut tls = pingora_core::listeners::tls::TlsSettings::intermediate("", "").map_err(|e| e.to_string())?;
            tls.set_cert_resolver(Arc::new(crate::tls::Resolver(store.clone())));
            tls.enable_h2();
            http.add_tls_with_settings(&addr.to_string(), None, tls);
        }
    }
    server.add_service(http);

    for (name, address) in &cfg.tcp {
        let mut service =
            Service::new(format!("dime tcp {name}"), TcpProxy::new(name.clone(), state.clone(), cfg.tcp_drain_timeout));
        service.add_tcp(&address.to_string());
        server.add_service(service);
    }

    if let Some(addr) = cfg.metrics {
        let app = Admin { state: state.clone(), cache: cache.clone(), tokens: Vec::new(), metrics_only: true };
        let mut metrics = Service::new("dime metrics".to_owned(), HttpServer::new_app(app));
        metrics.add_tcp(&addr.to_string());
        metrics.threads = Some(1);
        server.add_service(metrics);
    }
    let admin_app = Admin { state: state.clone(), cache, tokens: admin_tokens, metrics_only: false };
    let mut admin = Service::new("dime admin".to_owned(), HttpServer::new_app(admin_app));
    admin.add_tcp(&cfg.admin.to_string());
    admin.threads = Some(1);
    server.add_service(admin);

    server.add_service(background_service("routes", source));
    if let Some(store) = certs {
        server.add_service(background_service("tls certificates", crate::tls::Reloader(store)));
    }
    if let Some(manager) = acme {
        server.add_service(background_service("acme", manager));
    }
    server.add_service(background_service("upstream upkeep", Upkeep { state }));
    server.add_service(background_service("drain", Drain { metrics, bound: cfg.shutdown_timeout }));
    tracing::info!(http = ?cfg.http, https = ?cfg.https, tcp = ?cfg.tcp, admin = %cfg.admin, threads = cfg.threads, "dime-edge starting");
    server.run_forever();
}
