//! `ControlSource`: the route table from dime-control. The edge long-polls `GET /v1/routes` (ETag, `?wait=`),
//! validates every payload with the same code control compiled it with, swaps it in atomically, and keeps the last
//! good one on disk (`--state-dir`) to start from when control cannot be reached. Several control URLs fail over
//! in order; failures back off exponentially with jitter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use dime_client::{CallError, Control, Routes};
use dime_routes::wire::{self, Etag, Refusal, Report};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::metrics::config::FetchFailure;
use crate::state::{unix, EmptyTable, State, SyncStatus};

pub use dime_client::ControlUrl;

/// How long one long-poll asks control to hold the request.
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// Backoff after every control URL failed: doubling from the first step up to the cap, with full jitter.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// The file in the state dir.
pub const STATE_FILE: &str = "routes.json";

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
    /// The control URLs, in failover order, each with this edge's token and the one HTTP client.
    pub controls: Vec<Control>,
    pub state_dir: Option<PathBuf>,
    pub state: Arc<State>,
    /// How this edge introduces itself on each poll (control keeps its Lease and shows it in `/v1/edges`).
    pub edge_name: String,
    /// The fleet, when this edge has a peer listener: its advertised URL goes to control, the members control
    /// serves come back to its ring.
    pub fleet: Option<(String, Arc<crate::fleet::Fleet>)>,
    /// The last payload this edge refused: control's version of it, and the first error.
    pub refused: parking_lot::Mutex<Option<Refusal>>,
}

impl std::fmt::Debug for ControlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.controls.iter().map(|c| c.url.text.as_str()).collect();
        f.debug_struct("ControlSource").field("urls", &urls).field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

impl ControlSource {
    /// What this edge says of itself on a poll: its name, its peer URL, the table it runs and the last one it
    /// refused.
    fn said(&self) -> Report {
        Report {
            name: self.edge_name.clone(),
            peer_url: self.fleet.as_ref().map(|(url, _)| url.clone()),
            applied: self.state.current().map(|active| active.table.version().to_owned()),
            refused: self.refused.lock().clone(),
            peer_key: self.fleet.as_ref().and_then(|(_, f)| f.public_key().map(str::to_owned)),
        }
    }

    /// The members control sent with a table go to the ring; members that do not read leave the ring as it is.
    fn take_members(&self, fleet: Option<wire::Fleet>, unreadable: Option<&str>) {
        if let Some(error) = unreadable {
            tracing::warn!(error, "control sent fleet members that do not read; the ring stays as it is");
        }
        if let (Some((_, ours)), Some(served)) = (&self.fleet, fleet) {
            ours.set_members(&served.members);
            self.state.metrics.fleet.members.set(ours.ring().members().len() as i64);
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
        let answer = wire::decode_table(&text);
        self.take_members(answer.fleet, answer.fleet_error.as_deref());
        match dime_routes::parse(&path.display().to_string(), &answer.table) {
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
    async fn take(&self, url: &ControlUrl, etag: Option<Etag>, body: &[u8]) -> Result<Etag, Option<Etag>> {
        let source = format!("control:{}", url.text);
        let answer = wire::decode_table(&String::from_utf8_lossy(body));
        match dime_routes::parse(&source, &answer.table) {
            Ok(table) => {
                let version = table.version().to_owned();
                let next = match etag.filter(|e| e.table_version() == version) {
                    Some(tag) => tag,
                    None => {
                        tracing::warn!(version = table.version(), "control's ETag does not name the table's content version; long-polling on the content version");
                        Etag::parse(&version)
                    }
                };
                self.take_members(answer.fleet, answer.fleet_error.as_deref());
                let changed = self.state.current().is_none_or(|a| a.table.version() != version);
                if changed && table.routes().is_empty() && table.tcp_routes().is_empty() {
                    tracing::warn!(control = %url.text, "control serves an empty route table (no route ConfigMaps accepted): every route is removed");
                }
                self.state.apply(table, &source, EmptyTable::Allowed).await;
                if self.state.current().is_none_or(|a| a.table.version() != version) {
                    // Valid, but this edge cannot run it (e.g. a signing key or TCP entrypoint it lacks): said
                    // to control, and the table in service stays.
                    let reason = self.state.last_rejected().and_then(|r| r.errors.first().cloned()).unwrap_or_default();
                    *self.refused.lock() = Some(Refusal { version: next.to_string(), reason });
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
                let reason = errors.iter().next().map(|e| e.to_string()).unwrap_or_default();
                let version = etag.as_ref().map(Etag::to_string).unwrap_or_default();
                *self.refused.lock() = Some(Refusal { version, reason });
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
    async fn pass(&self, etag: &mut Option<Etag>, wait: Duration, failures: u32) -> Pass {
        for control in &self.controls {
            match control.routes(etag.as_ref(), wait, &self.said()).await {
                Ok(answer) => return self.answered(&control.url, answer, etag, failures).await,
                Err(e) => self.failed(&control.url, &e, failures),
            }
        }
        Pass::Failed
    }

    fn failed(&self, url: &ControlUrl, e: &CallError, failures: u32) {
        self.state.metrics.config.fetch_failures(e.reason.into()).inc();
        let serving = self.state.current().map(|a| a.table.version().to_owned());
        if failures == 0 || failures.is_power_of_two() {
            tracing::warn!(control = %url.text, reason = e.reason.as_str(), error = %e.message, serving_version = ?serving, consecutive_failures = failures, "cannot get routes from control; the active table keeps serving");
        }
        self.record(|s| s.last_error = Some(format!("{}: {}", url.text, e.message)));
    }

    async fn answered(&self, url: &ControlUrl, answer: Routes, etag: &mut Option<Etag>, failures: u32) -> Pass {
        if failures > 0 {
            tracing::info!(control = %url.text, after_failures = failures, "control reachable again");
        }
        // Said before the table is applied, so whoever sees the table in service sees where it came from.
        self.record(|s| s.using(&url.text));
        if let Routes::Table { etag: tag, body } = answer {
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
        let mut etag = self.state.current().map(|a| Etag::parse(a.table.version()));
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
