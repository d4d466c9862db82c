//! The one reading of a request's path that everything after it uses.
//!
//! An origin such as nginx resolves `..` and `%2e%2e` itself. If the edge routed, checked signed URLs and keyed
//! its cache on the path as the client wrote it, `/public/%2e%2e/premium/x` would match the open route `/public/`
//! and be served from `/premium/x`. So the edge reads the path once, with [`normalize`], and uses the result for
//! routing, the signed-URL check, cache and ring keys and purge matching, and sends it to the origin: the path
//! that was checked is the path that is served.
//!
//! The rules, in order (RFC 3986 §6.2.2 and §5.2.4, with the refusals of Traefik v3 and Envoy):
//! 1. the path starts with `/`;
//! 2. `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded; every other `%XX` is kept, its hex
//!    digits uppercased. Refused: a `%` without two hex digits, `%00`, `%2F` and `%5C` (unless
//!    [`PathOptions::allow_encoded_slash`]), a raw `\`, raw control characters and spaces, raw non-ASCII;
//! 3. dot segments are removed (after step 2, so `%2e%2E` is `..`); `..` at the root stays at the root;
//! 4. repeated slashes are merged ([`PathOptions::merge_slashes`]).
//!
//! A segment that starts with `.;` or `..;` (also `.%3B`, `..%3B`) is refused: `;` is an ordinary character here
//! (RFC 3986 keeps it), but Tomcat-style origins strip `;parameters` and would read `/a/..;/b` as `/b`.
//!
//! ```
//! use dime_routes::path::{normalize, PathOptions};
//! let path = normalize("/public/%2e%2E/premium//x", PathOptions::default()).unwrap();
//! assert_eq!(path.as_str(), "/premium/x");
//! assert!(normalize("/live/s1/..%2fs2/index.m3u8", PathOptions::default()).is_err());
//! ```
//! The table of inputs and outcomes is in `docs/edge.md` ("How the edge reads a path").

use std::borrow::Cow;
use std::fmt;

/// How [`normalize`] treats what a route may want either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// Merge repeated slashes (`//a///b` → `/a/b`). On by default, as nginx's `merge_slashes on` default and
    /// Envoy's `merge_slashes` option: an origin that merges them itself would otherwise serve `/premium//x`
    /// from `/premium/x` while the edge matched and cached it as another path. Off keeps empty segments, as
    /// RFC 3986 does; the result then has no dot segments but may have `//`.
    pub merge_slashes: bool,
    /// Accept `%2F` (and `%5C`) in a segment: kept encoded and uppercased, and not a path separator. Off by
    /// default, as in Traefik v3 and Envoy's `UNESCAPE_AND_REDIRECT`/`REJECT_REQUEST` actions: an origin that
    /// decodes them would read `/live/s1/..%2Fs2/x` as `/live/s2/x`. Even when on, a dot segment next to an
    /// encoded slash (`..%2Fs2`) is refused. `%00` is always refused.
    pub allow_encoded_slash: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions { merge_slashes: true, allow_encoded_slash: false }
    }
}

/// Why a path is refused (the edge answers 400). `at` is the byte offset in the path as written (0 is its
/// leading `/`); `sequence` and `segment` are as written too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("bad percent-encoding `{sequence}` at byte {at}: `%` must be followed by two hex digits")]
    BadPercent { at: usize, sequence: String },
    #[error("encoded slash `{sequence}` at byte {at}: refused (a route may allow it with allow_encoded_slash)")]
    EncodedSlash { at: usize, sequence: String },
    #[error("encoded backslash `{sequence}` at byte {at}: refused (a route may allow it with allow_encoded_slash)")]
    EncodedBackslash { at: usize, sequence: String },
    #[error("encoded NUL `%00` at byte {at}: refused")]
    EncodedNul { at: usize },
    #[error("backslash at byte {at}: refused (some origins read it as `/`); encode it as `%5C`")]
    Backslash { at: usize },
    #[error("{} (0x{byte:02X}) at byte {at}: refused; encode it as `%{byte:02X}`", byte_name(*.byte))]
    Control { at: usize, byte: u8 },
    #[error("non-ASCII character `{ch}` (U+{:04X}) at byte {at}: refused; percent-encode its UTF-8 bytes ({})", u32::from(*.ch), utf8_escaped(*.ch))]
    NonAscii { at: usize, ch: char },
    #[error("segment `{segment}` at byte {at}: a dot segment with `;` parameters, refused (Tomcat-style origins read `..;` as `..`)")]
    DotParam { at: usize, segment: String },
    #[error("segment `{segment}` at byte {at}: a dot segment behind an encoded slash, refused even with allow_encoded_slash (an origin that decodes `%2F` would climb out of the route)")]
    EncodedDotSegment { at: usize, segment: String },
}

fn byte_name(byte: u8) -> &'static str {
    match byte {
        b' ' => "space",
        0x7F => "DEL",
        _ => "control character",
    }
}

fn utf8_escaped(ch: char) -> String {
    let mut buf = [0u8; 4];
    ch.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A path [`normalize`] accepted: the only way to make one. Borrowed from the request when it was already
/// normal (the common case, which allocates nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath<'a>(Cow<'a, str>);

impl<'a> NormalizedPath<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the path was already normal, so the request's own path can be sent on as it is.
    pub fn is_unchanged(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }

    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath(Cow::Owned(self.0.into_owned()))
    }
}

