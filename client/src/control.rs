//! The calls to dime-control, typed by [`dime_routes::wire`]: the route table's long-poll, the purge feed's,
//! and a purge. Every failure says what failed ([`Reason`], the edge's metric label) and where.

use std::time::Duration;

use bytes::Bytes;
use dime_routes::wire::{self, Etag, Feed, FeedQuery, Problem, Purge, PurgeStatus, Report, WaitQuery};
use http::StatusCode;

/// On top of a long-poll's wait: how long the rest of the exchange may take (connect, TLS, the answer).
pub const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// On top of a purge's wait: control appends the purge to its log in Kubernetes first, which may take long
/// under load; giving up early would report a purge as not taken that was.
pub const PURGE_SLACK: Duration = Duration::from_secs(60);
/// The most of a refusal's body read (control's [`Problem`] is a line or a list of located errors).
pub const MAX_PROBLEM: usize = 64 << 10;
/// The largest route table accepted (a cap against a confused or hostile server).
pub const MAX_TABLE: usize = 64 << 20;
/// The largest feed or purge answer accepted (control's log is bounded well under this).
pub const MAX_ANSWER: usize = 8 << 20;

/// One control endpoint, `http(s)://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUrl {
    /// As given, without a trailing `/`: how logs and metrics name it.
    pub text: String,
    /// `host:port`, the port filled in.
    pub authority: String,
    /// The path the API is under (`""` or `/prefix`).
    pub prefix: String,
    pub https: bool,
}

impl ControlUrl {
    pub fn parse(text: &str) -> Result<Self, dime_routes::Invalid> {
        let (rest, https) = match text.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some(("https", rest)) => (rest, true),
            _ => {
                return Err(format!(
                    "`{text}`: expected http(s)://HOST:PORT, e.g. https://dime-control.example.com:8443"
                )
                .into())
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!("`{text}`: expected http://HOST:PORT[/PATH] without credentials or query").into());
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
        let default_port = if https { 443 } else { 80 };
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:{default_port}") };
        Ok(ControlUrl { text: text.trim_end_matches('/').to_owned(), authority, prefix: path.to_owned(), https })
    }

    /// The URL of an API path (`/v1/routes`) under this endpoint.
    pub fn join(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority, self.prefix)
    }
}

/// What failed in a call, as the edge's `dime_routes_fetch_failures_total{reason}` and
/// `dime_purge_feed_failures_total{reason}` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Connect,
    Tls,
    Timeout,
    /// Control refused the token (401/403).
    Unauthorized,
    /// Another status than the call expects.
    Status,
    /// The answer broke off, was too large or did not read.
    Body,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Timeout => "timeout",
            Reason::Unauthorized => "unauthorized",
            Reason::Status => "status",
            Reason::Body => "body",
        }
    }
}

/// A call that did not give its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub reason: Reason,
    pub message: String,
    /// The status control answered, when it answered one.
    pub status: Option<StatusCode>,
}

fn fail(reason: Reason, message: impl Into<String>) -> CallError {
    CallError { reason, message: message.into(), status: None }
}

/// What went wrong in the transport, told apart: a TLS failure hides under reqwest's connect errors.
fn transport(url: &ControlUrl, e: &reqwest::Error) -> CallError {
    let tls = caused_by_tls(e);
    let chain = error_chain(e);
    // A connect that timed out counts as `connect` (as a refused one does): `timeout` is an answer that did not
    // come on a connection made.
    if tls {
        fail(Reason::Tls, format!("TLS with {}: {chain}", url.authority))
    } else if e.is_connect() {
        fail(Reason::Connect, format!("connect to {}: {chain}", url.authority))
    } else if e.is_timeout() {
        fail(Reason::Timeout, format!("{}: no answer in time ({chain})", url.authority))
    } else if e.is_body() || e.is_decode() {
        fail(Reason::Body, format!("reading the answer of {}: {chain}", url.authority))
    } else {
        fail(Reason::Connect, format!("{}: {chain}", url.authority))
    }
}

/// Whether a rustls error is among the causes, also inside `io::Error`s (whose `source` skips what they wrap).
fn caused_by_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<tokio_rustls::rustls::Error>() {
        return true;
    }
    let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    if wrapped.is_some_and(|inner| caused_by_tls(inner)) {
        return true;
    }
    e.source().is_some_and(caused_by_tls)
}

/// An error and its causes, on one line (reqwest's own message alone says little: "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A table answer of `GET /v1/routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routes {
    /// A table (its body as [`wire::encode_table`] wrote it) and its tag.
    Table { etag: Option<Etag>, body: Bytes },
    /// The table known is still the one served.
    NotModified,
}

