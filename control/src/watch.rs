//! Watches the route ConfigMaps (Dime's label and the old Traefik one) and the Services they may name, with
//! reflectors, and the TLS Secrets they name ([`crate::secrets`]), and recompiles the whole table from the full set after each burst of changes. A watch error keeps
//! the last table (and says so: metric, `/readyz` detail, log). Rejected ConfigMaps get a Kubernetes Event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};

use crate::compile::{self, RejectReason, Rejection, Source};
use crate::metrics::table::{ConfigMapState, Protocol};
use crate::secrets::{Cluster, Secrets};
use crate::state::Shared;

/// ConfigMaps with native Dime routes.
pub const NATIVE_LABEL: &str = "dime-routes=true";
/// ConfigMaps with Traefik fragments, as the old setup labelled them.
pub const TRAEFIK_LABEL: &str = "traefik-config-fragment=true";
/// Quiet time after a change before recompiling, so a burst of edits makes one new version.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

fn sources(stores: &[Store<ConfigMap>]) -> (Vec<Source>, BTreeMap<String, ObjectReference>) {
    let mut by_id: BTreeMap<(String, String), Source> = BTreeMap::new();
    let mut refs = BTreeMap::new();
    for store in stores {
        for cm in store.state() {
            let namespace = cm.metadata.namespace.clone().unwrap_or_default();
            let name = cm.metadata.name.clone().unwrap_or_default();
            let data = cm.data.clone().unwrap_or_default().into_iter().collect();
            let source = Source { namespace: namespace.clone(), name: name.clone(), data };
            refs.insert(source.id(), cm.object_ref(&()));
            by_id.insert((namespace, name), source);
        }
    }
    (by_id.into_values().collect(), refs)
}

/// Resolves `service: namespace/name:port` from the watched Services' LoadBalancer status (what MetalLB
/// assigns), so edges need no cluster DNS for it.
#[allow(missing_debug_implementations)]
pub struct Services<'a> {
    pub stores: &'a [(Option<String>, Store<Service>)],
}

impl dime_routes::ServiceResolver for Services<'_> {
    fn resolve(&self, r: &dime_routes::ServiceRef<'_>) -> Result<(String, u16), dime_routes::Invalid> {
        let Some((_, store)) = self.stores.iter().find(|(ns, _)| ns.as_deref().is_none_or(|ns| ns == r.namespace))
        else {
            return Err(format!(
                "namespace `{}` is not watched by this dime-control (add --namespace {})",
                r.namespace, r.namespace
            )
            .into());
        };
        let service = store
            .get(&ObjectRef::new(r.name).within(r.namespace))
            .ok_or_else(|| format!("Service {}/{} not found", r.namespace, r.name))?;
        let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p.port.to_string() == r.port || p.name.as_deref() == Some(r.port))
            .and_then(|p| u16::try_from(p.port).ok())
            .ok_or_else(|| {
                let known: Vec<String> = ports
                    .iter()
                    .map(|p| match &p.name {
                        Some(n) => format!("{}/{n}", p.port),
                        None => p.port.to_string(),
                    })
                    .collect();
                format!("Service {}/{} has no port `{}` (it has: {})", r.namespace, r.name, r.port, known.join(", "))
            })?;
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        let address = ingress
            .into_iter()
            .flatten()
            .find_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
            .ok_or_else(|| {
                format!(
                    "Service {}/{} has no LoadBalancer address yet (is it `type: LoadBalancer`, with an address pool for it?)",
                    r.namespace, r.name
                )
            })?;
        Ok((address, port))
    }
}

/// What the compile loop remembers between compilations, to report changes only once.
#[derive(Default)]
struct Reported {
    /// Rejected ConfigMaps and the errors last reported for each.
    rejected: BTreeMap<String, Rejection>,
}

/// Events are best effort and must never hold up compilation: each one is sent from its own task.
fn send_event(recorder: &Recorder, shared: &Arc<Shared>, reference: ObjectReference, event: Event) {
    let (recorder, shared) = (recorder.clone(), shared.clone());
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            shared.metrics.kube.events_failed.inc();
            tracing::warn!(configmap = ?reference.name, error = %e, "cannot create Event");
        }
    });
}

/// The longest Event note Kubernetes takes is 1 KiB.
const EVENT_NOTE_MAX: usize = 1024;

