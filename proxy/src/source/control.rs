//! `ControlSource`: the route table from dime-control. The edge long-polls `GET /v1/routes` (ETag, `?wait=`),
//! validates every payload with the same code control compiled it with, swaps it in atomically, and keeps the last
//! good one on disk (`--state-dir`) to start from when control cannot be reached. Several control URLs fail over
//! in order; failures back off exponentially with jitter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::metrics::config::FetchFailure;
use crate::state::{unix, EmptyTable, State, SyncStatus};
use crate::tls::TlsError;

/// How long one long-poll asks control to hold the request.
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// Connecting to control, and the slack on top of the long-poll for the answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// Backoff after every control URL failed: doubling from the first step up to the cap, with full jitter.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// The largest route table accepted (a cap against a confused or hostile server).
const MAX_PAYLOAD: usize = 64 << 20;
/// The file in the state dir.
pub const STATE_FILE: &str = "routes.json";

/// One control endpoint, `http(s)://host:port[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUrl {
    pub text: String,
    pub authority: String,
    pub prefix: String,
    /// `https://`: the name verified in control's certificate (and sent as SNI).
    pub tls_name: Option<String>,
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
        let host = if has_port { authority.rsplit_once(':').map_or(authority, |(h, _)| h) } else { authority };
        let default_port = if https { 443 } else { 80 };
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:{default_port}") };
        let tls_name = https.then(|| host.trim_start_matches('[').trim_end_matches(']').to_owned());
        Ok(ControlUrl { text: text.trim_end_matches('/').to_owned(), authority, prefix: path.to_owned(), tls_name })
    }
}

/// What one request to control gave.
#[derive(Debug)]
enum Answer {
    Table { etag: Option<String>, body: Bytes },
    NotModified,
}

#[derive(Debug)]
pub(crate) struct FetchError {
    /// Counted in `dime_routes_fetch_failures_total` or `dime_purge_feed_failures_total`.
    pub reason: FetchFailure,
    pub message: String,
}

pub(crate) fn fail(reason: FetchFailure, message: impl Into<String>) -> FetchError {
    FetchError { reason, message: message.into() }
}

/// A connection to control, plain or TLS.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The trust for https control URLs: the pinned CA bundle (`--control-ca`), else the system's roots.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<pingora_rustls::TlsConnector, TlsError> {
    pingora_rustls::install_default_crypto_provider();
    let mut roots = pingora_rustls::RootCertStore::empty();
    match ca_file {
        Some(f) => pingora_rustls::load_ca_file_into_store(f.display().to_string(), &mut roots)
            .map_err(|e| TlsError::Trust { what: f.display().to_string(), why: e.to_string() })?,
        None => pingora_rustls::load_platform_certs_incl_env_into_store(&mut roots)
            .map_err(|e| TlsError::Trust { what: "the system's roots".into(), why: e.to_string() })?,
    }
    let config = pingora_rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(pingora_rustls::TlsConnector::from(Arc::new(config)))
}

/// A connection to control: TCP, then TLS for `https://` URLs (the name verified against the pinned CA).
pub(crate) async fn open(
    url: &ControlUrl,
    tls: Option<&pingora_rustls::TlsConnector>,
) -> Result<Box<dyn Io>, FetchError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(url.authority.as_str()))
        .await
        .map_err(|_| fail(FetchFailure::Connect, format!("connect to {} timed out", url.authority)))?
        .map_err(|e| fail(FetchFailure::Connect, format!("connect to {}: {e}", url.authority)))?;
    let _ = stream.set_nodelay(true);
    match (&url.tls_name, tls) {
        (None, _) => Ok(Box::new(stream)),
        (Some(name), Some(connector)) => {
            let server = pingora_rustls::ServerName::try_from(name.clone())
                .map_err(|e| fail(FetchFailure::Tls, format!("`{name}`: {e}")))?;
            let handshake = connector.connect(server, stream);
            Ok(Box::new(
                tokio::time::timeout(CONNECT_TIMEOUT, handshake)
                    .await
                    .map_err(|_| fail(FetchFailure::Tls, "TLS handshake timed out"))?
                    .map_err(|e| fail(FetchFailure::Tls, format!("TLS with {}: {e}", url.authority)))?,
            ))
        }
        (Some(_), None) => Err(fail(FetchFailure::Tls, "no TLS configuration")),
    }
}