/// dime-control at one URL, with the token this client presents.
#[derive(Clone)]
pub struct Control {
    pub url: ControlUrl,
    token: String,
    http: reqwest::Client,
}

/// Without the token.
impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("url", &self.url.text).finish_non_exhaustive()
    }
}

impl Control {
    pub fn new(url: ControlUrl, token: String, http: reqwest::Client) -> Control {
        Control { url, token, http }
    }

    fn get(&self, path: &str, report: &Report, timeout: Duration) -> reqwest::RequestBuilder {
        self.http.get(self.url.join(path)).bearer_auth(&self.token).headers(report.to_headers()).timeout(timeout)
    }

    /// Sends `request`; a refused token is [`Reason::Unauthorized`].
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let resp = request.send().await.map_err(|e| transport(&self.url, &e))?;
        match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let status = resp.status();
                let problem = self.problem(resp).await;
                let mut e = fail(Reason::Unauthorized, format!("{status}: control refused the token: {problem}"));
                e.status = Some(status);
                Err(e)
            }
            _ => Ok(resp),
        }
    }

    /// `GET /v1/routes`, long-polled on `known` for up to `wait`: a newer table, or none.
    pub async fn routes(&self, known: Option<&Etag>, wait: Duration, report: &Report) -> Result<Routes, CallError> {
        let mut request =
            self.get(wire::ROUTES, report, wait + ANSWER_SLACK).query(&WaitQuery { wait: wire::Wait::new(wait) });
        if let Some(tag) = known {
            request = request.header(http::header::IF_NONE_MATCH, tag.header());
        }
        let resp = self.send(request).await?;
        let etag = resp.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(Etag::parse);
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(Routes::NotModified),
            StatusCode::OK => Ok(Routes::Table { etag, body: self.body(resp, MAX_TABLE).await? }),
            other => Err(self.refused(other, resp).await),
        }
    }

    /// `GET /v1/purges`: the purges after the query's cursor (which acknowledges every purge up to it), waiting
    /// up to its `wait` for one.
    pub async fn purges(&self, query: &FeedQuery, report: &Report) -> Result<Feed, CallError> {
        let request = self.get(wire::PURGES, report, query.wait.duration() + ANSWER_SLACK).query(query);
        let resp = self.send(request).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.refused(resp.status(), resp).await);
        }
        self.json(resp).await
    }

    /// `POST /v1/purge?wait=`: the purge taken, and the edges' answers to it after at most `wait`.
    pub async fn purge(&self, purge: &Purge, wait: Duration) -> Result<PurgeStatus, CallError> {
        let body = serde_json::to_vec(purge).unwrap_or_default();
        let request = self
            .http
            .post(self.url.join(wire::PURGE))
            .bearer_auth(&self.token)
            .query(&WaitQuery { wait: wire::Wait::new(wait) })
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(wait + PURGE_SLACK);
        let resp = self.send(request).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.refused(resp.status(), resp).await);
        }
        self.json(resp).await
    }

    /// An answer with an unexpected status: the status and control's [`Problem`], if it sent one.
    async fn refused(&self, status: StatusCode, resp: reqwest::Response) -> CallError {
        let problem = self.problem(resp).await;
        let mut e = fail(Reason::Status, format!("{} answered {status}: {problem}", self.url.text));
        e.status = Some(status);
        e
    }

    /// The whole body, at most `limit` bytes.
    async fn body(&self, mut resp: reqwest::Response, limit: usize) -> Result<Bytes, CallError> {
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&self.url, &e))? {
            if body.len() + chunk.len() > limit {
                return Err(fail(Reason::Body, format!("{}: an answer over {limit} bytes", self.url.text)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// A refusal's text: control's [`Problem`], or the first bytes of whatever else came (at most
    /// [`MAX_PROBLEM`] are read).
    async fn problem(&self, resp: reqwest::Response) -> String {
        let text = match self.body(resp, MAX_PROBLEM).await {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(e) => return e.message,
        };
        match serde_json::from_str::<Problem>(&text) {
            Ok(p) if p.error.is_some() || !p.errors.is_empty() => p.to_string(),
            _ => text.trim().chars().take(200).collect(),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, CallError> {
        let body = self.body(resp, MAX_ANSWER).await?;
        serde_json::from_slice(&body).map_err(|e| fail(Reason::Body, format!("{}: the answer: {e}", self.url.text)))
    }
}

#[cfg(test)]
mod tests;
