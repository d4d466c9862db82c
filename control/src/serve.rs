//! The HTTP API edges pull from: `GET /v1/routes` (ETag, If-None-Match → 304, long-poll `?wait=30s`, bearer
//! tokens), `GET /v1/edges`, the purge endpoints of [`crate::purge::api`], `/healthz`, `/readyz`, `/metrics`. An axum [`app`] (routing and extractors; tested without a socket),
//! served over plain TCP or TLS by [`serve`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

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
    /// Edge tokens: the route table, the edges' view and the purge feed.
    pub tokens: Vec<String>,
    /// Purge tokens (`--purge-token-file`): `POST /v1/purge` and `GET /v1/purge/ID` only. Empty: purging is off.
    pub purge_tokens: Vec<String>,
    pub metrics: Metrics,
    pub status: Mutex<Status>,
    /// The fleet's Leases, once the API client exists (`None` in tests of the API alone).
    pub fleet: std::sync::OnceLock<Arc<crate::fleet::Fleet>>,
    /// The purge log, once the API client exists.
    pub purges: std::sync::OnceLock<Arc<crate::purge::Log>>,
    /// The edges' purge acknowledgements as this replica saw them.
    pub acks: crate::purge::acks::Acks,
    /// Bumped whenever the Leases or the purge log change (purge waits look again).
    pub edges_seen: watch::Sender<u64>,
    published: Mutex<Published>,
}

/// The compiled table (version, JSON) and the members last served with it.
#[derive(Debug, Clone, Default)]
struct Published {
    table: Option<(String, String)>,
    members: Vec<crate::fleet::Member>,
}

pub use dime_routes::clock::unix_secs_f64 as unix;

impl Shared {
    pub fn new(tokens: Vec<String>, purge_tokens: Vec<String>) -> Result<Self, prometheus::Error> {
        let (current, _) = watch::channel(None);
        Ok(Shared {
            current,
            tokens,
            purge_tokens,
            metrics: Metrics::new()?,
            status: Mutex::new(Status::default()),
            fleet: std::sync::OnceLock::new(),
            purges: std::sync::OnceLock::new(),
            acks: crate::purge::acks::Acks::default(),
            edges_seen: watch::channel(0).0,
            published: Mutex::new(Published::default()),
        })
    }

    /// The Leases or the purge log changed: the acknowledgements are read again and purge waits look again.
    pub fn purges_changed(&self) {
        let (Some(log), Some(fleet)) = (self.purges.get(), self.fleet.get()) else { return };
        let snapshot = log.snapshot();
        self.metrics.purge_log_entries.set(snapshot.entries.len() as i64);
        self.acks.learn(&snapshot, &fleet.edges(None));
        self.edges_seen.send_modify(|n| *n += 1);
    }

    /// A newly compiled table: served with the fleet's members.
    pub fn publish_table(&self, version: String, json: String) {
        self.published.lock().table = Some((version, json));
        self.serve_current();
    }

    /// The Leases changed or one may have expired: serves the table again if the members changed, and updates
    /// `dime_control_edges`.
    pub fn fleet_changed(&self) {
        let Some(fleet) = self.fleet.get() else { return };
        let members = fleet.members();
        let served = self.table_version();
        let mut counts = BTreeMap::from([("current", 0), ("stale", 0), ("refusing", 0), ("gone", 0)]);
        for e in fleet.edges(served.as_deref()) {
            *counts.entry(e.state).or_default() += 1;
        }
        for (state, n) in counts {
            self.metrics.edges.with_label_values(&[state]).set(n);
        }
        self.purges_changed();
        let mut published = self.published.lock();
        if published.members != members {
            published.members = members;
            drop(published);
            self.serve_current();
        }
    }

    /// The version of the table being served (without the fleet part of the ETag).
    pub fn table_version(&self) -> Option<String> {
        self.published.lock().table.as_ref().map(|(v, _)| v.clone())
    }

    /// The table and the members as one answer: the members in a `fleet` field of the JSON, the ETag the table's
    /// version and, with members, a hash of them (so a membership change reaches long-polls like a table edit).
    fn serve_current(&self) {
        let Published { table, members } = self.published.lock().clone();
        let Some((version, json)) = table else { return };
        let served = if members.is_empty() {
            Served { version, json: json.into() }
        } else {
            let mut value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            value["fleet"] = serde_json::json!({ "members": members });
            let text = serde_json::to_string(&members).unwrap_or_default();
            let digest = sha2::Sha256::digest(text.as_bytes());
            let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
            Served { version: format!("{version}.{hash}"), json: serde_json::to_vec(&value).unwrap_or_default().into() }
        };
        if self.current.borrow().as_ref().is_some_and(|s| s.version == served.version) {
            return;
        }
        self.current.send_replace(Some(Arc::new(served)));
    }

