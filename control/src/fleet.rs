//! The fleet, kept in the cluster: one `coordination.k8s.io/v1` Lease per edge in control's namespace, renewed
//! while the edge polls (on each poll, and while its long-poll is parked), expiring when it stops. Every control
//! replica writes and watches the same Leases, so all serve the same fleet, a restart loses nothing, and
//! `kubectl get leases -n dime-system -l dime.dev/edge` shows it. Leases, not a custom resource: they are the
//! Kubernetes record of "who is alive, renewed until when" (node heartbeats, leader election), need no CRD to
//! install, and RBAC grants them per namespace.
//!
//! An edge says who it is on every poll, in request headers: its name, its peer URL, the table version it
//! applied and the last one it refused and why (the Envoy ACK/NACK view, `GET /v1/edges`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dime_routes::wire::{EdgeState, EdgeView, Etag, Member, Report};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use parking_lot::Mutex;
use tokio::time::Instant;

/// The label every edge Lease carries (its value: the edge's name).
pub const LEASE_LABEL: &str = "dime.dev/edge";
const PEER_URL: &str = "dime.dev/peer-url";
/// The Ed25519 public key the edge signs its peer requests with (served with its member entry).
const PEER_KEY: &str = "dime.dev/peer-key";
const APPLIED: &str = "dime.dev/applied-version";
const REFUSED: &str = "dime.dev/refused-version";
const REFUSED_WHY: &str = "dime.dev/refused-reason";
/// The purge log an edge follows, the last purge it applied, and when a replica heard it (Unix ms): written by
/// their own field manager when an edge polls `/v1/purges`, beside the ones above.
const PURGE_LOG: &str = "dime.dev/purge-log";
const PURGE_APPLIED: &str = "dime.dev/purge-applied";
const PURGE_ACKED_AT: &str = "dime.dev/purge-acked-at";

