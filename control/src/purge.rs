//! The fleet's purge log, kept in the cluster: one ConfigMap, `dime-purge-log` in control's namespace, one data
//! key per purge (`0000000042` → the purge as JSON) and the last sequence number in an annotation. Any replica
//! appends (read, add, replace with the resourceVersion read: a replica that loses the race reads again), every
//! replica watches it and serves it to the edges' long-polls (`GET /v1/purges`), and `kubectl get configmap -n
//! dime-system dime-purge-log -o yaml` shows it. Bounded: the oldest purges leave past [`MAX_ENTRIES`] or
//! [`MAX_BYTES`]; an edge that missed more than the log holds is told so (a gap) and drops what it cannot prove
//! fresh.
//!
//! A ConfigMap, not a custom resource or a store of Dime's own: it needs no CRD, RBAC grants it per namespace,
//! and at a few purges a second (what operators send) one object rewritten per purge is well within what the API
//! server is built for.

pub mod acks;
pub mod api;
pub mod cli;

use std::collections::BTreeMap;
use std::sync::Arc;

use dime_routes::purge::{Entry, Purge};
use dime_routes::wire::{Cursor, Feed};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

/// The ConfigMap's name (in control's namespace, beside the edges' Leases).
pub const LOG_NAME: &str = "dime-purge-log";
/// The annotation with the last sequence number given (kept when old purges leave).
const HEAD: &str = "dime.dev/purge-head";
/// By default the log holds at most this many purges (`--purge-log-entries`)...
pub const MAX_ENTRIES: usize = 1000;
/// ...and at most this many bytes of them (a ConfigMap holds at most 1 MiB).
pub const MAX_BYTES: usize = 768 * 1024;
/// Appends that lose the race to another replica try again, this many times in all.
const APPEND_TRIES: usize = 20;

/// The log as one replica last read it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The first read of the log is done (an absent ConfigMap is an empty log).
    pub loaded: bool,
    /// The ConfigMap's uid: another uid is another log (deleted and made again), whose numbers mean nothing to
    /// an edge that followed the old one. Empty: no log yet.
    pub uid: String,
    pub head: u64,
    pub entries: BTreeMap<u64, Arc<Entry>>,
}

impl Snapshot {
    /// The log a ConfigMap holds; keys that do not parse are left out (and logged).
    pub fn of(cm: &ConfigMap) -> Snapshot {
        let mut entries = BTreeMap::new();
        for (key, text) in cm.data.iter().flatten() {
            match serde_json::from_str::<Entry>(text) {
                Ok(e) if key.parse() == Ok(e.seq) => drop(entries.insert(e.seq, Arc::new(e))),
                _ => tracing::warn!(key, "a purge log entry does not parse; left out"),
            }
        }
        let annotated = cm.metadata.annotations.as_ref().and_then(|a| a.get(HEAD)).and_then(|h| h.parse().ok());
        let head = annotated.unwrap_or(0).max(entries.keys().next_back().copied().unwrap_or(0));
        Snapshot { loaded: true, uid: cm.metadata.uid.clone().unwrap_or_default(), head, entries }
    }

    /// What an edge that applied every purge of `log` up to `seq` gets (`None`: an edge that has not followed
    /// any log yet, which gets every purge held, since its cache may hold objects older than some of them).
    /// An edge that followed no log yet (`""`, 0) follows this one from its start. A gap only for another log,
    /// or a cursor below the oldest purge held; a cursor ahead of this replica's head is this replica lagging
    /// (see [`Snapshot::is_behind`]), not a gap.
    pub fn feed(&self, after: Option<&Cursor>) -> Feed {
        let mut feed = Feed { log: self.uid.clone(), head: self.head, gap: false, purges: Vec::new() };
        let from = match after.map(|c| (c.log.as_str(), c.applied)) {
            None => 0,
            Some((log, seq)) if log == self.uid && seq <= self.head => seq,
            // The edge applied purges this replica has not read yet (another replica took them, and this one's
            // watch lags): nothing is missing, nothing to send; the caller waits for the watch to catch up.
            Some((log, _)) if log == self.uid => return feed,
            Some(("", 0)) => 0,
            Some(_) => {
                feed.gap = true;
                return feed;
            }
        };
        let first_held = self.entries.keys().next().copied().unwrap_or(self.head + 1);
        if after.is_some() && from + 1 < first_held && from < self.head {
            feed.gap = true;
            return feed;
        }
        feed.purges = self.entries.range(from + 1..).map(|(_, e)| Entry::clone(e)).collect();
        feed
    }
}

