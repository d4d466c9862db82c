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
use crate::state::{Holdings, State};
use crate::tcp::TcpProxy;
use crate::upkeep::Upkeep;
use crate::upstream::SystemResolver;

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
        let open = self.metrics.http.connections_open.get();
        tracing::info!(open_connections = open, "SIGTERM: draining");
        // Exit just before Pingora's grace period (the bound less a second) ends and it stops the runtimes, so
        // the buffered log lines are written out first.
        let wait = self.bound.saturating_sub(Duration::from_millis(1100)).max(Duration::from_millis(100));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let open = self.metrics.http.connections_open.get();
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

/// Why the edge did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or directory a setting names could not be used.
    #[error("{setting}: {message}")]
    Setting { setting: &'static str, message: String },
    /// The routes file is invalid: there is no last good table to fall back on yet.
    #[error("routes file rejected:\n{0}")]
    Routes(dime_routes::RouteErrors),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("HTTPS entrypoint {addr}: {message}")]
    Tls { addr: std::net::SocketAddr, message: String },
}

fn setting(setting: &'static str, message: impl std::fmt::Display) -> StartError {
    StartError::Setting { setting, message: message.to_string() }
}

/// What start-up reads and creates from the settings (token files, keys, certificates, directories), before
/// anything listens.
struct Opened {
    admin_tokens: Vec<String>,
    keys: Arc<crate::signed::Keys>,
    certs: Option<Arc<crate::tls::CertStore>>,
    fleet: Option<Arc<crate::fleet::Fleet>>,
}

fn open_files(cfg: &EdgeConfig, metrics: &Arc<Metrics>) -> Result<Opened, StartError> {
    let admin_tokens = match &cfg.admin_token_file {
        Some(path) => crate::config::read_tokens(path).map_err(|e| setting("admin_token_file", e))?,
        None => Vec::new(),
    };
    if let Some(dir) = &cfg.cache.body_dir {
        crate::cache::body::BodyFile::prepare_dir(dir)
            .map_err(|e| setting("cache_body_dir", format!("{}: {e}", dir.display())))?;
    }
    let keys = match &cfg.signing_keys {
        Some(path) => crate::signed::Keys::load(path).map_err(|e| setting("signing_keys", e))?,
        None => crate::signed::Keys::default(),
    };
    let certs = if cfg.https.is_empty() {
        None
    } else {
        if cfg.tls_certs.is_empty() {
            tracing::warn!("HTTPS entrypoints without --tls-cert: handshakes fail until the route table or ACME provides a certificate");
        }
        Some(crate::tls::CertStore::new(cfg.tls_certs.clone(), metrics.clone()).map_err(|e| setting("tls_cert", e))?)
    };
    let fleet = match &cfg.fleet {
        Some(f) => {
            let auth = peer_auth(cfg, f)?;
            tracing::info!(edge = f.name, members = f.members.len(), peer_listen = %f.listen, "fleet tier on");
            let fleet = crate::fleet::Fleet::new(f, auth);
            if !f.members.is_empty() {
                metrics.fleet.members.set(fleet.ring().members().len() as i64);
            }
            Some(Arc::new(fleet))
        }
        None => None,
    };
    Ok(Opened { admin_tokens, keys: Arc::new(keys), certs, fleet })
}

/// How this edge proves its name to its peers: with control, its own key pair (kept in the state directory when
/// there is one, so that a restart keeps it); in a static `--peers` fleet, the shared peer token.
fn peer_auth(cfg: &EdgeConfig, f: &crate::fleet::FleetSettings) -> Result<crate::fleet::PeerAuth, StartError> {
    use crate::fleet::identity::PeerKey;
    let RouteSource::Control { state_dir, .. } = &cfg.routes else {
        let Some(file) = &f.token_file else {
            return Err(setting(
                "peer_token_file",
                "a static --peers fleet authenticates with a shared token: give --peer-token-file",
            ));
        };
        let tokens = crate::config::read_tokens(file).map_err(|e| setting("peer_token_file", e))?;
        return Ok(crate::fleet::PeerAuth::Shared(tokens));
    };
    if f.token_file.is_some() {
        tracing::warn!(
            "--peer-token-file is not used with --control: edges sign their peer requests with keys of their own"
        );
    }
    let key = match state_dir {
        Some(dir) => PeerKey::load_or_create(dir),
        None => PeerKey::generate(),
    };
    let key = key.map_err(|e| setting("state_dir", e))?;
    tracing::info!(public_key = key.public(), "peer key: this edge signs its peer requests with it");
    Ok(crate::fleet::PeerAuth::Signed(key))
}

