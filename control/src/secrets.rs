//! Kubernetes TLS Secrets named by route ConfigMaps (`tls.certificates[].secret`), read so that control can
//! serve them inline to the edges over its authenticated API.
//!
//! Control watches only the Secrets some ConfigMap names, each on its own (a watch with
//! `fieldSelector=metadata.name=NAME`), so its RBAC grows by exactly those Secrets (`resourceNames` in a Role of
//! their namespace; docs/control.md). A ConfigMap may name Secrets of its own namespace only: whoever can write
//! route ConfigMaps in one namespace cannot make control publish another namespace's keys. A Secret that cannot
//! be read rejects the ConfigMap naming it, with the reason (missing, forbidden, not a TLS Secret); a Secret that
//! was read once and then becomes unreadable keeps its last contents (a watch error must not drop a certificate).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dime_routes::{ServiceRef, ServiceResolver, TlsSecret};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

/// How long a compile waits for newly named Secrets to be read before rejecting their ConfigMaps as unreadable.
pub const FIRST_READ: Duration = Duration::from_secs(5);

/// `(namespace, name)`.
pub type SecretId = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretState {
    /// Watch started, nothing heard yet.
    Pending,
    Missing,
    /// Read, but not usable as a TLS Secret.
    Invalid(String),
    /// The watch fails (e.g. forbidden) and nothing was read before.
    Unreadable(String),
    Present(TlsSecret),
}

struct Entry {
    state: SecretState,
    task: tokio::task::AbortHandle,
}

/// The Secrets being watched and what is known of each.
pub struct Secrets {
    client: Client,
    entries: Arc<Mutex<BTreeMap<SecretId, Entry>>>,
    changed: UnboundedSender<()>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("watched", &self.entries.lock().keys().collect::<Vec<_>>()).finish()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        for e in self.entries.lock().values() {
            e.task.abort();
        }
    }
}

fn read(secret: &Secret, id: &SecretId) -> SecretState {
    let text = |key: &str| secret.data.as_ref()?.get(key).map(|b| String::from_utf8(b.0.clone()));
    match (text("tls.crt"), text("tls.key")) {
        (Some(Ok(cert_pem)), Some(Ok(key_pem))) => {
            SecretState::Present(TlsSecret { label: format!("{}/{}", id.0, id.1), cert_pem, key_pem })
        }
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            SecretState::Invalid("`tls.crt` or `tls.key` is not text (PEM)".into())
        }
        _ => SecretState::Invalid(format!(
            "has no `tls.crt` and `tls.key` (type {}; create it with `kubectl create secret tls`)",
            secret.type_.as_deref().unwrap_or("Opaque")
        )),
    }
}

impl Secrets {
    /// `changed` is told whenever what is known of a watched Secret changes.
    pub fn new(client: Client, changed: UnboundedSender<()>) -> Self {
        Secrets { client, entries: Arc::new(Mutex::new(BTreeMap::new())), changed }
    }

    /// Watches exactly `wanted`: starts the missing watches, stops the ones no ConfigMap names any more.
    /// Returns the Secrets newly watched.
    pub fn reconcile(&self, wanted: &BTreeSet<SecretId>) -> Vec<SecretId> {
        let mut entries = self.entries.lock();
        entries.retain(|id, e| {
            let keep = wanted.contains(id);
            if !keep {
                tracing::info!(secret = %format!("{}/{}", id.0, id.1), "no ConfigMap names this Secret any more; not watched");
                e.task.abort();
            }
            keep
        });
        let started: Vec<SecretId> = wanted.iter().filter(|id| !entries.contains_key(*id)).cloned().collect();
        for id in &started {
            let task =
                tokio::spawn(watch_one(self.client.clone(), id.clone(), self.entries.clone(), self.changed.clone()));
            entries.insert(id.clone(), Entry { state: SecretState::Pending, task: task.abort_handle() });
        }
        started
    }

