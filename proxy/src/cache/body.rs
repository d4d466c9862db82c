//! Bodies of large cached objects, kept in files so hits can be sent with `sendfile(2)`.
//!
//! A body of at least [`FILE_BODY_MIN`] bytes is moved, when its object completes, into a file that only the store
//! holds: by default an anonymous memory file (`memfd_create`), sealed against any change; with
//! `--cache-body-dir`, an unlinked file in that directory (`O_TMPFILE`), which lives in the page cache. A plain GET
//! hit on such an object is sent with `sendfile` from the file's pages to the client socket ([`crate::socket_send`]):
//! the body is never copied out of the edge's memory, which is what the per-hit CPU of large objects went to.
//! Every other reader (ranges, HEAD, TLS and HTTP/2 clients) gets the bytes with `pread`, in pieces of at most
//! [`READ_CHUNK`].
//!
//! Why a directory can be worth it: memory files are made of 4 KiB pages, and `sendfile` walks them one by one;
//! ext4 and xfs put file data in large pages, which the same `sendfile` moves at a fraction of the cost (measured
//! in docs/benchmarks.md). The price is that the kernel writes those pages back to the disk under the directory
//! in the background, as it does for nginx's `proxy_cache`. Either way the bytes count against `--cache-size`
//! exactly as before, and an unlinked file vanishes with the last descriptor, so nothing is left behind.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;

/// Bodies this large and larger are kept in a file and sent with `sendfile`. Below it, the copy a plain `write`
/// makes costs less than the file and the extra system calls.
pub const FILE_BODY_MIN: usize = 128 << 10;

/// Largest piece handed to a copying reader at once, so a range or HTTP/2 reader of a huge object never holds a
/// second copy of all of it.
pub const READ_CHUNK: usize = 1 << 20;

/// An immutable body in a file: one only the store holds, or the body part of a disk tier file
/// ([`BodyFile::in_file`]).
#[derive(Debug)]
pub struct BodyFile {
    file: File,
    /// Where the body starts in the file.
    offset: u64,
    len: usize,
    /// When [`BodyFile::tail_cached`] last found the body in memory (ms since [`EPOCH`]; 0: never).
    seen_cached: AtomicU64,
}

/// What [`BodyFile::tail_cached`]'s times count from.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How long a body found in memory is taken to stay there before it is checked again.
const CACHED_FOR: Duration = Duration::from_secs(1);

fn unlinked_file(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    Ok(rustix::fs::open(dir, flags, Mode::RUSR | Mode::WUSR)?)
}

impl BodyFile {
    /// Writes `chunks` (`len` bytes in all) into a new file: an unlinked one in `dir`, or a memory file sealed so
    /// that neither its size nor its contents can change afterwards, whoever holds the descriptor.
    pub fn new(chunks: &[Bytes], len: usize, dir: Option<&Path>) -> io::Result<BodyFile> {
        let fd = match dir {
            Some(dir) => unlinked_file(dir)?,
            None => memfd_create("dime-cache-body", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?,
        };
        let mut file = File::from(fd);
        for chunk in chunks {
            file.write_all(chunk)?;
        }
        let written = file.metadata()?.len();
        if written != len as u64 {
            return Err(io::Error::other(format!("the file holds {written} bytes, expected {len}")));
        }
        if dir.is_none() {
            fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL)?;
        }
        Ok(BodyFile { file, offset: 0, len, seen_cached: AtomicU64::new(0) })
    }

    /// The `len` bytes at `offset` of an open file nobody writes to any more (a disk tier file: written under
    /// another name, then renamed).
    pub fn in_file(file: File, offset: u64, len: usize) -> BodyFile {
        BodyFile { file, offset, len, seen_cached: AtomicU64::new(0) }
    }

