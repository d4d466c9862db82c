//! Each edge's own credential, bound to its name: a bearer token the edge presents, of which control keeps only
//! the SHA-256, in a Secret labelled `dime.dev/edge-credential: NAME` in control's namespace (one per edge; two
//! for the same name while a token is rotated). A request with that token is that edge's, and control accepts a
//! report, a Lease renewal, a purge acknowledgement and a fleet membership only for that name.
//!
//! Why tokens and not client certificates: an edge already presents a bearer token, so a per-edge token changes
//! nothing on the wire or in the TLS setup (control may run behind a TLS-terminating Service or ingress, where a
//! client certificate never reaches it), issuing one is `dime-control credential NAME` and a `kubectl apply`, and
//! revoking one is deleting its Secret, which control sees at once through its watch. Control stores hashes, not
//! tokens: whoever reads the Secrets cannot pose as an edge. The tokens are 256 random bits, so a plain SHA-256
//! is enough (a slow password hash is for guessable secrets).
//!
//! The edges prove their names to each other with keys of their own, not with these tokens
//! (`dime_routes::wire::PEER_SIGNATURE_HEADER`): no edge ever holds another's credential.

use std::collections::HashMap;
use std::sync::Arc;

use dime_routes::wire;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use parking_lot::RwLock;
use sha2::Digest;

/// The label of an edge credential Secret; its value is the edge's name.
pub const LABEL: &str = "dime.dev/edge-credential";
/// The Secret's key holding the token's SHA-256, 64 hex digits.
pub const HASH_KEY: &str = "token-sha256";

/// The SHA-256 of a token.
pub type Hash = [u8; 32];

/// The token's hash, as control looks it up.
pub fn hash(token: &str) -> Hash {
    sha2::Sha256::digest(token.trim().as_bytes()).into()
}

/// The hash in hex, as a Secret holds it.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The edges' credentials as control reads them: token hash → edge name.
#[derive(Debug, Default)]
pub struct Credentials {
    inner: RwLock<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// `None` until the Secrets were listed once (an edge asking before that gets a 503, not a 401).
    by_hash: Option<HashMap<Hash, String>>,
}

/// What a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The credential of this edge.
    Edge(String),
    /// No edge's.
    Unknown,
    /// The Secrets have not been read yet.
    NotLoaded,
}

impl Credentials {
    pub fn lookup(&self, token: &str) -> Lookup {
        match &self.inner.read().by_hash {
            None => Lookup::NotLoaded,
            Some(map) => map.get(&hash(token)).map_or(Lookup::Unknown, |name| Lookup::Edge(name.clone())),
        }
    }

    /// Replaces the credentials (the watch, and tests).
    pub fn set(&self, by_hash: HashMap<Hash, String>) {
        self.inner.write().by_hash = Some(by_hash);
    }

    /// Whether the Secrets have been read.
    pub fn loaded(&self) -> bool {
        self.inner.read().by_hash.is_some()
    }

    /// Whether edge `name` still has a credential (`true` before the Secrets are read: nothing is known yet).
    pub fn knows(&self, name: &str) -> bool {
        self.inner.read().by_hash.as_ref().is_none_or(|m| m.values().any(|n| n == name))
    }

    /// How many edges have a credential.
    pub fn edges(&self) -> usize {
        let known = self.inner.read();
        let mut names: Vec<&String> = known.by_hash.iter().flat_map(|m| m.values()).collect();
        names.sort();
        names.dedup();
        names.len()
    }
}

/// Why a credential Secret is not used: it names what is wrong, the Secret is named by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCredential {
    #[error("label {LABEL} `{0}`: {rule}", rule = wire::EDGE_NAME_RULE)]
    Name(String),
    #[error("no `{HASH_KEY}` key")]
    NoHash,
    #[error("`{HASH_KEY}` is not 64 hex digits (the SHA-256 of the token: `dime-control credential NAME` writes it)")]
    Hash,
}

/// The edge and token hash of one Secret.
pub fn read(secret: &Secret) -> Result<(String, Hash), BadCredential> {
    let name = secret.labels().get(LABEL).cloned().unwrap_or_default();
    if !wire::edge_name_ok(&name) {
        return Err(BadCredential::Name(name));
    }
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get(HASH_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_ascii_lowercase())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(HASH_KEY)).map(|s| s.trim().to_ascii_lowercase()))
        .ok_or(BadCredential::NoHash)?;
    let bytes = text.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(BadCredential::Hash);
    }
    let mut hash = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        hash[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Ok((name, hash))
}

/// The credentials of `secrets`; each Secret that cannot be used is left out and logged, naming it and why. A
/// hash that two Secrets give to two different edges is left out for both: nobody can tell whose it is.
pub fn compile<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> HashMap<Hash, String> {
    let mut by_hash: HashMap<Hash, String> = HashMap::new();
    let mut ambiguous: Vec<Hash> = Vec::new();
    for secret in secrets {
        let at = format!("{}/{}", secret.namespace().unwrap_or_default(), secret.name_any());
        match read(secret) {
            Ok((name, hash)) => match by_hash.get(&hash) {
                Some(other) if *other != name => {
                    tracing::warn!(
                        secret = at,
                        edge = name,
                        other,
                        "two edges' credentials have the same token: neither is accepted"
                    );
                    ambiguous.push(hash);
                }
                _ => {
                    by_hash.insert(hash, name);
                }
            },
            Err(e) => tracing::warn!(secret = at, error = %e, "an edge credential Secret is not used"),
        }
    }
    for hash in ambiguous {
        by_hash.remove(&hash);
    }
    by_hash
}

/// Watches the credential Secrets of `namespace` into `credentials`; `changed` is called after each change.
pub fn start(client: Client, namespace: &str, credentials: Arc<Credentials>, changed: impl Fn() + Send + 'static) {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let (store, writer): (Store<Secret>, _) = reflector::store();
    let events = watcher(api, watcher::Config::default().labels(LABEL));
    let mut stream = reflector::reflector(writer, events).default_backoff().boxed();
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            match event {
                // A relist in progress is not the whole list yet: the credentials change when it is.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => {
                    let state = store.state();
                    credentials.set(compile(state.iter().map(|s| s.as_ref())));
                    changed();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the edge credentials; the last ones read stay in use")
                }
            }
        }
    });
}

/// A new token (256 random bits, base64url) and the Secret that makes it edge `name`'s in `namespace`, named
/// `dime-edge-credential-NAME-XXXXXXXX` (the hash's first 8 hex digits): a new credential is a new Secret beside
/// the old one, so a rotation is apply, switch the edge, delete the old.
pub fn issue(name: &str, namespace: &str, random: [u8; 32]) -> (String, String) {
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let hash = hex(&hash(&token));
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dime-edge-credential-{name}-{}\n  namespace: {namespace}\n  labels:\n    {LABEL}: {name}\ntype: Opaque\nstringData:\n  {HASH_KEY}: {hash}\n",
        &hash[..8]
    );
    (token, secret)
}

#[cfg(test)]
mod tests;
