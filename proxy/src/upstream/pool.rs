//! A pool of origin addresses for one upstream: weighted round robin over the addresses that are in rotation,
//! with active health state and passive ejection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use dime_routes::Upstream;

/// Consecutive failed requests after which an address is taken out of rotation...
pub const PASSIVE_FAILURES: u32 = 2;
/// ...for this long.
pub const EJECT_FOR: Duration = Duration::from_secs(10);

/// Wall-clock milliseconds, the unit of ejection deadlines.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One resolved address of one configured server.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Index of the server (in the upstream's `servers`) this address came from.
    pub server: usize,
    pub weight: u32,
    /// Result of the last active health check (true until a check says otherwise).
    healthy: AtomicBool,
    failures: AtomicU32,
    ejected_until_ms: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, server: usize, weight: u32) -> Self {
        Endpoint {
            addr,
            server,
            weight,
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// In rotation: passing health checks and not passively ejected.
    pub fn in_rotation(&self, now_ms: u64) -> bool {
        self.is_healthy() && !self.is_ejected(now_ms)
    }

    /// Records an active health check result; returns true if the state changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// A request to this address failed (connect error or broken response). Returns true when this failure
    /// ejected it.
    pub fn record_failure(&self) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= PASSIVE_FAILURES {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(now_ms() + EJECT_FOR.as_millis() as u64, Ordering::Relaxed);
            return true;
        }
        false
    }

    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}

/// The current addresses and the order in which weights hand them out.
#[derive(Debug, Default)]
pub struct Endpoints {
    pub list: Vec<Arc<Endpoint>>,
    /// Smooth weighted round-robin sequence of indices into `list`; one full cycle honours every weight.
    schedule: Vec<u32>,
}

impl Endpoints {
    fn new(list: Vec<Arc<Endpoint>>) -> Self {
        let schedule = smooth_weighted_schedule(&list.iter().map(|e| e.weight).collect::<Vec<_>>());
        Endpoints { list, schedule }
    }
}

/// The smooth weighted round-robin order (as nginx does it): weights 5,1,1 give a,a,b,a,c,a,a rather than
/// a,a,a,a,a,b,c, so a heavy server is not hit in bursts.
pub fn smooth_weighted_schedule(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

/// A pool for one upstream definition. Shared across route tables while the definition is unchanged, so health
/// and DNS state survive reloads.
#[derive(Debug)]
pub struct Pool {
    pub spec: Upstream,
    /// The CA bundle of an https upstream with `tls.ca_file`, parsed once.
    pub ca: Option<Arc<pingora_core::protocols::tls::CaType>>,
    /// Connection-reuse group of an https upstream: Pingora's pool does not tell trust stores apart, so a
    /// connection verified with one CA bundle must not serve an upstream configured with another.
    pub tls_group: u64,
    endpoints: ArcSwap<Endpoints>,
    cursor: AtomicUsize,
    pub(crate) maintenance: super::Maintenance,
}

impl Pool {
    pub fn new(spec: Upstream) -> Self {
        let tls_group = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            spec.tls.as_ref().map(|t| &t.ca_file).hash(&mut h);
            h.finish()
        };
        Pool {
            spec,
            ca: None,
            tls_group,
            endpoints: ArcSwap::from_pointee(Endpoints::default()),
            cursor: AtomicUsize::new(0),
            maintenance: super::Maintenance::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.endpoints.load_full()
    }

    /// Replaces the addresses of server `server` with `addrs`, keeping the state of addresses that stay.
    /// Returns true if anything changed.
    pub fn set_addresses(&self, server: usize, addrs: &[SocketAddr]) -> bool {
        let mut addrs = addrs.to_vec();
        addrs.sort();
        addrs.dedup();
        let current = self.endpoints.load();
        let old: Vec<SocketAddr> = current.list.iter().filter(|e| e.server == server).map(|e| e.addr).collect();
        if old == addrs {
            return false;
        }
        let weight = self.spec.servers.get(server).map_or(1, |s| s.weight);
        let mut list: Vec<Arc<Endpoint>> = current.list.iter().filter(|e| e.server != server).cloned().collect();
        for &addr in &addrs {
            let kept = current.list.iter().find(|e| e.server == server && e.addr == addr).cloned();
            list.push(kept.unwrap_or_else(|| Arc::new(Endpoint::new(addr, server, weight))));
        }
        list.sort_by_key(|e| (e.server, e.addr));
        self.endpoints.store(Arc::new(Endpoints::new(list)));
        true
    }

    /// Picks the next address by weight among those in rotation, skipping `exclude` (addresses this request
    /// already tried). If every remaining address is passively ejected, the least bad one is used anyway rather
    /// than failing the request; addresses failing active health checks are never used.
    pub fn select(&self, exclude: &[SocketAddr]) -> Option<Arc<Endpoint>> {
        let endpoints = self.endpoints.load();
        let n = endpoints.schedule.len();
        if n == 0 {
            return None;
        }
        let now = now_ms();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut fallback: Option<&Arc<Endpoint>> = None;
        for i in 0..n {
            let ep = &endpoints.list[endpoints.schedule[(start + i) % n] as usize];
            if exclude.contains(&ep.addr) || !ep.is_healthy() {
                continue;
            }
            if !ep.is_ejected(now) {
                return Some(ep.clone());
            }
            let until = |e: &Endpoint| e.ejected_until_ms.load(Ordering::Relaxed);
            if fallback.is_none_or(|f| until(ep) < until(f)) {
                fallback = Some(ep);
            }
        }
        fallback.cloned()
    }
}

#[cfg(test)]
mod tests;
