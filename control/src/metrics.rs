//! Prometheus metrics of dime-control, all prefixed `dime_control_`, served on `/metrics`.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// 1 while the watches see the Kubernetes API, 0 from a watch error until the next successful event.
    pub api_up: IntGauge,
    pub watch_errors: IntCounter,
    /// 1 once every watch completed its first full list.
    pub synced: IntGauge,
    pub compiles: IntCounter,
    pub table_info: IntGaugeVec,
    pub table_routes: IntGaugeVec,
    pub table_published_time: Gauge,
    pub configmaps: IntGaugeVec,
    /// One series per ConfigMap currently rejected (value 1), so an alert can name it.
    pub configmap_rejected: IntGaugeVec,
    pub rejections: IntCounterVec,
    pub events_failed: IntCounter,
    pub requests: IntCounterVec,
    pub long_polls: IntGauge,
    /// Edges by state against the table served now: current, stale, refusing, gone.
    pub edges: IntGaugeVec,
    /// `POST /v1/purge` requests by result: accepted, invalid, unauthorized, unavailable.
    pub purge_requests: IntCounterVec,
    /// From a purge accepted by this replica to its acknowledgement by the last live edge.
    pub purge_ack_seconds: Histogram,
    /// Purges in the log now.
    pub purge_log_entries: IntGauge,
    /// Accepts of the API's listener that failed (out of descriptors, aborted connections).
    pub accept_errors: IntCounter,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Metrics {
            api_up: register(
                &r,
                IntGauge::with_opts(opts(
                    "dime_control_kube_api_up",
                    "1 while the ConfigMap and Service watches reach the Kubernetes API, 0 after a watch error.",
                ))?,
            ),
            watch_errors: register(
                &r,
                IntCounter::with_opts(opts("dime_control_watch_errors_total", "Errors of the Kubernetes watches."))?,
            ),
            synced: register(
                &r,
                IntGauge::with_opts(opts(
                    "dime_control_synced",
                    "1 once every watch completed its first full list (the table may be served).",
                ))?,
            ),
            compiles: register(
                &r,
                IntCounter::with_opts(opts("dime_control_compiles_total", "Route table compilations."))?,
            ),
            table_info: register(
                &r,
                IntGaugeVec::new(opts("dime_control_table_info", "The route table served (value 1)."), &["version"])?,
            ),
            table_routes: register(
                &r,
                IntGaugeVec::new(
                    opts("dime_control_table_routes", "Routes in the served table, by protocol."),
                    &["protocol"],
                )?,
            ),
            table_published_time: register(
                &r,
                Gauge::with_opts(opts(
                    "dime_control_table_published_timestamp_seconds",
                    "When the served table's version was first published (Unix time).",
                ))?,
            ),
            configmaps: register(
                &r,
                IntGaugeVec::new(
                    opts("dime_control_configmaps", "Route ConfigMaps seen, by state (accepted, rejected)."),
                    &["state"],
                )?,
            ),
            configmap_rejected: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "dime_control_configmap_rejected",
                        "1 for each ConfigMap left out of the table, with why (invalid, conflict).",
                    ),
                    &["namespace", "name", "reason"],
                )?,
            ),
            rejections: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "dime_control_configmap_rejections_total",
                        "ConfigMap versions rejected (counted when a rejection appears or changes).",
                    ),
                    &["reason"],
                )?,
            ),
            events_failed: register(
                &r,
                IntCounter::with_opts(opts(
                    "dime_control_event_failures_total",
                    "Kubernetes Events that could not be created.",
                ))?,
            ),
            requests: register(
                &r,
                IntCounterVec::new(
                    opts("dime_control_requests_total", "Requests to /v1/routes, by status code."),
                    &["code"],
                )?,
            ),
            long_polls: register(
                &r,
                IntGauge::with_opts(opts("dime_control_long_polls", "Edges waiting on a long-poll now."))?,
            ),
            edges: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "dime_control_edges",
                        "Edges with a Lease, by state against the table served now (current, stale, refusing, gone).",
                    ),
                    &["state"],
                )?,
            ),
            purge_requests: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "dime_control_purge_requests_total",
                        "POST /v1/purge requests by result (accepted, invalid, unauthorized, unavailable).",
                    ),
                    &["result"],
                )?,
            ),
            purge_ack_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "dime_control_purge_ack_seconds",
                        "From a purge accepted by this replica to its acknowledgement by the last live edge.",
                    )
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                )?,
            ),
            purge_log_entries: register(
                &r,
                IntGauge::with_opts(opts("dime_control_purge_log_entries", "Purges held in the purge log now."))?,
            ),
            accept_errors: register(
                &r,
                IntCounter::with_opts(opts(
                    "dime_control_accept_errors_total",
                    "Accepts of the API listener that failed (e.g. out of file descriptors); it accepts again.",
                ))?,
            ),
            connections_refused: register(
                &r,
                IntCounter::with_opts(opts(
                    "dime_control_connections_refused_total",
                    "API connections closed at once because --max-connections were open.",
                ))?,
            ),
            registry: r,
        })
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