    /// Makes `dir` if it is missing (owner-only) and checks at start that it can hold body files (writable, on a
    /// filesystem with `O_TMPFILE`).
    pub fn prepare_dir(dir: &Path) -> io::Result<()> {
        if !dir.is_dir() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        unlinked_file(dir).map(drop).map_err(|e| match e.raw_os_error() {
            Some(code) if code == Errno::OPNOTSUPP.raw_os_error() || code == Errno::ISDIR.raw_os_error() => {
                io::Error::other(format!("the filesystem does not support unlinked (O_TMPFILE) files: {e}"))
            }
            _ => e,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies bytes `start..end` out of the file.
    pub fn read(&self, start: usize, end: usize) -> io::Result<Bytes> {
        let end = end.min(self.len);
        let mut buf = BytesMut::zeroed(end.saturating_sub(start));
        self.file.read_exact_at(&mut buf, self.offset + start as u64)?;
        Ok(buf.freeze())
    }

    /// Copies bytes `start..end` out of the file if the kernel has all of them in memory (`RWF_NOWAIT`), so the
    /// caller never waits for a disk; `None` when some must come from the disk.
    pub fn read_cached(&self, start: usize, end: usize) -> io::Result<Option<Bytes>> {
        let end = end.min(self.len);
        let mut buf = BytesMut::zeroed(end.saturating_sub(start));
        let mut got = 0;
        while got < buf.len() {
            let at = self.offset + (start + got) as u64;
            let mut parts = [io::IoSliceMut::new(&mut buf[got..])];
            match rustix::io::preadv2(&self.file, &mut parts, at, rustix::io::ReadWriteFlags::NOWAIT) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(Errno::AGAIN) | Err(Errno::OPNOTSUPP) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(buf.freeze()))
    }

    /// Whether the kernel holds the body's last byte in memory: checked before a `sendfile`, which would wait
    /// for the disk on the event loop otherwise. The whole body was read through when the file was opened
    /// ([`crate::cache::disk`]), so this guards against a file the kernel dropped since (under memory pressure,
    /// a file nobody read for a while), not against every page it may have dropped: a cheap guard, not a proof.
    /// A body found in memory is not checked again for [`CACHED_FOR`] (a hot file stays in memory), which
    /// saves a system call on most hits.
    pub fn tail_cached(&self) -> bool {
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
        let seen = self.seen_cached.load(Ordering::Relaxed);
        if seen != 0 && now.saturating_sub(seen) < CACHED_FOR.as_millis() as u64 {
            return true;
        }
        let cached = self.len == 0 || matches!(self.read_cached(self.len - 1, self.len), Ok(Some(_)));
        if cached {
            self.seen_cached.store(now, Ordering::Relaxed);
        }
        cached
    }

    /// Where the body starts in [`BodyFile::fd`]'s file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The descriptor `sendfile` reads from.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: [Bytes; 2] = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")];

    #[test]
    fn a_memory_file_body_reads_back_and_cannot_be_changed() {
        let body = BodyFile::new(&CHUNKS, 11, None).unwrap();
        assert_eq!(body.len(), 11);
        assert_eq!(&body.read(0, 11).unwrap()[..], b"hello world");
        assert_eq!(&body.read(6, 100).unwrap()[..], b"world");
        // The seals hold even for a writer that has the descriptor.
        let mut again = File::from(body.fd().try_clone_to_owned().unwrap());
        assert!(again.write_all(b"x").is_err());
        assert!(again.set_len(1).is_err());
        assert!(BodyFile::new(&CHUNKS, 12, None).is_err(), "a length mismatch is refused");
    }

    #[test]
    fn a_body_inside_a_file_reads_from_its_offset() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"headhello world").unwrap();
        let body = BodyFile::in_file(file, 4, 11);
        assert_eq!(&body.read(0, 11).unwrap()[..], b"hello world");
        assert_eq!(&body.read(6, 100).unwrap()[..], b"world");
        assert_eq!(body.read_cached(0, 5).unwrap().as_deref(), Some(&b"hello"[..]), "just written: in memory");
        assert!(body.tail_cached());
    }

    #[test]
    fn a_directory_body_is_an_unlinked_file_there() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("bodies");
        BodyFile::prepare_dir(&dir).unwrap();
        let body = BodyFile::new(&CHUNKS, 11, Some(&dir)).unwrap();
        assert_eq!(&body.read(3, 8).unwrap()[..], b"lo wo");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing is left in the directory");
        assert!(BodyFile::prepare_dir(Path::new("/dev/null/bodies")).is_err());
    }
}
