//! The exported families are a contract with the alert rules in `manifests/` and with control/tests: names,
//! types, label names and label values stay as they are.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use dime_routes::wire::EdgeState;
use http::StatusCode;

use super::table::{ConfigMapState, Protocol};
use super::Metrics;
use crate::compile::RejectReason;
use crate::purge::api::Submitted;

/// Every family: (name, type, label names).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("dime_control_accept_errors_total", "counter", &[]),
    ("dime_control_compiles_total", "counter", &[]),
    ("dime_control_configmap_rejected", "gauge", &["name", "namespace", "reason"]),
    ("dime_control_configmap_rejections_total", "counter", &["reason"]),
    ("dime_control_configmaps", "gauge", &["state"]),
    ("dime_control_connections_refused_total", "counter", &[]),
    ("dime_control_edge_credentials", "gauge", &[]),
    ("dime_control_edges", "gauge", &["state"]),
    ("dime_control_event_failures_total", "counter", &[]),
    ("dime_control_identity_refusals_total", "counter", &["reason"]),
    ("dime_control_kube_api_up", "gauge", &[]),
    ("dime_control_long_polls", "gauge", &[]),
    ("dime_control_purge_ack_seconds", "histogram", &[]),
    ("dime_control_purge_feed_behind_total", "counter", &[]),
    ("dime_control_purge_log_entries", "gauge", &[]),
    ("dime_control_purge_requests_total", "counter", &["result"]),
    ("dime_control_requests_total", "counter", &["code"]),
    ("dime_control_shared_token_requests_total", "counter", &[]),
    ("dime_control_synced", "gauge", &[]),
    ("dime_control_table_info", "gauge", &["version"]),
    ("dime_control_table_published_timestamp_seconds", "gauge", &[]),
    ("dime_control_table_routes", "gauge", &["protocol"]),
    ("dime_control_watch_errors_total", "counter", &[]),
];

/// Gives every labelled metric a series (an empty vector is not rendered), with every value of every label enum.
fn touch_everything(m: &Metrics) {
    m.table.set_info("v1");
    for p in Protocol::ALL {
        m.table.routes(p).set(1);
    }
    for s in ConfigMapState::ALL {
        m.table.configmaps(s).set(1);
    }
    for r in RejectReason::ALL {
        m.table.configmap_rejected("ns", "cm", r).set(1);
        m.table.rejections(r).inc();
    }
    m.api.requests(StatusCode::OK).inc();
    for r in super::api::IdentityRefusal::ALL {
        m.api.identity_refused(r).inc();
    }
    for s in EdgeState::ALL {
        m.fleet.edges(s).set(1);
    }
    for s in Submitted::ALL {
        m.purge.requests(s).inc();
    }
}

/// A family as exported: (name, type, label names sorted).
type Family = (String, String, Vec<String>);

/// Every family, and every `name{label="value"}`.
fn exported(m: &Metrics) -> (Vec<Family>, BTreeSet<String>) {
    let text = String::from_utf8(m.render()).unwrap();
    let mut families: Vec<(String, String, BTreeSet<String>)> = Vec::new();
    let mut values = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.push((name.to_owned(), kind.to_owned(), BTreeSet::new()));
        } else if let (Some((_, rest)), Some(family)) = (line.split_once('{'), families.last_mut()) {
            let pairs = rest.split('}').next().unwrap();
            for pair in pairs.split(',').filter(|p| !p.starts_with("le=")) {
                let (label, value) = pair.split_once('=').unwrap();
                family.2.insert(label.to_owned());
                values.insert(format!("{}{{{label}={value}}}", family.0));
            }
        }
    }
    (families.into_iter().map(|(n, t, l)| (n, t, l.into_iter().collect())).collect(), values)
}

#[test]
fn every_family_keeps_its_name_type_and_label_names() {
    let m = Metrics::new().unwrap();
    touch_everything(&m);
    let (found, _) = exported(&m);
    let expected: Vec<Family> = FAMILIES
        .iter()
        .map(|(n, t, l)| ((*n).to_owned(), (*t).to_owned(), l.iter().map(|s| (*s).to_owned()).collect()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn label_values_are_the_ones_alerts_use() {
    let m = Metrics::new().unwrap();
    touch_everything(&m);
    let (_, values) = exported(&m);
    let expected = [
        r#"dime_control_table_info{version="v1"}"#,
        r#"dime_control_table_routes{protocol="http"}"#,
        r#"dime_control_table_routes{protocol="tcp"}"#,
        r#"dime_control_configmaps{state="accepted"}"#,
        r#"dime_control_configmaps{state="rejected"}"#,
        r#"dime_control_configmap_rejected{namespace="ns"}"#,
        r#"dime_control_configmap_rejected{name="cm"}"#,
        r#"dime_control_configmap_rejected{reason="invalid"}"#,
        r#"dime_control_configmap_rejected{reason="conflict"}"#,
        r#"dime_control_configmap_rejections_total{reason="invalid"}"#,
        r#"dime_control_configmap_rejections_total{reason="conflict"}"#,
        r#"dime_control_requests_total{code="200"}"#,
        r#"dime_control_identity_refusals_total{reason="another-edge"}"#,
        r#"dime_control_identity_refusals_total{reason="bad-name"}"#,
        r#"dime_control_identity_refusals_total{reason="unknown-token"}"#,
        r#"dime_control_edges{state="current"}"#,
        r#"dime_control_edges{state="stale"}"#,
        r#"dime_control_edges{state="refusing"}"#,
        r#"dime_control_edges{state="gone"}"#,
        r#"dime_control_purge_requests_total{result="accepted"}"#,
        r#"dime_control_purge_requests_total{result="invalid"}"#,
        r#"dime_control_purge_requests_total{result="unauthorized"}"#,
        r#"dime_control_purge_requests_total{result="unavailable"}"#,
    ];
    for value in expected {
        assert!(values.contains(value), "{value} is not exported");
    }
}

#[test]
fn the_served_table_is_the_only_info_series() {
    let m = Metrics::new().unwrap();
    m.table.set_info("v1");
    m.table.set_info("v2");
    let (_, values) = exported(&m);
    assert!(values.contains(r#"dime_control_table_info{version="v2"}"#));
    assert!(!values.contains(r#"dime_control_table_info{version="v1"}"#));
}
