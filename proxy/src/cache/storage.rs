//! `MemStore`: the in-memory `Storage` behind pingora-cache.
//!
//! - Sharded maps keyed by the 128-bit cache hash; a hit clones an `Arc` and hands out `Bytes` slices of the one
//!   contiguous body: no body copy, no metadata decoding (the header is cloned, never re-parsed).
//! - Streaming partial writes: while the first request for an object is still receiving it from the origin,
//!   readers behind the cache lock get each chunk as it arrives.
//! - A write that does not finish (origin aborted, client of the writer gone, error) marks the partial object
//!   failed: readers streaming it get an error, never a clean end of body, and nothing is stored.
//! - Bodies of [`FILE_BODY_MIN`] bytes and more move into a file when the object completes
//!   ([`super::body`]), so plain GET hits on them can be sent with `sendfile` ([`MemStore::complete`]).
//! - Live playlists ([`super::live`]): readers of a playlist being filled get its body only once it is complete
//!   and judged, so no viewer learns a segment name before the segments the playlist does not vouch for are
//!   dropped (and fills of them in progress abandoned).
//! - Sizes are counted in bytes (body + header + key); the byte budget itself is enforced by the eviction manager
//!   (pingora's LRU), which tells the store what to purge.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use pingora_cache::eviction::CacheEntryKey;
use pingora_cache::key::{CacheHashKey, CacheKey, CompactCacheKey, HashBinary};
use pingora_cache::storage::streaming_write::U64WriteId;
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::CacheMeta;
use pingora_core::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::body::{BodyFile, FILE_BODY_MIN};
use super::live::index::{Completed, LiveIndex, VodTtl};
use super::live::Format;
use super::select::{Purged, Selector};
use super::tags::{self, TagIndex};

const SHARDS: usize = 32;

/// A copy of a `CacheMeta` without serializing it (it is not `Clone`): the header is cloned, the rest copied.
pub fn copy_meta(meta: &CacheMeta) -> CacheMeta {
    let mut copy = CacheMeta::new(
        meta.fresh_until(),
        meta.created(),
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
        meta.response_header_copy(),
    );
    // Age is measured from `updated` (the last revalidation); keep it through the copy.
    let epoch = meta.epoch();
    if epoch != meta.created() {
        copy.set_epoch_override(epoch);
    }
    if let Some(v) = meta.variance() {
        copy.set_variance(v);
    }
    copy
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// Chunks written so far.
    Writing(usize),
    Done(usize),
    Failed,
}

/// An object being written: readers follow `state` and read `chunks` by index.
struct Partial {
    meta: CacheMeta,
    /// The primary key text, for purges that meet the fill in flight.
    primary: Arc<str>,
    chunks: RwLock<Vec<Bytes>>,
    state: watch::Sender<WriteState>,
    /// Readers get the body only when it is complete (playlists, see the module doc).
    whole: bool,
    /// Dropped while being written (a playlist did not vouch for it): finishing does not store it.
    abandoned: AtomicBool,
}

/// Where the store reports what it holds (wired to metrics by the proxy).
pub trait StoreObserver: Send + Sync {
    fn stored(&self, bytes: usize, objects: usize);
    fn write_failed(&self);
    fn evicted(&self);
    /// A live playlist was judged and `dropped` objects it did not vouch for went.
    fn live_judged(&self, primary: &str, continuity: crate::cache::live::Continuity, dropped: usize);
    /// A fetched playlist could not be read as one.
    fn live_unreadable(&self, primary: &str, reason: &str);
}

/// Told about every object the store drops on its own (for live playlists), so the eviction manager and the
/// fill lock forget it too, and about every fill that failed.
pub type DropHook = Box<dyn Fn(&CompactCacheKey, Gone) + Send + Sync>;

/// What [`DropHook`] is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// A stored object was dropped.
    Object,
    /// A fill ended without its object (its origin broke off, or the request gave it up): its fill lock, released
    /// to let readers stream the partial, must not make the next requests wait on it.
    Fill,
}

type Shard<T> = RwLock<HashMap<HashBinary, T>>;
/// Writes in progress for one key, by write id.
type Writes = Vec<(u64, Arc<Partial>)>;

pub struct MemStore {
    objects: Box<[Shard<Arc<Object>>]>,
    partials: Box<[Shard<Writes>]>,
    next_write: AtomicU64,
    bytes: AtomicUsize,
    count: AtomicUsize,
    observer: Option<Box<dyn StoreObserver>>,
    body_dir: Option<std::path::PathBuf>,
    live: LiveIndex,
    tags: TagIndex,
    on_drop: OnceLock<DropHook>,
    disk: OnceLock<Arc<crate::cache::disk::DiskTier>>,
    opened: opened::Opened,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").field("bytes", &self.bytes).field("objects", &self.count).finish()
    }
}

