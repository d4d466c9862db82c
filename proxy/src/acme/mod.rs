//! ACME certificates for `--acme-domain` names: issued with HTTP-01 (the edge answers
//! `/.well-known/acme-challenge/TOKEN` on its HTTP entrypoints itself), kept in `--acme-dir` so a restart does not
//! order again, renewed when they come within `--acme-renew-before` of expiry, and served by SNI on the HTTPS
//! entrypoints. A failed order is logged and counted, retried with backoff, and the certificate in service (if
//! any) keeps serving.

pub mod client;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::metrics::{Attempt, Metrics};
use crate::tls::{CertSource, CertStore, Group};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Where HTTP-01 tokens are asked for.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// How often certificates are looked at for renewal.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Retry after a failed order: doubling from this, up to [`RETRY_CAP`].
const RETRY_FIRST: Duration = Duration::from_secs(30);
const RETRY_CAP: Duration = Duration::from_secs(6 * 3600);

/// The ACME settings (`--acme-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// One certificate per name.
    pub domains: Vec<String>,
    pub directory: String,
    pub email: Option<String>,
    /// PEM roots trusted for the ACME server (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Account key and certificates.
    pub dir: PathBuf,
    pub renew_before: Duration,
}

/// HTTP-01 key authorizations being offered, by token.
#[derive(Debug, Default)]
pub struct Challenges(RwLock<HashMap<String, String>>);

impl Challenges {
    pub fn insert(&self, token: &str, key_authorization: String) {
        self.0.write().insert(token.to_owned(), key_authorization);
    }

    pub fn remove(&self, token: &str) {
        self.0.write().remove(token);
    }

    /// The answer for a request path, if it asks for a token this edge is offering. Other paths (and tokens of
    /// other edges) are routed as usual: a route may send them to the edge that ordered (docs/edge.md).
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.0.read().get(token).cloned()
    }
}

fn now_unix() -> i64 {
    dime_routes::clock::unix_now() as i64
}

/// One name's certificate as kept on disk.
#[derive(Debug, Clone)]
struct Held {
    cert: Vec<u8>,
    key: Vec<u8>,
    not_after: i64,
}

/// Issues and renews the certificates; a background service.
#[derive(Debug)]
pub struct AcmeManager {
    pub settings: AcmeSettings,
    pub challenges: Arc<Challenges>,
    pub certs: Arc<CertStore>,
    pub metrics: Arc<Metrics>,
    /// The HTTP entrypoints, which must accept connections before an order can be validated.
    pub http: Vec<std::net::SocketAddr>,
    held: parking_lot::Mutex<HashMap<String, Held>>,
}

impl AcmeManager {
    pub fn new(
        settings: AcmeSettings,
        challenges: Arc<Challenges>,
        certs: Arc<CertStore>,
        metrics: Arc<Metrics>,
        http: Vec<std::net::SocketAddr>,
    ) -> Self {
        AcmeManager { settings, challenges, certs, metrics, http, held: parking_lot::Mutex::new(HashMap::new()) }
    }

