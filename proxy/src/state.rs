//! The active route table and its upstream pools, swapped whole (ArcSwap): a request sees the old table or the
//! new one, never a mix, and never an empty one because a reload failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use dime_routes::{Location, RouteError, RouteErrors, RouteTable};
use parking_lot::Mutex;

use crate::metrics::{Attempt, Metrics};
use crate::upstream::{self, Pool, SharedResolver};

/// A route table in service, with everything a request needs from it.
#[derive(Debug)]
pub struct Active {
    pub table: RouteTable,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub tcp_pools: BTreeMap<String, Arc<Pool>>,
    /// Where the table came from (e.g. `file:/etc/dime/routes.yaml`).
    pub source: String,
    pub applied_at: SystemTime,
}

/// The last reload that failed, for `/config`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    pub source: String,
    pub at_unix: f64,
    pub errors: Vec<String>,
}

/// How the pull from dime-control goes, for `/config`.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    /// The control URL that last answered.
    pub control: String,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
    /// How many times the edge moved to another control URL (the one in use stopped answering).
    pub failovers: u64,
}

impl SyncStatus {
    /// Control at `url` answered (before its answer is applied): it is the one in use now, and a move from
    /// another one is a failover.
    pub fn using(&mut self, url: &str) {
        if !self.control.is_empty() && self.control != url {
            self.failovers += 1;
        }
        url.clone_into(&mut self.control);
    }

    /// Control at `url` answered and its answer was taken.
    pub fn answered(&mut self, url: &str, at: SystemTime) {
        self.using(url);
        self.last_success = Some(at);
        self.last_error = None;
    }
}

#[derive(Debug)]
pub struct State {
    active: ArcSwapOption<Active>,
    /// Becomes true when the first table is in service (connections accepted before wait for it).
    ready: tokio::sync::watch::Sender<bool>,
    last_rejected: Mutex<Option<Rejected>>,
    sync: Mutex<Option<SyncStatus>>,
    pub metrics: Arc<Metrics>,
    pub resolver: SharedResolver,
    pub edge: Holdings,
}

/// What this edge has that a route table may refer to: fixed at start.
#[derive(Debug, Default)]
pub struct Holdings {
    /// Names of this edge's TCP entrypoints, to warn about TCP routes that name others.
    pub tcp_entrypoints: Vec<String>,
    /// Ids of the signed-URL keys this edge holds, to warn about routes that accept none of them.
    pub signing_key_ids: Vec<String>,
    /// The HTTPS certificates, when the edge has HTTPS entrypoints: a table's `tls.certificates` go there.
    pub certs: Option<Arc<crate::tls::CertStore>>,
}

/// Whether a table without routes may replace one with routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyTable {
    /// No: an empty table is what a truncated file or a broken generator produces (the routes file).
    Refused,
    /// Yes: the source only serves tables compiled from a complete view (dime-control: an empty table from it
    /// means every route ConfigMap is gone).
    Allowed,
}

/// A table ready to go in service: its pools built (unchanged upstreams keep theirs, with their health state).
#[derive(Debug)]
pub struct Prepared {
    pub table: RouteTable,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub tcp_pools: BTreeMap<String, Arc<Pool>>,
}

fn no_routes(t: &RouteTable) -> bool {
    t.routes().is_empty() && t.tcp_routes().is_empty()
}

/// Checks `table` against the one in service and builds its pools: the table ready to install, or the errors
/// that refuse it (located in the table's own terms). Reads CA files named by upstreams; nothing else.
pub fn prepare(
    table: RouteTable,
    source: &str,
    old: Option<&Active>,
    empty: EmptyTable,
) -> Result<Prepared, RouteErrors> {
    let refuse =
        |path: String, message: String| RouteErrors(vec![RouteError::new(Location::new(source, path), message)]);
    if empty == EmptyTable::Refused && no_routes(&table) && old.is_some_and(|o| !no_routes(&o.table)) {
        // Serving it would turn every request into a 404.
        return Err(refuse(
            String::new(),
            "the new table has no routes; refusing to drop every route (restart the edge to start empty)".into(),
        ));
    }
    let pools = upstream::build_pools(table.upstreams(), old.map(|o| &o.pools))
        .map_err(|e| refuse(format!("http.upstreams.{}", e.upstream), e.to_string()))?;
    let tcp_pools = upstream::build_pools(table.tcp_upstreams(), old.map(|o| &o.tcp_pools))
        .map_err(|e| refuse(format!("tcp.upstreams.{}", e.upstream), e.to_string()))?;
    Ok(Prepared { table, pools, tcp_pools })
}

/// What an operator should hear about a table this edge accepts but cannot fully serve as written.
pub fn warnings(table: &RouteTable, edge: &Holdings) -> Vec<String> {
    let mut out = Vec::new();
    for (name, up) in table.upstreams() {
        if up.tls.as_ref().is_some_and(|t| !t.verify) {
            out.push(format!("upstream `{name}`: TLS to this upstream is NOT verified (insecure_skip_verify): anyone on the path can impersonate it"));
        }
    }
    for route in table.tcp_routes() {
        for e in route.entrypoints.iter().filter(|e| !edge.tcp_entrypoints.contains(e)) {
            out.push(format!(
                "TCP route `{}` names entrypoint `{e}`, which this edge does not listen on (add --tcp {e}=ADDR)",
                route.name
            ));
        }
    }
    for route in table.routes() {
        if let Some(signed) = route.signed.as_ref().filter(|s| !s.keys.iter().any(|k| edge.signing_key_ids.contains(k)))
        {
            out.push(format!("route `{}` requires signed URLs with keys this edge does not hold (--signing-keys; the route accepts {:?}): every request to it gets 403", route.name, signed.keys));
        }
    }
    if edge.certs.is_none() && !table.certificates().is_empty() {
        out.push(format!(
            "the route table has {} TLS certificate(s) but this edge has no HTTPS entrypoint (--https)",
            table.certificates().len()
        ));
    }
    out
}