    fn status(&self) -> parking_lot::MutexGuard<'_, Status> {
        self.status.lock()
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

    fn readyz(&self) -> Response {
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
            let head = format!("rejected configmap {} ({:?}), {} error(s): ", r.configmap, r.reason, r.errors.len());
            text.push_str(&crate::watch::bounded_list(&head, &r.errors, READYZ_LINE_MAX));
            text.push('\n');
        }
        // Still ready: the table served is the last good one, which is what edges need.
        reply(StatusCode::OK, text)
    }
}

/// The longest `/readyz` line about one rejected ConfigMap: whole errors, then how many more.
const READYZ_LINE_MAX: usize = 4096;

/// The longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (status, body.into()).into_response()
}

/// The bearer token a request presents.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

/// An edge token, or the refusal (401; 403 for a purge token, which cannot read what edges read).
pub fn edge_refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = bearer(headers);
    if token.is_some_and(|t| dime_routes::token_accepted(&shared.tokens, t)) {
        return None;
    }
    if token.is_some_and(|t| dime_routes::token_accepted(&shared.purge_tokens, t)) {
        return Some(reply(StatusCode::FORBIDDEN, "a purge token cannot read what edges read: use an edge token\n"));
    }
    Some(reply(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n"))
}

/// `?wait=30s`, at most [`MAX_WAIT`]; absent or unreadable: no wait.
pub fn wait_of(query: Option<&str>) -> Duration {
    let wait = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "wait").map(|(_, v)| v));
    wait.and_then(|w| dime_routes::parse_duration(&w).ok()).unwrap_or(Duration::ZERO).min(MAX_WAIT)
}

fn table_response(served: &Served) -> Response {
    let mut r = reply(StatusCode::OK, served.json.clone());
    let headers = r.headers_mut();
    if let Ok(v) = format!("\"{}\"", served.version).parse() {
        headers.insert(http::header::ETAG, v);
    }
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// The API, without a socket: `app(shared).oneshot(request)` in tests.
pub fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|State(shared): State<Arc<Shared>>| async move { shared.readyz() }))
        .route("/metrics", get(metrics))
        .route("/v1/routes", get(routes))
        .route("/v1/edges", get(edges))
        .route("/v1/purge", post(crate::purge::api::submit))
        .route("/v1/purge/{id}", get(crate::purge::api::status))
        .route("/v1/purges", get(crate::purge::api::feed))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = reply(StatusCode::OK, shared.metrics.render());
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// `GET /v1/routes`: the table with its ETag; with `If-None-Match` of the current version, waits up to `?wait=`
/// for a newer one, then 304. Counted by status.
async fn routes(State(shared): State<Arc<Shared>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let r = routes_answer(&shared, &headers, wait_of(query.as_deref())).await;
    shared.metrics.requests.with_label_values(&[r.status().as_str()]).inc();
    r
}