/// One `GET` of `target` (path and query under the control URL's prefix) on an open connection, with the
/// token and what this edge says of itself: the response, its body still to read.
pub(crate) async fn get(
    stream: Box<dyn Io>,
    url: &ControlUrl,
    token: &str,
    target: &str,
    headers: &[(&'static str, String)],
) -> Result<http::Response<hyper::body::Incoming>, FetchError> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| fail(FetchFailure::Connect, e.to_string()))?;
    tokio::spawn(conn);
    let mut req = http::Request::get(format!("{}{target}", url.prefix))
        .header(http::header::HOST, url.authority.as_str())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::USER_AGENT, concat!("dime-edge/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req.body(Empty::new()).map_err(|e| fail(FetchFailure::Status, e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| fail(FetchFailure::Connect, e.to_string()))?;
    match resp.status() {
        http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN => Err(fail(
            FetchFailure::Unauthorized,
            format!("{}: control refused the token (--control-token-file)", resp.status()),
        )),
        _ => Ok(resp),
    }
}

/// A response body, at most `limit` bytes.
pub(crate) async fn body(resp: http::Response<hyper::body::Incoming>, limit: usize) -> Result<Bytes, FetchError> {
    Ok(Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| fail(FetchFailure::Body, e.to_string()))?
        .to_bytes())
}

