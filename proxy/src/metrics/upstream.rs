//! Upstream servers (`upstream/`, the origin side of a request): connect and response times, failures, retries,
//! refusals for lack of a healthy server, each address's health, name resolution.

use std::net::SocketAddr;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec, histogram_vec, LATENCY_BUCKETS};

/// The label every upstream metric has: the upstream's name in the route table.
const UPSTREAM: &str = "upstream";

/// `dime_upstream_*`, each by upstream name.
#[derive(Debug)]
pub struct UpstreamMetrics {
    connect_duration: HistogramVec,
    response_duration: HistogramVec,
    connect_failures: IntCounterVec,
    retries: IntCounterVec,
    unavailable: IntCounterVec,
    endpoint_healthy: IntGaugeVec,
    dns_failures: IntCounterVec,
}

impl UpstreamMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(UpstreamMetrics {
            connect_duration: histogram_vec(
                r,
                "dime_upstream_connect_duration_seconds",
                "Time to open a new connection to an upstream server.",
                &[UPSTREAM],
                LATENCY_BUCKETS,
            )?,
            response_duration: histogram_vec(
                r,
                "dime_upstream_response_duration_seconds",
                "Time from sending the request upstream to its response header.",
                &[UPSTREAM],
                LATENCY_BUCKETS,
            )?,
            connect_failures: counter_vec(
                r,
                "dime_upstream_connect_failures_total",
                "Failed connection attempts to upstream servers.",
                &[UPSTREAM],
            )?,
            retries: counter_vec(
                r,
                "dime_upstream_retries_total",
                "Requests retried on another server after a connect failure.",
                &[UPSTREAM],
            )?,
            unavailable: counter_vec(
                r,
                "dime_upstream_unavailable_total",
                "Requests refused because no healthy server was left.",
                &[UPSTREAM],
            )?,
            endpoint_healthy: gauge_vec(
                r,
                "dime_upstream_endpoint_healthy",
                "1 if an upstream address is in rotation, 0 if ejected or failing its health check.",
                &[UPSTREAM, "address"],
            )?,
            dns_failures: counter_vec(
                r,
                "dime_upstream_dns_failures_total",
                "Failed resolutions of upstream server names.",
                &[UPSTREAM],
            )?,
        })
    }

    /// `dime_upstream_connect_duration_seconds{upstream}`.
    pub fn connect_duration(&self, upstream: &str) -> Histogram {
        self.connect_duration.with_label_values(&[upstream])
    }

    /// `dime_upstream_response_duration_seconds{upstream}`.
    pub fn response_duration(&self, upstream: &str) -> Histogram {
        self.response_duration.with_label_values(&[upstream])
    }

    /// `dime_upstream_connect_failures_total{upstream}`.
    pub fn connect_failures(&self, upstream: &str) -> IntCounter {
        self.connect_failures.with_label_values(&[upstream])
    }

    /// `dime_upstream_retries_total{upstream}`.
    pub fn retries(&self, upstream: &str) -> IntCounter {
        self.retries.with_label_values(&[upstream])
    }

    /// `dime_upstream_unavailable_total{upstream}`.
    pub fn unavailable(&self, upstream: &str) -> IntCounter {
        self.unavailable.with_label_values(&[upstream])
    }

    /// `dime_upstream_endpoint_healthy{upstream, address}`.
    pub fn endpoint_healthy(&self, upstream: &str, address: SocketAddr) -> IntGauge {
        self.endpoint_healthy.with_label_values(&[upstream, &address.to_string()])
    }

    /// `dime_upstream_dns_failures_total{upstream}`.
    pub fn dns_failures(&self, upstream: &str) -> IntCounter {
        self.dns_failures.with_label_values(&[upstream])
    }
}