/// The fleet's Leases: written by [`Fleet::heard`], read from a reflector.
pub struct Fleet {
    api: Api<Lease>,
    store: Store<Lease>,
    duration: Duration,
    /// When this replica last wrote each edge's Lease, and what it wrote.
    written: Mutex<BTreeMap<String, (Instant, Report)>>,
    /// The last purge acknowledgement this replica wrote for each edge: (log, seq).
    acks_written: Mutex<BTreeMap<String, (String, u64)>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("duration", &self.duration).finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts watching the edge Leases of `namespace`; `changed` is called on every change of them.
    pub fn start(
        client: Client,
        namespace: &str,
        duration: Duration,
        changed: impl Fn() + Send + 'static,
    ) -> Arc<Fleet> {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let (store, writer) = reflector::store();
        let events = watcher(api.clone(), watcher::Config::default().labels(LEASE_LABEL));
        let mut stream = reflector::reflector(writer, events).default_backoff().touched_objects().boxed();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(_) => changed(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch the edge Leases; the fleet shown is the last one read")
                    }
                }
            }
        });
        Arc::new(Fleet {
            api,
            store,
            duration,
            written: Mutex::new(BTreeMap::new()),
            acks_written: Mutex::new(BTreeMap::new()),
        })
    }

    /// How long an edge's Lease lasts without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// An edge polled (or is still parked on a long-poll): renews its Lease when a third of it has passed since
    /// this replica last did, or at once when what the edge says changed.
    pub fn heard(self: &Arc<Self>, report: Report) {
        let now = Instant::now();
        {
            let mut written = self.written.lock();
            let fresh =
                written.get(&report.name).is_some_and(|(at, said)| *said == report && now < *at + self.duration / 3);
            if fresh {
                return;
            }
            written.insert(report.name.clone(), (now, report.clone()));
        }
        let fleet = self.clone();
        tokio::spawn(async move {
            if let Err(e) = fleet.renew(&report).await {
                tracing::warn!(edge = report.name, error = %e, "cannot renew the edge's Lease");
                fleet.written.lock().remove(&report.name);
            }
        });
    }

    /// An edge polled the purge feed after applying purge `seq` of `log`: its Lease says so (at once, so the
    /// replica that took the purge sees the acknowledgement), unless this replica already wrote that.
    pub fn purge_acked(self: &Arc<Self>, edge: &str, log: &str, seq: u64) {
        let said = (log.to_owned(), seq);
        if self.acks_written.lock().insert(edge.to_owned(), said.clone()).as_ref() == Some(&said) {
            return;
        }
        let (fleet, edge) = (self.clone(), edge.to_owned());
        tokio::spawn(async move {
            let at = k8s_openapi::jiff::Timestamp::now().as_millisecond();
            let annotations = BTreeMap::from([
                (PURGE_LOG.to_owned(), said.0.clone()),
                (PURGE_APPLIED.to_owned(), said.1.to_string()),
                (PURGE_ACKED_AT.to_owned(), at.to_string()),
            ]);
            let name = lease_name(&edge);
            // Only the annotations, under their own field manager: the report's fields stay the other's.
            let lease = Lease { metadata: lease_meta(&name, &edge, annotations), spec: None };
            let params = PatchParams::apply("dime-control-purges").force();
            if let Err(e) = fleet.api.patch(&name, &params, &Patch::Apply(&lease)).await {
                tracing::warn!(edge, error = %e, "cannot record the edge's purge acknowledgement in its Lease");
                fleet.acks_written.lock().remove(&edge);
            }
        });
    }

    async fn renew(&self, report: &Report) -> Result<(), kube::Error> {
        let name = lease_name(&report.name);
        let mut annotations = BTreeMap::new();
        let mut put = |k: &str, v: Option<&String>| {
            annotations.insert(k.to_owned(), v.cloned().unwrap_or_default());
        };
        put(PEER_URL, report.peer_url.as_ref());
        put(PEER_KEY, report.peer_key.as_ref());
        put(APPLIED, report.applied.as_ref());
        put(REFUSED, report.refused.as_ref().map(|r| &r.version));
        put(REFUSED_WHY, report.refused.as_ref().map(|r| &r.reason));
        let lease = Lease {
            metadata: lease_meta(&name, &report.name, annotations),
            spec: Some(LeaseSpec {
                holder_identity: Some(report.name.clone()),
                lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            }),
        };
        let params = PatchParams::apply("dime-control").force();
        self.api.patch(&name, &params, &Patch::Apply(&lease)).await.map(|_| ())
    }

    /// Every edge with a Lease, with its state against the table version served now.
    pub fn edges(&self, served: Option<&str>) -> Vec<EdgeView> {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let mut edges: Vec<EdgeView> = self.store.state().iter().filter_map(|lease| view(lease, served, now)).collect();
        edges.sort_by(|a, b| a.name.cmp(&b.name));
        edges
    }

    /// The live members with a peer URL, as the edges get them. Two edges that give the same peer URL are both
    /// left out (and logged): the ring is by address, and which of them is really there nobody can tell.
    pub fn members(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .edges(None)
            .into_iter()
            .filter(|e| e.state != EdgeState::Gone)
            .filter_map(|e| Some(Member { url: e.peer_url.clone()?, name: e.name, key: e.peer_key }))
            .collect();
        members.sort();
        let clash = |m: &Member, all: &[Member]| all.iter().any(|o| o.url == m.url && o.name != m.name);
        let clashing: Vec<(String, String)> =
            members.iter().filter(|m| clash(m, &members)).map(|m| (m.name.clone(), m.url.clone())).collect();
        if !clashing.is_empty() {
            tracing::warn!(edges = ?clashing, "edges give the same peer URL: none of them is served as a member");
            members.retain(|m| !clashing.iter().any(|(n, _)| *n == m.name));
        }
        members
    }
}

/// The metadata of edge `edge`'s Lease `name`, with `annotations`.
fn lease_meta(name: &str, edge: &str, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(LEASE_LABEL.to_owned(), edge.to_owned())])),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// The Lease of edge `name`: `dime-edge-NAME`. The name is a DNS-1123 label ([`dime_routes::wire::edge_name_ok`],
/// checked before anything is written), so it is used as it is: no two names share a Lease.
fn lease_name(edge: &str) -> String {
    format!("dime-edge-{edge}")
}