/// The route source the settings name, checked at start: a routes file must be valid, a control token file
/// readable, a state directory writable.
fn route_source(
    cfg: &EdgeConfig,
    state: &Arc<State>,
    fleet: Option<&Arc<crate::fleet::Fleet>>,
) -> Result<Routes, StartError> {
    match &cfg.routes {
        RouteSource::File(path) => {
            let source = FileSource { path: path.clone(), state: state.clone() };
            let first = source.load().map_err(StartError::Routes)?;
            tracing::info!(path = %path.display(), version = first.version(), routes = first.routes().len(), "routes file is valid");
            Ok(Routes::File(source))
        }
        RouteSource::Control { urls, token_file, state_dir, ca_file } => {
            let mut tokens = crate::config::read_tokens(token_file).map_err(|e| setting("control_token_file", e))?;
            if let Some(dir) = state_dir {
                // A state dir that cannot be written would only be noticed in the outage it is meant for.
                std::fs::create_dir_all(dir)
                    .and_then(|()| tempfile_probe(dir))
                    .map_err(|e| setting("state_dir", format!("{}: {e}", dir.display())))?;
            }
            let controls: Vec<&str> = urls.iter().map(|u| u.text.as_str()).collect();
            tracing::info!(?controls, state_dir = ?state_dir, "routes from dime-control");
            // The CA file (or the system's roots) matters, and is read, only for https control URLs.
            let trust = match urls.iter().any(|u| u.https) {
                true => dime_client::Trust::ca_or_system(ca_file.as_deref()),
                false => dime_client::Trust::Nobody,
            };
            let http = dime_client::http(trust).map_err(|e| setting("control_ca", e))?;
            let token = tokens.swap_remove(0);
            let controls = urls.iter().map(|u| dime_client::Control::new(u.clone(), token.clone(), http.clone()));
            Ok(Routes::Control(ControlSource {
                controls: controls.collect(),
                state_dir: state_dir.clone(),
                state: state.clone(),
                edge_name: cfg.edge_name.clone(),
                fleet: cfg.fleet.as_ref().zip(fleet.cloned()).map(|(f, fleet)| (f.advertise.clone(), fleet)),
                refused: parking_lot::Mutex::new(None),
            }))
        }
    }
}

/// With routes from control, the fleet's purges come from it too, on the same URLs with the same token.
fn purge_feed(source: &Routes, state: &Arc<State>, cache: &Arc<Cache>) -> Option<crate::source::purges::PurgeFeed> {
    let Routes::Control(c) = source else { return None };
    let fleet = c.fleet.as_ref().map(|(_, fleet)| fleet.clone());
    // Nothing is served from disk before the purges missed while this edge was down are applied.
    if let Some(disk) = cache.store.disk() {
        disk.require_catch_up();
    }
    Some(crate::source::purges::PurgeFeed {
        controls: c.controls.clone(),
        edge_name: c.edge_name.clone(),
        state: state.clone(),
        cache: cache.clone(),
        fleet,
    })
}

