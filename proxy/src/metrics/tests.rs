//! The exported families are a contract with the dashboards and alert rules in `manifests/`: names, types,
//! label names and label values stay as they are.

use std::collections::BTreeSet;

use super::cache::DirectBody;
use super::config::FetchFailure;
use super::fleet::{Sent, Served};
use super::http::Closed;
use super::tcp::{TcpDirection, TcpRefusal};
use super::{Attempt, Metrics};
use crate::cache::live::Continuity;
use crate::cache::select::Selector;
use crate::cache::status::Outcome;
use crate::signed::Reject;

/// Every family: (name, type, label names).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("dime_acme_orders_total", "counter", &["domain", "result"]),
    ("dime_build_info", "gauge", &["version"]),
    ("dime_cache_budget_bytes", "gauge", &[]),
    ("dime_cache_direct_responses_total", "counter", &["body"]),
    ("dime_cache_disk_budget_bytes", "gauge", &[]),
    ("dime_cache_disk_enabled", "gauge", &[]),
    ("dime_cache_disk_errors_total", "counter", &["kind"]),
    ("dime_cache_disk_evictions_total", "counter", &[]),
    ("dime_cache_disk_hits_total", "counter", &[]),
    ("dime_cache_disk_objects", "gauge", &[]),
    ("dime_cache_disk_stored_bytes", "gauge", &[]),
    ("dime_cache_disk_writes_total", "counter", &[]),
    ("dime_cache_evictions_total", "counter", &[]),
    ("dime_cache_index_load_seconds", "gauge", &[]),
    ("dime_cache_invalidations_total", "counter", &[]),
    ("dime_cache_live_dropped_total", "counter", &[]),
    ("dime_cache_live_playlists_total", "counter", &["continuity"]),
    ("dime_cache_live_unreadable_total", "counter", &[]),
    ("dime_cache_lock_wait_duration_seconds", "histogram", &["route"]),
    ("dime_cache_lock_waits_total", "counter", &["route"]),
    ("dime_cache_objects", "gauge", &[]),
    ("dime_cache_origin_bytes_total", "counter", &["route"]),
    ("dime_cache_origin_fetches_total", "counter", &["route"]),
    ("dime_cache_purged_total", "counter", &["kind"]),
    ("dime_cache_requests_total", "counter", &["route", "result"]),
    ("dime_cache_sendfile_bytes_total", "counter", &[]),
    ("dime_cache_stored_bytes", "gauge", &[]),
    ("dime_cache_write_failures_total", "counter", &[]),
    ("dime_config_age_seconds", "gauge", &[]),
    ("dime_config_info", "gauge", &["version", "source"]),
    ("dime_config_loaded_timestamp_seconds", "gauge", &[]),
    ("dime_config_reloads_total", "counter", &["result"]),
    ("dime_config_routes", "gauge", &[]),
    ("dime_downstream_closed_total", "counter", &["reason"]),
    ("dime_fleet_members", "gauge", &[]),
    ("dime_http_connections_open", "gauge", &[]),
    ("dime_http_connections_total", "counter", &[]),
    ("dime_http_request_body_bytes_total", "counter", &["route"]),
    ("dime_http_request_duration_seconds", "histogram", &["route"]),
    ("dime_http_requests_in_flight", "gauge", &[]),
    ("dime_http_requests_total", "counter", &["route", "method", "status"]),
    ("dime_http_response_body_bytes_total", "counter", &["route"]),
    ("dime_log_lines_dropped_total", "counter", &[]),
    ("dime_panics_total", "counter", &[]),
    ("dime_peer_fetch_duration_seconds", "histogram", &["route"]),
    ("dime_peer_requests_total", "counter", &["direction", "result"]),
    ("dime_peer_served_bytes_total", "counter", &[]),
    ("dime_purge_applied_seq", "gauge", &[]),
    ("dime_purge_feed_failures_total", "counter", &["reason"]),
    ("dime_purge_gaps_total", "counter", &[]),
    ("dime_purge_replica_behind_total", "counter", &[]),
    ("dime_purges_applied_total", "counter", &[]),
    ("dime_routes_fetch_failures_total", "counter", &["reason"]),
    ("dime_routes_fetch_last_success_timestamp_seconds", "gauge", &[]),
    ("dime_routes_state_write_failures_total", "counter", &[]),
    ("dime_signed_url_rejections_total", "counter", &["route", "reason"]),
    ("dime_tcp_bytes_total", "counter", &["route", "direction"]),
    ("dime_tcp_connect_failures_total", "counter", &["route"]),
    ("dime_tcp_connection_duration_seconds", "histogram", &["route"]),
    ("dime_tcp_connections_active", "gauge", &["route"]),
    ("dime_tcp_connections_total", "counter", &["route"]),
    ("dime_tcp_refused_total", "counter", &["entrypoint", "reason"]),
    ("dime_tls_certificate_expiry_timestamp_seconds", "gauge", &["cert"]),
    ("dime_tls_reloads_total", "counter", &["result"]),
    ("dime_upstream_connect_duration_seconds", "histogram", &["upstream"]),
    ("dime_upstream_connect_failures_total", "counter", &["upstream"]),
    ("dime_upstream_dns_failures_total", "counter", &["upstream"]),
    ("dime_upstream_endpoint_healthy", "gauge", &["upstream", "address"]),
    ("dime_upstream_response_duration_seconds", "histogram", &["upstream"]),
    ("dime_upstream_retries_total", "counter", &["upstream"]),
    ("dime_upstream_unavailable_total", "counter", &["upstream"]),
];