impl std::ops::Deref for NormalizedPath<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NormalizedPath<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalizedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads `raw`, the path of a request target without its query (the caller splits at the first `?`; `*` and
/// absolute-form targets are the caller's too), as the module doc says. Linear in `raw`'s length.
pub fn normalize(raw: &str, options: PathOptions) -> Result<NormalizedPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if already_normal(raw.as_bytes(), options) {
        return Ok(NormalizedPath(Cow::Borrowed(raw)));
    }
    let mut out = String::with_capacity(raw.len());
    let mut at = 1;
    loop {
        let end = raw.as_bytes()[at..].iter().position(|&b| b == b'/').map(|n| at + n);
        let last = end.is_none();
        let segment = &raw[at..end.unwrap_or(raw.len())];
        let start = out.len();
        out.push('/');
        decode_segment(segment, at, options, &mut out)?;
        let dot = match &out[start + 1..] {
            "." => {
                out.truncate(start);
                true
            }
            ".." => {
                out.truncate(start);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
                true
            }
            decoded => {
                check_segment(decoded, segment, at, options)?;
                false
            }
        };
        // A dot segment that ends the path leaves its directory: `/a/b/..` is `/a/`.
        if dot && last {
            out.push('/');
        }
        match end {
            Some(end) => at = end + 1,
            None => break,
        }
    }
    if options.merge_slashes {
        merge_slashes(&mut out);
    }
    if out == raw {
        return Ok(NormalizedPath(Cow::Borrowed(raw)));
    }
    Ok(NormalizedPath(Cow::Owned(out)))
}

/// Rule 4, after the dot segments are gone (as Envoy: in `/a//../b` the `..` takes out the empty segment).
fn merge_slashes(out: &mut String) {
    if !out.contains("//") {
        return;
    }
    let mut slash = false;
    out.retain(|c| {
        let repeated = slash && c == '/';
        slash = c == '/';
        !repeated
    });
}

/// The bytes that are kept as they are: printable ASCII but for `%`, backslash and `/`.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = 0x21;
    while b < 0x7F {
        plain[b] = !matches!(b as u8, b'%' | b'\\' | b'/');
        b += 1;
    }
    plain
};

/// The fast path: only plain characters, no `%`, no `//` to merge, no dot segment. Most requests are this.
fn already_normal(raw: &[u8], options: PathOptions) -> bool {
    for (i, &b) in raw.iter().enumerate() {
        if PLAIN[usize::from(b)] {
            continue;
        }
        match b {
            b'/' => match raw.get(i + 1) {
                Some(b'/') if options.merge_slashes => return false,
                Some(b'.') => {
                    let rest = &raw[i + 1..];
                    let segment = rest.split(|&c| c == b'/').next().unwrap_or(rest);
                    if is_dot(segment) || dot_param(segment) {
                        return false;
                    }
                }
                _ => {}
            },
            _ => return false,
        }
    }
    true
}

fn is_dot(segment: &[u8]) -> bool {
    segment == b"." || segment == b".."
}

/// `.;…`, `..;…` and their `%3B` forms (the decoded form's escapes are uppercase).
fn dot_param(segment: &[u8]) -> bool {
    let params = match segment {
        [b'.', b'.', params @ ..] | [b'.', params @ ..] => params,
        _ => return false,
    };
    params.starts_with(b";") || params.starts_with(b"%3B")
}

/// A segment that is not a dot segment: refused if Tomcat-style parameters or an encoded slash could make it one.
fn check_segment(decoded: &str, raw: &str, at: usize, options: PathOptions) -> Result<(), PathError> {
    if dot_param(decoded.as_bytes()) {
        return Err(PathError::DotParam { at, segment: raw.to_owned() });
    }
    if options.allow_encoded_slash && (decoded.contains("%2F") || decoded.contains("%5C")) {
        let pieces = decoded.split("%2F").flat_map(|p| p.split("%5C"));
        if pieces.map(str::as_bytes).any(|p| is_dot(p) || dot_param(p)) {
            return Err(PathError::EncodedDotSegment { at, segment: raw.to_owned() });
        }
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Appends `segment` (which starts at byte `at` of the path) to `out`, decoded as rule 2 says.
fn decode_segment(segment: &str, at: usize, options: PathOptions, out: &mut String) -> Result<(), PathError> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| PLAIN[usize::from(b)]).count();
        if run > 0 {
            out.push_str(&segment[i..i + run]);
            i += run;
            continue;
        }
        let b = bytes[i];
        let here = at + i;
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value))
                else {
                    let sequence = segment[i..].chars().take(3).collect();
                    return Err(PathError::BadPercent { at: here, sequence });
                };
                let value = hi << 4 | lo;
                let sequence = || segment[i..i + 3].to_owned();
                match value {
                    0 => return Err(PathError::EncodedNul { at: here }),
                    b'/' if !options.allow_encoded_slash => {
                        return Err(PathError::EncodedSlash { at: here, sequence: sequence() })
                    }
                    b'\\' if !options.allow_encoded_slash => {
                        return Err(PathError::EncodedBackslash { at: here, sequence: sequence() })
                    }
                    v if is_unreserved(v) => out.push(char::from(v)),
                    _ => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(hi)]));
                        out.push(char::from(HEX[usize::from(lo)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash { at: here }),
            0..=0x20 | 0x7F => return Err(PathError::Control { at: here, byte: b }),
            0x80.. => {
                let ch = segment[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(PathError::NonAscii { at: here, ch });
            }
            // Only `/`, which a segment does not hold: kept as a plain byte would be.
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
