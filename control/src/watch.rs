//! Watches the route ConfigMaps (Dime's label and the old Traefik one) with reflectors, and recompiles the
//! whole table from the full set after each burst of changes. A watch error keeps the last table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use crate::compile::{self, Source};
use crate::serve::{Served, Shared};

/// ConfigMaps with native Dime routes.
pub const NATIVE_LABEL: &str = "dime-routes=true";
/// ConfigMaps with Traefik fragments, as the old setup labelled them.
pub const TRAEFIK_LABEL: &str = "traefik-config-fragment=true";
/// Quiet time after a change before recompiling, so a burst of edits makes one new version.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

fn sources(stores: &[Store<ConfigMap>]) -> Vec<Source> {
    let mut by_id: BTreeMap<(String, String), Source> = BTreeMap::new();
    for store in stores {
        for cm in store.state() {
            let namespace = cm.metadata.namespace.clone().unwrap_or_default();
            let name = cm.metadata.name.clone().unwrap_or_default();
            let data = cm.data.clone().unwrap_or_default().into_iter().collect();
            by_id.insert((namespace.clone(), name.clone()), Source { namespace, name, data });
        }
    }
    by_id.into_values().collect()
}

fn publish(shared: &Shared, stores: &[Store<ConfigMap>]) {
    let compiled = compile::compile(sources(stores));
    for r in &compiled.rejected {
        for e in &r.errors {
            tracing::error!(configmap = %r.configmap, reason = ?r.reason, error = %e, "ConfigMap rejected");
        }
    }
    let version = compiled.table.version().to_owned();
    if shared.current.borrow().as_ref().is_some_and(|s| s.version == version) {
        return;
    }
    tracing::info!(%version, routes = compiled.table.routes().len(), accepted = ?compiled.accepted, rejected = compiled.rejected.len(), "route table compiled");
    let served = Served { version, json: compiled.table.to_json().into() };
    shared.current.send_replace(Some(Arc::new(served)));
}

/// Runs the watches until the process ends. `namespaces` empty: every namespace.
pub async fn run(client: Client, namespaces: Vec<String>, shared: Arc<Shared>) {
    let targets: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let mut stores = Vec::new();
    let mut streams = Vec::new();
    for ns in &targets {
        for label in [NATIVE_LABEL, TRAEFIK_LABEL] {
            let api: Api<ConfigMap> = match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let (reader, writer) = reflector::store();
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default().labels(label)))
                .default_backoff()
                .map_ok(|_| ())
                .boxed();
            stores.push(reader);
            streams.push(stream);
        }
    }
    let mut events = futures::stream::select_all(streams);
    // Set once every store has completed its first full list.
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (stores, synced) = (stores.clone(), synced.clone());
        tokio::spawn(async move {
            for s in &stores {
                if s.wait_until_ready().await.is_err() {
                    return;
                }
            }
            synced.store(true, std::sync::atomic::Ordering::Release);
        });
    }
    let mut dirty = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(())) => dirty = true,
                Some(Err(e)) => tracing::warn!(error = %e, "ConfigMap watch failed; the last table keeps serving"),
                None => return,
            },
            _ = tokio::time::sleep(DEBOUNCE), if dirty => {
                // Only a complete view may be compiled: never a partial or empty table because a list is unfinished.
                if synced.load(std::sync::atomic::Ordering::Acquire) {
                    dirty = false;
                    publish(&shared, &stores);
                }
            }
        }
    }
}