/// Gives every labelled metric a series (an empty vector is not rendered), with every value of every label enum.
fn touch_everything(m: &Metrics) {
    touch_requests(m);
    touch_origins(m);
    touch_the_table_and_certificates(m);
}

fn touch_requests(m: &Metrics) {
    m.http.requests("r", &http::Method::GET, 200).inc();
    m.http.duration("r").observe(0.1);
    m.http.request_bytes("r").inc();
    m.http.response_bytes("r").inc();
    for c in Closed::ALL {
        m.http.closed(c).inc();
    }
    let outcomes = [Outcome::Hit, Outcome::Stale, Outcome::Revalidated, Outcome::Miss, Outcome::Expired];
    for o in outcomes.into_iter().chain([Outcome::Bypass("method")]) {
        m.cache.requests("r", o).inc();
    }
    m.cache.lock_waits("r").inc();
    m.cache.lock_wait_duration("r").observe(0.1);
    m.cache.origin_fetches("r").inc();
    m.cache.origin_bytes("r").inc();
    for b in DirectBody::ALL {
        m.cache.direct_sent(b, 1);
    }
    m.live.playlists(Continuity::Continuous).inc();
    m.signed.rejections("r", Reject::Expired).inc();
}

fn touch_origins(m: &Metrics) {
    for s in Sent::ALL {
        m.fleet.sent(s).inc();
    }
    for s in Served::ALL {
        m.fleet.served(s).inc();
    }
    m.fleet.fetch_duration("r").observe(0.1);
    let u = &m.upstream;
    u.connect_duration("u").observe(0.1);
    u.response_duration("u").observe(0.1);
    u.connect_failures("u").inc();
    u.retries("u").inc();
    u.unavailable("u").inc();
    u.dns_failures("u").inc();
    u.endpoint_healthy("u", ([192, 0, 2, 1], 80).into()).set(1);
    m.tcp.connections("t").inc();
    m.tcp.active("t").inc();
    m.tcp.connect_failures("t").inc();
    m.tcp.duration("t").observe(1.0);
    for r in TcpRefusal::ALL {
        m.tcp.refused("tcp", r).inc();
    }
    for d in TcpDirection::ALL {
        m.tcp.bytes("t", d).inc();
    }
}

fn touch_the_table_and_certificates(m: &Metrics) {
    let selectors = [Selector::Key("k".into()), Selector::Prefix("p".into()), Selector::Tag("t".into()), Selector::All];
    for s in &selectors {
        m.purge.purged(s).inc();
    }
    for f in FetchFailure::ALL {
        m.purge.feed_failures(f).inc();
        m.config.fetch_failures(f).inc();
    }
    m.config.set_info("v1", "routes.yaml");
    m.tls.cert_expiry("c.pem").set(1.0);
    for a in Attempt::ALL {
        m.tls.reloads(a).inc();
        m.tls.acme_orders("d", a).inc();
    }
}

/// What an exposition shows: every family as (name, type, label names sorted), and every `name{label="value"}`.
#[derive(Default)]
struct Exported {
    families: Vec<(String, String, BTreeSet<String>)>,
    values: BTreeSet<String>,
}

fn exported(m: &Metrics) -> Exported {
    let text = String::from_utf8(m.render()).unwrap();
    let mut out = Exported::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.families.push((name.to_owned(), kind.to_owned(), BTreeSet::new()));
        } else if let (Some((_, rest)), Some(family)) = (line.split_once('{'), out.families.last_mut()) {
            let pairs = rest.split('}').next().unwrap();
            for pair in pairs.split(',').filter(|p| !p.starts_with("le=")) {
                let (label, value) = pair.split_once('=').unwrap();
                family.2.insert(label.to_owned());
                out.values.insert(format!("{}{{{label}={value}}}", family.0));
            }
        }
    }
    out
}

