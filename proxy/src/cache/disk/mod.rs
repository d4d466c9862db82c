//! The disk tier (`--cache-dir`, `--cache-disk-size`): objects that outlive a restart and a cache larger than
//! memory. The memory store ([`super::storage`]) is the hot tier in front of it.
//!
//! - What goes to disk: complete objects that stay fresh for at least [`MIN_FRESH`] when stored, other than
//!   live playlists. A playlist lives for a second or two and would be stale before any restart could use it; a
//!   short-lived object costs a write for nothing.
//! - Writes happen off the event loop (a blocking thread), after the object is in memory: to a new file under
//!   `tmp/`, then renamed into `objects/`. No `fsync`: like nginx's `proxy_cache`, the cache is a copy of the
//!   origin, and what the kernel had not written out when the power went is detected (lengths and CRC-32s of
//!   the head and the body, [`record`]) and refetched, never served.
//! - Reads happen off the event loop too: on a memory miss, a blocking thread opens the file and checks all of
//!   it ([`DiskTier::open_checked`]); the memory store then keeps it open and answers hits from it
//!   (`storage/opened.rs`). A damaged file is deleted and counted (`dime_cache_disk_errors_total{kind}`).
//! - The index (key → file) is in memory, rebuilt at start from the files' heads by a background thread; until
//!   it is loaded, the disk tier neither serves nor stores, and requests go to the origin.
//! - Purges remove disk copies too (a soft purge as well: the memory copy is made stale, the disk copy goes).
//!   With control, an edge that restarts serves nothing from disk until it has applied the fleet purges it
//!   missed ([`DiskTier::require_catch_up`]); where it stopped is kept in `purge-cursor`.
//! - A directory that cannot be written (read-only, full) turns the tier off: one log line, a metric, memory
//!   only, no viewer error.
//!
//! Layout: `DIR/objects/XX/<hash>.<ticket>` (XX: the hash's first byte; the ticket tells two writes of one key
//! apart, so a late delete never removes a newer file), `DIR/tmp/` (writes in progress, emptied at start),
//! `DIR/purge-cursor`.

pub mod record;

mod file;
mod load;

use file::{of_key, open_file, write_file, ReadError};

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pingora_cache::eviction::{lru, CacheEntryKey, CacheEntryKeyRef, EvictionManager};
use pingora_cache::key::{CacheHashKey, CompactCacheKey, HashBinary};

use super::select::Selector;
use super::tags::TagIndex;
use crate::metrics::disk::DiskError;
use record::{Corrupt, Head};

/// Objects fresh for less than this when stored stay in memory only.
pub const MIN_FRESH: Duration = Duration::from_secs(10);
/// Writes waiting for the disk at once; past it, new objects stay in memory only (counted as `busy`).
const MAX_PENDING_WRITES: usize = 256;

/// Disk tier settings.
#[derive(Debug, Clone)]
pub struct DiskSettings {
    pub dir: PathBuf,
    /// Hard byte budget of the files (`--cache-disk-size`).
    pub size: usize,
}

/// Where the disk tier reports what it holds and what went wrong (wired to metrics by the proxy).
pub trait DiskObserver: Send + Sync {
    fn stored(&self, bytes: usize, objects: usize);
    fn hit(&self);
    fn written(&self);
    fn evicted(&self);
    /// A file refused or an operation that failed.
    fn error(&self, kind: DiskError);
    fn enabled(&self, on: bool);
    fn loaded(&self, seconds: f64);
}

/// An object the memory store asks to keep on disk.
pub trait Persist: Send + Sync + 'static {
    /// Its head (serializing the meta is left to the writer's thread).
    fn head(&self) -> io::Result<Head>;
    fn body_len(&self) -> u64;
    /// Hands the body to `out`, piece by piece.
    fn body(&self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Writing,
    OnDisk,
}

#[derive(Debug)]
struct Entry {
    ticket: u64,
    stage: Stage,
    primary: Arc<str>,
    tags: Box<[Arc<str>]>,
    compact: CompactCacheKey,
    file_len: u64,
}

#[derive(Debug, Default)]
struct Index {
    loaded: bool,
    /// Purges met while the index was loading, applied to it once loaded.
    queued: Vec<Selector>,
    entries: HashMap<HashBinary, Entry>,
    bytes: u64,
    on_disk: usize,
}