fn shard_of(hash: &HashBinary) -> usize {
    hash[0] as usize % SHARDS
}

impl MemStore {
    /// `body_dir`: where large bodies go (see [`super::body`]); `None` for anonymous files.
    pub fn new(observer: Option<Box<dyn StoreObserver>>, body_dir: Option<std::path::PathBuf>) -> Self {
        MemStore {
            objects: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            partials: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next_write: AtomicU64::new(1),
            bytes: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            observer,
            body_dir,
            live: LiveIndex::new(),
            tags: TagIndex::default(),
            on_drop: OnceLock::new(),
            disk: OnceLock::new(),
            opened: opened::Opened::new(),
        }
    }

    /// The fleet ring key of the stream whose playlist lists the segment with primary key `primary` from another
    /// directory ([`LiveIndex::stream_of`]).
    pub fn stream_of(&self, primary: &str) -> Option<std::sync::Arc<str>> {
        self.live.stream_of(&pingora_cache::key::hash_key(primary))
    }

    /// A fill of `key` ended without its object: told to the drop hook.
    pub(super) fn fill_failed(&self, key: &CompactCacheKey) {
        if let Some(hook) = self.on_drop.get() {
            hook(key, Gone::Fill);
        }
    }

    /// Sets what is told about objects the store drops itself (once; later calls are ignored).
    pub fn set_drop_hook(&self, hook: DropHook) {
        let _ = self.on_drop.set(hook);
    }

    /// Drops the object `hash` names if it was created before `before`, and abandons fills of it that started
    /// before then (they finish for the readers they have, but are not stored, and no new reader joins them).
    pub fn drop_older(&self, hash: &HashBinary, before: SystemTime) -> bool {
        // The disk copy first (whatever its age: a copy is cheap to refetch), so a read from disk racing this
        // cannot put it back in memory.
        if let Some(disk) = self.disk.get() {
            disk.forget(hash, None);
        }
        let removed = {
            let mut shard = self.objects[shard_of(hash)].write();
            match shard.get(hash) {
                Some(o) if o.meta.created() < before => shard.remove(hash),
                _ => None,
            }
        };
        let mut dropped = false;
        {
            let mut shard = self.partials[shard_of(hash)].write();
            if let Some(writes) = shard.get_mut(hash) {
                writes.retain(|(_, p)| {
                    let old = p.meta.created() < before;
                    if old {
                        p.abandoned.store(true, Ordering::Relaxed);
                        dropped = true;
                    }
                    !old
                });
                if writes.is_empty() {
                    shard.remove(hash);
                }
            }
        }
        if let Some(o) = removed {
            self.tags.remove(hash, &o.tags);
            self.bytes.fetch_sub(o.size, Ordering::Relaxed);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.report();
            if let Some(hook) = self.on_drop.get() {
                hook(&o.compact, Gone::Object);
            }
            dropped = true;
        }
        dropped
    }

    /// Judges a completed playlist (see [`super::live`]) before any reader gets it; returns its freshness when
    /// it turned out to be VOD.
    fn judge_playlist(
        &self,
        primary: &str,
        meta: &CacheMeta,
        body: &[Bytes],
        vod: Option<VodTtl>,
    ) -> Option<SystemTime> {
        let created = meta.created();
        let status = meta.response_header().status.as_u16();
        let done = Completed { primary, status, created, now: SystemTime::now(), body };
        let action = self.live.completed(&done)?;
        if let (Some(reason), Some(o)) = (&action.unreadable, &self.observer) {
            o.live_unreadable(primary, &reason.to_string());
        }
        let dropped = action.drop.iter().filter(|h| self.drop_older(h, created)).count();
        if let (Some(c), Some(o)) = (action.continuity, &self.observer) {
            o.live_judged(primary, c, dropped);
        }
        match (action.vod, vod) {
            (true, Some(VodTtl(ttl))) => Some(created + ttl),
            _ => None,
        }
    }

