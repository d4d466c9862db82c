//! The on-disk form of one cached object, pure: encoding it and checking every part of it on the way back.
//!
//! ```text
//! 0   magic "DIMEOBJ1"                      8 bytes
//! 8   head length                           u32 LE
//! 12  body length                           u64 LE
//! 20  CRC-32 of the head                    u32 LE
//! 24  CRC-32 of the body                    u32 LE
//! 28  CRC-32 of bytes 0..28                 u32 LE
//! 32  head: primary key text, the compact key (primary hash, variance, user tag), the cache tags, pingora's
//!     serialized CacheMeta (internal part, header part), each length-prefixed
//!     body
//! ```
//!
//! A file is whole only when its length is exactly 32 + head + body and all three checksums match: a torn
//! write (the process killed mid-fill, power lost before the data reached the disk, a full disk), a truncated
//! file, a flipped byte or garbage is refused with the reason, never served.

use pingora_cache::key::{CompactCacheKey, HashBinary};
use thiserror::Error;

use crate::metrics::disk::DiskError;

pub const MAGIC: [u8; 8] = *b"DIMEOBJ1";
/// Length of the fixed part before the head.
pub const FIXED_LEN: usize = 32;
/// The largest head accepted back (a response header is bounded well below this by Pingora).
pub const MAX_HEAD: usize = 1 << 20;

/// Why a file is not a whole object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Corrupt {
    #[error("not a Dime cache object (bad magic)")]
    Magic,
    #[error("file is {found} bytes, its header says {expected}")]
    Length { expected: u64, found: u64 },
    #[error("checksum of the {0} does not match")]
    Checksum(&'static str),
    #[error("the head is garbled: {0}")]
    Garbled(&'static str),
}

impl Corrupt {
    /// The `dime_cache_disk_errors_total{kind}` label.
    pub fn kind(&self) -> DiskError {
        match self {
            Corrupt::Length { .. } => DiskError::Truncated,
            Corrupt::Checksum(_) => DiskError::Checksum,
            Corrupt::Magic | Corrupt::Garbled(_) => DiskError::Garbled,
        }
    }
}

/// The fixed part: lengths and checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub head_len: u32,
    pub body_len: u64,
    pub head_crc: u32,
    pub body_crc: u32,
}

impl Fixed {
    /// The length the whole file must have.
    pub fn file_len(&self) -> u64 {
        FIXED_LEN as u64 + u64::from(self.head_len) + self.body_len
    }

    /// Where the body starts in the file.
    pub fn body_offset(&self) -> u64 {
        FIXED_LEN as u64 + u64::from(self.head_len)
    }
}

/// What identifies and describes an object, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The primary key text (`host\npath?query`), for purges by URL and prefix.
    pub primary: String,
    pub compact: CompactCacheKey,
    /// The object's cache tags (also in its header; kept here so the index loads without decoding headers).
    pub tags: Vec<String>,
    /// `CacheMeta::serialize`'s two parts.
    pub meta_internal: Vec<u8>,
    pub meta_header: Vec<u8>,
}

