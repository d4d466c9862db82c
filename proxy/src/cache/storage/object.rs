//! A complete cached object ([`Object`]) and where its body lives ([`Body`]): in memory, in a file only the store
//! holds, or in its disk tier file.

use std::sync::Arc;

use bytes::Bytes;
use pingora_cache::key::CompactCacheKey;
use pingora_cache::CacheMeta;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;

use super::tags;
use crate::cache::body::{BodyFile, READ_CHUNK};

pub(super) fn header_size(h: &ResponseHeader) -> usize {
    64 + h.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
}

/// Where a complete object's body lives.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Memory(Bytes),
    File(Arc<BodyFile>),
    /// In its disk tier file ([`opened`]): read without waiting for the disk on the event loop.
    Disk(Arc<BodyFile>),
}

fn read_error(e: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::ReadError, "reading a cached body from its file", e)
}

impl Body {
    pub(super) fn len(&self) -> usize {
        match self {
            Body::Memory(b) => b.len(),
            Body::File(f) | Body::Disk(f) => f.len(),
        }
    }

    /// The next piece of `start..end` for a reader: all of it from memory (a slice, no copy), at most
    /// [`READ_CHUNK`] from a file.
    pub(super) fn piece(&self, start: usize, end: usize) -> Result<Bytes> {
        match self {
            Body::Memory(b) => Ok(b.slice(start..end)),
            Body::File(f) | Body::Disk(f) => {
                f.read(start, end.min(start.saturating_add(READ_CHUNK))).map_err(read_error)
            }
        }
    }

    /// [`Body::piece`] for a reader on the event loop: a piece of a disk file that is not all in the page cache
    /// is read on a blocking thread.
    pub(super) async fn piece_async(&self, start: usize, end: usize) -> Result<Bytes> {
        let Body::Disk(f) = self else { return self.piece(start, end) };
        let end = end.min(start.saturating_add(READ_CHUNK));
        if let Some(piece) = f.read_cached(start, end).map_err(read_error)? {
            return Ok(piece);
        }
        let file = f.clone();
        match tokio::task::spawn_blocking(move || file.read(start, end)).await {
            Ok(read) => read.map_err(read_error),
            Err(e) => Error::e_explain(ErrorType::ReadError, format!("the disk read did not finish: {e}")),
        }
    }
}

/// A complete object.
pub struct Object {
    pub(super) meta: CacheMeta,
    pub(super) body: Body,
    /// The primary key text (`host\npath?query`), for purging by host and prefix.
    pub(super) primary: Arc<str>,
    /// The key as the eviction manager knows it, to tell it about purges.
    pub(super) compact: CompactCacheKey,
    /// Its cache tags ([`super::tags`]), indexed for purging by tag.
    pub(super) tags: Box<[Arc<str>]>,
    pub(super) size: usize,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object").field("key", &self.primary).field("size", &self.size).finish()
    }
}

impl Object {
    pub fn meta(&self) -> &CacheMeta {
        &self.meta
    }

    /// The body as a direct answer sends it.
    pub fn payload(&self) -> crate::socket_send::Payload<'_> {
        match &self.body {
            Body::Memory(b) => crate::socket_send::Payload::Memory(b),
            Body::File(f) | Body::Disk(f) => crate::socket_send::Payload::File(f),
        }
    }

    /// Whether this is a disk tier object answered from its open file (not in the memory tier's budget).
    pub fn from_disk(&self) -> bool {
        matches!(self.body, Body::Disk(_))
    }

    /// Whether the body can be sent now without waiting for the disk: always, but for a disk object whose file
    /// the kernel no longer holds in memory ([`BodyFile::tail_cached`]).
    pub fn sendable_now(&self) -> bool {
        match &self.body {
            Body::Disk(f) => f.tail_cached(),
            _ => true,
        }
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Bytes the object counts for in the budget (and weighs in the eviction manager).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn compact_key(&self) -> &CompactCacheKey {
        &self.compact
    }

    /// An object from its parts, its size (what it counts for in the budget) worked out from them.
    pub(super) fn assemble(
        meta: CacheMeta,
        body: Body,
        primary: Arc<str>,
        compact: CompactCacheKey,
        tags: Box<[Arc<str>]>,
    ) -> Object {
        let size = body.len() + header_size(meta.response_header()) + primary.len() + tags::cost(&tags);
        Object { meta, body, primary, compact, tags, size }
    }

    /// The same object (body, key, tags, size shared) with another meta: after a revalidation, a soft purge.
    pub(super) fn with_meta(&self, meta: CacheMeta) -> Object {
        Object {
            meta,
            body: self.body.clone(),
            primary: self.primary.clone(),
            compact: self.compact.clone(),
            tags: self.tags.clone(),
            size: self.size,
        }
    }
}
