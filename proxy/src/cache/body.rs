//! Bodies of large cached objects, kept in sealed memory files.
//!
//! A body of at least [`FILE_BODY_MIN`] bytes is moved, when its object completes, into an anonymous memory file
//! (`memfd_create`) that is then sealed against any change. A plain GET hit on such an object is sent with
//! `sendfile(2)` from the file's pages to the client socket ([`crate::zerocopy`]): the kernel never copies the body
//! from the edge's memory, which is what the per-hit CPU of large objects was spent on. Every other reader (ranges,
//! HEAD, TLS and HTTP/2 clients) gets the bytes with `pread`, in chunks of [`READ_CHUNK`].
//!
//! The file's pages are shared memory: they count against the same `--cache-size` budget (the store counts the
//! body length as before), and show in the process's memory cgroup, not in its heap.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use bytes::{Bytes, BytesMut};
use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

/// Bodies this large and larger are kept in a memory file and sent with `sendfile`. Below it, the copy a plain
/// `write` makes costs less than the file and the extra system calls.
pub const FILE_BODY_MIN: usize = 128 << 10;

/// Largest piece handed to a copying reader at once, so a range or HTTP/2 reader of a huge object never holds a
/// second copy of all of it.
pub const READ_CHUNK: usize = 1 << 20;

/// An immutable body in a sealed memory file.
#[derive(Debug)]
pub struct SealedBody {
    file: File,
    len: usize,
}

impl SealedBody {
    /// Writes `chunks` (`len` bytes in all) into a new memory file and seals it: from then on neither its size nor
    /// its contents can change, whoever holds the descriptor.
    pub fn new(chunks: &[Bytes], len: usize) -> io::Result<SealedBody> {
        let fd = memfd_create("dime-cache-body", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        let mut file = File::from(fd);
        for chunk in chunks {
            file.write_all(chunk)?;
        }
        let written = file.metadata()?.len();
        if written != len as u64 {
            return Err(io::Error::other(format!("memory file holds {written} bytes, expected {len}")));
        }
        fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL)?;
        Ok(SealedBody { file, len })
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
        self.file.read_exact_at(&mut buf, start as u64)?;
        Ok(buf.freeze())
    }

    /// The descriptor `sendfile` reads from.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_reads_back_and_cannot_be_changed() {
        let chunks = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
        let body = SealedBody::new(&chunks, 11).unwrap();
        assert_eq!(body.len(), 11);
        assert_eq!(&body.read(0, 11).unwrap()[..], b"hello world");
        assert_eq!(&body.read(6, 100).unwrap()[..], b"world");
        // The seals hold even for a writer that has the descriptor.
        let mut again = File::from(body.fd().try_clone_to_owned().unwrap());
        assert!(again.write_all(b"x").is_err());
        assert!(again.set_len(1).is_err());
        assert!(SealedBody::new(&chunks, 12).is_err(), "a length mismatch is refused");
    }
}
