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

fn now_ms() -> u64 {
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
    endpoints: ArcSwap<Endpoints>,
    cursor: AtomicUsize,
    pub(crate) maintenance: super::Maintenance,
}

impl Pool {
    pub fn new(spec: Upstream) -> Self {
        Pool {
            spec,
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
mod tests {
    use super::*;
    use dime_routes::Server;

    fn pool(weights: &[u32]) -> Pool {
        let servers =
            weights.iter().enumerate().map(|(i, &weight)| Server { host: format!("s{i}"), port: 80, weight }).collect();
        let spec = Upstream {
            name: "u".into(),
            servers,
            health_check: None,
            pass_host_header: true,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            dns_refresh: Duration::from_secs(30),
        };
        let p = Pool::new(spec);
        for i in 0..weights.len() {
            p.set_addresses(i, &[format!("127.0.0.{}:80", i + 1).parse().unwrap()]);
        }
        p
    }

    fn counts(p: &Pool, n: usize) -> Vec<usize> {
        let mut c = vec![0; p.spec.servers.len()];
        for _ in 0..n {
            c[p.select(&[]).unwrap().server] += 1;
        }
        c
    }

    #[test]
    fn smooth_schedule_spreads_the_heavy_server() {
        assert_eq!(smooth_weighted_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert!(smooth_weighted_schedule(&[0, 0]).is_empty());
    }

    #[test]
    fn selection_follows_weights() {
        assert_eq!(counts(&pool(&[3, 1]), 400), vec![300, 100]);
        assert_eq!(counts(&pool(&[1, 0, 1]), 10), vec![5, 0, 5]);
    }

    #[test]
    fn unhealthy_and_ejected_addresses_leave_rotation() {
        let p = pool(&[1, 1]);
        let first = p.endpoints().list[0].clone();
        first.set_healthy(false);
        assert_eq!(counts(&p, 10), vec![0, 10]);
        first.set_healthy(true);
        let second = p.endpoints().list[1].clone();
        assert!(!second.record_failure(), "one failure is not enough to eject");
        assert!(second.record_failure());
        assert_eq!(counts(&p, 10), vec![10, 0]);
    }

    #[test]
    fn ejected_everywhere_still_serves_but_failing_health_checks_do_not() {
        let p = pool(&[1, 1]);
        for ep in p.endpoints().list.iter() {
            ep.record_failure();
            ep.record_failure();
        }
        assert!(p.select(&[]).is_some(), "passive ejection of every address falls back");
        for ep in p.endpoints().list.iter() {
            ep.set_healthy(false);
        }
        assert!(p.select(&[]).is_none());
    }

    #[test]
    fn retries_skip_addresses_already_tried() {
        let p = pool(&[1, 1]);
        let a = p.select(&[]).unwrap();
        let b = p.select(&[a.addr]).unwrap();
        assert_ne!(a.addr, b.addr);
        assert!(p.select(&[a.addr, b.addr]).is_none());
    }

    #[test]
    fn re_resolution_keeps_state_of_addresses_that_stay() {
        let p = pool(&[1]);
        let old = p.endpoints().list[0].clone();
        old.set_healthy(false);
        let addrs: Vec<SocketAddr> = vec![old.addr, "127.0.0.9:80".parse().unwrap()];
        assert!(p.set_addresses(0, &addrs));
        assert!(!p.set_addresses(0, &addrs), "same answer, no change");
        let list = &p.endpoints().list;
        assert_eq!(list.len(), 2);
        assert!(!list.iter().find(|e| e.addr == old.addr).unwrap().is_healthy());
    }
}
