//! The HTTP API edges pull from: `GET /v1/routes` (ETag, If-None-Match → 304, long-poll `?wait=30s`, bearer
//! tokens), `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::compile::Rejection;
use crate::metrics::Metrics;

/// The table being served, rendered once per version.
#[derive(Debug)]
pub struct Served {
    pub version: String,
    pub json: Bytes,
}

/// How the link to the Kubernetes API and the last compilation went, for `/readyz` and logs.
#[derive(Debug, Default)]
pub struct Status {
    /// Since when, and why, the watches fail (None: they work).
    pub api_error: Option<(SystemTime, String)>,
    pub rejected: Vec<Rejection>,
}

#[derive(Debug)]
pub struct Shared {
    pub current: watch::Sender<Option<Arc<Served>>>,
    pub tokens: Vec<String>,
    pub metrics: Metrics,
    pub status: Mutex<Status>,
}

pub fn unix(t: SystemTime) -> f64 {
    dime_routes::clock::unix_secs_f64(t)
}

impl Shared {
    pub fn new(tokens: Vec<String>) -> Result<Self, prometheus::Error> {
        let (current, _) = watch::channel(None);
        Ok(Shared { current, tokens, metrics: Metrics::new()?, status: Mutex::new(Status::default()) })
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A watch event arrived: the API is reachable.
    pub fn api_ok(&self) {
        let mut status = self.status();
        if let Some((since, _)) = status.api_error.take() {
            let down = SystemTime::now().duration_since(since).unwrap_or_default();
            tracing::info!(down_for = ?down, "Kubernetes API reachable again");
        }
        self.metrics.api_up.set(1);
    }

    /// A watch failed: the last table keeps being served, and that is said.
    pub fn api_error(&self, error: &str) {
        self.metrics.watch_errors.inc();
        self.metrics.api_up.set(0);
        let serving = self.current.borrow().as_ref().map(|s| s.version.clone()).unwrap_or_else(|| "none".into());
        tracing::warn!(error, serving_version = %serving, "Kubernetes watch failed; the last compiled table keeps serving");
        let mut status = self.status();
        let since = status.api_error.as_ref().map_or_else(SystemTime::now, |(t, _)| *t);
        status.api_error = Some((since, error.to_owned()));
    }

    pub fn set_rejected(&self, rejected: Vec<Rejection>) {
        self.status().rejected = rejected;
    }

    fn readyz(&self) -> Response<Full<Bytes>> {
        let Some(served) = self.current.borrow().clone() else {
            return reply(StatusCode::SERVICE_UNAVAILABLE, "not ready: first sync with the Kubernetes API not done\n");
        };
        let status = self.status();
        let mut text = format!("ready: serving route table {}\n", served.version);
        match &status.api_error {
            None => text.push_str("kubernetes api: ok\n"),
            Some((since, e)) => {
                let ago = SystemTime::now().duration_since(*since).unwrap_or_default().as_secs();
                text.push_str(&format!(
                    "kubernetes api: unreachable for {ago}s ({e}); serving the last table compiled before\n"
                ));
            }
        }
        for r in &status.rejected {
            text.push_str(&format!("rejected configmap {} ({:?}): {}\n", r.configmap, r.reason, r.errors.join("; ")));
        }
        // Still ready: the table served is the last good one, which is what edges need.
        reply(StatusCode::OK, text)
    }
}

/// The longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|p| dime_routes::token_accepted(&shared.tokens, p.trim()))
}

fn wait_of(req: &Request<Incoming>) -> Duration {
    req.uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("wait=")))
        .and_then(|w| dime_routes::parse_duration(w).ok())
        .unwrap_or(Duration::ZERO)
        .min(MAX_WAIT)
}

fn table_response(served: &Served) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::OK, served.json.clone());
    let headers = r.headers_mut();
    if let Ok(v) = format!("\"{}\"", served.version).parse() {
        headers.insert(http::header::ETAG, v);
    }
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let current = shared.current.borrow().clone();
    Ok(match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "ok\n"),
        "/readyz" => shared.readyz(),
        "/metrics" => {
            let mut r = reply(StatusCode::OK, shared.metrics.render());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/v1/routes" => {
            let r = routes(&shared, &req, current).await;
            shared.metrics.requests.with_label_values(&[r.status().as_str()]).inc();
            r
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    })
}

async fn routes(shared: &Shared, req: &Request<Incoming>, current: Option<Arc<Served>>) -> Response<Full<Bytes>> {
    {
        if !authorized(shared, req) {
            return reply(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        }
        let known = req
            .headers()
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let Some(served) = current else {
            return reply(StatusCode::SERVICE_UNAVAILABLE, "no route table yet\n");
        };
        if known.as_deref() != Some(served.version.as_str()) {
            return table_response(&served);
        }
        // Long-poll: answer when the version changes, or 304 when the wait is over.
        let mut rx = shared.current.subscribe();
        let _waiting = Waiting::new(&shared.metrics.long_polls);
        let changed = tokio::time::timeout(wait_of(req), async {
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                let now = rx.borrow().clone();
                if let Some(s) = now.filter(|s| s.version != served.version) {
                    return Some(s);
                }
            }
        })
        .await;
        match changed {
            Ok(Some(newer)) => table_response(&newer),
            _ => reply(StatusCode::NOT_MODIFIED, Bytes::new()),
        }
    }
}

/// Counts a long-poll for as long as it waits (also when the client goes away and the future is dropped).
struct Waiting<'a>(&'a prometheus::IntGauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves until the process ends.
/// Loads a PEM certificate chain and key into a TLS acceptor for the API.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves until the process ends; over TLS when `tls` is given.
pub async fn serve(
    listen: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, tls = tls.is_some(), "serving /v1/routes");
    loop {
        let (stream, peer) = listener.accept().await?;
        let (shared, tls) = (shared.clone(), tls.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => drop(http.serve_connection(TokioIo::new(stream), svc).await),
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => drop(http.serve_connection(TokioIo::new(s), svc).await),
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
}
