//! ConfigMaps → one route table. Pure: the watch glue hands in what the cluster holds, this decides.
//!
//! Rules (deterministic, so every replica serves the same version):
//! - ConfigMaps are taken in `namespace/name` order; every key of a ConfigMap is one fragment, named
//!   `namespace/name/key` in errors.
//! - A ConfigMap whose fragments do not validate on their own is rejected alone; the others still apply.
//! - A ConfigMap that conflicts with ones already accepted (a route or upstream name defined twice, one TCP
//!   entrypoint served twice) is rejected: the first in `namespace/name` order wins.

use std::collections::BTreeMap;

use dime_routes::{Fragment, HostPattern, PathMatch, RouteTable, ServiceResolver};

/// One ConfigMap's route data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl Source {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn fragments(&self) -> Vec<(String, &str)> {
        self.data.iter().map(|(k, v)| (format!("{}/{}/{k}", self.namespace, self.name), v.as_str())).collect()
    }
}

/// Why a ConfigMap is not in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub configmap: String,
    pub reason: RejectReason,
    pub errors: Vec<String>,
}

/// Why a ConfigMap was left out of the table: the `reason` label of `dime_control_configmap_rejected` and
/// `dime_control_configmap_rejections_total`, and of the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Its routes do not validate.
    Invalid,
    /// Its routes conflict with those of a ConfigMap earlier in namespace/name order.
    Conflict,
}

impl RejectReason {
    pub const ALL: [RejectReason; 2] = [RejectReason::Invalid, RejectReason::Conflict];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Invalid => "invalid",
            RejectReason::Conflict => "conflict",
        }
    }
}

#[derive(Debug)]
pub struct Compiled {
    pub table: RouteTable,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejection>,
}

fn compile_all(sources: &[&Source], services: &dyn ServiceResolver) -> Result<RouteTable, dime_routes::RouteErrors> {
    let owned: Vec<(String, &str)> = sources.iter().flat_map(|s| s.fragments()).collect();
    let fragments: Vec<Fragment<'_>> = owned.iter().map(|(source, text)| Fragment { source, text }).collect();
    dime_routes::compile_with(&fragments, services)
}

/// Compiles without a cluster: servers that name a Service are errors.
pub fn compile(sources: Vec<Source>) -> Compiled {
    compile_with(sources, &dime_routes::NoCluster)
}

/// What the accepted ConfigMaps already define, and which one defines it.
#[derive(Default)]
struct Claims {
    names: BTreeMap<(&'static str, String), String>,
    host_paths: BTreeMap<(Option<HostPattern>, PathMatch), (String, String)>,
}

impl Claims {
    fn names_of(table: &RouteTable) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(table.routes().iter().map(|r| ("route", r.name.clone())));
        out.extend(table.upstreams().keys().map(|n| ("upstream", n.clone())));
        out.extend(table.tcp_routes().iter().map(|r| ("TCP route", r.name.clone())));
        out.extend(table.tcp_upstreams().keys().map(|n| ("TCP upstream", n.clone())));
        for r in table.tcp_routes() {
            out.extend(r.entrypoints.iter().map(|e| ("TCP entrypoint", e.clone())));
        }
        out
    }

    /// Every host (none: any host) and path (none: `/`) a route answers.
    fn host_paths(table: &RouteTable) -> Vec<((Option<HostPattern>, PathMatch), String)> {
        let mut out = Vec::new();
        for route in table.routes() {
            for m in &route.matches {
                let hosts: Vec<Option<HostPattern>> =
                    if m.hosts.is_empty() { vec![None] } else { m.hosts.iter().cloned().map(Some).collect() };
                let paths = if m.paths.is_empty() { vec![PathMatch::Prefix("/".into())] } else { m.paths.clone() };
                for h in &hosts {
                    out.extend(paths.iter().map(|p| ((h.clone(), p.clone()), route.name.clone())));
                }
            }
        }
        out
    }

    /// Why `table` (of ConfigMap `id`) cannot join the accepted set; empty if it can.
    fn conflicts(&self, id: &str, table: &RouteTable) -> Vec<String> {
        let mut errors = Vec::new();
        for key in Self::names_of(table) {
            if let Some(owner) = self.names.get(&key) {
                errors.push(format!("{id}: {} `{}` is also defined by ConfigMap {owner}", key.0, key.1));
            }
        }
        for (key, route) in Self::host_paths(table) {
            if let Some((owner, other)) = self.host_paths.get(&key) {
                let host = key.0.as_ref().map_or("any host".to_owned(), |h| format!("host `{h}`"));
                errors.push(format!(
                    "{id}: route `{route}` matches {host} with path {} like route `{other}` of ConfigMap {owner}",
                    key.1
                ));
            }
        }
        errors
    }

    fn add(&mut self, id: &str, table: &RouteTable) {
        for key in Self::names_of(table) {
            self.names.insert(key, id.to_owned());
        }
        for (key, route) in Self::host_paths(table) {
            self.host_paths.insert(key, (id.to_owned(), route));
        }
    }
}

/// Compiles the table, resolving servers that name a Kubernetes Service with `services`; an unresolvable one
/// rejects its ConfigMap like any other error. Each ConfigMap is validated alone once, checked against what the
/// ones before it claim, and the accepted set is compiled once: linear in the number of ConfigMaps.
pub fn compile_with(mut sources: Vec<Source>, services: &dyn ServiceResolver) -> Compiled {
    sources.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut accepted: Vec<&Source> = Vec::new();
    let mut rejected = Vec::new();
    let mut claims = Claims::default();
    for source in &sources {
        let id = source.id();
        let alone = match compile_all(&[source], services) {
            Ok(t) => t,
            Err(errors) => {
                let errors = errors.iter().map(ToString::to_string).collect();
                rejected.push(Rejection { configmap: id, reason: RejectReason::Invalid, errors });
                continue;
            }
        };
        let conflicts = claims.conflicts(&id, &alone);
        if !conflicts.is_empty() {
            rejected.push(Rejection { configmap: id, reason: RejectReason::Conflict, errors: conflicts });
            continue;
        }
        claims.add(&id, &alone);
        accepted.push(source);
    }
    let table = if accepted.is_empty() {
        RouteTable::empty()
    } else {
        match compile_all(&accepted, services) {
            Ok(t) => t,
            // Each part validated and claims nothing another claims; should the whole still fail, keep the
            // longest prefix that compiles and reject the rest, never nothing.
            Err(errors) => {
                tracing::error!(errors = %errors, "accepted ConfigMaps do not compile together; falling back to one by one");
                let mut kept: Vec<&Source> = Vec::new();
                let mut table = RouteTable::empty();
                for source in accepted.drain(..) {
                    let mut with = kept.clone();
                    with.push(source);
                    match compile_all(&with, services) {
                        Ok(t) => {
                            kept.push(source);
                            table = t;
                        }
                        Err(e) => rejected.push(Rejection {
                            configmap: source.id(),
                            reason: RejectReason::Conflict,
                            errors: e.iter().map(ToString::to_string).collect(),
                        }),
                    }
                }
                accepted = kept;
                table
            }
        }
    };
    rejected.sort_by(|a, b| a.configmap.cmp(&b.configmap));
    Compiled { table, accepted: accepted.iter().map(|s| s.id()).collect(), rejected }
}

#[cfg(test)]
mod tests;