    /// Bytes held by complete objects.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn objects(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn report(&self) {
        if let Some(o) = &self.observer {
            o.stored(self.bytes(), self.objects());
        }
    }

    fn insert_arc(&self, hash: HashBinary, object: Arc<Object>) {
        let size = object.size;
        let tags = object.tags.clone();
        let old = self.objects[shard_of(&hash)].write().insert(hash, object);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(old) = &old {
            self.tags.remove(&hash, &old.tags);
        }
        self.tags.add(hash, &tags);
        match old {
            Some(old) => {
                self.bytes.fetch_sub(old.size, Ordering::Relaxed);
            }
            None => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.report();
    }

    fn remove(&self, hash: &HashBinary) -> Option<Arc<Object>> {
        let old = self.objects[shard_of(hash)].write().remove(hash);
        if let Some(o) = &old {
            self.tags.remove(hash, &o.tags);
            self.bytes.fetch_sub(o.size, Ordering::Relaxed);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.report();
        }
        old
    }

    /// Stores `object` unless its fill was abandoned. Checked under the fills' lock a purge takes to abandon
    /// them, so a fill either is abandoned before it is stored or is stored before the purge looks at objects.
    /// The disk copy is started under the same lock.
    fn insert_unless_abandoned(&self, hash: HashBinary, partial: &Partial, object: Object) -> bool {
        let _fills = self.partials[shard_of(&hash)].read();
        if partial.abandoned.load(Ordering::Relaxed) {
            return false;
        }
        let object = Arc::new(object);
        self.insert_arc(hash, object.clone());
        self.keep_on_disk(hash, &object, partial.whole);
        true
    }

    /// Purges what `what` names: fills in flight are abandoned first (they finish for the readers they have,
    /// are not stored, and no new reader joins them), then the stored objects are removed, or with `soft` made
    /// stale as of `now` (kept, so they are revalidated, and served stale as their `stale-while-revalidate` and
    /// `stale-if-error` allow). A purge by tag costs what it purges: the tag index names the objects.
    pub fn purge_selected(&self, what: &Selector, soft: bool, now: SystemTime) -> Purged {
        let mut purged = Purged::default();
        for shard in self.partials.iter() {
            let mut shard = shard.write();
            shard.retain(|hash, writes| {
                writes.retain(|(_, p)| {
                    let hit = what.matches(&p.primary, || tags::of(p.meta.response_header()));
                    if hit {
                        p.abandoned.store(true, Ordering::Relaxed);
                        purged.fills.push(*hash);
                    }
                    !hit
                });
                !writes.is_empty()
            });
        }
        // Disk copies before memory ones: a read from disk racing the purge then cannot put one back.
        if let Some(disk) = self.disk.get() {
            purged.disk = disk.purge(what);
        }
        let hashes: Vec<HashBinary> = match what {
            Selector::Tag(tag) => self.tags.tagged(tag),
            _ => {
                let mut hashes = Vec::new();
                for shard in self.objects.iter() {
                    let shard = shard.read();
                    hashes.extend(
                        shard.iter().filter(|(_, o)| what.matches(&o.primary, || o.tags.clone())).map(|(h, _)| *h),
                    );
                }
                hashes
            }
        };
        for hash in hashes {
            if !soft {
                purged.objects.extend(self.remove(&hash).map(|o| o.compact.clone()));
                continue;
            }
            let mut shard = self.objects[shard_of(&hash)].write();
            let Some(old) = shard.get(&hash).cloned() else { continue };
            let mut meta = copy_meta(&old.meta);
            let (swr, sie) = (meta.stale_while_revalidate_sec(), meta.stale_if_error_sec());
            meta.update_freshness(meta.fresh_until().min(now), swr, sie);
            shard.insert(hash, Arc::new(old.with_meta(meta)));
            purged.objects.push(old.compact.clone());
        }
        purged
    }

    /// How many distinct cache tags the stored objects carry.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// The complete object `hash` names, if any: in memory, or on disk with its file open (objects still
    /// being written are not returned, nor disk objects whose file is not open yet).
    pub fn complete(&self, hash: &HashBinary) -> Option<Arc<Object>> {
        let object = self.objects[shard_of(hash)].read().get(hash).cloned();
        object.or_else(|| self.open_on_disk(hash)).filter(|o| self.servable(hash, &o.meta))
    }

    /// Whether a copy of `hash` may be served: a live segment only while a playlist vouches for it
    /// ([`LiveIndex::servable`]); a copy that may not is looked up as a miss, and its fill replaces it.
    fn servable(&self, hash: &HashBinary, meta: &CacheMeta) -> bool {
        self.live.servable(hash, meta.created(), SystemTime::now())
    }

    fn partial(&self, hash: &HashBinary, id: Option<u64>) -> Option<Arc<Partial>> {
        let shard = self.partials[shard_of(hash)].read();
        let writes = shard.get(hash)?;
        match id {
            Some(id) => writes.iter().find(|(w, _)| *w == id).map(|(_, p)| p.clone()),
            None => writes.last().map(|(_, p)| p.clone()),
        }
    }

    fn remove_partial(&self, hash: &HashBinary, id: u64) {
        let mut shard = self.partials[shard_of(hash)].write();
        if let Some(writes) = shard.get_mut(hash) {
            writes.retain(|(w, _)| *w != id);
            if writes.is_empty() {
                shard.remove(hash);
            }
        }
    }
}

