//! Prometheus metrics of the edge, all prefixed `dime_`. One registry per process, served on the admin
//! listener's `/metrics`.
//!
//! One family per component, each in its own file below and registering its own metrics: [`http`], [`cache`],
//! [`memory`] and [`disk`] (the tiers), [`live`], [`purge`], [`fleet`], [`upstream`], [`tcp`], [`tls`],
//! [`signed`], [`config`] (the route table), [`process`]. [`Metrics`] holds one of each: `metrics.cache`.
//!
//! A metric with labels is reached through a method of its family named like it, whose parameters are its labels
//! in order and typed: an enum for a fixed vocabulary (`metrics.cache.requests(route, Outcome::Hit)`), `&str` for
//! free text (a route, an upstream, a certificate). A wrong label value or order does not compile. The method
//! returns the labelled child, looked up as `with_label_values` does; callers that count often on one child keep
//! it (TCP connections do). A metric without labels is a public field. What the status page reads back, the
//! families answer too (`metrics.cache.hits_and_lookups()`), so it names no label either.

pub mod cache;
pub mod config;
pub mod disk;
pub mod fleet;
pub mod http;
pub mod live;
pub mod memory;
pub mod process;
pub mod purge;
pub mod signed;
pub mod tcp;
pub mod tls;
pub mod upstream;

use std::collections::{BTreeMap, HashMap};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request duration buckets: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The label every per-route metric has: the route's name in the table.
const ROUTE: &str = "route";

/// Every metric the edge exports, by component.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http: http::HttpMetrics,
    pub cache: cache::CacheMetrics,
    /// The memory tier's (`--cache-size`).
    pub memory: memory::MemoryMetrics,
    /// The disk tier's (`--cache-dir`).
    pub disk: disk::DiskMetrics,
    pub live: live::LiveMetrics,
    pub purge: purge::PurgeMetrics,
    pub fleet: fleet::FleetMetrics,
    pub upstream: upstream::UpstreamMetrics,
    pub tcp: tcp::TcpMetrics,
    pub tls: tls::TlsMetrics,
    pub signed: signed::SignedMetrics,
    pub config: config::ConfigMetrics,
    pub process: process::ProcessMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Metrics {
            http: http::HttpMetrics::register(&r)?,
            cache: cache::CacheMetrics::register(&r)?,
            memory: memory::MemoryMetrics::register(&r)?,
            disk: disk::DiskMetrics::register(&r)?,
            live: live::LiveMetrics::register(&r)?,
            purge: purge::PurgeMetrics::register(&r)?,
            fleet: fleet::FleetMetrics::register(&r)?,
            upstream: upstream::UpstreamMetrics::register(&r)?,
            tcp: tcp::TcpMetrics::register(&r)?,
            tls: tls::TlsMetrics::register(&r)?,
            signed: signed::SignedMetrics::register(&r)?,
            config: config::ConfigMetrics::register(&r)?,
            process: process::ProcessMetrics::register(&r)?,
            registry: r,
        })
    }

    /// The exposition in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// The result of something tried once and counted by result: `ok` or `failed` (route table loads, certificate
/// reloads, ACME orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Ok,
    Failed,
}

impl Attempt {
    pub const ALL: [Attempt; 2] = [Attempt::Ok, Attempt::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Attempt::Ok => "ok",
            Attempt::Failed => "failed",
        }
    }
}

// Registration, for the families.

fn add<T: Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are static and unique, so registration cannot collide; a failure would only drop one metric.
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    Ok(add(r, IntCounter::new(name, help)?))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    Ok(add(r, IntCounterVec::new(Opts::new(name, help), labels)?))
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    Ok(add(r, IntGauge::new(name, help)?))
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
    Ok(add(r, IntGaugeVec::new(Opts::new(name, help), labels)?))
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
    Ok(add(r, Gauge::new(name, help)?))
}

fn float_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
    Ok(add(r, GaugeVec::new(Opts::new(name, help), labels)?))
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, prometheus::Error> {
    Ok(add(r, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?))
}

// Reading back, for the families' answers to the status page (counters and gauges).

/// Every series of a metric: its labels and value.
fn series(metric: &dyn Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for family in metric.collect() {
        let counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
        for m in family.get_metric() {
            let labels = m.get_label().iter().map(|l| (l.name().to_owned(), l.value().to_owned())).collect();
            let value = if counter { m.get_counter().get_value() } else { m.get_gauge().get_value() };
            out.push((labels, value));
        }
    }
    out
}

/// The sum of the series whose labels `keep` accepts.
fn sum(metric: &dyn Collector, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    series(metric).into_iter().filter(|(l, _)| keep(l)).map(|(_, v)| v).sum()
}

/// The series `keep` accepts, summed per route (one pass over the metric).
fn per_route(metric: &dyn Collector, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (mut labels, value) in series(metric).into_iter().filter(|(l, _)| keep(l)) {
        if let Some(route) = labels.remove(ROUTE) {
            *out.entry(route).or_insert(0.0) += value;
        }
    }
    out
}

#[cfg(test)]
mod tests;
