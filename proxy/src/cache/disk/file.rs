//! One object file on disk: writing it (a placeholder first, the body with its checksum, then the real head), and
//! opening it with every part checked ([`record`] says what is checked).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use pingora_cache::key::{CacheHashKey, HashBinary};

use super::record::{self, Corrupt, Head};
use super::DiskError;
use super::{OpenFile, Persist};

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("it holds another key than its name says")]
    OtherKey,
}

impl ReadError {
    /// The `dime_cache_disk_errors_total{kind}` label.
    pub(super) fn kind(&self) -> DiskError {
        match self {
            ReadError::Corrupt(c) => c.kind(),
            ReadError::Io(_) => DiskError::Io,
            ReadError::OtherKey => DiskError::Garbled,
        }
    }
}

/// `head` is what the file named for `hash` must hold.
pub(super) fn of_key(head: &Head, hash: &HashBinary) -> Result<(), ReadError> {
    if head.compact.combined_bin() == *hash {
        Ok(())
    } else {
        Err(ReadError::OtherKey)
    }
}

/// The buffer a body is checked through, one per blocking thread (a fresh one per file would cost the kernel
/// clearing its pages each time).
const CHECK_BUF: usize = 256 << 10;

/// Opens an object file and checks every part of it: the body is read through once for its checksum.
pub(super) fn open_file(path: &Path) -> Result<OpenFile, ReadError> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut fixed_bytes = [0u8; record::FIXED_LEN];
    let got = read_up_to(&mut file, &mut fixed_bytes)?;
    let fixed = record::fixed(&fixed_bytes[..got], len)?;
    let mut head = vec![0u8; fixed.head_len as usize];
    file.read_exact(&mut head)?;
    let head = record::head(&fixed, &head)?;
    let (read, crc) = BUF.with_borrow_mut(|buf| {
        buf.resize(CHECK_BUF, 0);
        let mut crc = crc32fast::Hasher::new();
        let mut read = 0u64;
        loop {
            match file.read(buf)? {
                0 => return Ok::<_, io::Error>((read, crc.finalize())),
                n => {
                    crc.update(&buf[..n]);
                    read += n as u64;
                }
            }
        }
    })?;
    record::body_read(&fixed, read, crc)?;
    Ok(OpenFile { head, file, body_offset: fixed.body_offset(), body_len: fixed.body_len })
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Writes `object` to a new file at `path`: a placeholder where the fixed part and head go, the body (its
/// checksum computed on the way), then the real fixed part and head at the start. The file's length.
pub(super) fn write_file(path: &Path, object: &dyn Persist) -> io::Result<u64> {
    let head = object.head()?;
    let body_len = object.body_len();
    let placeholder = record::encode(&head, body_len, 0);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&vec![0u8; placeholder.len()])?;
    let mut crc = crc32fast::Hasher::new();
    let mut writer = io::BufWriter::with_capacity(256 << 10, &mut file);
    object.body(&mut |piece| {
        crc.update(piece);
        writer.write_all(piece)
    })?;
    writer.flush()?;
    drop(writer);
    let start = record::encode(&head, body_len, crc.finalize());
    file.write_all_at(&start, 0)?;
    let len = file.seek(SeekFrom::End(0))?;
    if len != start.len() as u64 + body_len {
        return Err(io::Error::other(format!("wrote {len} bytes, expected {}", start.len() as u64 + body_len)));
    }
    Ok(len)
}
