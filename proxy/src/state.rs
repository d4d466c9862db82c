//! The active route table and its upstream pools, swapped whole (ArcSwap): a request sees the old table or the
//! new one, never a mix, and never an empty one because a reload failed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use dime_routes::{RouteErrors, RouteTable};

use crate::metrics::Metrics;
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
    /// Names of this edge's TCP entrypoints, to warn about TCP routes that name others.
    pub tcp_entrypoints: Vec<String>,
    /// Ids of the signed-URL keys this edge holds, to warn about routes that accept none of them.
    pub signing_key_ids: Vec<String>,
    /// The HTTPS certificates, when the edge has HTTPS entrypoints: a table's `tls.certificates` go there.
    pub certs: Option<Arc<crate::tls::CertStore>>,
}

pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl State {
    pub fn new(metrics: Arc<Metrics>, resolver: SharedResolver) -> Self {
        State {
            active: ArcSwapOption::empty(),
            ready: tokio::sync::watch::Sender::new(false),
            last_rejected: Mutex::new(None),
            sync: Mutex::new(None),
            metrics,
            resolver,
            tcp_entrypoints: Vec::new(),
            signing_key_ids: Vec::new(),
            certs: None,
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
        self.last_rejected.lock().ok().and_then(|r| r.clone())
    }

    pub fn sync_status(&self) -> Option<SyncStatus> {
        self.sync.lock().ok().and_then(|s| s.clone())
    }

    pub fn update_sync(&self, f: impl FnOnce(&mut SyncStatus)) {
        if let Ok(mut slot) = self.sync.lock() {
            f(slot.get_or_insert_with(SyncStatus::default));
        }
    }

    /// Puts a validated table in service. New upstream pools are resolved first, so the first request after the
    /// swap already has addresses; unchanged upstreams keep their pools (and health state). An empty table never
    /// replaces one with routes (see [`State::apply_trusted`]).
    pub async fn apply(&self, table: RouteTable, source: &str) {
        self.apply_checked(table, source, false).await;
    }

    /// [`State::apply`] for a source whose empty table is meant: dime-control only serves one compiled from a
    /// complete view of the cluster, so an empty table from it means every route ConfigMap is gone.
    pub async fn apply_trusted(&self, table: RouteTable, source: &str) {
        self.apply_checked(table, source, true).await;
    }

    async fn apply_checked(&self, table: RouteTable, source: &str, empty_is_meant: bool) {
        let old = self.current();
        if old.as_ref().is_some_and(|o| o.table.version() == table.version()) {
            return;
        }
        let no_routes = |t: &RouteTable| t.routes().is_empty() && t.tcp_routes().is_empty();
        if !empty_is_meant && no_routes(&table) && old.as_ref().is_some_and(|o| !no_routes(&o.table)) {
            // An empty table is what a truncated file or a broken generator produces; serving it would turn every
            // request into a 404, so it never replaces a table that has routes.
            let error = dime_routes::RouteError::new(
                dime_routes::Location::new(source, ""),
                "the new table has no routes; refusing to drop every route (restart the edge to start empty)",
            );
            self.reject(source, &RouteErrors(vec![error]));
            return;
        }
        let built = upstream::build_pools(table.upstreams(), old.as_ref().map(|o| &o.pools))
            .and_then(|p| Ok((p, upstream::build_pools(table.tcp_upstreams(), old.as_ref().map(|o| &o.tcp_pools))?)));
        let (pools, tcp_pools) = match built {
            Ok(p) => p,
            Err((name, message)) => {
                let at = dime_routes::Location::new(source, format!("http.upstreams.{name}"));
                self.reject(source, &RouteErrors(vec![dime_routes::RouteError::new(at, message)]));
                return;
            }
        };
        for (name, up) in table.upstreams() {
            if up.tls.as_ref().is_some_and(|t| !t.verify) {
                tracing::warn!(upstream = %name, "TLS to this upstream is NOT verified (insecure_skip_verify): anyone on the path can impersonate it");
            }
        }
        for pool in pools.values().chain(tcp_pools.values()) {
            let reused = old
                .as_ref()
                .is_some_and(|o| o.pools.values().chain(o.tcp_pools.values()).any(|p| Arc::ptr_eq(p, pool)));
            if !reused {
                upstream::resolve_pool(pool, self.resolver.as_ref(), &self.metrics).await;
            }
        }
        for route in table.tcp_routes() {
            for e in route.entrypoints.iter().filter(|e| !self.tcp_entrypoints.contains(e)) {
                tracing::warn!(route = %route.name, entrypoint = %e, "TCP route names an entrypoint this edge does not listen on (add --tcp {e}=ADDR)");
            }
        }
        for route in table.routes() {
            if let Some(signed) =
                route.signed.as_ref().filter(|s| !s.keys.iter().any(|k| self.signing_key_ids.contains(k)))
            {
                tracing::warn!(route = %route.name, keys = ?signed.keys, "route requires signed URLs with keys this edge does not hold (--signing-keys): every request to it gets 403");
            }
        }
        match &self.certs {
            Some(certs) => {
                certs.set_group(crate::tls::Group::Table, crate::tls::CertSource::from_table(table.certificates()))
            }
            None if !table.certificates().is_empty() => {
                tracing::warn!(
                    certificates = table.certificates().len(),
                    "the route table has TLS certificates but this edge has no HTTPS entrypoint (--https)"
                );
            }
            None => {}
        }
        let applied_at = SystemTime::now();
        let m = &self.metrics;
        m.config_info.reset();
        m.config_info.with_label_values(&[table.version(), source]).set(1);
        m.config_loaded_time.set(unix(applied_at));
        m.config_routes.set(table.routes().len() as i64);
        m.config_reloads.with_label_values(&["ok"]).inc();
        tracing::info!(
            version = table.version(),
            previous = old.as_ref().map(|o| o.table.version()).unwrap_or("none"),
            routes = table.routes().len(),
            upstreams = table.upstreams().len(),
            source,
            "applied route table"
        );
        let active = Active { table, pools, tcp_pools, source: source.to_owned(), applied_at };
        self.active.store(Some(Arc::new(active)));
        self.ready.send_if_modified(|ready| !std::mem::replace(ready, true));
    }

    /// Records a table that failed validation: every error is logged, the count goes up, the active table stays.
    pub fn reject(&self, source: &str, errors: &RouteErrors) {
        self.metrics.config_reloads.with_label_values(&["failed"]).inc();
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
        if let Ok(mut slot) = self.last_rejected.lock() {
            *slot = Some(rejected);
        }
    }
}
