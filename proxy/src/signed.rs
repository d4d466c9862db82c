//! Signed viewer URLs. A token is four query parameters:
//!
//! - `dime_exp`: expiry, Unix seconds;
//! - `dime_prefix`: the path prefix it covers (percent-encoded), so one token serves a stream's playlist and all its
//!   segments;
//! - `dime_kid`: the id of the key that signed it (several keys are accepted, for rotation);
//! - `dime_sig`: hex HMAC-SHA256 over `dime-v1`, the key id, the expiry, the prefix and — when the route binds
//!   tokens to clients — the client's address, one per line.
//!
//! The edge checks the token before the cache or the origin is touched, and leaves every `dime_*` parameter out of
//! the cache key and of the request to the origin. Keys live only on the edges (`--signing-keys FILE`, lines of
//! `ID SECRET`), never in a routes document.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ring::hmac;

pub const EXP: &str = "dime_exp";
pub const PREFIX: &str = "dime_prefix";
pub const KID: &str = "dime_kid";
pub const SIG: &str = "dime_sig";

/// Query parameters that belong to Dime, never to the origin or the cache key.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("dime_")
}

/// The signing keys an edge holds.
#[derive(Default)]
pub struct Keys(BTreeMap<String, hmac::Key>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_tuple("Keys").field(&self.0.keys().collect::<Vec<_>>()).finish()
    }
}

/// A key file that cannot be used, or a token that cannot be minted: the message names the file and line, or the
/// key id or prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl Keys {
    /// Reads `ID SECRET` lines (`#` comments allowed); secrets of at least 32 characters.
    pub fn parse(name: &str, text: &str) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{name}:{}", n + 1);
            let (id, secret) = line
                .split_once(char::is_whitespace)
                .map(|(i, s)| (i, s.trim()))
                .ok_or_else(|| KeyError(format!("{at}: expected `ID SECRET`")))?;
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(KeyError(format!("{at}: invalid key id `{id}` (letters, digits, `-`, `_`, `.`)")));
            }
            if secret.len() < 32 {
                return Err(KeyError(format!("{at}: the secret of `{id}` is shorter than 32 characters")));
            }
            if keys.insert(id.to_owned(), hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())).is_some() {
                return Err(KeyError(format!("{at}: key id `{id}` appears twice")));
            }
        }
        if keys.is_empty() {
            return Err(KeyError(format!("{name}: no key in the file")));
        }
        Ok(Keys(keys))
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError(format!("{name}: {e}")))?;
        Self::parse(&name, &text)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

fn message(kid: &str, exp: u64, prefix: &str, ip: Option<IpAddr>) -> String {
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    format!("dime-v1\n{kid}\n{exp}\n{prefix}\n{ip}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// What a token's prefix keeps as is: RFC 3986's unreserved characters and `/`; everything else is `%XX`.
const PREFIX_ENCODING: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// The token's query parameters for a path prefix, valid until `exp` (Unix seconds).
pub fn token(keys: &Keys, kid: &str, prefix: &str, exp: u64, ip: Option<IpAddr>) -> Result<String, KeyError> {
    let key = keys.0.get(kid).ok_or_else(|| KeyError(format!("no key `{kid}` in the key file")))?;
    if !prefix.starts_with('/') {
        return Err(KeyError(format!("the prefix `{prefix}` must start with `/`")));
    }
    let sig = hmac::sign(key, message(kid, exp, prefix, ip).as_bytes());
    let prefix = percent_encoding::utf8_percent_encode(prefix, PREFIX_ENCODING);
    Ok(format!("{EXP}={exp}&{PREFIX}={prefix}&{KID}={kid}&{SIG}={}", hex(sig.as_ref())))
}

/// Why a request's token was refused (the metric label and the 403's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    Missing,
    Malformed,
    Expired,
    OutsidePrefix,
    UnknownKey,
    BadSignature,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Malformed => "malformed",
            Reject::Expired => "expired",
            Reject::OutsidePrefix => "outside_prefix",
            Reject::UnknownKey => "unknown_key",
            Reject::BadSignature => "bad_signature",
        }
    }
}

/// Checks a request against a route's signed-URL requirement.
pub fn verify(
    keys: &Keys,
    route: &dime_routes::SignedUrls,
    path: &str,
    query: Option<&str>,
    client: Option<IpAddr>,
    now_unix: u64,
) -> Result<(), Reject> {
    let (mut exp, mut prefix, mut kid, mut sig) = (None, None, None, None);
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match name.as_ref() {
            EXP => &mut exp,
            PREFIX => &mut prefix,
            KID => &mut kid,
            SIG => &mut sig,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(Reject::Malformed);
        }
    }
    let (Some(exp), Some(prefix), Some(kid), Some(sig)) = (exp, prefix, kid, sig) else {
        return Err(Reject::Missing);
    };
    let kid = kid.as_ref();
    let exp: u64 = exp.parse().map_err(|_| Reject::Malformed)?;
    let sig = unhex(&sig).ok_or(Reject::Malformed)?;
    if exp <= now_unix {
        return Err(Reject::Expired);
    }
    if !path.starts_with(prefix.as_ref()) || path.split('/').any(|seg| seg == "..") {
        return Err(Reject::OutsidePrefix);
    }
    if !route.keys.iter().any(|k| k == kid) {
        return Err(Reject::UnknownKey);
    }
    let key = keys.0.get(kid).ok_or(Reject::UnknownKey)?;
    let ip = if route.bind_client_ip { client } else { None };
    hmac::verify(key, message(kid, exp, &prefix, ip).as_bytes(), &sig).map_err(|_| Reject::BadSignature)
}

/// The query without Dime's parameters; `None` when nothing is left. The pairs that stay are passed on byte for
/// byte as the viewer wrote them (decoding and re-encoding them, as `form_urlencoded` would, could change what the
/// origin receives), so this splits on `&` itself; the names Dime reserves are plain ASCII.
pub fn strip(query: &str) -> Option<String> {
    let kept: Vec<&str> =
        query.split('&').filter(|p| !p.is_empty() && !is_reserved(p.split_once('=').map_or(*p, |(n, _)| n))).collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests;
