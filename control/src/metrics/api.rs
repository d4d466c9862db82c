//! The edges' API (`serve.rs`): requests for the table by status code, the long-polls waiting, and the listener's
//! accept errors and refused connections.

use http::StatusCode;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge};

/// `dime_control_requests_total`, `dime_control_long_polls`, `dime_control_accept_errors_total`,
/// `dime_control_connections_refused_total`, `dime_control_identity_refusals_total`,
/// `dime_control_shared_token_requests_total`.
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
    identity_refusals: IntCounterVec,
    /// `dime_control_shared_token_requests_total`: requests with an old shared edge token (read-only).
    pub shared_token_requests: IntCounter,
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
            identity_refusals: counter_vec(
                r,
                "dime_control_identity_refusals_total",
                "Edge requests refused for who they claim to be: another-edge (a credential with another edge's name), bad-name, unknown-token.",
                &["reason"],
            )?,
            shared_token_requests: counter(
                r,
                "dime_control_shared_token_requests_total",
                "Requests with an old shared edge token (--token-file): served read-only; move the edge to its own credential.",
            )?,
        })
    }

    /// `dime_control_identity_refusals_total{reason}`.
    pub fn identity_refused(&self, reason: IdentityRefusal) -> IntCounter {
        self.identity_refusals.with_label_values(&[reason.as_str()])
    }

    /// `dime_control_requests_total{code}`.
    pub fn requests(&self, code: StatusCode) -> IntCounter {
        self.requests.with_label_values(&[code.as_str()])
    }
}

/// Why an edge request was refused for who it claims to be (`dime_control_identity_refusals_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRefusal {
    /// An edge's credential with another edge's name.
    AnotherEdge,
    /// A name that cannot be an edge's.
    BadName,
    /// A bearer token that is no edge's credential (nor a shared or purge token).
    UnknownToken,
}

impl IdentityRefusal {
    pub const ALL: [IdentityRefusal; 3] =
        [IdentityRefusal::AnotherEdge, IdentityRefusal::BadName, IdentityRefusal::UnknownToken];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityRefusal::AnotherEdge => "another-edge",
            IdentityRefusal::BadName => "bad-name",
            IdentityRefusal::UnknownToken => "unknown-token",
        }
    }
}