impl Snapshot {
    /// Whether an edge at `cursor` has applied purges of this log that this replica has not read yet.
    pub fn is_behind(&self, cursor: &Cursor) -> bool {
        cursor.log == self.uid && cursor.applied > self.head
    }
}

/// Adds `purge` as the next entry to a log's data and head, dropping the oldest past `max_entries` or
/// [`MAX_BYTES`]; the entry.
pub fn append_to(
    data: &mut BTreeMap<String, String>,
    head: u64,
    purge: Purge,
    at_ms: i64,
    max_entries: usize,
) -> Entry {
    let entry = Entry { seq: head + 1, at_ms, purge };
    data.insert(key(entry.seq), serde_json::to_string(&entry).unwrap_or_default());
    let mut bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    while data.len() > 1 && (data.len() > max_entries || bytes > MAX_BYTES) {
        let Some((k, v)) = data.pop_first() else { break };
        bytes -= k.len() + v.len();
    }
    entry
}

/// An entry's data key: its sequence number, zero-padded so that keys sort as numbers.
fn key(seq: u64) -> String {
    format!("{seq:010}")
}

/// Why a purge could not be added to the log.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("cannot write the purge log {namespace}/{LOG_NAME}: {error}")]
    Kube { namespace: String, error: kube::Error },
    #[error("the purge log {namespace}/{LOG_NAME} kept changing under {APPEND_TRIES} tries")]
    Contended { namespace: String },
}

/// The log, as this replica reads and writes it.
#[derive(Debug)]
pub struct Log {
    api: Api<ConfigMap>,
    namespace: String,
    max_entries: usize,
    current: watch::Sender<Arc<Snapshot>>,
}

impl Log {
    /// Starts watching the log in `namespace`, which keeps `max_entries` purges; `changed` is called on every
    /// change of it.
    pub fn start(client: Client, namespace: &str, max_entries: usize, changed: impl Fn() + Send + 'static) -> Arc<Log> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let (current, _) = watch::channel(Arc::new(Snapshot::default()));
        let log = Arc::new(Log { api: api.clone(), namespace: namespace.to_owned(), max_entries, current });
        let config = watcher::Config::default().fields(&format!("metadata.name={LOG_NAME}"));
        let mut events = watcher(api, config).default_backoff().boxed();
        let watching = log.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => watching.take(Snapshot::of(&cm)),
                    Ok(watcher::Event::Delete(_)) => watching.take(Snapshot { loaded: true, ..Default::default() }),
                    Ok(watcher::Event::InitDone) => watching.current.send_if_modified(|s| {
                        let first = !s.loaded;
                        Arc::make_mut(s).loaded = true;
                        first
                    }),
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch the purge log; the edges get the last one read");
                        continue;
                    }
                };
                changed();
            }
        });
        log
    }

    /// The log as last read.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.current.subscribe()
    }

    /// A newer read of the log: taken unless it is older than the one held (a watch event that arrives after
    /// this replica's own write).
    fn take(&self, read: Snapshot) -> bool {
        self.current.send_if_modified(|held| {
            let newer = read.uid != held.uid || read.head > held.head || !held.loaded;
            if newer {
                *held = Arc::new(read);
            }
            newer
        })
    }

    /// Adds a purge; its entry (with its sequence number, the purge's id) once the log in the cluster has it.
    pub async fn append(&self, purge: Purge) -> Result<Entry, AppendError> {
        let kube = |error| AppendError::Kube { namespace: self.namespace.clone(), error };
        let pp = PostParams { field_manager: Some("dime-control".into()), ..Default::default() };
        for _ in 0..APPEND_TRIES {
            let at_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
            let found = self.api.get_opt(LOG_NAME).await.map_err(kube)?;
            let creating = found.is_none();
            let mut cm = found.unwrap_or_else(|| ConfigMap {
                metadata: ObjectMeta { name: Some(LOG_NAME.into()), ..Default::default() },
                ..Default::default()
            });
            let head = Snapshot::of(&cm).head;
            let entry =
                append_to(cm.data.get_or_insert_with(BTreeMap::new), head, purge.clone(), at_ms, self.max_entries);
            cm.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(HEAD.into(), entry.seq.to_string());
            let written =
                if creating { self.api.create(&pp, &cm).await } else { self.api.replace(LOG_NAME, &pp, &cm).await };
            match written {
                Ok(stored) => {
                    self.take(Snapshot::of(&stored));
                    return Ok(entry);
                }
                Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => continue,
                Err(e) => return Err(kube(e)),
            }
        }
        Err(AppendError::Contended { namespace: self.namespace.clone() })
    }
}

#[cfg(test)]
mod tests;