/// One shard: an exact LRU (the memory tier's is sharded, which makes it approximate over few objects). Its lock
/// is taken on blocking threads, next to file I/O that costs far more.
const LRU_SHARDS: usize = 1;

pub struct DiskTier {
    root: PathBuf,
    budget: usize,
    index: Mutex<Index>,
    tags: TagIndex,
    lru: lru::Manager<LRU_SHARDS>,
    observer: Box<dyn DiskObserver>,
    next_ticket: AtomicU64,
    pending: AtomicUsize,
    /// Off after the directory refused a write (read-only, full): memory only from then on.
    enabled: AtomicBool,
    /// Off until the fleet purges missed while this edge was down are applied (with control).
    caught_up: AtomicBool,
    on_gone: std::sync::OnceLock<GoneHook>,
    /// The purge cursor's writes, one at a time; held back until the load has applied the purges queued while it
    /// ran and deleted their files (saving it earlier would let a crash leave purged files on disk behind a cursor
    /// that says they were purged).
    cursor: Mutex<CursorWrites>,
}

#[derive(Debug, Default)]
struct CursorWrites {
    /// The load is done, its purges' files deleted: cursors are written at once.
    ready: bool,
    /// The last cursor asked for before that.
    pending: Option<(String, u64)>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier").field("root", &self.root).field("budget", &self.budget).finish_non_exhaustive()
    }
}

/// A checked object file, open: its head, and where its body lies in the file.
#[derive(Debug)]
pub struct OpenFile {
    pub head: Head,
    pub file: std::fs::File,
    pub body_offset: u64,
    pub body_len: u64,
}

/// Told when a key leaves the index (purged, evicted, replaced, refused), under the index lock: whoever keeps
/// a file of it open lets it go ([`DiskTier::if_current`] adds under the same lock).
pub type GoneHook = Box<dyn Fn(&HashBinary) + Send + Sync>;

fn hex(hash: &HashBinary) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn make_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The label an I/O error is counted under.
fn io_kind(e: &io::Error) -> DiskError {
    match e.raw_os_error() {
        Some(28) | Some(122) => DiskError::Full,    // ENOSPC, EDQUOT
        Some(30) | Some(13) => DiskError::ReadOnly, // EROFS, EACCES
        _ => DiskError::Io,
    }
}

