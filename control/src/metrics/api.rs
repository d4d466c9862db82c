//! The edges' API (`serve.rs`): requests for the table by status code, the long-polls waiting, and the listener's
//! accept errors and refused connections.

use http::StatusCode;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge};

/// `dime_control_requests_total`, `dime_control_long_polls`, `dime_control_accept_errors_total`,
/// `dime_control_connections_refused_total`.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    /// `dime_control_long_polls`.
    pub long_polls: IntGauge,
    /// `dime_control_accept_errors_total`: accepts of the API's listener that failed (out of descriptors, aborted
    /// connections).
    pub accept_errors: IntCounter,
    /// `dime_control_connections_refused_total`: connections closed at once because `--max-connections` were
    /// open.
    pub connections_refused: IntCounter,
}

impl ApiMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(ApiMetrics {
            requests: counter_vec(
                r,
                "dime_control_requests_total",
                "Requests to /v1/routes, by status code.",
                &["code"],
            )?,
            long_polls: gauge(r, "dime_control_long_polls", "Edges waiting on a long-poll now.")?,
            accept_errors: counter(
                r,
                "dime_control_accept_errors_total",
                "Accepts of the API listener that failed (e.g. out of file descriptors); it accepts again.",
            )?,
            connections_refused: counter(
                r,
                "dime_control_connections_refused_total",
                "API connections closed at once because --max-connections were open.",
            )?,
        })
    }

    /// `dime_control_requests_total{code}`.
    pub fn requests(&self, code: StatusCode) -> IntCounter {
        self.requests.with_label_values(&[code.as_str()])
    }
}
