//! TLS termination on the `--https` entrypoints: certificates from PEM files (`--tls-cert CERT:KEY`), chosen per
//! connection by SNI (exact names, then one-label wildcards, then the first pair as the default), TLS 1.2 and 1.3,
//! HTTP/2 by ALPN. The files are looked at every two seconds; a changed pair that loads is swapped in for new
//! handshakes, one that does not (unreadable, malformed, key not matching the certificate) is logged with its
//! reason and the previous certificate of that pair keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_rustls::sign::CertifiedKey;
use pingora_rustls::{ClientHello, CryptoProvider, ResolvesServerCert};

use crate::metrics::Metrics;

/// How often certificate files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// One `--tls-cert CERT:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPair {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (cert, key) = text
            .split_once(':')
            .filter(|(c, k)| !c.is_empty() && !k.is_empty())
            .ok_or_else(|| format!("`{text}`: expected CERT_FILE:KEY_FILE (PEM)"))?;
        Ok(CertPair { cert: cert.into(), key: key.into() })
    }

    fn label(&self) -> String {
        self.cert.display().to_string()
    }
}

/// A loaded pair.
#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    not_after: i64,
    /// Content fingerprint of both files, to notice changes.
    fingerprint: u64,
}

fn fingerprint(pair: &CertPair) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&pair.cert).ok()?.hash(&mut h);
    std::fs::read(&pair.key).ok()?.hash(&mut h);
    Some(h.finish())
}

fn load(pair: &CertPair) -> Result<Loaded, String> {
    let fingerprint = fingerprint(pair).ok_or_else(|| "cannot read the certificate or the key file".to_owned())?;
    let (certs, key) =
        pingora_rustls::load_certs_and_key_files(&pair.cert.display().to_string(), &pair.key.display().to_string())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no certificate, or no private key (PKCS#1, PKCS#8 or SEC1), in the PEM files".to_owned())?;
    pingora_rustls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or_else(|| "no TLS crypto provider".to_owned())?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| format!("private key: {e}"))?;
    let leaf = certs.first().cloned().ok_or_else(|| "no certificate".to_owned())?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| format!("certificate: {e}"))?;
    let mut names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names
            .extend(parsed.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase));
    }
    Ok(Loaded { key: Arc::new(certified), names, not_after: parsed.validity().not_after.timestamp(), fingerprint })
}

/// The certificates in service, indexed for SNI.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Index {
    fn build(loaded: &[Option<Loaded>]) -> Index {
        let mut index = Index::default();
        for l in loaded.iter().flatten() {
            index.default.get_or_insert_with(|| l.key.clone());
            for name in &l.names {
                match name.strip_prefix('*') {
                    Some(suffix) => index.wildcard.entry(suffix.to_owned()).or_insert_with(|| l.key.clone()),
                    None => index.exact.entry(name.clone()).or_insert_with(|| l.key.clone()),
                };
            }
        }
        index
    }

    fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else { return self.default.clone() };
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        name.find('.')
            .filter(|&i| i > 0)
            .and_then(|i| self.wildcard.get(&name[i..]))
            .cloned()
            .or_else(|| self.default.clone())
    }
}

/// The certificate files, what was last loaded from each, and the SNI index over them.
pub struct CertStore {
    pairs: Vec<CertPair>,
    loaded: parking_lot::Mutex<Vec<Option<Loaded>>>,
    index: ArcSwap<Index>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("pairs", &self.pairs).finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads every pair; at start each must load (there is no previous certificate to keep).
    pub fn new(pairs: Vec<CertPair>, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        let mut loaded = Vec::new();
        for pair in &pairs {
            let l = load(pair).map_err(|e| format!("{}: {e}", pair.label()))?;
            tracing::info!(cert = %pair.label(), names = ?l.names, "TLS certificate loaded");
            metrics.tls_cert_expiry.with_label_values(&[&pair.label()]).set(l.not_after as f64);
            loaded.push(Some(l));
        }
        let index = ArcSwap::from_pointee(Index::build(&loaded));
        Ok(Arc::new(CertStore { pairs, loaded: parking_lot::Mutex::new(loaded), index, metrics }))
    }

    /// Looks at every pair once; reloads the ones whose files changed.
    pub fn poll(&self) {
        let mut loaded = self.loaded.lock();
        let mut changed = false;
        for (pair, slot) in self.pairs.iter().zip(loaded.iter_mut()) {
            let now = fingerprint(pair);
            if now.is_some() && now == slot.as_ref().map(|l| l.fingerprint) {
                continue;
            }
            match load(pair) {
                Ok(l) => {
                    tracing::info!(cert = %pair.label(), names = ?l.names, "TLS certificate reloaded");
                    self.metrics.tls_cert_expiry.with_label_values(&[&pair.label()]).set(l.not_after as f64);
                    self.metrics.tls_reloads.with_label_values(&["ok"]).inc();
                    *slot = Some(l);
                    changed = true;
                }
                Err(e) => {
                    // Report a broken file once per version of it, and keep serving what was loaded before.
                    let fp = now.unwrap_or(u64::MAX);
                    if slot.as_ref().is_some_and(|l| l.fingerprint != fp) {
                        tracing::error!(cert = %pair.label(), key = %pair.key.display(), error = %e, "TLS certificate not reloaded; the previous one keeps serving");
                        self.metrics.tls_reloads.with_label_values(&["failed"]).inc();
                        if let Some(l) = slot.as_mut() {
                            l.fingerprint = fp;
                        }
                    }
                }
            }
        }
        if changed {
            self.index.store(Arc::new(Index::build(&loaded)));
        }
    }
}

/// Chooses the certificate for a handshake by SNI.
#[derive(Debug)]
pub struct Resolver(pub Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.index.load().find(hello.server_name())
    }
}

/// Watches the certificate files.
#[derive(Debug)]
pub struct Reloader(pub Arc<CertStore>);

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.0.poll(),
                _ = shutdown.changed() => return,
            }
        }
    }
}
