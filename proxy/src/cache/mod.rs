//! The edge's HTTP cache: policy (what to store, for how long), key (what identifies an object), storage (the
//! in-memory store), and [`Cache`], the process-wide runtime (store, eviction, lock) that the proxy phases use.

pub mod body;
pub mod cors;
pub mod disk;
pub mod key;
pub mod live;
pub mod lock;
pub mod policy;
pub mod request;
pub mod select;
pub mod status;
pub mod storage;
pub mod tags;

use std::sync::Arc;
use std::time::Duration;

use pingora_cache::eviction::{lru, CacheEntryKeyRef, EvictionManager};
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::lock::CacheKeyLockImpl;

use crate::metrics::disk::DiskError;
use crate::metrics::Metrics;
use live::Continuity;
use storage::{MemStore, StoreObserver};

/// Cache settings from the command line.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Hard byte budget of the store (`--cache-size`).
    pub size: usize,
    /// Largest object admitted (`--cache-max-object`); larger responses pass through uncached.
    pub max_object: usize,
    /// How long the first request for an object may hold the fill lock before another request takes over
    /// (`--cache-lock-timeout`). Readers wait for the lock without a timeout of their own, so a slow origin
    /// never releases a herd: after this, exactly one waiting request becomes the new writer.
    pub lock_timeout: Duration,
    /// Where large bodies live (`--cache-body-dir`); `None` for anonymous memory files (see [`body`]).
    pub body_dir: Option<std::path::PathBuf>,
    /// The disk tier (`--cache-dir`, `--cache-disk-size`); `None`: memory only.
    pub disk: Option<disk::DiskSettings>,
}

impl CacheSettings {
    pub const DEFAULT_SIZE: usize = 256 << 20;
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

    /// The default largest object: an eighth of the budget, so one object never flushes most of the cache.
    pub fn default_max_object(size: usize) -> usize {
        size / 8
    }
}

struct MetricsObserver(Arc<Metrics>);

impl StoreObserver for MetricsObserver {
    fn stored(&self, bytes: usize, objects: usize) {
        self.0.memory.stored_bytes.set(bytes as i64);
        self.0.memory.objects.set(objects as i64);
    }
    fn write_failed(&self) {
        self.0.memory.write_failures.inc();
    }
    fn evicted(&self) {
        self.0.memory.evictions.inc();
    }
    fn live_judged(&self, primary: &str, continuity: Continuity, dropped: usize) {
        self.0.live.playlists(continuity).inc();
        self.0.live.dropped.inc_by(dropped as u64);
        if dropped > 0 {
            let (host, path) = key::split_primary(primary);
            tracing::info!(
                host,
                path,
                continuity = continuity.label(),
                dropped,
                "cached segments this playlist does not vouch for were dropped"
            );
        }
    }
    fn live_unreadable(&self, primary: &str, reason: &str) {
        self.0.live.unreadable.inc();
        let (host, path) = key::split_primary(primary);
        tracing::warn!(
            host,
            path,
            reason,
            "fetched playlist is not readable HLS/DASH; nothing it lists is vouched for"
        );
    }
}

struct DiskMetricsObserver(Arc<Metrics>);

impl disk::DiskObserver for DiskMetricsObserver {
    fn stored(&self, bytes: usize, objects: usize) {
        self.0.disk.stored_bytes.set(bytes as i64);
        self.0.disk.objects.set(objects as i64);
    }
    fn hit(&self) {
        self.0.disk.hits.inc();
    }
    fn written(&self) {
        self.0.disk.writes.inc();
    }
    fn evicted(&self) {
        self.0.disk.evictions.inc();
    }
    fn error(&self, kind: DiskError) {
        self.0.disk.errors(kind).inc();
    }
    fn enabled(&self, on: bool) {
        self.0.disk.enabled.set(i64::from(on));
    }
    fn loaded(&self, seconds: f64) {
        self.0.disk.index_load_seconds.set(seconds);
    }
}

/// Opens the disk tier and starts loading its index; `None` (memory only, said once in the log and in
/// `dime_cache_disk_errors_total{kind="unavailable"}`) when the directory cannot be used.
fn open_disk(settings: &disk::DiskSettings, metrics: &Arc<Metrics>) -> Option<Arc<disk::DiskTier>> {
    metrics.disk.budget_bytes.set(settings.size as i64);
    match disk::DiskTier::open(settings, Box::new(DiskMetricsObserver(metrics.clone()))) {
        Ok(tier) => {
            tier.load();
            Some(tier)
        }
        Err(e) => {
            metrics.disk.errors(DiskError::Unavailable).inc();
            tracing::error!(dir = %settings.dir.display(), error = %e, "the cache directory cannot be used; the cache runs in memory only");
            None
        }
    }
}

const LRU_SHARDS: usize = 16;
/// Entries each LRU shard has room for before it first grows.
const LRU_PREALLOCATED: usize = 256;

/// The process-wide cache. pingora-cache wants `'static` references; the parts live for the whole process.
pub struct Cache {
    pub store: &'static MemStore,
    pub eviction: &'static lru::Manager<LRU_SHARDS>,
    pub lock: &'static lock::FillLock,
    pub settings: CacheSettings,
    tombstones: Tombstones,
}

