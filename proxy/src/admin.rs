//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/config`. Loopback by default.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::state::{unix, State};

#[derive(Debug)]
pub struct Admin {
    pub state: Arc<State>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    resp
}

impl Admin {
    /// Answers one admin request; separate from the socket so tests call it directly.
    pub fn handle(&self, path: &str) -> Response<Vec<u8>> {
        match path {
            "/metrics" => {
                if let Some(active) = self.state.current() {
                    let age = SystemTime::now().duration_since(active.applied_at).unwrap_or_default();
                    self.state.metrics.config_age.set(age.as_secs_f64());
                }
                reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", self.state.metrics.render())
            }
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => match self.state.current() {
                Some(a) => reply(
                    StatusCode::OK,
                    "text/plain",
                    format!("ready: route table {}\n", a.table.version()).into_bytes(),
                ),
                None => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    b"not ready: no route table applied yet\n".to_vec(),
                ),
            },
            "/config" => reply(StatusCode::OK, "application/json", self.config_json()),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"not found: try /metrics, /healthz, /readyz, /config\n".to_vec(),
            ),
        }
    }

    fn config_json(&self) -> Vec<u8> {
        let active = self.state.current();
        let body = serde_json::json!({
            "active": active.as_ref().map(|a| serde_json::json!({
                "version": a.table.version(),
                "source": a.source,
                "applied_at_unix": unix(a.applied_at),
                "age_seconds": SystemTime::now().duration_since(a.applied_at).unwrap_or_default().as_secs_f64(),
                "routes": a.table.routes().len(),
                "upstreams": a.pools.values().map(|p| serde_json::json!({
                    "name": p.name(),
                    "addresses": p.endpoints().list.iter().map(|e| serde_json::json!({
                        "address": e.addr.to_string(),
                        "server": p.spec.servers[e.server].authority(),
                        "weight": e.weight,
                        "healthy": e.is_healthy(),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "table": a.table.document(),
            })),
            "last_rejected": self.state.last_rejected(),
        });
        serde_json::to_vec_pretty(&body).unwrap_or_default()
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        self.handle(&path)
    }
}
