//! The memory store in front of the disk tier ([`crate::cache::disk`]): which objects are kept on disk, how a
//! memory miss is answered from disk (read and checked off the event loop, then put in memory), and the order
//! that keeps purges exact across both (the disk copy is removed before the memory copy, and an object read
//! from disk is put in memory only while its file is still the current one).

use std::io;
use std::time::SystemTime;

use super::*;
use crate::cache::disk::record::Head;
use crate::cache::disk::{DiskTier, Persist, MIN_FRESH};

/// Told when an object read from disk is put in memory, so the memory budget's eviction manager admits it.
pub type PromoteHook = Box<dyn Fn(&CompactCacheKey, usize) + Send + Sync>;

impl Persist for Object {
    fn head(&self) -> io::Result<Head> {
        let (meta_internal, meta_header) = self.meta.serialize().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Head {
            primary: self.primary.to_string(),
            compact: self.compact.clone(),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            meta_internal,
            meta_header,
        })
    }

    fn body_len(&self) -> u64 {
        self.body.len() as u64
    }

    fn body(&self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let (mut start, len) = (0, self.body.len());
        while start < len {
            let piece = self.body.piece(start, len).map_err(|e| io::Error::other(e.to_string()))?;
            start += piece.len();
            out(&piece)?;
        }
        Ok(())
    }
}

impl MemStore {
    /// Puts the disk tier behind this store (once; later calls are ignored).
    pub fn set_disk(&self, disk: Arc<DiskTier>, promoted: PromoteHook) {
        let _ = self.disk.set(disk);
        let _ = self.on_promote.set(promoted);
    }

    pub fn disk(&self) -> Option<&Arc<DiskTier>> {
        self.disk.get()
    }

    /// Starts keeping a just-stored object on disk when it is worth it: not a live playlist (`whole`), and fresh
    /// for at least [`MIN_FRESH`]. Called under the fills' lock, like the memory insert.
    pub(super) fn keep_on_disk(&self, hash: HashBinary, object: &Arc<Object>, whole: bool) {
        let Some(disk) = self.disk.get() else { return };
        let lasting = object.meta.fresh_until().duration_since(SystemTime::now()).is_ok_and(|left| left >= MIN_FRESH);
        if whole || !lasting {
            return;
        }
        let persist: Arc<dyn Persist> = object.clone();
        disk.write(hash, object.primary.clone(), object.tags.clone(), object.compact.clone(), persist);
    }

    /// A memory miss answered from disk: the file read and checked on a blocking thread, the object put in
    /// memory (and admitted to its budget) unless a purge removed the file meanwhile.
    pub(super) async fn read_from_disk(&'static self, hash: HashBinary) -> Option<Arc<Object>> {
        let disk = self.disk.get()?;
        let ticket = disk.lookup(&hash)?;
        let reader = disk.clone();
        let body_dir = self.body_dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            let loaded = reader.read(&hash, ticket)?;
            match object_of(loaded, body_dir.as_deref()) {
                Ok(object) => Some(object),
                Err(e) => {
                    reader.refuse(&hash, ticket, &e);
                    None
                }
            }
        });
        let object = Arc::new(read.await.ok()??);
        let promoted = disk.promote_if_current(&hash, ticket, || self.insert_arc(hash, object.clone()));
        if !promoted {
            return None;
        }
        if let Some(hook) = self.on_promote.get() {
            hook(&object.compact, object.size);
        }
        Some(object)
    }

    /// Removes `hash` from memory only, as the memory budget's eviction does (the disk copy stays).
    pub fn evict_from_memory(&self, hash: &HashBinary) {
        if self.remove(hash).is_some() {
            if let Some(o) = &self.observer {
                o.evicted();
            }
        }
    }
}

/// The object a disk file holds, its body placed as a filled one would be.
fn object_of(loaded: crate::cache::disk::Loaded, body_dir: Option<&std::path::Path>) -> Result<Object> {
    let head = loaded.head;
    let meta = CacheMeta::deserialize(&head.meta_internal, &head.meta_header)?;
    let len = loaded.body.len();
    let body = handles::body_of(&[Bytes::from(loaded.body)], len, body_dir);
    let tags = head.shared_tags();
    Ok(Object::assemble(meta, body, head.primary.into(), head.compact, tags))
}
