//! Prometheus metrics of dime-control, all prefixed `dime_control_`, served on `/metrics`.
//!
//! The same shape as the edge's: one family per area, each in its own file below and registering its own
//! metrics: [`kube`] (the watches), [`table`] (compilations, the table served, rejected ConfigMaps), [`api`] (the
//! edges' API and its listener), [`fleet`] (the edges' Leases), [`purge`] (the fleet's purges). [`Metrics`] holds
//! one of each: `metrics.table`. A metric with labels is reached through a method of its family named like it,
//! whose parameters are its labels in order and typed (`metrics.fleet.edges(EdgeState::Stale)`); a metric without
//! labels is a public field.

pub mod api;
pub mod fleet;
pub mod kube;
pub mod purge;
pub mod table;

use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric dime-control exports, by area.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub kube: kube::KubeMetrics,
    pub table: table::TableMetrics,
    pub api: api::ApiMetrics,
    pub fleet: fleet::FleetMetrics,
    pub purge: purge::PurgeMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Metrics {
            kube: kube::KubeMetrics::register(&r)?,
            table: table::TableMetrics::register(&r)?,
            api: api::ApiMetrics::register(&r)?,
            fleet: fleet::FleetMetrics::register(&r)?,
            purge: purge::PurgeMetrics::register(&r)?,
            registry: r,
        })
    }

    /// The exposition in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
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

#[cfg(test)]
mod tests;