fn view(lease: &Lease, served: Option<&str>, now: i64) -> Option<EdgeView> {
    let spec = lease.spec.as_ref()?;
    let name = spec.holder_identity.clone()?;
    // Only a Lease named for its holder as this control names it (an older one folded `EDGE_A` onto `edge-a`,
    // and anyone with write access to Leases could write one for another name): no other is a member.
    if !dime_routes::wire::edge_name_ok(&name) || lease.metadata.name.as_deref() != Some(lease_name(&name).as_str()) {
        return None;
    }
    let annotation =
        |k: &str| lease.metadata.annotations.as_ref().and_then(|a| a.get(k)).filter(|v| !v.is_empty()).cloned();
    let last_seen = spec.renew_time.as_ref().map_or(0, |t| t.0.as_second());
    let expires = last_seen + i64::from(spec.lease_duration_seconds.unwrap_or(0));
    // The refused version is control's ETag: the table's version, maybe with the members' hash.
    let (applied, refused) = (annotation(APPLIED), annotation(REFUSED));
    let refused_served =
        served.is_some() && refused.as_deref().map(Etag::parse).as_ref().map(Etag::table_version) == served;
    let state = if expires <= now {
        EdgeState::Gone
    } else if refused_served {
        EdgeState::Refusing
    } else if served.is_none() || applied.as_deref() == served {
        EdgeState::Current
    } else {
        EdgeState::Stale
    };
    Some(EdgeView {
        name,
        peer_url: annotation(PEER_URL),
        peer_key: annotation(PEER_KEY),
        applied_version: applied,
        refused_version: refused,
        refused_reason: annotation(REFUSED_WHY),
        last_seen,
        purge_log: annotation(PURGE_LOG),
        purge_applied: annotation(PURGE_APPLIED).and_then(|v| v.parse().ok()),
        purge_acked_at_ms: annotation(PURGE_ACKED_AT).and_then(|v| v.parse().ok()),
        state,
    })
}

/// Drives `changed` every `every` (expiry changes the fleet without a watch event), until the process ends.
pub async fn tick(every: Duration, changed: impl Fn()) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        changed();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lease(name: &str, renewed: i64, applied: &str, refused: &str) -> Lease {
        let annotations = BTreeMap::from([
            (PEER_URL.to_owned(), format!("http://10.0.0.1:8444/{name}")),
            (APPLIED.to_owned(), applied.to_owned()),
            (REFUSED.to_owned(), refused.to_owned()),
            (REFUSED_WHY.to_owned(), if refused.is_empty() { String::new() } else { "bad".into() }),
        ]);
        Lease {
            metadata: ObjectMeta { name: Some(lease_name(name)), annotations: Some(annotations), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.into()),
                lease_duration_seconds: Some(90),
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::from_second(renewed).unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn an_edge_is_current_stale_refusing_or_gone() {
        let now = 1_800_000_000;
        let cases = [
            ("runs the table served", lease("a", now - 10, "v2", ""), EdgeState::Current),
            ("runs an older table", lease("b", now - 10, "v1", ""), EdgeState::Stale),
            (
                "refused the one served (ETag with the members' hash)",
                lease("c", now - 10, "v1", "v2.ab12cd34"),
                EdgeState::Refusing,
            ),
            ("refused an older one, runs the served one", lease("d", now - 10, "v2", "v1"), EdgeState::Current),
            ("not renewed for longer than its Lease", lease("e", now - 91, "v2", ""), EdgeState::Gone),
        ];
        for (what, lease, want) in cases {
            assert_eq!(view(&lease, Some("v2"), now).unwrap().state, want, "{what}");
        }
        let v = view(&lease("c", now, "v1", "v2"), Some("v2"), now).unwrap();
        assert_eq!((v.refused_version.as_deref(), v.refused_reason.as_deref()), (Some("v2"), Some("bad")));
    }

    #[test]
    fn a_lease_not_named_for_its_holder_is_no_member() {
        let now = 1_800_000_000;
        let mut folded = lease("EDGE_A", now, "v2", "");
        folded.metadata.name = Some("dime-edge-edge-a".into());
        assert!(view(&folded, Some("v2"), now).is_none(), "an older control's folded name");
        let mut elsewhere = lease("edge-b", now, "v2", "");
        elsewhere.metadata.name = Some("dime-edge-edge-a".into());
        assert!(view(&elsewhere, Some("v2"), now).is_none(), "edge-b's holder in edge-a's Lease");
        assert_eq!(lease_name("edge-a"), "dime-edge-edge-a");
        assert!(view(&lease("edge-a", now, "v2", ""), Some("v2"), now).is_some());
    }
}
