//! The route table (`watch.rs`, `compile.rs`): compilations, the table served (its version, routes and when it
//! was published), the ConfigMaps accepted and rejected.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter, counter_vec, float_gauge, gauge_vec};
use crate::compile::RejectReason;

/// `dime_control_compiles_total`, `dime_control_table_*` and `dime_control_configmap*`.
#[derive(Debug)]
pub struct TableMetrics {
    /// `dime_control_compiles_total`.
    pub compiles: IntCounter,
    info: IntGaugeVec,
    routes: IntGaugeVec,
    /// `dime_control_table_published_timestamp_seconds`.
    pub published_time: Gauge,
    configmaps: IntGaugeVec,
    configmap_rejected: IntGaugeVec,
    rejections: IntCounterVec,
}

impl TableMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(TableMetrics {
            compiles: counter(r, "dime_control_compiles_total", "Route table compilations.")?,
            info: gauge_vec(r, "dime_control_table_info", "The route table served (value 1).", &["version"])?,
            routes: gauge_vec(
                r,
                "dime_control_table_routes",
                "Routes in the served table, by protocol.",
                &["protocol"],
            )?,
            published_time: float_gauge(
                r,
                "dime_control_table_published_timestamp_seconds",
                "When the served table's version was first published (Unix time).",
            )?,
            configmaps: gauge_vec(
                r,
                "dime_control_configmaps",
                "Route ConfigMaps seen, by state (accepted, rejected).",
                &["state"],
            )?,
            configmap_rejected: gauge_vec(
                r,
                "dime_control_configmap_rejected",
                "1 for each ConfigMap left out of the table, with why (invalid, conflict).",
                &["namespace", "name", "reason"],
            )?,
            rejections: counter_vec(
                r,
                "dime_control_configmap_rejections_total",
                "ConfigMap versions rejected (counted when a rejection appears or changes).",
                &["reason"],
            )?,
        })
    }

    /// `dime_control_table_info{version}`: the table served is this version (the only series, value 1).
    pub fn set_info(&self, version: &str) {
        self.info.reset();
        self.info.with_label_values(&[version]).set(1);
    }

    /// `dime_control_table_routes{protocol}`.
    pub fn routes(&self, protocol: Protocol) -> IntGauge {
        self.routes.with_label_values(&[protocol.as_str()])
    }

    /// `dime_control_configmaps{state}`.
    pub fn configmaps(&self, state: ConfigMapState) -> IntGauge {
        self.configmaps.with_label_values(&[state.as_str()])
    }

    /// `dime_control_configmap_rejected{namespace, name, reason}`: one series per ConfigMap rejected now (value 1),
    /// so an alert can name it.
    pub fn configmap_rejected(&self, namespace: &str, name: &str, reason: RejectReason) -> IntGauge {
        self.configmap_rejected.with_label_values(&[namespace, name, reason.as_str()])
    }

    /// Forgets every `dime_control_configmap_rejected` series (before a compilation sets those rejected now).
    pub fn clear_configmap_rejected(&self) {
        self.configmap_rejected.reset();
    }

    /// `dime_control_configmap_rejections_total{reason}`.
    pub fn rejections(&self, reason: RejectReason) -> IntCounter {
        self.rejections.with_label_values(&[reason.as_str()])
    }
}

/// The routes of a table, by protocol: the `protocol` label of `dime_control_table_routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Http, Protocol::Tcp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What became of a route ConfigMap in the last compilation: the `state` label of `dime_control_configmaps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMapState {
    Accepted,
    Rejected,
}

impl ConfigMapState {
    pub const ALL: [ConfigMapState; 2] = [ConfigMapState::Accepted, ConfigMapState::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            ConfigMapState::Accepted => "accepted",
            ConfigMapState::Rejected => "rejected",
        }
    }
}