#[test]
fn every_family_keeps_its_name_type_and_label_names() {
    let m = Metrics::new().unwrap();
    touch_everything(&m);
    let families = exported(&m).families;
    let found: Vec<(&str, &str, Vec<&str>)> =
        families.iter().map(|(n, t, l)| (n.as_str(), t.as_str(), l.iter().map(String::as_str).collect())).collect();
    let sorted = |labels: &[&'static str]| labels.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let expected: Vec<(&str, &str, Vec<&str>)> = FAMILIES.iter().map(|(n, t, l)| (*n, *t, sorted(l))).collect();
    assert_eq!(found, expected);
}

#[test]
fn label_values_are_the_ones_dashboards_and_alerts_use() {
    let m = Metrics::new().unwrap();
    touch_everything(&m);
    let values = exported(&m).values;
    let expected = [
        r#"dime_cache_requests_total{result="hit"}"#,
        r#"dime_cache_requests_total{result="stale"}"#,
        r#"dime_cache_requests_total{result="revalidated"}"#,
        r#"dime_cache_requests_total{result="miss"}"#,
        r#"dime_cache_requests_total{result="expired"}"#,
        r#"dime_cache_requests_total{result="bypass"}"#,
        r#"dime_http_requests_total{method="GET"}"#,
        r#"dime_http_requests_total{status="2xx"}"#,
        r#"dime_downstream_closed_total{reason="header-timeout"}"#,
        r#"dime_downstream_closed_total{reason="keepalive-timeout"}"#,
        r#"dime_downstream_closed_total{reason="max-connections"}"#,
        r#"dime_cache_direct_responses_total{body="file"}"#,
        r#"dime_cache_direct_responses_total{body="memory"}"#,
        r#"dime_cache_live_playlists_total{continuity="continuous"}"#,
        r#"dime_cache_purged_total{kind="url"}"#,
        r#"dime_cache_purged_total{kind="prefix"}"#,
        r#"dime_cache_purged_total{kind="tag"}"#,
        r#"dime_cache_purged_total{kind="all"}"#,
        r#"dime_peer_requests_total{direction="sent"}"#,
        r#"dime_peer_requests_total{direction="served"}"#,
        r#"dime_peer_requests_total{result="ok"}"#,
        r#"dime_peer_requests_total{result="connect_failed"}"#,
        r#"dime_peer_requests_total{result="error"}"#,
        r#"dime_peer_requests_total{result="refused"}"#,
        r#"dime_peer_requests_total{result="origin_failed"}"#,
        r#"dime_peer_requests_total{result="fetched"}"#,
        r#"dime_peer_requests_total{result="unauthorized"}"#,
        r#"dime_peer_requests_total{result="forbidden"}"#,
        r#"dime_peer_requests_total{result="behind"}"#,
        r#"dime_tcp_refused_total{reason="no_route"}"#,
        r#"dime_tcp_refused_total{reason="allowlist"}"#,
        r#"dime_tcp_refused_total{reason="limit"}"#,
        r#"dime_tcp_refused_total{reason="no_upstream"}"#,
        r#"dime_tcp_bytes_total{direction="to_upstream"}"#,
        r#"dime_tcp_bytes_total{direction="to_client"}"#,
        r#"dime_config_reloads_total{result="ok"}"#,
        r#"dime_config_reloads_total{result="failed"}"#,
        r#"dime_tls_reloads_total{result="ok"}"#,
        r#"dime_tls_reloads_total{result="failed"}"#,
        r#"dime_acme_orders_total{result="ok"}"#,
        r#"dime_acme_orders_total{result="failed"}"#,
        r#"dime_signed_url_rejections_total{reason="expired"}"#,
    ];
    let fetch = ["connect", "tls", "timeout", "unauthorized", "status", "body", "invalid"].into_iter().flat_map(|r| {
        ["dime_routes_fetch_failures_total", "dime_purge_feed_failures_total"]
            .map(|f| format!(r#"{f}{{reason="{r}"}}"#))
    });
    let disk = ["truncated", "checksum", "garbled", "io", "full", "read_only", "busy", "unavailable"]
        .map(|k| format!(r#"dime_cache_disk_errors_total{{kind="{k}"}}"#));
    for value in expected.into_iter().map(str::to_owned).chain(fetch).chain(disk) {
        assert!(values.contains(&value), "{value} is not exported");
    }
}

#[test]
fn fixed_vocabularies_are_shown_at_zero_from_the_start() {
    let text = String::from_utf8(Metrics::new().unwrap().render()).unwrap();
    assert!(text.contains(r#"dime_config_reloads_total{result="failed"} 0"#));
    assert!(text.contains(r#"dime_cache_disk_errors_total{kind="unavailable"} 0"#));
    assert!(text.contains(r#"dime_build_info{version=""#));
}
