//! What a control replica holds while it runs, shared by the watches (which write it) and the API handlers
//! (which read it): the table being served with the fleet's members, the link to the Kubernetes API and the last
//! rejections, the tokens, the fleet's Leases and the purge log.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use dime_routes::wire::{self, EdgeState, Etag};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::compile::Rejection;
use crate::metrics::Metrics;

pub use dime_routes::clock::unix_secs_f64 as unix;

/// The table being served, rendered once per version: its `ETag` (the table's version, and a hash of the
/// members served with it) and the body.
#[derive(Debug)]
pub struct Served {
    pub etag: Etag,
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
    /// Each edge's own credential ([`crate::credentials`]): the route table, the edges' view and the purge feed,
    /// and reports, Leases and acknowledgements for that edge's name only.
    pub credentials: Arc<crate::credentials::Credentials>,
    /// The old shared edge tokens (`--token-file`): read-only for one release (the table, the feed, the edges'
    /// view; no report, Lease or acknowledgement is taken with them).
    pub shared_tokens: Vec<String>,
    /// Purge tokens (`--purge-token-file`): `POST /v1/purge` and `GET /v1/purge/ID` only. Empty: purging is off.
    pub purge_tokens: Vec<String>,
    pub metrics: Metrics,
    pub status: Mutex<Status>,
    /// The fleet's Leases, once the API client exists (`None` in tests of the API alone).
    pub fleet: OnceLock<Arc<crate::fleet::Fleet>>,
    /// The purge log, once the API client exists.
    pub purges: OnceLock<Arc<crate::purge::Log>>,
    /// The edges' purge acknowledgements as this replica saw them.
    pub acks: crate::purge::acks::Acks,
    /// Bumped whenever the Leases or the purge log change (purge waits look again).
    pub edges_seen: watch::Sender<u64>,
    published: Mutex<Published>,
}

/// The compiled table and the members last served with it.
#[derive(Debug, Clone, Default)]
struct Published {
    table: Option<Arc<dime_routes::RouteTable>>,
    members: Vec<wire::Member>,
}

impl Shared {
    pub fn new(shared_tokens: Vec<String>, purge_tokens: Vec<String>) -> Result<Self, prometheus::Error> {
        let (current, _) = watch::channel(None);
        Ok(Shared {
            current,
            credentials: Arc::default(),
            shared_tokens,
            purge_tokens,
            metrics: Metrics::new()?,
            status: Mutex::new(Status::default()),
            fleet: OnceLock::new(),
            purges: OnceLock::new(),
            acks: crate::purge::acks::Acks::default(),
            edges_seen: watch::channel(0).0,
            published: Mutex::new(Published::default()),
        })
    }

    /// The Leases or the purge log changed: the acknowledgements are read again and purge waits look again.
    pub fn purges_changed(&self) {
        let (Some(log), Some(fleet)) = (self.purges.get(), self.fleet.get()) else { return };
        let snapshot = log.snapshot();
        self.metrics.purge.log_entries.set(snapshot.entries.len() as i64);
        self.acks.learn(&snapshot, &fleet.edges(None));
        self.edges_seen.send_modify(|n| *n += 1);
    }

    /// A newly compiled table: served with the fleet's members.
    pub fn publish_table(&self, table: Arc<dime_routes::RouteTable>) {
        let mut published = self.published.lock();
        published.table = Some(table);
        self.serve_current(&published);
    }

    /// The Leases changed or one may have expired: serves the table again if the members changed, and updates
    /// `dime_control_edges`.
    pub fn fleet_changed(&self) {
        let Some(fleet) = self.fleet.get() else { return };
        let served = self.table_version();
        let edges = fleet.edges(served.as_deref());
        for state in EdgeState::ALL {
            let n = edges.iter().filter(|e| e.state == state).count();
            self.metrics.fleet.edges(state).set(n as i64);
        }
        self.purges_changed();
        // Read and published under the lock: two callers (the watch, the expiry tick) never put older members
        // over newer ones.
        let mut published = self.published.lock();
        // An edge whose credential was revoked (its Secret deleted) leaves the fleet at once, not when its Lease
        // expires: the others stop hearing its peer key.
        let mut members = fleet.members();
        members.retain(|m| self.credentials.knows(&m.name));
        if published.members != members {
            published.members = members;
            self.serve_current(&published);
        }
    }

    /// The version of the table being served (without the fleet part of the ETag).
    pub fn table_version(&self) -> Option<String> {
        self.published.lock().table.as_ref().map(|t| t.version().to_owned())
    }

    /// The table and the members as one answer ([`wire::encode_table`]), tagged with [`Etag::of`] them. Called
    /// with the lock held, so what is served is always the last table with the last members.
    fn serve_current(&self, published: &Published) {
        let Published { table: Some(table), members } = published else { return };
        let etag = Etag::of(table.version(), members);
        if self.current.borrow().as_ref().is_some_and(|s| s.etag == etag) {
            return;
        }
        let fleet = (!members.is_empty()).then(|| wire::Fleet { members: members.clone() });
        let json = wire::encode_table(table.document(), fleet.as_ref()).into();
        self.current.send_replace(Some(Arc::new(Served { etag, json })));
    }

    pub fn status(&self) -> parking_lot::MutexGuard<'_, Status> {
        self.status.lock()
    }

    /// A watch event arrived: the API is reachable.
    pub fn api_ok(&self) {
        let mut status = self.status();
        if let Some((since, _)) = status.api_error.take() {
            let down = SystemTime::now().duration_since(since).unwrap_or_default();
            tracing::info!(down_for = ?down, "Kubernetes API reachable again");
        }
        self.metrics.kube.api_up.set(1);
    }

    /// A watch failed: the last table keeps being served, and that is said.
    pub fn api_error(&self, error: &str) {
        self.metrics.kube.watch_errors.inc();
        self.metrics.kube.api_up.set(0);
        let serving = self.current.borrow().as_ref().map(|s| s.etag.to_string()).unwrap_or_else(|| "none".into());
        tracing::warn!(error, serving_version = %serving, "Kubernetes watch failed; the last compiled table keeps serving");
        let mut status = self.status();
        let since = status.api_error.as_ref().map_or_else(SystemTime::now, |(t, _)| *t);
        status.api_error = Some((since, error.to_owned()));
    }

    pub fn set_rejected(&self, rejected: Vec<Rejection>) {
        self.status().rejected = rejected;
    }

    /// `/readyz`'s text: `None` before the first full sync.
    pub fn readiness(&self) -> Option<String> {
        let served = self.current.borrow().clone()?;
        if self.fleet.get().is_some() && !self.credentials.loaded() {
            // Every edge would get a 503: not ready until the edge credentials are read.
            return None;
        }
        let status = self.status();
        let mut text = format!("ready: serving route table {}\n", served.etag);
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
        Some(text)
    }
}

/// The longest `/readyz` line about one rejected ConfigMap: whole errors, then how many more.
const READYZ_LINE_MAX: usize = 4096;