fn partial_hit(p: Arc<Partial>) -> (CacheMeta, HitHandler) {
    let meta = copy_meta(&p.meta);
    let state = p.state.subscribe();
    (meta, Box::new(Hit::Partial { partial: p, state, next: 0 }))
}

#[async_trait]
impl Storage for MemStore {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined_bin();
        if let Some(p) = self.partial(&hash, None) {
            if self.servable(&hash, &p.meta) {
                return Ok(Some(partial_hit(p)));
            }
            return Ok(None);
        }
        let mut object = self.objects[shard_of(&hash)].read().get(&hash).cloned();
        if object.is_none() {
            object = match self.open_on_disk(&hash) {
                Some(o) => {
                    self.disk_hit(&o);
                    Some(o)
                }
                None => self.open_from_disk(hash).await,
            };
        }
        let object = object.filter(|o| self.servable(&hash, &o.meta));
        Ok(object.map(|o| {
            let meta = copy_meta(&o.meta);
            let len = o.body.len();
            let hit: HitHandler = Box::new(Hit::Complete { object: o, start: 0, end: len });
            (meta, hit)
        }))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined_bin();
        let id = tag.and_then(|t| U64WriteId::try_from(t).ok()).map(u64::from);
        match id.and_then(|id| self.partial(&hash, Some(id))) {
            // The reader's own fill (it joined it when it was servable): read to its end.
            Some(p) => Ok(Some(partial_hit(p))),
            None => self.lookup(key, trace).await,
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let hash = key.combined_bin();
        let id = self.next_write.fetch_add(1, Ordering::Relaxed);
        let (state, _) = watch::channel(WriteState::Writing(0));
        let primary: Arc<str> = String::from_utf8_lossy(key.primary_key()).into();
        let path = super::key::split_primary(&primary).1.split('?').next().unwrap_or("");
        let whole = Format::of(path).is_some();
        let partial = Arc::new(Partial {
            meta: copy_meta(meta),
            primary: primary.clone(),
            chunks: RwLock::new(Vec::new()),
            state,
            whole,
            abandoned: AtomicBool::new(false),
        });
        self.partials[shard_of(&hash)].write().entry(hash).or_default().push((id, partial.clone()));
        let compact = key.to_compact();
        Ok(Box::new(Writer {
            store: self,
            hash,
            id,
            tag: U64WriteId::from(id),
            partial,
            primary,
            compact,
            written: 0,
            finished: false,
            vod: meta.extensions().get::<VodTtl>().copied(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        kind: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        if matches!(target, PurgeTarget::Exact(CacheEntryKey::Identified { .. })) {
            return Ok(PurgeOutcome::NotFound);
        }
        let hash = target.key().combined_bin();
        // The budget's eviction leaves the disk copy; an invalidation removes it too.
        if let (PurgeType::Invalidation, Some(disk)) = (kind, self.disk.get()) {
            disk.forget(&hash, None);
        }
        if self.remove(&hash).is_none() {
            return Ok(PurgeOutcome::NotFound);
        }
        if let (PurgeType::Eviction, Some(o)) = (kind, &self.observer) {
            o.evicted();
        }
        Ok(PurgeOutcome::Purged(None))
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, _trace: &SpanHandle) -> Result<bool> {
        let hash = key.combined_bin();
        // A playlist the origin says is unchanged (304) was seen again now.
        self.live.revalidated(&String::from_utf8_lossy(key.primary_key()), meta.updated());
        let mut shard = self.objects[shard_of(&hash)].write();
        let Some(old) = shard.get(&hash).cloned() else {
            return Ok(self.opened.update(&hash, |old| old.with_meta(copy_meta(meta))));
        };
        shard.insert(hash, Arc::new(old.with_meta(copy_meta(meta))));
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

mod handles;
use handles::{Hit, Writer};
mod object;
use object::Body;
pub use object::Object;
mod opened;
mod tiered;

#[cfg(test)]
mod tests;
