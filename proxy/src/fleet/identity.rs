//! How edges prove to each other who they are. In a fleet from control, each edge has an Ed25519 key pair of its
//! own: it reports the public key to control with its own credential (so control binds the key to the name the
//! credential is for), control serves it with the edge's member entry, and the edge signs every peer request
//! ([`dime_routes::wire::peer_message`]: the request, both names, the time). A peer listener hears a request only
//! with a valid signature by the key listed for the name it claims. No secret is ever sent to a member: one edge
//! (or whoever takes one over) cannot pose as another to a third.
//!
//! Why signatures and not one shared token (the old way) or mTLS: a shared token is sent to every member, so any
//! member can replay it as anyone; mTLS would need a CA issuing certificates to edges and client certificates on
//! Pingora's peer connections, where a signature is two headers and `ring` (already in the tree for TLS).
//!
//! A static `--peers` fleet (no control) has nobody to bind keys to names: it keeps a shared token
//! (`--peer-token-file`), and docs/edge.md says what that does not protect against.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dime_routes::wire;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// The file in the state directory that keeps the key pair across restarts (PKCS#8, mode 0600).
pub const KEY_FILE: &str = "peer-key.pk8";

/// This edge's key pair.
pub struct PeerKey {
    pair: Ed25519KeyPair,
    public: String,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Why the key pair cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not an Ed25519 key in PKCS#8 ({why}); remove it and a new one is made")]
    Invalid { path: String, why: String },
    #[error("cannot make a key pair: the system's random number generator failed")]
    Random,
}

impl PeerKey {
    /// A new key pair, kept in memory only.
    pub fn generate() -> Result<PeerKey, KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        Self::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Invalid { path: "(new)".into(), why: e.to_string() })
    }

    /// The key pair kept in `dir` ([`KEY_FILE`]), made and written there (mode 0600) the first time, so that a
    /// restart keeps the key control and the other edges know.
    pub fn load_or_create(dir: &Path) -> Result<PeerKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let shown = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|error| KeyError::Io { path: dir.display().to_string(), error })?;
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_pkcs8(&bytes).map_err(|e| KeyError::Invalid { path: shown, why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
                write_private(&path, pkcs8.as_ref()).map_err(|error| KeyError::Io { path: shown.clone(), error })?;
                Self::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Invalid { path: shown, why: e.to_string() })
            }
            Err(error) => Err(KeyError::Io { path: shown, error }),
        }
    }

    fn from_pkcs8(bytes: &[u8]) -> Result<PeerKey, ring::error::KeyRejected> {
        let pair = Ed25519KeyPair::from_pkcs8(bytes)?;
        let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(PeerKey { pair, public })
    }

    /// The public key as control and the members get it (base64url, no padding).
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The signature of `message`, as [`wire::PEER_SIGNATURE_HEADER`] carries it.
    pub fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(message).as_ref())
    }
}

/// A member's public key, as control lists it; `None` for one that is not a 32-byte Ed25519 key in base64url.
pub fn public_key(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim()).ok().filter(|k| k.len() == 32)
}

/// Whether `signature` (base64url) is `key`'s signature of `message`.
pub fn verify(key: &[u8], message: &[u8], signature: &str) -> bool {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature.trim()) else { return false };
    UnparsedPublicKey::new(&ED25519, key).verify(message, &sig).is_ok()
}

/// Whether a request signed at `time` (Unix seconds) may be heard at `now` ([`wire::PEER_CLOCK_SKEW`] either way).
pub fn timely(time: u64, now: u64) -> bool {
    time.abs_diff(now) <= wire::PEER_CLOCK_SKEW.as_secs()
}

/// Writes `bytes` to a new file readable by its owner only (replacing nothing: another writer's file wins).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
