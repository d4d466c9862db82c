//! Upstream pools and their upkeep: DNS re-resolution and active health checks, one pool at a time
//! ([`maintain`]; the loop over the pools of the active route table is [`crate::upkeep`]).

pub mod health;
pub mod pool;
pub mod resolve;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// tokio's clock, so tests can pause and advance time.
use parking_lot::Mutex;
use tokio::time::Instant;

use dime_routes::{Probe, Upstream};

use crate::metrics::Metrics;
pub use pool::{Endpoint, Pool};
pub use resolve::{Overrides, Resolve, ResolveError, SharedResolver, SystemResolver};

/// When a pool's next DNS refresh and health check are due.
#[derive(Debug, Default)]
pub struct Maintenance {
    next_dns: Mutex<Option<Instant>>,
    next_health: Mutex<Option<Instant>>,
    busy: AtomicBool,
}

/// Builds the pools for a new table's upstreams (HTTP or TCP), reusing the pool of every upstream whose
/// definition did not change so its health and addresses carry over.
pub fn build_pools(
    upstreams: &BTreeMap<String, Upstream>,
    old: Option<&BTreeMap<String, Arc<Pool>>>,
) -> Result<BTreeMap<String, Arc<Pool>>, CaFileError> {
    let mut pools = BTreeMap::new();
    for (name, spec) in upstreams {
        let pool = match old.and_then(|o| o.get(name)).filter(|p| &p.spec == spec) {
            Some(p) => p.clone(),
            None => {
                let mut pool = Pool::new(spec.clone());
                if let Some(file) = spec.tls.as_ref().and_then(|t| t.ca_file.as_deref()) {
                    let ca = load_ca(file).map_err(|error| CaFileError {
                        upstream: name.clone(),
                        file: file.to_owned(),
                        error,
                    })?;
                    pool.ca = Some(ca);
                }
                Arc::new(pool)
            }
        };
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}

/// An upstream's `tls.ca_file` that cannot be used; shown as `tls.ca_file FILE: why`.
#[derive(Debug, thiserror::Error)]
pub struct CaFileError {
    /// The upstream that names the file.
    pub upstream: String,
    pub file: String,
    pub error: crate::tls::TlsError,
}

impl std::fmt::Display for CaFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = &self.file;
        match &self.error {
            // A read error already names the file.
            crate::tls::TlsError::Read { error, .. } => write!(f, "tls.ca_file {file}: {error}"),
            other => write!(f, "tls.ca_file {file}: {other}"),
        }
    }
}

/// Reads a PEM CA bundle (one or more certificates).
fn load_ca(path: &str) -> Result<Arc<pingora_core::protocols::tls::CaType>, crate::tls::TlsError> {
    use crate::tls::TlsError;
    use pingora_core::utils::tls::{parse_x509, WrappedX509};
    let pem = std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error })?;
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let block = block.map_err(|e| TlsError::Pem(format!("not PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| TlsError::Pem(format!("bad certificate: {e}")))?;
        certs.push(WrappedX509::new(block.contents, parse_x509));
    }
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate in the file".into()));
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

/// Resolves every server of a pool once; used before a new pool is put in service. Failures keep the old
/// addresses (none, for a new pool) and are logged and counted.
pub async fn resolve_pool(pool: &Pool, resolver: &dyn Resolve, metrics: &Metrics) {
    for (i, server) in pool.spec.servers.iter().enumerate() {
        let authority = server.authority();
        match resolver.resolve(&authority).await {
            Ok(addrs) => {
                if pool.set_addresses(i, &addrs) {
                    tracing::info!(upstream = pool.name(), server = %authority, addresses = ?addrs, "resolved upstream server");
                }
            }
            Err(error) => {
                metrics.upstream.dns_failures(pool.name()).inc();
                let kept = pool.endpoints().list.iter().filter(|e| e.server == i).count();
                tracing::warn!(upstream = pool.name(), server = %authority, %error, kept_addresses = kept, "upstream name did not resolve; keeping the addresses it had");
            }
        }
    }
    export_health(pool, metrics);
}

fn export_health(pool: &Pool, metrics: &Metrics) {
    let now = pool::now_ms();
    for ep in pool.endpoints().list.iter() {
        let v = i64::from(ep.in_rotation(now));
        metrics.upstream.endpoint_healthy(pool.name(), ep.addr).set(v);
    }
}

/// Health-checks every address of a pool concurrently and records the results.
async fn check_pool(pool: &Pool, metrics: &Metrics) {
    let Some(hc) = &pool.spec.health_check else { return };
    let mut checks = tokio::task::JoinSet::new();
    for ep in pool.endpoints().list.iter() {
        let (ep, probe, timeout) = (ep.clone(), hc.probe.clone(), hc.timeout);
        let server_host = pool.spec.servers[ep.server].host.clone();
        let https = pool.spec.tls.is_some();
        checks.spawn(async move {
            let result = match probe {
                // Over https the active check is a TCP connect (the proxy path verifies TLS on every request).
                Probe::Http { .. } if https => health::connect(ep.addr, timeout).await,
                Probe::Http { path, hostname } => {
                    health::check(ep.addr, hostname.as_deref().unwrap_or(&server_host), &path, timeout).await
                }
                Probe::Connect => health::connect(ep.addr, timeout).await,
            };
            (ep, result)
        });
    }
    while let Some(Ok((ep, result))) = checks.join_next().await {
        if ep.set_healthy(result.is_ok()) {
            match result {
                Ok(()) => {
                    tracing::info!(upstream = pool.name(), address = %ep.addr, "upstream address passes its health check again")
                }
                Err(error) => {
                    tracing::warn!(upstream = pool.name(), address = %ep.addr, %error, "upstream address failed its health check; out of rotation")
                }
            }
        }
    }
    export_health(pool, metrics);
}

/// One round of upkeep for one pool: starts a DNS refresh and/or a health round if due. Runs them on a spawned
/// task so one slow origin never delays another pool.
pub fn maintain(pool: &Arc<Pool>, resolver: &SharedResolver, metrics: &Arc<Metrics>) {
    let now = Instant::now();
    let due = |slot: &Mutex<Option<Instant>>, every: Duration| -> bool {
        let mut next = slot.lock();
        if next.is_none_or(|t| now >= t) {
            *next = Some(now + every);
            return true;
        }
        false
    };
    let no_addresses = pool.endpoints().list.is_empty();
    let dns_every = if no_addresses { Duration::from_secs(1) } else { pool.spec.dns_refresh };
    let dns_due = due(&pool.maintenance.next_dns, dns_every);
    let health_due = pool.spec.health_check.as_ref().is_some_and(|hc| due(&pool.maintenance.next_health, hc.interval));
    if !(dns_due || health_due) || pool.maintenance.busy.swap(true, Ordering::AcqRel) {
        return;
    }
    let (pool, resolver, metrics) = (pool.clone(), resolver.clone(), metrics.clone());
    tokio::spawn(async move {
        if dns_due {
            resolve_pool(&pool, resolver.as_ref(), &metrics).await;
        }
        if health_due {
            check_pool(&pool, &metrics).await;
        } else {
            export_health(&pool, &metrics);
        }
        pool.maintenance.busy.store(false, Ordering::Release);
    });
}

#[cfg(test)]
mod tests;
