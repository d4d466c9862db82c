//! The HTTP API edges pull from: `GET /v1/routes` (ETag, If-None-Match → 304, long-poll `?wait=30s`, bearer
//! tokens), `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The table being served, rendered once per version.
#[derive(Debug)]
pub struct Served {
    pub version: String,
    pub json: Bytes,
}

#[derive(Debug)]
pub struct Shared {
    pub current: watch::Sender<Option<Arc<Served>>>,
    pub tokens: Vec<String>,
}

/// The longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|p| shared.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), p.trim().as_bytes())))
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
        "/readyz" => match current {
            Some(s) => reply(StatusCode::OK, format!("ready: route table {}\n", s.version)),
            None => reply(StatusCode::SERVICE_UNAVAILABLE, "not ready: first sync with the Kubernetes API not done\n"),
        },
        "/v1/routes" => {
            if !authorized(&shared, &req) {
                return Ok(reply(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n"));
            }
            let known = req
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_matches('"').to_owned());
            let Some(served) = current else {
                return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, "no route table yet\n"));
            };
            if known.as_deref() != Some(served.version.as_str()) {
                return Ok(table_response(&served));
            }
            // Long-poll: answer when the version changes, or 304 when the wait is over.
            let mut rx = shared.current.subscribe();
            let changed = tokio::time::timeout(wait_of(&req), async {
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
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Serves until the process ends.
pub async fn serve(listen: SocketAddr, shared: Arc<Shared>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /v1/routes");
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