    /// Waits (at most 30 s) until an HTTP entrypoint accepts connections: Pingora starts background services
    /// before the listeners, and a challenge validated against a port not yet listening fails the order. (A
    /// Pingora service dependency would not do: a listening service reports ready before it binds.)
    async fn wait_for_listeners(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let targets: Vec<std::net::SocketAddr> = self
            .http
            .iter()
            .map(|a| match a.ip() {
                ip if ip.is_unspecified() && a.is_ipv4() => (std::net::Ipv4Addr::LOCALHOST, a.port()).into(),
                ip if ip.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, a.port()).into(),
                _ => *a,
            })
            .collect();
        while tokio::time::Instant::now() < deadline {
            for t in &targets {
                if tokio::net::TcpStream::connect(t).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(http = ?self.http, "no HTTP entrypoint accepts connections; ordering anyway");
    }

    fn domain_dir(&self, domain: &str) -> PathBuf {
        self.settings.dir.join(domain)
    }

    /// Loads what earlier runs issued (unreadable or broken files are ordered again).
    pub fn load_saved(&self) {
        for domain in &self.settings.domains {
            let dir = self.domain_dir(domain);
            let (Ok(cert), Ok(key)) = (std::fs::read(dir.join("cert.pem")), std::fs::read(dir.join("key.pem"))) else {
                continue;
            };
            match crate::tls::parse_pem(&cert, &key) {
                Ok((_, names, not_after)) if names.iter().any(|n| n == domain) => {
                    tracing::info!(domain, not_after, "ACME certificate loaded from {}", dir.display());
                    self.held.lock().insert(domain.clone(), Held { cert, key, not_after });
                }
                Ok(_) => tracing::warn!(domain, "saved ACME certificate does not name this domain; ordering a new one"),
                Err(e) => tracing::warn!(domain, error = %e, "saved ACME certificate unusable; ordering a new one"),
            }
        }
        self.install();
    }

    fn install(&self) {
        let held = self.held.lock();
        let sources = self
            .settings
            .domains
            .iter()
            .filter_map(|d| {
                held.get(d).map(|h| CertSource::Pem {
                    label: format!("acme:{d}"),
                    cert: h.cert.clone(),
                    key: h.key.clone(),
                })
            })
            .collect();
        drop(held);
        self.certs.set_group(Group::Acme, sources);
    }

    /// The names due for an order now: no certificate, or within `renew_before` of expiry.
    fn due(&self) -> Vec<String> {
        let held = self.held.lock();
        let horizon = now_unix() + self.settings.renew_before.as_secs() as i64;
        self.settings.domains.iter().filter(|d| held.get(*d).is_none_or(|h| h.not_after <= horizon)).cloned().collect()
    }

    /// Orders a certificate for one name and puts it in service.
    pub async fn order(&self, domain: &str) -> Result<(), client::AcmeError> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(&self.settings.dir)
            .map_err(|error| client::AcmeError::Io { path: self.settings.dir.display().to_string(), error })?;
        let s = &self.settings;
        let key_path = s.dir.join("account.pk8");
        let account = client::account(&s.directory, s.ca_file.as_deref(), &key_path, s.email.as_deref()).await?;
        let (chain, key) = client::issue(&account, domain, &self.challenges).await?;
        let (_, _, not_after) = crate::tls::parse_pem(chain.as_bytes(), key.as_bytes())
            .map_err(|e| client::AcmeError::Certificate(format!("the issued certificate does not load: {e}")))?;
        let dir = self.domain_dir(domain);
        let saved = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::files::write_private(&dir.join("key.pem"), key.as_bytes()))
            .and_then(|()| crate::files::write_private(&dir.join("cert.pem"), chain.as_bytes()));
        if let Err(e) = saved {
            // Served anyway; only a restart would have to order again.
            tracing::error!(domain, error = %e, "cannot save the ACME certificate in {}", dir.display());
        }
        tracing::info!(domain, not_after, took_ms = started.elapsed().as_millis() as u64, "ACME certificate issued");
        self.held.lock().insert(domain.to_owned(), Held { cert: chain.into_bytes(), key: key.into_bytes(), not_after });
        self.install();
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for AcmeManager {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.due().is_empty() {
            tokio::select! {
                () = self.wait_for_listeners() => {}
                _ = shutdown.changed() => return,
            }
        }
        let mut failures: HashMap<String, (u32, std::time::Instant)> = HashMap::new();
        loop {
            let now = std::time::Instant::now();
            let mut next = now + CHECK_EVERY;
            for domain in self.due() {
                if let Some((_, retry_at)) = failures.get(&domain).filter(|(_, at)| *at > now) {
                    next = next.min(*retry_at);
                    continue;
                }
                let result = tokio::select! {
                    r = self.order(&domain) => r,
                    _ = shutdown.changed() => return,
                };
                match result {
                    Ok(()) => {
                        failures.remove(&domain);
                        self.metrics.tls.acme_orders(&domain, Attempt::Ok).inc();
                    }
                    Err(e) => {
                        self.metrics.tls.acme_orders(&domain, Attempt::Failed).inc();
                        let n = failures.get(&domain).map_or(1, |(n, _)| n + 1);
                        let wait = RETRY_FIRST.saturating_mul(1 << (n - 1).min(12)).min(RETRY_CAP);
                        let serving = self.held.lock().contains_key(&domain);
                        tracing::error!(domain, error = %e, retry_in_s = wait.as_secs(), serving_previous = serving, "ACME order failed");
                        failures.insert(domain.clone(), (n, std::time::Instant::now() + wait));
                        next = next.min(std::time::Instant::now() + wait);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Challenges;

    #[test]
    fn only_offered_tokens_are_answered() {
        let c = Challenges::default();
        assert_eq!(c.answer("/.well-known/acme-challenge/abc"), None);
        c.insert("abc", "abc.thumb".into());
        assert_eq!(c.answer("/.well-known/acme-challenge/abc").as_deref(), Some("abc.thumb"));
        assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.answer("/abc"), None);
        c.remove("abc");
        assert_eq!(c.answer("/.well-known/acme-challenge/abc"), None);
    }
}