/// `head`, then as many whole `items` (joined by "; ") as fit in `max` bytes with room for "; and N more"
/// naming the rest; an item longer than all the room left is cut short.
pub(crate) fn bounded_list(head: &str, items: &[String], max: usize) -> String {
    let mut note = head.to_owned();
    for (i, item) in items.iter().enumerate() {
        let left = items.len() - i - 1;
        let tail = if left > 0 { format!("; and {left} more") } else { String::new() };
        let sep = if i > 0 { "; " } else { "" };
        if note.len() + sep.len() + item.len() + tail.len() <= max {
            note.push_str(sep);
            note.push_str(item);
            continue;
        }
        if i == 0 {
            let room = max.saturating_sub(note.len() + tail.len() + 3);
            let mut cut = room.min(item.len());
            while !item.is_char_boundary(cut) {
                cut -= 1;
            }
            note.push_str(&item[..cut]);
            note.push_str("...");
            note.push_str(&tail);
            return note;
        }
        note.push_str(&format!("; and {} more", items.len() - i));
        return note;
    }
    note
}

/// Compiles the full set; when that names Secrets not watched yet, starts their watches, waits for their first
/// read (bounded) and compiles again, so a new Secret reference does not flap through a rejection.
async fn compile_all(
    stores: &[Store<ConfigMap>],
    services: &[(Option<String>, Store<Service>)],
    secrets: &Secrets,
) -> (compile::Compiled, BTreeMap<String, ObjectReference>) {
    let services = Services { stores: services };
    let mut waited = false;
    loop {
        let (sources, refs) = sources(stores);
        let cluster = Cluster { services: &services, secrets, wanted: Default::default() };
        let compiled = compile::compile_with(sources, &cluster);
        let started = secrets.reconcile(&cluster.wanted.borrow());
        if started.is_empty() || waited {
            return (compiled, refs);
        }
        secrets.settle(&started).await;
        waited = true;
    }
}

async fn publish(
    shared: &Arc<Shared>,
    stores: &[Store<ConfigMap>],
    services: &[(Option<String>, Store<Service>)],
    secrets: &Secrets,
    recorder: &Recorder,
    reported: &mut Reported,
) {
    let (compiled, refs) = compile_all(stores, services, secrets).await;
    let m = &shared.metrics;
    m.table.compiles.inc();
    m.table.configmaps(ConfigMapState::Accepted).set(compiled.accepted.len() as i64);
    m.table.configmaps(ConfigMapState::Rejected).set(compiled.rejected.len() as i64);
    m.table.clear_configmap_rejected();
    report_rejections(shared, &compiled, &refs, recorder, reported);
    shared.set_rejected(compiled.rejected.clone());
    serve_table(shared, &compiled);
}

/// Logs, counts and records as Events what changed in the rejected ConfigMaps since the last compilation: a newly
/// (or differently) rejected one gets `RoutesRejected`, one accepted again `RoutesAccepted`.
fn report_rejections(
    shared: &Arc<Shared>,
    compiled: &compile::Compiled,
    refs: &BTreeMap<String, ObjectReference>,
    recorder: &Recorder,
    reported: &mut Reported,
) {
    let m = &shared.metrics;
    let mut now_rejected = BTreeMap::new();
    for r in &compiled.rejected {
        let (namespace, name) = r.configmap.split_once('/').unwrap_or(("", &r.configmap));
        m.table.configmap_rejected(namespace, name, r.reason).set(1);
        if reported.rejected.get(&r.configmap) != Some(r) {
            m.table.rejections(r.reason).inc();
            for e in &r.errors {
                tracing::error!(configmap = %r.configmap, reason = r.reason.as_str(), error = %e, "ConfigMap rejected; the rest of the table still applies");
            }
            if let Some(reference) = refs.get(&r.configmap) {
                let note = match r.reason {
                    RejectReason::Invalid => {
                        bounded_list(&format!("not applied, {} error(s): ", r.errors.len()), &r.errors, EVENT_NOTE_MAX)
                    }
                    RejectReason::Conflict => bounded_list(
                        "not applied, conflicts with ConfigMaps earlier in namespace/name order: ",
                        &r.errors,
                        EVENT_NOTE_MAX,
                    ),
                };
                let event = Event {
                    type_: EventType::Warning,
                    reason: "RoutesRejected".into(),
                    note: Some(note),
                    action: "CompileRoutes".into(),
                    secondary: None,
                };
                send_event(recorder, shared, reference.clone(), event);
            }
        }
        now_rejected.insert(r.configmap.clone(), r.clone());
    }
    for id in reported.rejected.keys().filter(|id| !now_rejected.contains_key(*id)) {
        if let (Some(reference), true) = (refs.get(id), compiled.accepted.contains(id)) {
            tracing::info!(configmap = %id, "ConfigMap accepted again");
            let event = Event {
                type_: EventType::Normal,
                reason: "RoutesAccepted".into(),
                note: Some("the routes of this ConfigMap are in the served table again".into()),
                action: "CompileRoutes".into(),
                secondary: None,
            };
            send_event(recorder, shared, reference.clone(), event);
        }
    }
    reported.rejected = now_rejected;
}

