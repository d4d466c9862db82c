//! The Kubernetes watches (`watch.rs`): whether they reach the API, their errors, the first full list, the
//! Events that could not be created.

use prometheus::{IntCounter, IntGauge, Registry};

use super::{counter, gauge};

/// `dime_control_kube_api_up`, `dime_control_watch_errors_total`, `dime_control_synced`,
/// `dime_control_event_failures_total`.
#[derive(Debug)]
pub struct KubeMetrics {
    /// `dime_control_kube_api_up`: 1 while the watches see the Kubernetes API, 0 from a watch error until the next
    /// successful event.
    pub api_up: IntGauge,
    /// `dime_control_watch_errors_total`.
    pub watch_errors: IntCounter,
    /// `dime_control_synced`: 1 once every watch completed its first full list.
    pub synced: IntGauge,
    /// `dime_control_event_failures_total`.
    pub events_failed: IntCounter,
}

impl KubeMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(KubeMetrics {
            api_up: gauge(
                r,
                "dime_control_kube_api_up",
                "1 while the ConfigMap and Service watches reach the Kubernetes API, 0 after a watch error.",
            )?,
            watch_errors: counter(r, "dime_control_watch_errors_total", "Errors of the Kubernetes watches.")?,
            synced: gauge(
                r,
                "dime_control_synced",
                "1 once every watch completed its first full list (the table may be served).",
            )?,
            events_failed: counter(
                r,
                "dime_control_event_failures_total",
                "Kubernetes Events that could not be created.",
            )?,
        })
    }
}
