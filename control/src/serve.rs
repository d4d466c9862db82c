//! Control's HTTP API, the one edges and operators talk to: [`wire::ROUTES`] (ETag, If-None-Match → 304,
//! long-poll `?wait=30s`), [`wire::EDGES`], the purge endpoints of [`crate::purge::api`], `/healthz`, `/readyz`,
//! `/metrics`. An axum [`app`] (routing and extractors; tested without a socket), served over plain TCP or TLS by
//! [`serve`], which bounds what an unauthenticated client can hold (a header timeout, a connection cap) and
//! outlives accept errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use dime_routes::wire::{self, Etag, WaitQuery};
use http::{HeaderMap, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::api::{json, ApiError, EdgeToken, Query};
use crate::state::{Served, Shared};

/// The API, without a socket: `app(shared).oneshot(request)` in tests.
pub fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(wire::ROUTES, get(routes))
        .route(wire::EDGES, get(edges))
        .route(wire::PURGE, post(crate::purge::api::submit))
        .route(&format!("{}/{{id}}", wire::PURGE), get(crate::purge::api::status))
        .route(wire::PURGES, get(crate::purge::api::feed))
        .fallback(|| async { ApiError::NotFound("not found".into()) })
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.readiness() {
        Some(text) => (StatusCode::OK, text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not ready: first sync with the Kubernetes API not done\n")
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = (StatusCode::OK, shared.metrics.render()).into_response();
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

fn table_response(served: &Served) -> Response {
    let mut r = (StatusCode::OK, served.json.clone()).into_response();
    let headers = r.headers_mut();
    if let Ok(v) = served.etag.header().parse() {
        headers.insert(http::header::ETAG, v);
    }
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// `GET /v1/routes`: the table with its ETag; with `If-None-Match` of the current version, waits up to `?wait=`
/// for a newer one, then 304. Counted by status.
async fn routes(
    State(shared): State<Arc<Shared>>,
    auth: Result<EdgeToken, ApiError>,
    query: Result<Query<WaitQuery>, ApiError>,
    headers: HeaderMap,
) -> Response {
    let r = match (auth, query) {
        (Err(e), _) | (_, Err(e)) => e.into_response(),
        (Ok(EdgeToken { report, .. }), Ok(Query(q))) => {
            routes_answer(&shared, report, &headers, q.wait.duration()).await
        }
    };
    shared.metrics.api.requests(r.status()).inc();
    r
}

/// `GET /v1/edges`: every edge with a Lease, what it runs and whether it refused the table served now.
async fn edges(State(shared): State<Arc<Shared>>, _: EdgeToken) -> Response {
    let served_version = shared.table_version();
    let edges = shared.fleet.get().map(|f| f.edges(served_version.as_deref())).unwrap_or_default();
    json(StatusCode::OK, &wire::EdgesAnswer { served_version, edges })
}

async fn routes_answer(shared: &Shared, report: Option<wire::Report>, headers: &HeaderMap, wait: Duration) -> Response {
    // An edge says who it is on every poll (checked against its credential): its Lease is renewed now and while
    // the poll is parked.
    let heard = match (shared.fleet.get(), report) {
        (Some(fleet), Some(report)) => {
            fleet.heard(report.clone());
            Some((fleet.clone(), report))
        }
        _ => None,
    };
    let known = headers.get(http::header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(Etag::parse);
    let Some(served) = shared.current.borrow().clone() else {
        return ApiError::Unavailable("no route table yet".into()).into_response();
    };
    if known.as_ref() != Some(&served.etag) {
        return table_response(&served);
    }
    // Long-poll: answer when the version changes, or 304 when the wait is over.
    let mut rx = shared.current.subscribe();
    let _waiting = Waiting::new(&shared.metrics.api.long_polls);
    let renew_every = heard.as_ref().map_or(wire::MAX_WAIT, |(f, _)| f.duration() / 3).max(Duration::from_millis(100));
    let changed = tokio::time::timeout(wait, async {
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        loop {
            tokio::select! {
                c = rx.changed() => {
                    if c.is_err() {
                        return None;
                    }
                    let now = rx.borrow().clone();
                    if let Some(s) = now.filter(|s| s.etag != served.etag) {
                        return Some(s);
                    }
                }
                _ = renew.tick() => {
                    // Renewed only while the edge still has a credential: a revoked one is not kept alive by a
                    // poll parked before it was revoked.
                    if let Some((fleet, report)) = heard.as_ref().filter(|(_, r)| shared.credentials.knows(&r.name)) {
                        fleet.heard(report.clone());
                    }
                }
            }
        }
    })
    .await;
    match changed {
        Ok(Some(newer)) => table_response(&newer),
        _ => (StatusCode::NOT_MODIFIED, Bytes::new()).into_response(),
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

/// What a client may hold before it has said anything: the bounds of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// For the TLS handshake, then for each request header (also the wait for the next request on a kept-alive
    /// connection), and for each write the client leaves unread.
    pub header_timeout: Duration,
    /// Connections open at once; past it a new one is closed at once (an edge fails over to the next control).
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits { header_timeout: Duration::from_secs(15), max_connections: 10_000 }
    }
}

/// After a failed accept (out of descriptors, a connection reset before it was taken): the first pause, doubled
/// up to the last while accepts keep failing.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Serves until the process ends; over TLS when `tls` is given. Only binding the listener fails it.
pub async fn serve(
    listen: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ClientLimits,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, tls = tls.is_some(), max_connections = limits.max_connections, "serving /v1/routes");
    let metrics = shared.clone();
    let app = app(shared);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut pause = ACCEPT_BACKOFF.0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                pause = ACCEPT_BACKOFF.0;
                accepted
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ECONNABORTED: the listener is fine; wait for the cause to pass.
                metrics.metrics.api.accept_errors.inc();
                tracing::warn!(error = %e, pause = ?pause, "accept failed; accepting again after a pause");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics.metrics.api.connections_refused.inc();
            tracing::debug!(%peer, limit = limits.max_connections, "connection refused: at --max-connections");
            drop(stream);
            continue;
        };
        tokio::spawn(connection(stream, peer, app.clone(), tls.clone(), limits.header_timeout, permit));
    }
}

/// One client connection: TLS if configured, then HTTP/1.1 requests. The handshake and each request header
/// must each be done within `header_timeout`, and a write that the client does not read for as long fails the
/// connection (a client that asks and never reads holds no slot).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    _open: OwnedSemaphorePermit,
) {
    let svc = hyper::service::service_fn(move |req| app.clone().oneshot(req));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let mut bounded = tokio_io_timeout::TimeoutStream::new(stream);
    bounded.set_write_timeout(Some(header_timeout));
    let bounded = Box::pin(bounded);
    let Some(acceptor) = tls else {
        let _ = http.serve_connection(TokioIo::new(bounded), svc).await;
        return;
    };
    match tokio::time::timeout(header_timeout, acceptor.accept(bounded)).await {
        Ok(Ok(s)) => drop(http.serve_connection(TokioIo::new(s), svc).await),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not done within the header timeout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const TOKEN: &str = "edge-token-0123456789";
    const PURGE_TOKEN: &str = "purge-token-0123456789";
    /// Edge `edge-a`'s own credential.
    const EDGE_A: &str = "edge-a-credential-0123456789";

    fn shared_with(version: Option<&str>) -> Arc<Shared> {
        let shared = Arc::new(Shared::new(vec![TOKEN.into()], vec![PURGE_TOKEN.into()]).unwrap());
        let hash = crate::credentials::hash(EDGE_A);
        shared.credentials.set(std::collections::HashMap::from([(hash, "edge-a".to_owned())]));
        if let Some(v) = version {
            let served = Served { etag: Etag::parse(v), json: Bytes::from(format!("{{\"version\":\"{v}\"}}")) };
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
    async fn an_edge_speaks_only_for_the_name_its_credential_is_bound_to() {
        let shared = shared_with(Some("v1"));
        let a = format!("Bearer {EDGE_A}");
        let as_edge = |name: &'static str| [("authorization", a.clone()), ("x-dime-edge", name.to_owned())];
        let get = |headers: [(&'static str, String); 2]| {
            let shared = shared.clone();
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                call(&shared, "/v1/routes", &h).await
            }
        };
        assert_eq!(get(as_edge("edge-a")).await.0, StatusCode::OK);
        let (status, _, body) = get(as_edge("edge-b")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("edge `edge-a`") && body.contains("`edge-b`"), "names both: {body}");
        for folded in ["EDGE-A", "edge_a", "edge.a"] {
            let (status, _, body) = get(as_edge(folded)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{folded} is refused, not folded onto edge-a: {body}");
        }
        // The old shared token still reads, and is counted; what it says of an edge is not taken (the Lease side
        // is control/tests/fleet.rs, on a real kube-apiserver).
        let shared_token = [("authorization", format!("Bearer {TOKEN}")), ("x-dime-edge", "edge-a".to_owned())];
        assert_eq!(get(shared_token).await.0, StatusCode::OK);
        let (_, _, metrics) = call(&shared, "/metrics", &[]).await;
        for line in [
            "dime_control_identity_refusals_total{reason=\"another-edge\"} 1",
            "dime_control_identity_refusals_total{reason=\"bad-name\"} 3",
            "dime_control_shared_token_requests_total 1",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
        }
        // Before the credentials are read, an unknown token may be an edge's: 503, not 401.
        let fresh = Arc::new(Shared::new(vec![], vec![]).unwrap());
        let (status, _, body) = call(&fresh, "/v1/routes", &[("authorization", &a)]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
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
        let served = Served { etag: Etag::parse("v2"), json: Bytes::from_static(b"{}") };
        shared.current.send_replace(Some(Arc::new(served)));
        let (status, headers, _) = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!((status, headers["etag"].to_str().unwrap()), (StatusCode::OK, "\"v2\""));
    }

    /// A listener on an ephemeral port with `limits`, and its address.
    async fn listening(shared: Arc<Shared>, limits: ClientLimits) -> SocketAddr {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        tokio::spawn(serve(addr, shared, None, limits));
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                return addr;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the API never listened on {addr}");
    }

    /// Reads until the server closes the connection (Ok) or `within` passes (Err).
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let read = tokio::time::timeout(within, async {
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        read.map(|()| got.clone()).map_err(|_| got.clone())
    }

    #[tokio::test]
    async fn a_client_that_sends_no_whole_header_is_closed_after_the_header_timeout() {
        let limits = ClientLimits { header_timeout: Duration::from_millis(300), max_connections: 10 };
        let addr = listening(shared_with(Some("v1")), limits).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await.is_ok(), "a silent client is closed");
        let mut slow = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut slow, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await.is_ok(), "half a header is closed");
        // A client that does send its header in time is answered.
        let mut quick = TcpStream::connect(addr).await.unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut quick, request).await.unwrap();
        let answer = closed_within(&mut quick, Duration::from_secs(5)).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test]
    async fn past_max_connections_a_new_connection_is_closed_and_counted_and_the_rest_are_served() {
        let shared = shared_with(Some("v1"));
        let limits = ClientLimits { header_timeout: Duration::from_secs(30), max_connections: 2 };
        let addr = listening(shared.clone(), limits).await;
        // `listening` probed with connections of its own: wait until they are gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = [TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let refused = closed_within(&mut third, Duration::from_secs(5)).await;
        assert_eq!(refused, Ok(vec![]), "closed at once, without an answer");
        assert!(shared.metrics.api.connections_refused.get() >= 1);
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = TcpStream::connect(addr).await.unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut next, request).await.unwrap();
        let answer = closed_within(&mut next, Duration::from_secs(5)).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }
}