/// One long-poll `GET /v1/routes?wait=` on an open connection: the table, "not modified", or why not.
async fn poll(
    stream: Box<dyn Io>,
    url: &ControlUrl,
    token: &str,
    etag: Option<&str>,
    wait: Duration,
    said: &[(&'static str, String)],
) -> Result<Answer, FetchError> {
    let mut headers = said.to_vec();
    if let Some(e) = etag {
        headers.push(("if-none-match", format!("\"{e}\"")));
    }
    let resp = get(stream, url, token, &format!("/v1/routes?wait={}s", wait.as_secs()), &headers).await?;
    let etag =
        resp.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(|v| v.trim_matches('"').to_owned());
    match resp.status() {
        http::StatusCode::NOT_MODIFIED => Ok(Answer::NotModified),
        http::StatusCode::OK => {
            let body = body(resp, MAX_PAYLOAD)
                .await
                .map_err(|e| fail(FetchFailure::Body, format!("reading the table: {}", e.message)))?;
            Ok(Answer::Table { etag, body })
        }
        other => Err(fail(FetchFailure::Status, format!("answered {other}"))),
    }
}

/// Connects and long-polls, the whole exchange bounded by the wait plus [`ANSWER_SLACK`].
async fn fetch(
    url: &ControlUrl,
    tls: Option<&pingora_rustls::TlsConnector>,
    token: &str,
    etag: Option<&str>,
    wait: Duration,
    said: &[(&'static str, String)],
) -> Result<Answer, FetchError> {
    let stream = open(url, tls).await?;
    tokio::time::timeout(wait + ANSWER_SLACK, poll(stream, url, token, etag, wait, said))
        .await
        .map_err(|_| fail(FetchFailure::Timeout, format!("no answer within {:?}", wait + ANSWER_SLACK)))?
}

/// Saves the table as `dir/STATE_FILE` ([`crate::files::write_private`]: atomic, owner-only, since a table may
/// carry private keys from Kubernetes Secrets).
pub fn persist(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::files::write_private(&dir.join(STATE_FILE), bytes)
}

/// The backoff before round `failures` (1-based): full jitter over an exponentially growing window.
pub fn backoff(failures: u32, random: f64) -> Duration {
    let window = BACKOFF_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(BACKOFF_CAP);
    window.mul_f64(random.clamp(0.0, 1.0)).max(Duration::from_millis(50))
}

pub struct ControlSource {
    pub urls: Vec<ControlUrl>,
    /// For https control URLs.
    pub tls: Option<pingora_rustls::TlsConnector>,
    pub token: String,
    pub state_dir: Option<PathBuf>,
    pub state: Arc<State>,
    /// How this edge introduces itself on each poll (control keeps its Lease and shows it in `/v1/edges`).
    pub edge_name: String,
    /// The fleet, when this edge has a peer listener: its advertised URL goes to control, the members control
    /// serves come back to its ring.
    pub fleet: Option<(String, Arc<crate::fleet::Fleet>)>,
    /// The last payload this edge refused: control's version of it, and the first error.
    pub refused: parking_lot::Mutex<Option<(String, String)>>,
}

impl std::fmt::Debug for ControlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSource")
            .field("urls", &self.urls)
            .field("tls", &self.tls.is_some())
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl ControlSource {
    /// What this edge says of itself on a poll: its name, its peer URL, the table it runs and the last one it
    /// refused (header names in `dime_control::fleet`).
    fn said(&self) -> Vec<(&'static str, String)> {
        let mut said = vec![("x-dime-edge", self.edge_name.clone())];
        if let Some((url, _)) = &self.fleet {
            said.push(("x-dime-peer-url", url.clone()));
        }
        if let Some(active) = self.state.current() {
            said.push(("x-dime-applied", active.table.version().to_owned()));
        }
        if let Some((version, why)) = self.refused.lock().clone() {
            said.push(("x-dime-refused", version));
            // A header value: one line, printable, bounded.
            let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
            said.push(("x-dime-refused-reason", why));
        }
        said
    }

    /// The members control sent with a table go to the ring.
    fn take_members(&self, members: Option<Vec<(String, String)>>) {
        if let (Some((_, fleet)), Some(members)) = (&self.fleet, members) {
            fleet.set_members(&members);
            self.state.metrics.fleet.members.set(fleet.ring().members().len() as i64);
        }
    }

    /// Reads the last good table from the state dir, if there is one. A file that does not validate (damaged, or
    /// written by another version) is reported and not used.
    pub fn load_state(&self) -> Option<dime_routes::RouteTable> {
        let path = self.state_dir.as_ref()?.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the saved route table");
                return None;
            }
        };
        let (table, members) = crate::fleet::split_payload(&text);
        self.take_members(members);
        match dime_routes::parse(&path.display().to_string(), &table) {
            Ok(t) => Some(t),
            Err(errors) => {
                for e in errors.iter() {
                    tracing::error!(path = %path.display(), error = %e, "saved route table does not validate; not using it");
                }
                None
            }
        }
    }

    pub fn state_source(&self) -> String {
        match &self.state_dir {
            Some(d) => format!("state:{}", d.join(STATE_FILE).display()),
            None => "state".into(),
        }
    }

    /// Takes a payload: validate, apply, save. Returns the version to long-poll on next; `Err` (with the
    /// payload's ETag) when it did not validate.
    async fn take(&self, url: &ControlUrl, etag: Option<String>, body: &[u8]) -> Result<String, Option<String>> {
        let source = format!("control:{}", url.text);
        let text = String::from_utf8_lossy(body);
        let (text, members) = crate::fleet::split_payload(&text);
        match dime_routes::parse(&source, &text) {
            Ok(table) => {
                // Control's ETag is the table's version, followed by `.` and a hash of the members it sent.
                let version = table.version().to_owned();
                let next = match etag.filter(|e| e.split('.').next() == Some(version.as_str())) {
                    Some(tag) => tag,
                    None => {
                        tracing::warn!(version = table.version(), "control's ETag does not name the table's content version; long-polling on the content version");
                        version.clone()
                    }
                };
                self.take_members(members);
                let changed = self.state.current().is_none_or(|a| a.table.version() != version);
                if changed && table.routes().is_empty() && table.tcp_routes().is_empty() {
                    tracing::warn!(control = %url.text, "control serves an empty route table (no route ConfigMaps accepted): every route is removed");
                }
                self.state.apply(table, &source, EmptyTable::Allowed).await;
                if self.state.current().is_none_or(|a| a.table.version() != version) {
                    // Valid, but this edge cannot run it (e.g. a signing key or TCP entrypoint it lacks): said
                    // to control, and the table in service stays.
                    let why = self.state.last_rejected().and_then(|r| r.errors.first().cloned()).unwrap_or_default();
                    *self.refused.lock() = Some((next.clone(), why));
                    return Ok(next);
                }
                *self.refused.lock() = None;
                if let Some(dir) = &self.state_dir {
                    match persist(dir, body) {
                        Ok(()) => tracing::debug!(dir = %dir.display(), %version, "saved route table"),
                        Err(e) => {
                            self.state.metrics.config.state_write_failures.inc();
                            tracing::error!(dir = %dir.display(), error = %e, "cannot save the route table to the state dir; a restart while control is down would start without it");
                        }
                    }
                }
                Ok(next)
            }
            Err(errors) => {
                // Keep the table in service; wait for the next version rather than fetching this one again.
                self.state.metrics.config.fetch_failures(FetchFailure::Invalid).inc();
                self.state.reject(&source, &errors);
                let first = errors.iter().next().map(|e| e.to_string()).unwrap_or_default();
                *self.refused.lock() = Some((etag.clone().unwrap_or_default(), first));
                Err(etag)
            }
        }
    }

    fn record(&self, f: impl FnOnce(&mut SyncStatus)) {
        self.state.update_sync(f);
    }

    /// Serves the last good table at once; control (if reachable) replaces it within one request.
    async fn start_from_state(&self) {
        if let Some(table) = self.load_state() {
            tracing::info!(
                version = table.version(),
                routes = table.routes().len(),
                "starting from the saved route table"
            );
            self.state.apply(table, &self.state_source(), EmptyTable::Allowed).await;
        }
    }

    /// One pass over the control URLs, in order, until one answers. `etag` is the version to long-poll on; a
    /// table taken (or refused) moves it on.
    async fn pass(&self, etag: &mut Option<String>, wait: Duration, failures: u32) -> Pass {
        for url in &self.urls {
            let said = self.said();
            match fetch(url, self.tls.as_ref(), &self.token, etag.as_deref(), wait, &said).await {
                Ok(answer) => return self.answered(url, answer, etag, failures).await,
                Err(e) => {
                    self.state.metrics.config.fetch_failures(e.reason).inc();
                    let serving = self.state.current().map(|a| a.table.version().to_owned());
                    if failures == 0 || failures.is_power_of_two() {
                        tracing::warn!(control = %url.text, reason = e.reason.as_str(), error = %e.message, serving_version = ?serving, consecutive_failures = failures, "cannot get routes from control; the active table keeps serving");
                    }
                    self.record(|s| s.last_error = Some(format!("{}: {}", url.text, e.message)));
                }
            }
        }
        Pass::Failed
    }

    async fn answered(&self, url: &ControlUrl, answer: Answer, etag: &mut Option<String>, failures: u32) -> Pass {
        if failures > 0 {
            tracing::info!(control = %url.text, after_failures = failures, "control reachable again");
        }
        if let Answer::Table { etag: tag, body } = answer {
            match self.take(url, tag, &body).await {
                Ok(version) => *etag = Some(version),
                Err(tag) => {
                    // Refused: long-poll past this version, after a pause like any failure.
                    *etag = tag.or(etag.take());
                    self.record(|s| s.last_error = Some(format!("{}: payload did not validate", url.text)));
                    return Pass::Refused;
                }
            }
        }
        self.state.metrics.config.fetch_last_success.set(unix(SystemTime::now()));
        self.record(|s| s.answered(&url.text, SystemTime::now()));
        Pass::Answered
    }
}

/// What one pass over the control URLs came to.
enum Pass {
    /// A control answered (a new table, or none newer): long-poll again at once.
    Answered,
    /// A control served a table that does not validate: pause, then long-poll past it.
    Refused,
    /// No control answered: pause (backoff), then try them all again.
    Failed,
}

#[async_trait]
impl BackgroundService for ControlSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.start_from_state().await;
        let mut etag = self.state.current().map(|a| a.table.version().to_owned());
        let mut failures: u32 = 0;
        // The first request does not wait: an edge starting from its state dir learns at once whether it is current.
        let mut wait = Duration::ZERO;
        loop {
            let pass = tokio::select! {
                p = self.pass(&mut etag, wait, failures) => p,
                _ = shutdown.changed() => return,
            };
            if let Pass::Answered = pass {
                failures = 0;
                wait = LONG_POLL;
                continue;
            }
            failures = failures.saturating_add(1);
            let pause = backoff(failures, fastrand::f64());
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
