//! TLS termination on the `--https` entrypoints: certificates from PEM files (`--tls-cert CERT:KEY`), from the
//! route table (`tls.certificates`: files on the edge, or PEM that dime-control read from a Kubernetes Secret)
//! and from ACME, chosen per connection by SNI (exact names, then one-label wildcards, then the first loaded as
//! the default), TLS 1.2 and 1.3, HTTP/2 by ALPN. Files are looked at every two seconds; a changed certificate
//! that loads is swapped in for new handshakes, one that does not (unreadable, malformed, key not matching the
//! certificate) is logged with its reason and the previous version keeps serving.

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

use crate::metrics::{Attempt, Metrics};

/// How often certificate files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// Why a certificate did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("`{0}`: expected CERT_FILE:KEY_FILE (PEM)")]
    Pair(String),
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The PEM text, the key or the certificate is not usable; says which and why.
    #[error("{0}")]
    Pem(String),
    #[error("{label}: {error}")]
    Load { label: String, error: Box<TlsError> },
}

/// One `--tls-cert CERT:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPair {
    pub fn parse(text: &str) -> Result<Self, TlsError> {
        let (cert, key) = text
            .split_once(':')
            .filter(|(c, k)| !c.is_empty() && !k.is_empty())
            .ok_or_else(|| TlsError::Pair(text.to_owned()))?;
        Ok(CertPair { cert: cert.into(), key: key.into() })
    }

    fn label(&self) -> String {
        self.cert.display().to_string()
    }
}

/// Where a certificate comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files, re-read when they change.
    Files(CertPair),
    /// PEM text: a route table's inline certificate (from a Kubernetes Secret) or one issued by ACME.
    Pem { label: String, cert: Vec<u8>, key: Vec<u8> },
}

impl std::fmt::Debug for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertSource::Files(p) => p.fmt(f),
            CertSource::Pem { label, .. } => write!(f, "Pem({label})"),
        }
    }
}

impl CertSource {
    pub fn label(&self) -> String {
        match self {
            CertSource::Files(pair) => pair.label(),
            CertSource::Pem { label, .. } => label.clone(),
        }
    }

    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| TlsError::Read { path: path.display().to_string(), error })
        };
        match self {
            CertSource::Files(pair) => {
                let cert = read(&pair.cert)?;
                let key = read(&pair.key)?;
                Ok((cert, key))
            }
            CertSource::Pem { cert, key, .. } => Ok((cert.clone(), key.clone())),
        }
    }

    /// The route table's certificates as sources.
    pub fn from_table(certs: &[dime_routes::Certificate]) -> Vec<CertSource> {
        certs
            .iter()
            .map(|c| match &c.source {
                dime_routes::CertificateSource::Files { cert, key } => {
                    CertSource::Files(CertPair { cert: cert.into(), key: key.into() })
                }
                dime_routes::CertificateSource::Pem { cert, key } => CertSource::Pem {
                    label: c.label.clone(),
                    cert: cert.as_bytes().to_vec(),
                    key: key.as_bytes().to_vec(),
                },
            })
            .collect()
    }
}

fn fingerprint_of(cert: &[u8], key: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cert.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// A loaded certificate.
#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    not_after: i64,
}

/// Parses a PEM chain and key and checks that they belong together: the names (DNS SANs, else the CN) and the
/// expiry of the leaf.
pub fn parse_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<(Arc<CertifiedKey>, Vec<String>, i64), TlsError> {
    let certs: Vec<pingora_rustls::CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate PEM: {e}")))?;
    let leaf = certs.first().cloned().ok_or_else(|| TlsError::Pem("no certificate in the PEM".to_owned()))?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TlsError::Pem(format!("key PEM: {e}")))?
        .ok_or_else(|| TlsError::Pem("no private key (PKCS#1, PKCS#8 or SEC1) in the PEM".to_owned()))?;
    pingora_rustls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or_else(|| TlsError::Pem("no TLS crypto provider".to_owned()))?;
    let signing =
        provider.key_provider.load_private_key(key).map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| TlsError::Pem(format!("the key does not belong to the certificate: {e}")))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
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
    Ok((Arc::new(certified), names, parsed.validity().not_after.timestamp()))
}

fn load(cert: &[u8], key: &[u8]) -> Result<Loaded, TlsError> {
    let (key, names, not_after) = parse_pem(cert, key)?;
    Ok(Loaded { key, names, not_after })
}

