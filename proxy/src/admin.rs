//! The admin listener: `/` (the status page, [`status`]), `/metrics`, `/healthz`, `/readyz`, `/config`.
//! Loopback by default.

pub mod status;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::cache::select::Selector;
use crate::cache::Cache;
use crate::state::{unix, State};

#[derive(Debug)]
pub struct Admin {
    pub state: Arc<State>,
    pub cache: Arc<Cache>,
    /// Accepted bearer tokens for purge and `/config`; empty disables purge (and leaves `/config` open on the
    /// loopback-only admin listener).
    pub tokens: Vec<String>,
    /// Serve `/metrics`, `/healthz` and `/readyz` only (the `--metrics` listener for Prometheus).
    pub metrics_only: bool,
    /// The status page's chart data, sampled by [`status::Sampler`].
    pub history: Arc<status::History>,
}

/// An admin request, as far as the handlers care.
#[derive(Debug, Default)]
pub struct AdminRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// What is wrong with a purge request's query.
#[derive(Debug, thiserror::Error)]
enum BadPurge {
    #[error("give one of ?url=URL, ?host=HOST[&prefix=/path/], ?tag=TAG (and soft=1 to mark stale)")]
    NotOne,
    #[error("soft is 1 or 0, not `{0}`")]
    Soft(String),
    #[error("url: {0}")]
    Url(#[from] crate::purge::BadUrl),
    #[error("prefix `{0}` does not start with /")]
    Prefix(String),
    #[error("prefix `{prefix}`: {error}")]
    PrefixPath { prefix: String, error: dime_routes::purge::PurgePathError },
    #[error("a tag is 1 to {} bytes", dime_routes::purge::MAX_TAG_LEN)]
    Tag,
}

/// A query parameter, decoded as a form (`%XX` and `+`) by `form_urlencoded`.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
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
    pub fn handle(&self, req: &AdminRequest<'_>) -> Response<Vec<u8>> {
        if self.metrics_only && !matches!(req.path, "/metrics" | "/healthz" | "/readyz") {
            return reply(StatusCode::NOT_FOUND, "text/plain", b"not found: this listener serves /metrics\n".to_vec());
        }
        if req.path == "/purge" {
            return self.purge(req);
        }
        if matches!(req.path, "/config" | "/") && !self.tokens.is_empty() {
            if let Some(mut resp) = self.refusal(req, true) {
                if req.path == "/" {
                    // A browser asks for the token (as the password) instead of showing the refusal.
                    let ask = http::HeaderValue::from_static("Basic realm=\"dime-edge admin\", charset=\"UTF-8\"");
                    resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, ask);
                }
                return resp;
            }
        }
        match req.path {
            "/metrics" => {
                if let Some(active) = self.state.current() {
                    let age = SystemTime::now().duration_since(active.applied_at).unwrap_or_default();
                    self.state.metrics.config.age.set(age.as_secs_f64());
                }
                let dropped = crate::logging::dropped_lines() as u64;
                let counted = &self.state.metrics.process.log_lines_dropped;
                counted.inc_by(dropped.saturating_sub(counted.get()));
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
            "/" => {
                let mut resp = reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    status::render(&self.state, &self.history).into_bytes(),
                );
                resp.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
                resp
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"not found: try /, /metrics, /healthz, /readyz, /config\n".to_vec(),
            ),
        }
    }

    /// Checks the token, given as `Authorization: Bearer TOKEN` or, from a browser, as the password of HTTP Basic
    /// authentication (any user name): the refusal to send (401 without one, 403 with a wrong one), or `None`.
    /// A request that changes something ([`Self::purge`]) takes the bearer token only: a browser sends a Basic
    /// password it remembers with any request, also one a cross-site form makes, but never a bearer token.
    fn refusal(&self, req: &AdminRequest<'_>, basic_allowed: bool) -> Option<Response<Vec<u8>>> {
        let json = |status, v: serde_json::Value| reply(status, "application/json", v.to_string().into_bytes());
        let basic = req.authorization.and_then(|a| a.strip_prefix("Basic ")).and_then(|b| {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            text.split_once(':').map(|(_, password)| password.to_owned())
        });
        let bearer = req.authorization.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
        if bearer.is_none() && basic.is_some() && !basic_allowed {
            tracing::warn!(path = req.path, "admin request refused: a Basic password cannot change anything");
            let why = "this request changes the cache: it takes `Authorization: Bearer <token>`, not a browser's Basic password (a cross-site form could send that)";
            return Some(json(StatusCode::UNAUTHORIZED, serde_json::json!({ "error": why })));
        }
        let presented = bearer.or(basic.as_deref());
        let Some(presented) = presented else {
            return Some(json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "missing `Authorization: Bearer <token>`"}),
            ));
        };
        if !dime_routes::token_accepted(&self.tokens, presented) {
            tracing::warn!(path = req.path, "admin request refused: wrong token");
            return Some(json(StatusCode::FORBIDDEN, serde_json::json!({"error": "wrong token"})));
        }
        None
    }

    /// `POST /purge?url=URL` removes one object (every variant of it); `POST /purge?host=HOST&prefix=/path/`
    /// removes every object of a host under a path prefix; either path is read as a request's is (`/a/../b` is
    /// `/b`; one that does not read is refused, 400). Bearer token required.
    fn purge(&self, req: &AdminRequest<'_>) -> Response<Vec<u8>> {
        let json = |status, v: serde_json::Value| reply(status, "application/json", v.to_string().into_bytes());
        if req.method != "POST" {
            return json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"error": "use POST"}));
        }
        if self.tokens.is_empty() {
            return json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "purge is disabled: start the edge with --admin-token-file"}),
            );
        }
        if let Some(resp) = self.refusal(req, false) {
            return resp;
        }
        let (what, soft) = match self.purge_target(req.query) {
            Ok(target) => target,
            Err(error) => return json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": error.to_string() })),
        };
        let (purged, fills) = crate::purge::purge_one(&self.state, &self.cache, &what, soft);
        tracing::info!(kind = what.label(), target = ?what, soft, purged, fills_abandoned = fills, "cache purge");
        json(StatusCode::OK, serde_json::json!({"purged": purged, "fills_abandoned": fills, "soft": soft}))
    }

    /// What a purge request's query names: `url=URL`, `host=HOST[&prefix=/path/]` or `tag=TAG` (one of them),
    /// and `soft=1` to make the objects stale instead of removing them.
    fn purge_target(&self, query: Option<&str>) -> Result<(Selector, bool), BadPurge> {
        let soft = match query_param(query, "soft").as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => return Err(BadPurge::Soft(other.to_owned())),
        };
        let given = ["url", "host", "tag"].iter().filter(|p| query_param(query, p).is_some()).count();
        if given != 1 {
            return Err(BadPurge::NotOne);
        }
        if let Some(url) = query_param(query, "url") {
            return Ok((crate::purge::url_selector(&self.state, &url)?, soft));
        }
        if let Some(host) = query_param(query, "host") {
            let prefix = query_param(query, "prefix").unwrap_or_else(|| "/".into());
            if !prefix.starts_with('/') {
                return Err(BadPurge::Prefix(prefix));
            }
            let what = crate::purge::prefix_selector(&host, &prefix)
                .map_err(|error| BadPurge::PrefixPath { prefix: prefix.clone(), error })?;
            return Ok((what, soft));
        }
        let tag = query_param(query, "tag").unwrap_or_default();
        if tag.is_empty() || tag.len() > dime_routes::purge::MAX_TAG_LEN {
            return Err(BadPurge::Tag);
        }
        Ok((Selector::Tag(tag), soft))
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
                "table": a.table.redacted_document(),
            })),
            "last_rejected": self.state.last_rejected(),
            "control": self.state.sync_status().map(|s| serde_json::json!({
                "url": s.control,
                "last_success_unix": s.last_success.map(unix),
                "last_error": s.last_error,
                "failovers": s.failovers,
            })),
        });
        serde_json::to_vec_pretty(&body).unwrap_or_default()
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let authorization = req.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let request =
            AdminRequest { method: req.method.as_str(), path: req.uri.path(), query: req.uri.query(), authorization };
        self.handle(&request)
    }
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_parameters_are_form_decoded() {
        let q = Some("url=http%3A%2F%2Fv.test%2Fa%20b.ts&host=v.test&prefix=%2Fhls%2F&x=1+2");
        assert_eq!(query_param(q, "url").as_deref(), Some("http://v.test/a b.ts"));
        assert_eq!(query_param(q, "prefix").as_deref(), Some("/hls/"));
        assert_eq!(query_param(q, "x").as_deref(), Some("1 2"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "url"), None);
    }
}