/// Keys invalidated lately (RFC 9111 §4.4), with when: a fill sent to the origin before that is not stored
/// (its answer may predate the change), and a miss on such a key is not fetched from a fleet member, whose copy
/// the invalidation did not reach. Kept for [`TOMBSTONE_TTL`], at most [`MAX_TOMBSTONES`] (past that the oldest
/// half is forgotten).
#[derive(Debug, Default)]
struct Tombstones(parking_lot::Mutex<std::collections::HashMap<pingora_cache::key::HashBinary, std::time::Instant>>);

const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
const MAX_TOMBSTONES: usize = 10_000;

impl Tombstones {
    fn mark(&self, hash: pingora_cache::key::HashBinary) {
        let now = std::time::Instant::now();
        let mut map = self.0.lock();
        if map.len() >= MAX_TOMBSTONES {
            map.retain(|_, at| now.duration_since(*at) < TOMBSTONE_TTL);
            if map.len() >= MAX_TOMBSTONES {
                let mut ages: Vec<std::time::Instant> = map.values().copied().collect();
                let mid = ages.len() / 2;
                let median = *ages.select_nth_unstable(mid).1;
                map.retain(|_, at| *at > median);
            }
        }
        map.insert(hash, now);
    }

    fn get(&self, hash: &pingora_cache::key::HashBinary) -> Option<std::time::Instant> {
        let map = self.0.lock();
        map.get(hash).copied().filter(|at| at.elapsed() < TOMBSTONE_TTL)
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("store", &self.store).field("settings", &self.settings).finish()
    }
}

impl Cache {
    /// The fill lock as pingora-cache takes it.
    pub fn lock(&self) -> &'static CacheKeyLockImpl {
        self.lock
    }

    /// Builds the cache once per process (the parts are leaked on purpose: they must outlive every request).
    pub fn new(settings: CacheSettings, metrics: Arc<Metrics>) -> Self {
        metrics.memory.budget_bytes.set(settings.size as i64);
        let disk = settings.disk.as_ref().and_then(|d| open_disk(d, &metrics));
        let store: &'static MemStore =
            Box::leak(Box::new(MemStore::new(Some(Box::new(MetricsObserver(metrics))), settings.body_dir.clone())));
        // The capacity is what pingora-lru preallocates, per shard: kept small, the maps grow with the cache. Sized
        // for a budget full of 16 KiB objects in every shard, it held 31 MiB resident from the start with a 512 MiB
        // budget, before anything was cached (docs/benchmarks.md, "Resident memory").
        let eviction: &'static lru::Manager<LRU_SHARDS> =
            Box::leak(Box::new(lru::Manager::with_capacity(settings.size, LRU_PREALLOCATED)));
        let lock: &'static lock::FillLock = Box::leak(Box::new(lock::FillLock::new(settings.lock_timeout)));
        store.set_drop_hook(Box::new(move |key, gone| {
            if gone == storage::Gone::Object {
                eviction.remove(CacheEntryKeyRef::from_entry_id(key, None));
            }
            lock.forget(key);
        }));
        if let Some(disk) = disk {
            store.set_disk(disk);
        }
        Cache { store, eviction, lock, settings, tombstones: Tombstones::default() }
    }

    /// Invalidates the object stored under the primary key `primary` (RFC 9111 §4.4): its copy (memory and disk) and
    /// fills of it in flight go, and the fill lock forgets it. Only the primary slot is looked at: Pingora finds
    /// every other variant of a URL through it, and takes none older than the primary it finds (the variants'
    /// tombstone), so removing it retires them all at the cost of one lookup. Whether something was removed.
    pub fn invalidate(&self, primary: &str) -> bool {
        let hash = pingora_cache::key::hash_key(primary);
        self.tombstones.mark(hash);
        if let Some(disk) = self.store.disk().filter(|d| !d.loaded()) {
            // The disk index is still loading: the purge waits for it, as a fleet purge does.
            disk.purge(&select::Selector::Key(primary.to_owned()));
        }
        let removed = self.store.drop_older(&hash, std::time::SystemTime::now());
        self.lock.forget_hash(&hash);
        removed
    }

    /// When the object of `primary` was last invalidated here, if lately ([`Tombstones`]).
    pub fn invalidated_at(&self, primary: &str) -> Option<std::time::Instant> {
        self.tombstones.get(&pingora_cache::key::hash_key(primary))
    }

    /// Purges what `what` names ([`storage::MemStore::purge_selected`]); returns how many stored objects it removed (or
    /// made stale, with `soft`) in memory or on disk, and how many fills in flight it abandoned. The fill lock forgets every key met,
    /// so the next request fetches instead of waiting on a fill that will not be stored.
    pub fn purge(&self, what: &select::Selector, soft: bool) -> (usize, usize) {
        let purged = self.store.purge_selected(what, soft, std::time::SystemTime::now());
        for key in &purged.objects {
            if !soft {
                self.eviction.remove(CacheEntryKeyRef::from_entry_id(key, None));
            }
            self.lock.forget(key);
        }
        for hash in &purged.fills {
            self.lock.forget_hash(hash);
        }
        // Objects purged on disk and in memory count once.
        let disk_only = if purged.disk.is_empty() {
            0
        } else {
            let in_memory: std::collections::HashSet<HashBinary> =
                purged.objects.iter().map(|k| k.combined_bin()).collect();
            purged.disk.iter().filter(|h| !in_memory.contains(*h)).count()
        };
        (purged.objects.len() + disk_only, purged.fills.len())
    }
}
