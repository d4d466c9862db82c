//! ConfigMaps → one route table. Pure: the watch glue hands in what the cluster holds, this decides.
//!
//! Rules (deterministic, so every replica serves the same version):
//! - ConfigMaps are taken in `namespace/name` order; every key of a ConfigMap is one fragment, named
//!   `namespace/name/key` in errors.
//! - A ConfigMap whose fragments do not validate on their own is rejected alone; the others still apply.
//! - A ConfigMap that conflicts with ones already accepted (a route or upstream name defined twice, one TCP
//!   entrypoint served twice) is rejected: the first in `namespace/name` order wins.

use std::collections::BTreeMap;

use dime_routes::{Fragment, RouteTable};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Invalid,
    Conflict,
}

#[derive(Debug)]
pub struct Compiled {
    pub table: RouteTable,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejection>,
}

fn compile_all(sources: &[&Source]) -> Result<RouteTable, dime_routes::RouteErrors> {
    let owned: Vec<(String, &str)> = sources.iter().flat_map(|s| s.fragments()).collect();
    let fragments: Vec<Fragment<'_>> = owned.iter().map(|(source, text)| Fragment { source, text }).collect();
    dime_routes::compile(&fragments)
}

pub fn compile(mut sources: Vec<Source>) -> Compiled {
    sources.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut accepted: Vec<&Source> = Vec::new();
    let mut rejected = Vec::new();
    // The table of the accepted set, as last compiled.
    let mut table = None;
    for source in &sources {
        if let Err(errors) = compile_all(&[source]) {
            rejected.push(Rejection {
                configmap: source.id(),
                reason: RejectReason::Invalid,
                errors: errors.iter().map(ToString::to_string).collect(),
            });
            continue;
        }
        let mut with = accepted.clone();
        with.push(source);
        match compile_all(&with) {
            Ok(t) => {
                accepted.push(source);
                table = Some(t);
            }
            Err(errors) => rejected.push(Rejection {
                configmap: source.id(),
                reason: RejectReason::Conflict,
                errors: errors.iter().map(ToString::to_string).collect(),
            }),
        }
    }
    let table = table.unwrap_or_else(RouteTable::empty);
    Compiled { table, accepted: accepted.iter().map(|s| s.id()).collect(), rejected }
}

#[cfg(test)]
mod tests;