pub use dime_routes::clock::unix_secs_f64 as unix;

impl State {
    pub fn new(metrics: Arc<Metrics>, resolver: SharedResolver, edge: Holdings) -> Self {
        State {
            active: ArcSwapOption::empty(),
            ready: tokio::sync::watch::Sender::new(false),
            last_rejected: Mutex::new(None),
            sync: Mutex::new(None),
            metrics,
            resolver,
            edge,
        }
    }

    /// Waits until a table is in service, at most `limit`; whether one is.
    pub async fn wait_ready(&self, limit: std::time::Duration) -> bool {
        if *self.ready.borrow() {
            return true;
        }
        let mut ready = self.ready.subscribe();
        let waited = tokio::time::timeout(limit, ready.wait_for(|r| *r)).await;
        waited.is_ok_and(|r| r.is_ok())
    }

    /// The table in service, if one was ever applied.
    pub fn current(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    pub fn last_rejected(&self) -> Option<Rejected> {
        self.last_rejected.lock().clone()
    }

    pub fn sync_status(&self) -> Option<SyncStatus> {
        self.sync.lock().clone()
    }

    pub fn update_sync(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(self.sync.lock().get_or_insert_with(SyncStatus::default));
    }

    /// Puts a validated table in service: [`prepare`], resolve the new pools (so the first request after the
    /// swap already has addresses), [`State::install`], report. `empty` says whether an empty table may replace
    /// one with routes. A table refused by `prepare` is [`State::reject`]ed and the table in service stays.
    pub async fn apply(&self, table: RouteTable, source: &str, empty: EmptyTable) {
        let old = self.current();
        if old.as_ref().is_some_and(|o| o.table.version() == table.version()) {
            return;
        }
        let prepared = match prepare(table, source, old.as_deref(), empty) {
            Ok(p) => p,
            Err(errors) => return self.reject(source, &errors),
        };
        for pool in prepared.pools.values().chain(prepared.tcp_pools.values()) {
            let reused = old
                .as_ref()
                .is_some_and(|o| o.pools.values().chain(o.tcp_pools.values()).any(|p| Arc::ptr_eq(p, pool)));
            if !reused {
                upstream::resolve_pool(pool, self.resolver.as_ref(), &self.metrics).await;
            }
        }
        for warning in warnings(&prepared.table, &self.edge) {
            tracing::warn!(source, "{warning}");
        }
        let active = self.install(prepared, source);
        self.report(&active, old.as_deref());
    }

    /// Swaps `prepared` in (requests already routed keep the table they have) and hands its certificates to the
    /// certificate store; releases connections waiting for a first table.
    pub fn install(&self, prepared: Prepared, source: &str) -> Arc<Active> {
        let Prepared { table, pools, tcp_pools } = prepared;
        if let Some(certs) = &self.edge.certs {
            certs.set_group(crate::tls::Group::Table, crate::tls::CertSource::from_table(table.certificates()));
        }
        let active =
            Arc::new(Active { table, pools, tcp_pools, source: source.to_owned(), applied_at: SystemTime::now() });
        self.active.store(Some(active.clone()));
        self.ready.send_if_modified(|ready| !std::mem::replace(ready, true));
        active
    }

    /// The metrics and the log line of a table put in service.
    fn report(&self, active: &Active, old: Option<&Active>) {
        let (table, m) = (&active.table, &self.metrics);
        m.config.set_info(table.version(), &active.source);
        m.config.loaded_time.set(unix(active.applied_at));
        m.config.routes.set(table.routes().len() as i64);
        m.config.reloads(Attempt::Ok).inc();
        tracing::info!(
            version = table.version(),
            previous = old.map(|o| o.table.version()).unwrap_or("none"),
            routes = table.routes().len(),
            upstreams = table.upstreams().len(),
            source = %active.source,
            "applied route table"
        );
    }

    /// Records a table that failed validation: every error is logged, the count goes up, the active table stays.
    pub fn reject(&self, source: &str, errors: &RouteErrors) {
        self.metrics.config.reloads(Attempt::Failed).inc();
        let keeping = self.current().map(|a| a.table.version().to_owned()).unwrap_or_else(|| "none".into());
        for e in errors.iter() {
            tracing::error!(source, location = %e.location, error = %e.message, "invalid routes");
        }
        tracing::error!(source, errors = errors.len(), keeping_version = %keeping, "route reload rejected; the active table keeps serving");
        let rejected = Rejected {
            source: source.to_owned(),
            at_unix: unix(SystemTime::now()),
            errors: errors.iter().map(ToString::to_string).collect(),
        };
        *self.last_rejected.lock() = Some(rejected);
    }
}

#[cfg(test)]
mod tests;