impl DiskTier {
    /// Opens (or makes) the directory and checks it can be written. The index is not loaded yet: see
    /// [`DiskTier::load`].
    pub fn open(settings: &DiskSettings, observer: Box<dyn DiskObserver>) -> io::Result<Arc<DiskTier>> {
        let root = settings.dir.clone();
        make_dir(&root.join("objects"))?;
        let tmp = root.join("tmp");
        make_dir(&tmp)?;
        for stale in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(stale.path());
        }
        let probe = tmp.join("probe");
        std::fs::File::create(&probe)?.write_all(b"dime")?;
        std::fs::remove_file(&probe)?;
        observer.enabled(true);
        Ok(Arc::new(DiskTier {
            root,
            budget: settings.size,
            index: Mutex::new(Index::default()),
            tags: TagIndex::default(),
            lru: lru::Manager::with_capacity(settings.size, 1024), // grows with the index
            observer,
            next_ticket: AtomicU64::new(1),
            pending: AtomicUsize::new(0),
            enabled: AtomicBool::new(true),
            caught_up: AtomicBool::new(true),
            on_gone: std::sync::OnceLock::new(),
            cursor: Mutex::new(CursorWrites::default()),
        }))
    }

    /// Serve nothing from disk until [`DiskTier::caught_up`]: the edge follows control's purges and must apply
    /// those it missed first.
    pub fn require_catch_up(&self) {
        self.caught_up.store(false, Ordering::Release);
    }

    pub fn caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    fn object_path(&self, hash: &HashBinary, ticket: u64) -> PathBuf {
        self.root.join("objects").join(format!("{:02x}", hash[0])).join(format!("{}.{ticket:x}", hex(hash)))
    }

    fn cursor_path(&self) -> PathBuf {
        self.root.join("purge-cursor")
    }

    /// Where this edge was in control's purge log when it last applied one (log uid, sequence).
    pub fn saved_cursor(&self) -> Option<(String, u64)> {
        let text = std::fs::read_to_string(self.cursor_path()).ok()?;
        // `LOG SEQ`; before control's first purge the log is empty (` 0`), which must read back as itself (a
        // trimmed ` 0` read as no cursor, and every restart dropped the disk cache until something was purged).
        let (log, seq) = text.trim_end().split_once(' ')?;
        Some((log.to_owned(), seq.parse().ok()?))
    }

    /// Keeps the cursor for the next start (a new file renamed over the old, so a crash leaves one or the other),
    /// once every purge up to it is applied on disk: while the index loads, the purges are queued in memory, and
    /// the cursor is saved only after the load applied them and deleted their files (a crash before that leaves
    /// the old cursor, and the restarted edge gets those purges from control again).
    pub fn save_cursor(&self, log: &str, seq: u64) {
        let mut cursor = self.cursor.lock();
        if !cursor.ready {
            cursor.pending = Some((log.to_owned(), seq));
            return;
        }
        self.write_cursor(log, seq);
    }

    /// The load applied the purges queued while it ran and deleted their files: the cursor may be kept now (the
    /// last one asked for meanwhile is written).
    fn cursor_ready(&self) {
        let mut cursor = self.cursor.lock();
        cursor.ready = true;
        if let Some((log, seq)) = cursor.pending.take() {
            self.write_cursor(&log, seq);
        }
    }

    /// Writes the cursor file; called with [`DiskTier::cursor`] held, so two writes never share the temp file.
    fn write_cursor(&self, log: &str, seq: u64) {
        let tmp = self.root.join("tmp").join("purge-cursor");
        let saved =
            std::fs::write(&tmp, format!("{log} {seq}\n")).and_then(|()| std::fs::rename(&tmp, self.cursor_path()));
        if let Err(e) = saved {
            self.observer.error(io_kind(&e));
            tracing::warn!(error = %e, dir = %self.root.display(), "cannot save the fleet purge cursor; the next start drops the disk cache");
        }
    }

    /// Sets what is told about keys leaving the index (once; later calls are ignored).
    pub fn set_gone_hook(&self, hook: GoneHook) {
        let _ = self.on_gone.set(hook);
    }

    /// Whether the tier serves and stores now.
    pub fn active(&self) -> bool {
        self.enabled.load(Ordering::Acquire) && self.caught_up.load(Ordering::Acquire)
    }

    /// Turns the tier off after the directory refused a write.
    fn disable(&self, kind: DiskError, error: &io::Error) {
        if self.enabled.swap(false, Ordering::AcqRel) {
            self.observer.enabled(false);
            tracing::error!(error = %error, kind = kind.as_str(), dir = %self.root.display(), "the cache directory cannot be written; the disk tier is off, the cache continues in memory only");
        }
    }

    fn report(&self, index: &Index) {
        self.observer.stored(index.bytes as usize, index.on_disk);
    }

    /// The ticket of `hash`'s file, when the tier can serve it.
    pub fn lookup(&self, hash: &HashBinary) -> Option<u64> {
        if !self.active() {
            return None;
        }
        let index = self.index.lock();
        if !index.loaded {
            return None;
        }
        index.entries.get(hash).filter(|e| e.stage == Stage::OnDisk).map(|e| e.ticket)
    }

    /// Opens `hash`'s file and checks all of it, body included (blocking: call it from a blocking thread). A
    /// damaged or vanished file is forgotten, deleted and counted; `None` then. Counted as a hit.
    pub fn open_checked(&self, hash: &HashBinary, ticket: u64) -> Option<OpenFile> {
        let path = self.object_path(hash, ticket);
        match open_file(&path).and_then(|open| of_key(&open.head, hash).map(|()| open)) {
            Ok(open) => {
                self.touch(&open.head.compact);
                Some(open)
            }
            Err(e) => {
                self.refused(&path, &e, "damaged cache file dropped; the object is fetched again");
                self.forget(hash, Some(ticket));
                None
            }
        }
    }

    /// A hit on `key`'s file: its place in the LRU, and the hit counted.
    pub fn touch(&self, key: &CompactCacheKey) {
        let entry = CacheEntryKey::key_only(key.clone());
        // The weight only matters to an entry the LRU no longer holds (a purge raced this hit): `access` then
        // admits it weightless, and it goes when the LRU reaches it (nothing is indexed under it any more).
        self.lru.access(&entry, 0, std::time::SystemTime::now());
        self.observer.hit();
    }

    /// Counts and logs a file refused for `e`.
    fn refused(&self, path: &Path, e: &ReadError, what: &'static str) {
        let kind = e.kind();
        self.observer.error(kind);
        tracing::warn!(file = %path.display(), kind = kind.as_str(), reason = %e, "{what}");
    }

    /// A file whose checks passed but whose meta cannot be decoded: forgotten, deleted and counted.
    pub fn refuse(&self, hash: &HashBinary, ticket: u64, error: &dyn std::fmt::Display) {
        self.observer.error(DiskError::Garbled);
        tracing::warn!(file = %self.object_path(hash, ticket).display(), reason = %error, "cache file with an unreadable meta dropped");
        self.forget(hash, Some(ticket));
    }

    /// Runs `keep` (keeping an opened file for later hits) only if `hash` still has the file `ticket` names,
    /// under the index lock: a purge that removed it meanwhile wins, and the file is not kept.
    pub fn if_current(&self, hash: &HashBinary, ticket: u64, keep: impl FnOnce()) -> bool {
        let index = self.index.lock();
        let current = index.entries.get(hash).is_some_and(|e| e.ticket == ticket && e.stage == Stage::OnDisk);
        if current {
            keep();
        }
        current
    }

    /// Starts keeping `object` on disk: the entry is recorded now (so a purge that comes before the file is
    /// written cancels it) and the file is written on a blocking thread. Called under the memory store's fill
    /// lock, so a purge sees either the fill or this entry.
    pub fn write(
        self: &Arc<Self>,
        hash: HashBinary,
        primary: Arc<str>,
        tags: Box<[Arc<str>]>,
        compact: CompactCacheKey,
        object: Arc<dyn Persist>,
    ) {
        if !self.active() {
            return;
        }
        let ticket = {
            let mut index = self.index.lock();
            if !index.loaded {
                return;
            }
            if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_WRITES {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                self.observer.error(DiskError::Busy);
                return;
            }
            let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            let entry = Entry { ticket, stage: Stage::Writing, primary, tags, compact, file_len: 0 };
            let old = self.put_entry(&mut index, hash, entry);
            drop(index);
            if let Some(old) = old {
                let _ = std::fs::remove_file(old);
            }
            ticket
        };
        let tier = self.clone();
        let spawned = tokio::runtime::Handle::try_current()
            .map(|rt| drop(rt.spawn_blocking(move || tier.write_now(hash, ticket, object.as_ref()))));
        if spawned.is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.forget(&hash, Some(ticket));
        }
    }

    /// Puts `entry` in the index; the file of the entry it replaces, to delete.
    fn put_entry(&self, index: &mut Index, hash: HashBinary, entry: Entry) -> Option<PathBuf> {
        let tags = entry.tags.clone();
        let gone = index.entries.insert(hash, entry).and_then(|old| self.unindex(index, &hash, &old));
        self.tags.add(hash, &tags);
        gone
    }

    /// Accounts for `old` having left the index (its tags, bytes, LRU place); its file, if it had one.
    fn unindex(&self, index: &mut Index, hash: &HashBinary, old: &Entry) -> Option<PathBuf> {
        self.tags.remove(hash, &old.tags);
        if old.stage != Stage::OnDisk {
            return None;
        }
        if let Some(hook) = self.on_gone.get() {
            hook(hash);
        }
        index.bytes = index.bytes.saturating_sub(old.file_len);
        index.on_disk = index.on_disk.saturating_sub(1);
        self.lru.remove(CacheEntryKeyRef::from_entry_id(&old.compact, None));
        Some(self.object_path(hash, old.ticket))
    }

    fn write_now(&self, hash: HashBinary, ticket: u64, object: &dyn Persist) {
        self.write_and_commit(hash, ticket, object);
        // Counted down only once the file is in place or gone, so "no write pending" means settled.
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    fn write_and_commit(&self, hash: HashBinary, ticket: u64, object: &dyn Persist) {
        let tmp = self.root.join("tmp").join(format!("{ticket:x}"));
        let written = write_file(&tmp, object);
        let file_len = match written {
            Ok(len) => len,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                self.observer.error(io_kind(&e));
                if io_kind(&e) != DiskError::Io {
                    self.disable(io_kind(&e), &e);
                } else {
                    tracing::warn!(error = %e, "a cache file could not be written; the object stays in memory only");
                }
                self.forget(&hash, Some(ticket));
                return;
            }
        };
        let final_path = self.object_path(&hash, ticket);
        let mut index = self.index.lock();
        let current = index.entries.get(&hash).is_some_and(|e| e.ticket == ticket);
        if !current {
            drop(index);
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let moved = final_path.parent().map_or(Ok(()), make_dir).and_then(|()| std::fs::rename(&tmp, &final_path));
        if let Err(e) = moved {
            drop(index);
            let _ = std::fs::remove_file(&tmp);
            self.observer.error(io_kind(&e));
            self.forget(&hash, Some(ticket));
            return;
        }
        let compact = match index.entries.get_mut(&hash) {
            Some(e) => {
                e.stage = Stage::OnDisk;
                e.file_len = file_len;
                e.compact.clone()
            }
            None => return,
        };
        index.bytes += file_len;
        index.on_disk += 1;
        self.observer.written();
        let evicted = self.lru.admit(CacheEntryKey::key_only(compact), file_len as usize, std::time::SystemTime::now());
        let gone = self.evict(&mut index, evicted);
        self.report(&index);
        drop(index);
        for path in gone {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes what the LRU evicted from the index; their files, to delete.
    fn evict(&self, index: &mut Index, evicted: Vec<CacheEntryKey>) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        for key in evicted {
            let hash = key.key().combined_bin();
            if let Some(old) = index.entries.remove(&hash) {
                gone.extend(self.unindex(index, &hash, &old));
                self.observer.evicted();
            }
        }
        gone
    }

    /// Forgets `hash` (only the file `ticket` names, when given) and deletes its file.
    pub fn forget(&self, hash: &HashBinary, ticket: Option<u64>) {
        let mut index = self.index.lock();
        let matches = index.entries.get(hash).is_some_and(|e| ticket.is_none_or(|t| e.ticket == t));
        if !matches {
            return;
        }
        let gone = index.entries.remove(hash).and_then(|old| self.unindex(&mut index, hash, &old));
        self.report(&index);
        drop(index);
        if let Some(path) = gone {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes what `what` names (files being written are cancelled); the keys removed. While the index is
    /// loading, the purge is kept and applied to it once loaded.
    pub fn purge(&self, what: &Selector) -> Vec<HashBinary> {
        let mut index = self.index.lock();
        if !index.loaded {
            index.queued.push(what.clone());
            return Vec::new();
        }
        let (removed, gone) = self.purge_in(&mut index, what);
        self.report(&index);
        drop(index);
        for path in &gone {
            let _ = std::fs::remove_file(path);
        }
        removed
    }

    /// Removes what `what` names from `index`: the keys removed, and the files to delete.
    fn purge_in(&self, index: &mut Index, what: &Selector) -> (Vec<HashBinary>, Vec<PathBuf>) {
        let hashes: Vec<HashBinary> = match what {
            Selector::Tag(tag) => self.tags.tagged(tag),
            _ => index
                .entries
                .iter()
                .filter(|(_, e)| what.matches(&e.primary, || e.tags.clone()))
                .map(|(h, _)| *h)
                .collect(),
        };
        let mut gone = Vec::new();
        let mut removed = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if let Some(old) = index.entries.remove(&hash) {
                removed.push(hash);
                gone.extend(self.unindex(index, &hash, &old));
            }
        }
        (removed, gone)
    }

    /// Objects and bytes on disk.
    pub fn held(&self) -> (usize, u64) {
        let index = self.index.lock();
        (index.on_disk, index.bytes)
    }

    /// Whether the index has been loaded.
    pub fn loaded(&self) -> bool {
        self.index.lock().loaded
    }
}

#[cfg(test)]
mod tests;