/// `GET /v1/edges`: every edge with a Lease, what it runs and whether it refused the table served now.
async fn edges(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = edge_refusal(&shared, &headers) {
        return refusal;
    }
    let served = shared.table_version();
    let edges = shared.fleet.get().map(|f| f.edges(served.as_deref())).unwrap_or_default();
    let body = serde_json::json!({ "served_version": served, "edges": edges });
    let mut r = reply(StatusCode::OK, serde_json::to_vec_pretty(&body).unwrap_or_default());
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

async fn routes_answer(shared: &Shared, headers: &HeaderMap, wait: Duration) -> Response {
    if let Some(refusal) = edge_refusal(shared, headers) {
        return refusal;
    }
    // An edge says who it is on every poll: its Lease is renewed now and while the poll is parked.
    let heard = match (shared.fleet.get(), crate::fleet::Report::from_headers(headers)) {
        (Some(fleet), Some(report)) => {
            fleet.heard(report.clone());
            Some((fleet.clone(), report))
        }
        _ => None,
    };
    let known =
        headers.get(http::header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(|v| v.trim_matches('"').to_owned());
    let Some(served) = shared.current.borrow().clone() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "no route table yet\n");
    };
    if known.as_deref() != Some(served.version.as_str()) {
        return table_response(&served);
    }
    // Long-poll: answer when the version changes, or 304 when the wait is over.
    let mut rx = shared.current.subscribe();
    let _waiting = Waiting::new(&shared.metrics.long_polls);
    let renew_every = heard.as_ref().map_or(MAX_WAIT, |(f, _)| f.duration() / 3).max(Duration::from_millis(100));
    let changed = tokio::time::timeout(wait, async {
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        loop {
            tokio::select! {
                c = rx.changed() => {
                    if c.is_err() {
                        return None;
                    }
                    let now = rx.borrow().clone();
                    if let Some(s) = now.filter(|s| s.version != served.version) {
                        return Some(s);
                    }
                }
                _ = renew.tick() => {
                    if let Some((fleet, report)) = &heard {
                        fleet.heard(report.clone());
                    }
                }
            }
        }
    })
    .await;
    match changed {
        Ok(Some(newer)) => table_response(&newer),
        _ => reply(StatusCode::NOT_MODIFIED, Bytes::new()),
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

/// Why the API's certificate and key cannot be used: which file, and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {why}")]
    Pem { path: String, why: String },
    #[error("{path}: {error}")]
    Rustls { path: String, error: tokio_rustls::rustls::Error },
}

/// Loads a PEM certificate chain and key into a TLS acceptor for the API.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, TlsSetupError> {
    let path = |p: &std::path::Path| p.display().to_string();
    let pem = |p: &std::path::Path, why: String| TlsSetupError::Pem { path: path(p), why };
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|error| TlsSetupError::Read { path: path(p), error });
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(cert, "no certificate".into()));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| pem(key, e.to_string()))?
        .ok_or_else(|| pem(key, "no private key".into()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|error| TlsSetupError::Rustls { path: path(cert), error })?;
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
    let app = app(shared);
    loop {
        let (stream, peer) = listener.accept().await?;
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| app.clone().oneshot(req));
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const TOKEN: &str = "edge-token-0123456789";
    const PURGE_TOKEN: &str = "purge-token-0123456789";

    fn shared_with(version: Option<&str>) -> Arc<Shared> {
        let shared = Arc::new(Shared::new(vec![TOKEN.into()], vec![PURGE_TOKEN.into()]).unwrap());
        if let Some(v) = version {
            let served = Served { version: v.into(), json: Bytes::from(format!("{{\"version\":\"{v}\"}}")) };
            shared.current.send_replace(Some(Arc::new(served)));
        }
        shared
    }

    async fn call(shared: &Arc<Shared>, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let mut req = http::Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app(shared.clone()).oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_api_answers_by_path_token_and_version() {
        let bearer = format!("Bearer {TOKEN}");
        let empty = shared_with(None);
        assert_eq!(call(&empty, "/healthz", &[]).await.0, StatusCode::OK);
        assert_eq!(call(&empty, "/readyz", &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(call(&empty, "/v1/routes", &[("authorization", &bearer)]).await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(call(&empty, "/nothing", &[]).await.0, StatusCode::NOT_FOUND);

        let shared = shared_with(Some("v1"));
        assert_eq!(call(&shared, "/v1/routes", &[]).await.0, StatusCode::UNAUTHORIZED);
        let wrong = [("authorization", "Bearer not-the-token-at-all")];
        assert_eq!(call(&shared, "/v1/routes", &wrong).await.0, StatusCode::UNAUTHORIZED);
        let (status, headers, body) = call(&shared, "/v1/routes", &[("authorization", &bearer)]).await;
        assert_eq!((status, headers["etag"].to_str().unwrap()), (StatusCode::OK, "\"v1\""));
        assert_eq!(body, "{\"version\":\"v1\"}");
        let known = [("authorization", bearer.as_str()), ("if-none-match", "\"v1\"")];
        assert_eq!(call(&shared, "/v1/routes?wait=0s", &known).await.0, StatusCode::NOT_MODIFIED);
        let (_, _, ready) = call(&shared, "/readyz", &[]).await;
        assert!(ready.starts_with("ready: serving route table v1"), "{ready}");
        let (_, _, metrics) = call(&shared, "/metrics", &[]).await;
        assert!(metrics.contains("dime_control_"), "{}", &metrics[..metrics.len().min(200)]);
    }

    #[tokio::test]
    async fn a_long_poll_answers_when_the_version_changes() {
        let shared = shared_with(Some("v1"));
        let bearer = format!("Bearer {TOKEN}");
        let waiting = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let known = [("authorization", bearer.as_str()), ("if-none-match", "\"v1\"")];
                call(&shared, "/v1/routes?wait=30s", &known).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let served = Served { version: "v2".into(), json: Bytes::from_static(b"{}") };
        shared.current.send_replace(Some(Arc::new(served)));
        let (status, headers, _) = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!((status, headers["etag"].to_str().unwrap()), (StatusCode::OK, "\"v2\""));
    }

    #[test]
    fn waits_are_bounded_and_lenient() {
        assert_eq!(wait_of(Some("wait=30s")), Duration::from_secs(30));
        assert_eq!(wait_of(Some("a=1&wait=10m")), MAX_WAIT);
        assert_eq!(wait_of(Some("wait=soon")), Duration::ZERO);
        assert_eq!(wait_of(None), Duration::ZERO);
    }
}