/// The certificate index for SNI.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Index {
    fn build(slots: &[Slot]) -> Index {
        let mut index = Index::default();
        for l in slots.iter().filter_map(|s| s.loaded.as_ref()) {
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

/// Where a certificate was configured. Earlier groups win a name both have; the default certificate (for
/// clients without SNI or with an unknown name) is the first one loaded, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// `--tls-cert`.
    Flags,
    /// The route table's `tls.certificates`.
    Table,
    /// Issued by ACME.
    Acme,
}

struct Slot {
    group: Group,
    source: CertSource,
    loaded: Option<Loaded>,
    /// Fingerprint of the content last looked at (loaded or refused; `u64::MAX`: unreadable), so each version is
    /// loaded, or reported as broken, once.
    seen: Option<u64>,
}

/// Every certificate source, what was last loaded from each, and the SNI index over them.
pub struct CertStore {
    slots: parking_lot::Mutex<Vec<Slot>>,
    index: ArcSwap<Index>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<String> = self.slots.lock().iter().map(|s| s.source.label()).collect();
        f.debug_struct("CertStore").field("sources", &sources).finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the `--tls-cert` pairs; at start each must load (there is no previous certificate to keep).
    pub fn new(pairs: Vec<CertPair>, metrics: Arc<Metrics>) -> Result<Arc<Self>, TlsError> {
        let mut slots = Vec::new();
        for pair in pairs {
            let source = CertSource::Files(pair);
            let (cert, key) = source.read()?;
            let l = load(&cert, &key).map_err(|e| TlsError::Load { label: source.label(), error: Box::new(e) })?;
            tracing::info!(cert = %source.label(), names = ?l.names, "TLS certificate loaded");
            metrics.tls.cert_expiry(&source.label()).set(l.not_after as f64);
            let seen = Some(fingerprint_of(&cert, &key));
            slots.push(Slot { group: Group::Flags, source, loaded: Some(l), seen });
        }
        let index = ArcSwap::from_pointee(Index::build(&slots));
        Ok(Arc::new(CertStore { slots: parking_lot::Mutex::new(slots), index, metrics }))
    }

    /// Loads `source` into `slot` if its content changed. A source that does not load keeps what the slot had
    /// (reported once per version of the content). True when the slot changed.
    fn refresh(&self, slot: &mut Slot, source: CertSource) -> bool {
        let label = source.label();
        slot.source = source;
        let read = slot.source.read();
        let fingerprint = read.as_ref().map_or(u64::MAX, |(cert, key)| fingerprint_of(cert, key));
        if slot.seen == Some(fingerprint) {
            return false;
        }
        slot.seen = Some(fingerprint);
        match read.and_then(|(cert, key)| load(&cert, &key)) {
            Ok(l) => {
                let again = if slot.loaded.is_some() { "reloaded" } else { "loaded" };
                tracing::info!(cert = %label, names = ?l.names, "TLS certificate {again}");
                self.metrics.tls.cert_expiry(&label).set(l.not_after as f64);
                if slot.loaded.is_some() {
                    self.metrics.tls.reloads(Attempt::Ok).inc();
                }
                slot.loaded = Some(l);
                true
            }
            Err(e) => {
                self.metrics.tls.reloads(Attempt::Failed).inc();
                if slot.loaded.is_some() {
                    tracing::error!(cert = %label, error = %e, "TLS certificate not reloaded; the previous one keeps serving");
                } else {
                    tracing::error!(cert = %label, error = %e, "TLS certificate not loaded");
                }
                false
            }
        }
    }

    /// Looks at every file source once; reloads the ones whose files changed.
    pub fn poll(&self) {
        let mut slots = self.slots.lock();
        let mut changed = false;
        for slot in slots.iter_mut() {
            if matches!(slot.source, CertSource::Files(_)) {
                let source = slot.source.clone();
                changed |= self.refresh(slot, source);
            }
        }
        if changed {
            self.index.store(Arc::new(Index::build(&slots)));
        }
    }

    /// Replaces the certificates of `group` (the route table's, or ACME's). A certificate that was there before
    /// under the same label and fails to load now keeps serving its previous version.
    pub fn set_group(&self, group: Group, sources: Vec<CertSource>) {
        let mut slots = self.slots.lock();
        let mut old: Vec<Slot> = Vec::new();
        let mut kept: Vec<Slot> = Vec::new();
        for slot in slots.drain(..) {
            if slot.group == group {
                old.push(slot)
            } else {
                kept.push(slot)
            }
        }
        let mut fresh = Vec::new();
        for source in sources {
            let label = source.label();
            let mut slot = match old.iter().position(|s| s.source.label() == label) {
                Some(i) => old.swap_remove(i),
                None => Slot { group, source: source.clone(), loaded: None, seen: None },
            };
            self.refresh(&mut slot, source);
            fresh.push(slot);
        }
        for gone in old {
            let label = gone.source.label();
            if !kept.iter().chain(&fresh).any(|s| s.source.label() == label) {
                self.metrics.tls.forget_cert(&label);
            }
            tracing::info!(cert = %label, "TLS certificate removed");
        }
        kept.extend(fresh);
        kept.sort_by_key(|s| s.group);
        *slots = kept;
        self.index.store(Arc::new(Index::build(&slots)));
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