/// Puts the compiled table in service for the edges, unless it is the version already served.
fn serve_table(shared: &Arc<Shared>, compiled: &compile::Compiled) {
    let m = &shared.metrics;
    let version = compiled.table.version().to_owned();
    if shared.table_version().as_deref() == Some(version.as_str()) {
        return;
    }
    tracing::info!(%version, routes = compiled.table.routes().len(), tcp_routes = compiled.table.tcp_routes().len(), accepted = ?compiled.accepted, rejected = compiled.rejected.len(), "route table compiled");
    m.table.set_info(&version);
    m.table.routes(Protocol::Http).set(compiled.table.routes().len() as i64);
    m.table.routes(Protocol::Tcp).set(compiled.table.tcp_routes().len() as i64);
    m.table.published_time.set(crate::state::unix(SystemTime::now()));
    shared.publish_table(Arc::new(compiled.table.clone()));
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The reflectors of every watched namespace: route ConfigMaps (both labels) and Services, their event streams,
/// and one future per store that completes when its first full list is in.
struct Watches {
    stores: Vec<Store<ConfigMap>>,
    service_stores: Vec<(Option<String>, Store<Service>)>,
    streams: Vec<futures::stream::BoxStream<'static, Result<(), watcher::Error>>>,
    ready: Vec<futures::future::BoxFuture<'static, bool>>,
}

impl Watches {
    fn start(client: &Client, targets: &[Option<String>]) -> Self {
        let mut w = Watches { stores: Vec::new(), service_stores: Vec::new(), streams: Vec::new(), ready: Vec::new() };
        for ns in targets {
            for label in [NATIVE_LABEL, TRAEFIK_LABEL] {
                let config = watcher::Config::default().labels(label);
                let reader = w.reflect(watcher(api::<ConfigMap>(client, ns), config));
                w.stores.push(reader);
            }
            let reader = w.reflect(watcher(api::<Service>(client, ns), watcher::Config::default()));
            w.service_stores.push((ns.clone(), reader));
        }
        w
    }

    fn reflect<K>(
        &mut self,
        events: impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    ) -> Store<K>
    where
        K: kube::Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (reader, writer) = reflector::store();
        self.streams.push(reflector::reflector(writer, events).default_backoff().map_ok(|_| ()).boxed());
        let r = reader.clone();
        self.ready.push(Box::pin(async move { r.wait_until_ready().await.is_ok() }));
        reader
    }
}

/// Runs the watches until the process ends. `namespaces` empty: every namespace.
pub async fn run(client: Client, namespaces: Vec<String>, shared: Arc<Shared>) {
    let targets: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let Watches { stores, service_stores, streams, ready } = Watches::start(&client, &targets);
    let mut events = futures::stream::select_all(streams);
    // Set once every store has completed its first full list.
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let synced = synced.clone();
        tokio::spawn(async move {
            if futures::future::join_all(ready).await.into_iter().all(|ok| ok) {
                synced.store(true, std::sync::atomic::Ordering::Release);
            }
        });
    }
    let reporter = Reporter {
        controller: "dime-control".into(),
        instance: std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut reported = Reported::default();
    let (secrets_changed, mut secret_events) = tokio::sync::mpsc::unbounded_channel();
    let secrets = Secrets::new(client.clone(), secrets_changed);
    let mut dirty = false;
    shared.metrics.kube.api_up.set(1);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(())) => {
                    dirty = true;
                    shared.api_ok();
                }
                Some(Err(e)) => shared.api_error(&e.to_string()),
                None => return,
            },
            Some(()) = secret_events.recv() => dirty = true,
            _ = tokio::time::sleep(DEBOUNCE), if dirty => {
                // Only a complete view may be compiled: never a partial or empty table because a list is unfinished.
                if synced.load(std::sync::atomic::Ordering::Acquire) {
                    dirty = false;
                    shared.metrics.kube.synced.set(1);
                    publish(&shared, &stores, &service_stores, &secrets, &recorder, &mut reported).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_list;

    #[test]
    fn an_event_note_lists_whole_errors_and_counts_the_rest() {
        let errors: Vec<String> =
            (0..50).map(|i| format!("ns/cm/key:{i}: http.routers.r{i}.sticky: not supported")).collect();
        let note = bounded_list("not applied, 50 error(s): ", &errors, 1024);
        assert!(note.len() <= 1024, "{}", note.len());
        let listed = note.matches("not supported").count();
        assert!(listed > 5, "{note}");
        assert!(note.ends_with(&format!("; and {} more", 50 - listed)), "{note}");
        assert_eq!(bounded_list("h: ", &errors[..2], 1024), format!("h: {}; {}", errors[0], errors[1]));
        let long = vec!["x".repeat(5000), "y".into()];
        let note = bounded_list("h: ", &long, 100);
        assert!(note.len() <= 100 && note.ends_with("...; and 1 more"), "{note}");
    }
}