impl Head {
    /// The tags as the store holds them.
    pub fn shared_tags(&self) -> Box<[std::sync::Arc<str>]> {
        self.tags.iter().map(|t| std::sync::Arc::from(t.as_str())).collect()
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The fixed part and the head of an object whose body has `body_len` bytes and checksum `body_crc`.
pub fn encode(head: &Head, body_len: u64, body_crc: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(128 + head.primary.len() + head.meta_internal.len() + head.meta_header.len());
    put_bytes(&mut h, head.primary.as_bytes());
    h.extend_from_slice(&head.compact.primary);
    match &head.compact.variance {
        Some(v) => {
            h.push(1);
            h.extend_from_slice(&v[..]);
        }
        None => h.push(0),
    }
    put_bytes(&mut h, head.compact.user_tag.as_bytes());
    h.extend_from_slice(&(head.tags.len() as u32).to_le_bytes());
    for tag in &head.tags {
        put_bytes(&mut h, tag.as_bytes());
    }
    put_bytes(&mut h, &head.meta_internal);
    put_bytes(&mut h, &head.meta_header);
    let mut out = Vec::with_capacity(FIXED_LEN + h.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&h).to_le_bytes());
    out.extend_from_slice(&body_crc.to_le_bytes());
    let fixed_crc = crc32fast::hash(&out);
    out.extend_from_slice(&fixed_crc.to_le_bytes());
    out.extend_from_slice(&h);
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Reads the fixed part of a file of `file_len` bytes.
pub fn fixed(bytes: &[u8], file_len: u64) -> Result<Fixed, Corrupt> {
    if bytes.len() < FIXED_LEN {
        return Err(Corrupt::Length { expected: FIXED_LEN as u64, found: file_len });
    }
    if bytes[..8] != MAGIC {
        return Err(Corrupt::Magic);
    }
    if crc32fast::hash(&bytes[..28]) != u32_at(bytes, 28) {
        return Err(Corrupt::Checksum("fixed header"));
    }
    let mut body_len = [0u8; 8];
    body_len.copy_from_slice(&bytes[12..20]);
    let fixed = Fixed {
        head_len: u32_at(bytes, 8),
        body_len: u64::from_le_bytes(body_len),
        head_crc: u32_at(bytes, 20),
        body_crc: u32_at(bytes, 24),
    };
    if fixed.head_len as usize > MAX_HEAD {
        return Err(Corrupt::Garbled("head too long"));
    }
    if fixed.file_len() != file_len {
        return Err(Corrupt::Length { expected: fixed.file_len(), found: file_len });
    }
    Ok(fixed)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if self.0.len() < n {
            return Err(Corrupt::Garbled("a field runs past the head"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn sized(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = u32_at(self.take(4)?, 0) as usize;
        self.take(n)
    }

    fn hash(&mut self) -> Result<HashBinary, Corrupt> {
        let mut h = HashBinary::default();
        let n = h.len();
        h.copy_from_slice(self.take(n)?);
        Ok(h)
    }
}

/// Reads the head (the bytes right after the fixed part), checking it against `fixed`.
pub fn head(fixed: &Fixed, bytes: &[u8]) -> Result<Head, Corrupt> {
    if bytes.len() != fixed.head_len as usize {
        return Err(Corrupt::Garbled("head length"));
    }
    if crc32fast::hash(bytes) != fixed.head_crc {
        return Err(Corrupt::Checksum("head"));
    }
    let mut r = Reader(bytes);
    let primary = std::str::from_utf8(r.sized()?).map_err(|_| Corrupt::Garbled("primary key"))?.to_owned();
    let primary_hash = r.hash()?;
    let variance = match r.take(1)?[0] {
        0 => None,
        1 => Some(Box::new(r.hash()?)),
        _ => return Err(Corrupt::Garbled("variance flag")),
    };
    let user_tag = std::str::from_utf8(r.sized()?).map_err(|_| Corrupt::Garbled("user tag"))?;
    let compact = CompactCacheKey { primary: primary_hash, variance, user_tag: user_tag.into() };
    let count = u32_at(r.take(4)?, 0) as usize;
    let mut tags = Vec::with_capacity(count.min(super::super::tags::MAX_TAGS));
    for _ in 0..count {
        tags.push(std::str::from_utf8(r.sized()?).map_err(|_| Corrupt::Garbled("tag"))?.to_owned());
    }
    let meta_internal = r.sized()?.to_vec();
    let meta_header = r.sized()?.to_vec();
    if !r.0.is_empty() {
        return Err(Corrupt::Garbled("bytes after the head's fields"));
    }
    Ok(Head { primary, compact, tags, meta_internal, meta_header })
}

/// Checks a body read back against `fixed`.
#[cfg(test)]
pub fn body(fixed: &Fixed, body: &[u8]) -> Result<(), Corrupt> {
    body_read(fixed, body.len() as u64, crc32fast::hash(body))
}

/// Checks a body read back in pieces against `fixed`: `len` bytes read in all, `crc` their CRC-32.
pub fn body_read(fixed: &Fixed, len: u64, crc: u32) -> Result<(), Corrupt> {
    if len != fixed.body_len {
        return Err(Corrupt::Length { expected: fixed.body_len, found: len });
    }
    if crc != fixed.body_crc {
        return Err(Corrupt::Checksum("body"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(variance: bool) -> Head {
        Head {
            primary: "v.test\n/a/b.mp4".into(),
            compact: CompactCacheKey {
                primary: [7; 16],
                variance: variance.then(|| Box::new([9; 16])),
                user_tag: "".into(),
            },
            tags: vec!["video".into(), "show-7".into()],
            meta_internal: vec![1, 2, 3],
            meta_header: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        }
    }

    fn file(head: &Head, body: &[u8]) -> Vec<u8> {
        let mut f = encode(head, body.len() as u64, crc32fast::hash(body));
        f.extend_from_slice(body);
        f
    }

    /// Reads a whole file the way the store does.
    fn read(f: &[u8]) -> Result<(Head, Vec<u8>), Corrupt> {
        let fx = fixed(&f[..f.len().min(FIXED_LEN)], f.len() as u64)?;
        let start = FIXED_LEN + fx.head_len as usize;
        let h = head(&fx, &f[FIXED_LEN..start])?;
        body(&fx, &f[start..])?;
        Ok((h, f[start..].to_vec()))
    }

    #[test]
    fn an_object_reads_back_as_written() {
        for variance in [false, true] {
            let h = sample(variance);
            assert_eq!(read(&file(&h, b"body bytes")).unwrap(), (h, b"body bytes".to_vec()));
        }
        assert_eq!(read(&file(&sample(false), b"")).unwrap().1, b"");
    }

    #[test]
    fn every_damage_is_detected_with_its_reason() {
        let good = file(&sample(true), &[0x5a; 1000]);
        // Truncated anywhere, including inside the fixed part and at the head/body boundary.
        for cut in [0, 5, 31, 32, 40, good.len() - 1000, good.len() - 1] {
            let err = read(&good[..cut]).unwrap_err();
            assert_eq!(err.kind().as_str(), "truncated", "cut at {cut}: {err}");
        }
        // Any single flipped byte.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(read(&bad).is_err(), "a flipped byte at {at} went unnoticed");
        }
        // Bytes appended (a reused file name).
        let mut longer = good.clone();
        longer.extend_from_slice(b"xx");
        assert_eq!(read(&longer).unwrap_err().kind().as_str(), "truncated");
        // Garbage.
        assert_eq!(read(&[0x42; 100]).unwrap_err(), Corrupt::Magic);
    }

    #[test]
    fn a_head_with_a_valid_checksum_but_broken_fields_is_refused() {
        let mut h = Vec::new();
        put_bytes(&mut h, b"host\n/path");
        h.extend_from_slice(&[0; 16]);
        h.push(7); // no such variance flag
        let fx = Fixed { head_len: h.len() as u32, body_len: 0, head_crc: crc32fast::hash(&h), body_crc: 0 };
        assert_eq!(head(&fx, &h), Err(Corrupt::Garbled("variance flag")));
    }
}
