//! The handles pingora-cache reads and writes objects through: [`Writer`] fills one (streaming to readers as
//! chunks arrive), [`Hit`] reads a complete object or follows one still being filled.

use super::*;

/// The stored form of a completed body: a file when large enough (and the file can be made), else
/// one contiguous buffer.
pub(super) fn body_of(chunks: &[Bytes], len: usize, dir: Option<&std::path::Path>) -> Body {
    if len >= FILE_BODY_MIN {
        match BodyFile::new(chunks, len, dir) {
            Ok(file) => return Body::File(Arc::new(file)),
            Err(e) => {
                // Out of descriptors or memory for files: the object is still stored, in the heap.
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(error = %e, "cannot put a large cached body in a file; keeping it in the heap (reported once)")
                });
            }
        }
    }
    Body::Memory(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks[0].clone(),
        _ => {
            let mut buf = BytesMut::with_capacity(len);
            for c in chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    })
}

/// Writes one object; dropped without `finish`, it marks the object failed.
pub(super) struct Writer {
    pub(super) store: &'static MemStore,
    pub(super) hash: HashBinary,
    pub(super) id: u64,
    pub(super) tag: U64WriteId,
    pub(super) partial: Arc<Partial>,
    pub(super) primary: Arc<str>,
    pub(super) compact: CompactCacheKey,
    pub(super) written: usize,
    pub(super) finished: bool,
    /// Freshness if this turns out to be a VOD playlist.
    pub(super) vod: Option<VodTtl>,
}

#[async_trait]
impl HandleMiss for Writer {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        let chunks = {
            let mut chunks = self.partial.chunks.write();
            if !data.is_empty() {
                self.written += data.len();
                chunks.push(data);
            }
            chunks.len()
        };
        // `eof` is only a hint; the object is complete when `finish` runs.
        let _ = eof;
        self.partial.state.send_replace(WriteState::Writing(chunks));
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        // Cloning the list only bumps reference counts; readers streaming the partial keep reading it.
        let chunks = self.partial.chunks.read().clone();
        let mut meta = copy_meta(&self.partial.meta);
        if self.partial.whole {
            if let Some(fresh_until) = self.store.judge_playlist(&self.primary, &meta, &chunks, self.vod) {
                let (swr, sie) = (meta.stale_while_revalidate_sec(), meta.stale_if_error_sec());
                meta.update_freshness(fresh_until, swr, sie);
            }
        }
        let body = body_of(&chunks, self.written, self.store.body_dir.as_deref());
        let tags = tags::of(meta.response_header());
        let object = Object::assemble(meta, body, self.primary.clone(), self.compact.clone(), tags);
        let size = object.size;
        // Abandoned while it was being fetched (a playlist stopped vouching for it, or a purge met it): readers
        // that joined get what they asked for, nothing is kept.
        let stored = self.store.insert_unless_abandoned(self.hash, &self.partial, object);
        self.partial.state.send_replace(WriteState::Done(chunks.len()));
        self.finished = true;
        self.store.remove_partial(&self.hash, self.id);
        Ok(MissFinishType::Created(if stored { size } else { 0 }))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            self.partial.state.send_replace(WriteState::Failed);
            self.store.remove_partial(&self.hash, self.id);
            self.store.fill_failed(&self.compact);
            if let Some(o) = &self.store.observer {
                o.write_failed();
            }
        }
    }
}

pub(super) enum Hit {
    Complete { object: Arc<Object>, start: usize, end: usize },
    Partial { partial: Arc<Partial>, state: watch::Receiver<WriteState>, next: usize },
}

fn incomplete() -> Box<Error> {
    Error::explain(ErrorType::ReadError, "the origin response this object was streaming from did not complete")
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Hit::Complete { object, start, end } => {
                if start >= end {
                    return Ok(None);
                }
                let piece = object.body.piece_async(*start, *end).await?;
                *start += piece.len();
                Ok(Some(piece))
            }
            Hit::Partial { partial, state, next } => loop {
                let current = *state.borrow_and_update();
                let available = match current {
                    WriteState::Writing(n) | WriteState::Done(n) => n,
                    WriteState::Failed => return Err(incomplete()),
                };
                let complete = matches!(current, WriteState::Done(_));
                if *next < available && (complete || !partial.whole) {
                    let chunk = partial.chunks.read().get(*next).cloned();
                    *next += 1;
                    match chunk {
                        Some(c) => return Ok(Some(c)),
                        None => return Err(incomplete()),
                    }
                }
                if matches!(current, WriteState::Done(_)) {
                    return Ok(None);
                }
                if state.changed().await.is_err() {
                    // The writer vanished without saying Done: treat as failed, never as a clean end.
                    return Err(incomplete());
                }
            },
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        matches!(self, Hit::Complete { .. })
    }

    fn seek(&mut self, from: usize, to: Option<usize>) -> Result<()> {
        match self {
            Hit::Complete { object, start, end } => {
                let len = object.body.len();
                if from >= len {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        format!("seek start {from} beyond length {len}"),
                    );
                }
                *start = from;
                *end = to.map_or(len, |t| t.min(len));
                Ok(())
            }
            Hit::Partial { .. } => Error::e_explain(ErrorType::InternalError, "seek on an object still being written"),
        }
    }

    /// A hit on a disk object answered from its open file is counted by the disk tier's LRU (it is not in the
    /// memory budget's); the budget's eviction manager is told about memory objects only.
    fn should_count_access(&self) -> bool {
        matches!(self, Hit::Complete { object, .. } if !matches!(object.body, Body::Disk(_)))
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            Hit::Complete { object, .. } => object.size,
            Hit::Partial { .. } => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
