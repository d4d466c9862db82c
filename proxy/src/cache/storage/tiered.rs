//! The memory store in front of the disk tier ([`crate::cache::disk`]): which objects are kept on disk, how a
//! memory miss is answered from disk (the file opened and checked off the event loop, then kept open for the
//! hits that follow, [`super::opened`]), and the order that keeps purges exact across both (the disk copy is
//! removed before the memory copy, and an opened file is kept only while it is still the current one).

use std::io;
use std::time::SystemTime;

use super::*;
use crate::cache::disk::record::Head;
use crate::cache::disk::{DiskTier, OpenFile, Persist, MIN_FRESH};

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
    /// Puts the disk tier behind this store (once; later calls are ignored). Keys leaving the disk index close
    /// their open files.
    pub fn set_disk(&'static self, disk: Arc<DiskTier>) {
        disk.set_gone_hook(Box::new(|hash| self.opened.remove(hash)));
        let _ = self.disk.set(disk);
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

    /// The disk object `hash` names if its file is open and the tier serves (not counted as a hit: see
    /// [`MemStore::disk_hit`]).
    pub(super) fn open_on_disk(&self, hash: &HashBinary) -> Option<Arc<Object>> {
        self.disk.get().filter(|d| d.active())?;
        self.opened.get(hash)
    }

    /// Counts a hit on a disk object answered from its open file, and keeps its place in the disk LRU.
    pub fn disk_hit(&self, object: &Object) {
        if let Some(disk) = self.disk.get() {
            disk.touch(&object.compact);
        }
    }

    /// A miss in memory and among the open files answered from disk: the file opened and checked whole on a
    /// blocking thread, then kept open for the next hits unless a purge removed it meanwhile.
    pub(super) async fn open_from_disk(&'static self, hash: HashBinary) -> Option<Arc<Object>> {
        let disk = self.disk.get()?;
        let ticket = disk.lookup(&hash)?;
        let reader = disk.clone();
        let open = tokio::task::spawn_blocking(move || {
            let open = reader.open_checked(&hash, ticket)?;
            match object_of(open) {
                Ok(object) => Some(object),
                Err(e) => {
                    reader.refuse(&hash, ticket, &e);
                    None
                }
            }
        });
        let object = Arc::new(open.await.ok()??);
        disk.if_current(&hash, ticket, || self.opened.put(hash, object.clone())).then_some(object)
    }
}

/// The object a checked disk file holds, its body left in the file.
fn object_of(open: OpenFile) -> Result<Object> {
    let head = open.head;
    let meta = CacheMeta::deserialize(&head.meta_internal, &head.meta_header)?;
    let len = usize::try_from(open.body_len).map_err(|e| Error::because(ErrorType::InternalError, "body length", e))?;
    let body = Body::Disk(Arc::new(BodyFile::in_file(open.file, open.body_offset, len)));
    let tags = head.shared_tags();
    Ok(Object::assemble(meta, body, head.primary.into(), head.compact, tags))
}