    /// Waits (at most [`FIRST_READ`]) until each of `ids` has been read or failed once.
    pub async fn settle(&self, ids: &[SecretId]) {
        let deadline = Instant::now() + FIRST_READ;
        while Instant::now() < deadline {
            let pending = {
                let entries = self.entries.lock();
                ids.iter().any(|id| entries.get(id).is_some_and(|e| e.state == SecretState::Pending))
            };
            if !pending {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lookup(&self, id: &SecretId) -> Result<TlsSecret, dime_routes::Invalid> {
        let entries = self.entries.lock();
        match entries.get(id).map(|e| &e.state) {
            None | Some(SecretState::Pending) => Err(format!("Secret {}/{} not read yet", id.0, id.1).into()),
            Some(SecretState::Missing) => Err(format!("Secret {}/{} not found", id.0, id.1).into()),
            Some(SecretState::Invalid(why)) => Err(format!("Secret {}/{} {why}", id.0, id.1).into()),
            Some(SecretState::Unreadable(why)) => Err(format!(
                "Secret {}/{} cannot be read by dime-control ({why}); grant it get/list/watch on this Secret by name (docs/control.md)",
                id.0, id.1
            ).into()),
            Some(SecretState::Present(s)) => Ok(s.clone()),
        }
    }
}

async fn watch_one(
    client: Client,
    id: SecretId,
    entries: Arc<Mutex<BTreeMap<SecretId, Entry>>>,
    changed: UnboundedSender<()>,
) {
    let api: Api<Secret> = Api::namespaced(client, &id.0);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", id.1));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut seen = false;
    let label = format!("{}/{}", id.0, id.1);
    while let Some(event) = stream.next().await {
        let next = match event {
            Ok(watcher::Event::Init) => {
                seen = false;
                continue;
            }
            Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s)) => {
                seen = true;
                read(&s, &id)
            }
            Ok(watcher::Event::InitDone) if seen => continue,
            Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => SecretState::Missing,
            Err(e) => SecretState::Unreadable(e.to_string()),
        };
        let mut guard = entries.lock();
        let Some(entry) = guard.get_mut(&id) else { return };
        if entry.state == next {
            continue;
        }
        match (&entry.state, &next) {
            (SecretState::Present(_), SecretState::Unreadable(why)) => {
                tracing::warn!(secret = %label, error = %why, "cannot watch the Secret; its last contents stay in the table");
                continue;
            }
            (_, SecretState::Present(_)) => tracing::info!(secret = %label, "TLS Secret read"),
            (_, SecretState::Missing) => tracing::warn!(secret = %label, "TLS Secret not found"),
            (_, SecretState::Invalid(why) | SecretState::Unreadable(why)) => {
                tracing::warn!(secret = %label, error = %why, "TLS Secret not usable")
            }
            (_, SecretState::Pending) => {}
        }
        entry.state = next;
        drop(guard);
        let _ = changed.send(());
    }
}

/// Resolves what route ConfigMaps name in the cluster: Services (see [`crate::watch::Services`]) and TLS
/// Secrets, remembering which Secrets were asked for.
pub struct Cluster<'a, S> {
    pub services: &'a S,
    pub secrets: &'a Secrets,
    pub wanted: RefCell<BTreeSet<SecretId>>,
}

impl<S> std::fmt::Debug for Cluster<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("secrets", self.secrets).finish_non_exhaustive()
    }
}

impl<S: ServiceResolver> ServiceResolver for Cluster<'_, S> {
    fn resolve(&self, service: &ServiceRef<'_>) -> Result<(String, u16), dime_routes::Invalid> {
        self.services.resolve(service)
    }

    fn secret(&self, source: &str, name: &str) -> Result<TlsSecret, dime_routes::Invalid> {
        if name.contains('/') {
            return Err("name a Secret of the ConfigMap's own namespace (no `namespace/`)".into());
        }
        let namespace = source.split('/').next().unwrap_or_default();
        let id = (namespace.to_owned(), name.to_owned());
        self.wanted.borrow_mut().insert(id.clone());
        self.secrets.lookup(&id)
    }
}
