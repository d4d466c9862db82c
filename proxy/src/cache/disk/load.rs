//! Rebuilding the disk tier's index at start, from the heads of the files (bodies are checked when read).
//! Runs on its own thread; the index is built aside and put in place in one step, so lookups never wait for it.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::*;

/// Bytes read from the start of a file to find its head (longer heads take a second read).
const FIRST_READ: usize = 4096;

/// One file found: its key, ticket, head and length.
struct Found {
    hash: HashBinary,
    ticket: u64,
    head: Head,
    file_len: u64,
    modified: SystemTime,
}

/// `<32 hex digits>.<hex ticket>`
fn parse_name(name: &str) -> Option<(HashBinary, u64)> {
    let (hash_hex, ticket_hex) = name.split_once('.')?;
    let mut hash = HashBinary::default();
    if hash_hex.len() != hash.len() * 2 {
        return None;
    }
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hash_hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some((hash, u64::from_str_radix(ticket_hex, 16).ok()?))
}

fn read_head(path: &Path) -> Result<(Head, u64, SystemTime), ReadError> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let mut start = vec![0u8; FIRST_READ.min(len as usize)];
    file.read_exact_at(&mut start, 0)?;
    let fixed = record::fixed(&start[..start.len().min(record::FIXED_LEN)], len)?;
    let head_end = record::FIXED_LEN + fixed.head_len as usize;
    let head = if head_end <= start.len() {
        record::head(&fixed, &start[record::FIXED_LEN..head_end])?
    } else {
        let mut bytes = vec![0u8; fixed.head_len as usize];
        file.read_exact_at(&mut bytes, record::FIXED_LEN as u64)?;
        record::head(&fixed, &bytes)?
    };
    Ok((head, len, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

impl DiskTier {
    /// Loads the index on a background thread. Until it is loaded, the tier neither serves nor stores.
    pub fn load(self: &Arc<Self>) {
        let tier = self.clone();
        let spawned = std::thread::Builder::new().name("dime-cache-load".into()).spawn(move || tier.load_now());
        if let Err(e) = spawned {
            self.disable(DiskError::Io, &e);
        }
    }

    /// Reads every file's head, drops the damaged ones, keeps the newest file of a key, admits them to the LRU
    /// oldest first (so the budget keeps the most recent), and puts the index in place with the purges met
    /// meanwhile applied.
    pub fn load_now(&self) {
        let started = Instant::now();
        let (found, damaged) = self.scan();
        let mut index = Index::default();
        let mut gone = Vec::new();
        let mut max_ticket = 0;
        for f in found {
            max_ticket = max_ticket.max(f.ticket);
            let entry = Entry {
                ticket: f.ticket,
                stage: Stage::OnDisk,
                tags: f.head.shared_tags(),
                primary: f.head.primary.into(),
                compact: f.head.compact.clone(),
                file_len: f.file_len,
            };
            gone.extend(self.put_entry(&mut index, f.hash, entry));
            index.bytes += f.file_len;
            index.on_disk += 1;
            let evicted = self.lru.admit(CacheEntryKey::key_only(f.head.compact), f.file_len as usize, f.modified);
            gone.extend(self.evict(&mut index, evicted));
        }
        self.next_ticket.fetch_max(max_ticket + 1, Ordering::Relaxed);
        let (objects, bytes) = (index.on_disk, index.bytes);
        // In one step: the index in place, the purges met while loading applied to it, then open for use.
        let (queued, purged) = {
            let mut live = self.index.lock();
            let queued = std::mem::take(&mut live.queued);
            *live = index;
            let mut purged = 0;
            for what in &queued {
                let (removed, files) = self.purge_in(&mut live, what);
                purged += removed.len();
                gone.extend(files);
            }
            live.loaded = true;
            self.report(&live);
            (queued.len(), purged)
        };
        for path in gone {
            let _ = std::fs::remove_file(path);
        }
        // Only now are the purges met while loading on disk: the cursor that covers them may be kept.
        self.cursor_ready();
        let seconds = started.elapsed().as_secs_f64();
        self.observer.loaded(seconds);
        tracing::info!(
            dir = %self.root.display(),
            objects,
            bytes,
            damaged,
            purges_while_loading = queued,
            purged,
            seconds,
            "disk cache index loaded"
        );
    }

    /// Every whole file's head, oldest first, one per key (the newest write); damaged files deleted and counted.
    fn scan(&self) -> (Vec<Found>, usize) {
        let Ok(dirs) = std::fs::read_dir(self.root.join("objects")) else { return (Vec::new(), 0) };
        let dirs: Vec<PathBuf> = dirs.flatten().map(|d| d.path()).collect();
        // A key's files are all in one subdirectory (its hash's first byte), so the subdirectories are read in
        // parallel without two threads ever meeting the same key.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let per_thread = dirs.len().div_ceil(threads).max(1);
        let parts: Vec<(Vec<Found>, usize)> = std::thread::scope(|scope| {
            let running: Vec<_> =
                dirs.chunks(per_thread).map(|part| scope.spawn(move || self.scan_dirs(part))).collect();
            running.into_iter().map(|t| t.join().unwrap_or_default()).collect()
        });
        let damaged = parts.iter().map(|(_, d)| d).sum();
        let mut found: Vec<Found> = parts.into_iter().flat_map(|(f, _)| f).collect();
        found.sort_by_key(|f| f.modified);
        (found, damaged)
    }

    /// [`DiskTier::scan`] of some subdirectories.
    fn scan_dirs(&self, dirs: &[PathBuf]) -> (Vec<Found>, usize) {
        let mut newest: HashMap<HashBinary, Found> = HashMap::new();
        let mut damaged = 0;
        for dir in dirs {
            let Ok(files) = std::fs::read_dir(dir) else { continue };
            for file in files.flatten() {
                let path = file.path();
                let name = file.file_name();
                let read = match name.to_str().and_then(parse_name) {
                    Some((hash, ticket)) => read_head(&path)
                        .and_then(|h| of_key(&h.0, &hash).map(|()| h))
                        .map(|(head, file_len, modified)| Found { hash, ticket, head, file_len, modified }),
                    None => Err(ReadError::Corrupt(Corrupt::Garbled("file name"))),
                };
                let found = match read {
                    Ok(found) => found,
                    Err(e) => {
                        self.refused(&path, &e, "damaged cache file dropped at start");
                        damaged += 1;
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                };
                if newest.get(&found.hash).is_some_and(|newer| newer.ticket > found.ticket) {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if let Some(replaced) = newest.insert(found.hash, found) {
                    let _ = std::fs::remove_file(self.object_path(&replaced.hash, replaced.ticket));
                }
            }
        }
        (newest.into_values().collect(), damaged)
    }
}

#[cfg(test)]
pub(super) fn tests_parse_name(name: &str) -> Option<(HashBinary, u64)> {
    parse_name(name)
}
