//! Disk tier files kept open for hits: a hit on an object that is on disk but not in memory is answered from
//! its open file (by `sendfile` for a plain GET, by reads that never wait for the disk otherwise), without
//! reading the body into memory, with no blocking-thread trip and no second checksum pass. A file is checked
//! whole once, when it is opened ([`crate::cache::disk`]); the kernel's page cache then keeps its pages in
//! memory for as long as they are used, as it does for nginx's `proxy_cache`.
//!
//! Bounded by count (each one holds a descriptor and the object's header), least recently used first out. A
//! key that leaves the disk index (purged, evicted, replaced, refused) leaves this map under the index's lock
//! ([`crate::cache::disk::DiskTier::set_gone_hook`]), and a file is only added under that lock while it is
//! still the current one, so a purge never leaves an open file behind to serve.

use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

use super::*;

const SHARDS: usize = 8;
/// Files kept open at most, unless the descriptor limit is lower (a quarter of it then).
pub const MAX_OPEN: usize = 4096;

type Shard = Mutex<LruCache<HashBinary, Arc<Object>>>;

pub(super) struct Opened {
    shards: Box<[Shard]>,
}

impl Opened {
    pub(super) fn new() -> Opened {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let cap = nofile.map_or(MAX_OPEN, |n| (n as usize / 4).min(MAX_OPEN)).max(SHARDS);
        let per_shard = NonZeroUsize::new(cap / SHARDS).unwrap_or(NonZeroUsize::MIN);
        Opened { shards: (0..SHARDS).map(|_| Mutex::new(LruCache::new(per_shard))).collect() }
    }

    fn shard(&self, hash: &HashBinary) -> &Shard {
        &self.shards[hash[1] as usize % SHARDS]
    }

    pub(super) fn get(&self, hash: &HashBinary) -> Option<Arc<Object>> {
        self.shard(hash).lock().get(hash).cloned()
    }

    /// Keeps `object` (dropping the least recently used file of its shard when full).
    pub(super) fn put(&self, hash: HashBinary, object: Arc<Object>) {
        self.shard(&hash).lock().put(hash, object);
    }

    pub(super) fn remove(&self, hash: &HashBinary) {
        self.shard(hash).lock().pop(hash);
    }

    /// Replaces the kept object of `hash` with `update(old)`; whether there was one.
    pub(super) fn update(&self, hash: &HashBinary, update: impl FnOnce(&Object) -> Object) -> bool {
        let mut shard = self.shard(hash).lock();
        match shard.get_mut(hash) {
            Some(old) => {
                *old = Arc::new(update(old));
                true
            }
            None => false,
        }
    }
}