/// Pingora's server with the edge's threads, retries and shutdown bound.
fn pingora_server(cfg: &EdgeConfig) -> Server {
    // Pingora sleeps the grace period, then gives runtimes their shutdown timeout; together they are the bound.
    let bound = cfg.shutdown_timeout.as_secs().max(1);
    let conf = ServerConf {
        threads: cfg.threads,
        grace_period_seconds: Some(bound.saturating_sub(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Pingora counts attempts, not retries: the first try plus `retries` more, plus, in a fleet, the members
        // one request may ask (the owner and the next) before the origin, which is therefore always asked.
        max_retries: cfg.retries + 1 + if cfg.fleet.is_some() { dime_routes::wire::MAX_PEER_ATTEMPTS } else { 0 },
        // One single-threaded runtime per worker thread: connections stay on the thread that accepted them,
        // which avoids cross-thread wake-ups on every request (measured in docs/benchmarks.md).
        work_stealing: false,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    server
}

fn proxy_settings(cfg: &EdgeConfig) -> ProxySettings {
    ProxySettings {
        https_port: cfg.https.first().map(|a| a.port()),
        trusted_proxies: cfg.trusted_proxies.clone(),
        access_log: cfg.access_log && crate::access::enabled(),
        log_format: cfg.log_format,
        retries: cfg.retries,
        upstream_idle: cfg.upstream_idle_timeout,
        // Past the watchdog's latest close: it closes idle connections (and counts them), Pingora's wait is a backstop.
        keepalive_secs: cfg.clients.keepalive_timeout.as_secs() * 2 + 1,
    }
}

/// The HTTP and HTTPS entrypoints: one service, the proxy behind the connection limits of [`Downstream`].
fn http_service(
    cfg: &EdgeConfig,
    conf: &Arc<ServerConf>,
    proxy: DimeProxy,
    certs: Option<&Arc<crate::tls::CertStore>>,
) -> Result<Service<Downstream<pingora_proxy::HttpProxy<DimeProxy>>>, StartError> {
    let (metrics, state) = (proxy.state.metrics.clone(), proxy.state.clone());
    let mut proxy = pingora_proxy::http_proxy(conf, proxy);
    // HTTP/2 streams run outside the connection's task, so its watchdog cannot see them; Pingora closes idle h2
    // connections instead.
    let mut options = pingora_core::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(cfg.clients.keepalive_timeout);
    proxy.server_options = Some(options);
    let downstream = Downstream { inner: Arc::new(proxy), metrics, state, limits: cfg.clients };
    let mut http = Service::new("dime http".to_owned(), downstream);
    for addr in &cfg.http {
        http.add_tcp(&addr.to_string());
    }
    if let Some(store) = certs {
        for addr in &cfg.https {
            let mut tls = pingora_core::listeners::tls::TlsSettings::intermediate("", "")
                .map_err(|e| StartError::Tls { addr: *addr, message: e.to_string() })?;
            tls.set_cert_resolver(Arc::new(crate::tls::Resolver(store.clone())));
            tls.enable_h2();
            http.add_tls_with_settings(&addr.to_string(), None, tls);
        }
    }
    Ok(http)
}

/// The peer listener (`--peer-listen`): the same proxy and cache as the viewers' entrypoints, for requests from
/// the fleet's other edges (authenticated by the gate, never sent on to another peer).
fn peer_service(
    cfg: &EdgeConfig,
    conf: &Arc<ServerConf>,
    listen: std::net::SocketAddr,
    proxy: DimeProxy,
) -> Service<Downstream<pingora_proxy::HttpProxy<DimeProxy>>> {
    let (metrics, state) = (proxy.state.metrics.clone(), proxy.state.clone());
    let proxy = pingora_proxy::http_proxy(conf, proxy);
    let downstream = Downstream { inner: Arc::new(proxy), metrics, state, limits: cfg.clients };
    let mut service = Service::new("dime peer".to_owned(), downstream);
    service.add_tcp(&listen.to_string());
    service
}

/// The admin listener, and the metrics-only one when asked for.
fn admin_services(
    cfg: &EdgeConfig,
    state: &Arc<State>,
    cache: &Arc<Cache>,
    tokens: Vec<String>,
    history: &Arc<crate::admin::status::History>,
) -> Vec<Service<HttpServer<Admin>>> {
    let listener = |name: &str, addr: std::net::SocketAddr, app: Admin| {
        let mut service = Service::new(name.to_owned(), HttpServer::new_app(app));
        service.add_tcp(&addr.to_string());
        service.threads = Some(1);
        service
    };
    let mut services = vec![listener(
        "dime admin",
        cfg.admin,
        Admin { state: state.clone(), cache: cache.clone(), tokens, metrics_only: false, history: history.clone() },
    )];
    if let Some(addr) = cfg.metrics {
        let app = Admin {
            state: state.clone(),
            cache: cache.clone(),
            tokens: Vec::new(),
            metrics_only: true,
            history: history.clone(),
        };
        services.push(listener("dime metrics", addr, app));
    }
    services
}

fn acme_manager(
    cfg: &EdgeConfig,
    challenges: &Arc<crate::acme::Challenges>,
    certs: Option<&Arc<crate::tls::CertStore>>,
    metrics: &Arc<Metrics>,
) -> Option<crate::acme::AcmeManager> {
    let (settings, store) = (cfg.acme.as_ref()?, certs?);
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

/// Runs the edge until SIGTERM (drain, bounded by `shutdown_timeout`) or SIGINT (immediate): opens what the
/// settings name, then adds Pingora's services (entrypoints, TCP entrypoints, admin, background loops).
pub fn run(cfg: EdgeConfig) -> Result<(), StartError> {
    raise_open_files_limit();
    let metrics = Arc::new(Metrics::new()?);
    crate::logging::count_panics(metrics.clone());
    let opened = open_files(&cfg, &metrics)?;
    let resolver = Arc::new(SystemResolver { overrides: cfg.resolve.clone() });
    let holdings = Holdings {
        tcp_entrypoints: cfg.tcp.iter().map(|(name, _)| name.clone()).collect(),
        signing_key_ids: opened.keys.ids().map(str::to_owned).collect(),
        certs: opened.certs.clone(),
    };
    let state = Arc::new(State::new(metrics.clone(), resolver, holdings));
    let source = route_source(&cfg, &state, opened.fleet.as_ref())?;

    let mut server = pingora_server(&cfg);
    let conf = server.configuration.clone();
    let cache = Arc::new(Cache::new(cfg.cache.clone(), metrics.clone()));
    let challenges = Arc::new(crate::acme::Challenges::default());
    let acme = acme_manager(&cfg, &challenges, opened.certs.as_ref(), &metrics);
    let proxy = DimeProxy {
        state: state.clone(),
        settings: proxy_settings(&cfg),
        cache: cache.clone(),
        keys: opened.keys,
        challenges,
        fleet: opened.fleet,
        peer_listener: false,
    };
    if let Some(fleet) = &cfg.fleet {
        server.add_service(peer_service(&cfg, &conf, fleet.listen, DimeProxy { peer_listener: true, ..proxy.clone() }));
    }
    server.add_service(http_service(&cfg, &conf, proxy, opened.certs.as_ref())?);
    for (name, address) in &cfg.tcp {
        let mut service =
            Service::new(format!("dime tcp {name}"), TcpProxy::new(name.clone(), state.clone(), cfg.tcp_drain_timeout));
        service.add_tcp(&address.to_string());
        server.add_service(service);
    }
    let history = Arc::new(crate::admin::status::History::default());
    for service in admin_services(&cfg, &state, &cache, opened.admin_tokens, &history) {
        server.add_service(service);
    }
    if let Some(feed) = purge_feed(&source, &state, &cache) {
        server.add_service(background_service("purges", feed));
    }
    server.add_service(background_service("routes", source));
    if let Some(store) = opened.certs {
        server.add_service(background_service("tls certificates", crate::tls::Reloader(store)));
    }
    if let Some(manager) = acme {
        server.add_service(background_service("acme", manager));
    }
    let sampler = crate::admin::status::Sampler { history, metrics: state.metrics.clone() };
    server.add_service(background_service("status history", sampler));
    server.add_service(background_service("upstream upkeep", Upkeep { state }));
    server.add_service(background_service("drain", Drain { metrics, bound: cfg.shutdown_timeout }));
    tracing::info!(http = ?cfg.http, https = ?cfg.https, tcp = ?cfg.tcp, admin = %cfg.admin, threads = cfg.threads, "dime-edge starting");
    server.run_forever();
}
