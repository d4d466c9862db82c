//! The fleet tier (`fleet.rs`, `service/tier.rs`): requests between edges, by direction and result; the time to
//! the owner's answer; bytes served to other edges; the ring's size.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge, histogram_vec, LATENCY_BUCKETS, ROUTE};

/// `dime_peer_*` and `dime_fleet_members`.
#[derive(Debug)]
pub struct FleetMetrics {
    requests: IntCounterVec,
    fetch_duration: HistogramVec,
    /// `dime_peer_served_bytes_total`.
    pub served_bytes: IntCounter,
    /// `dime_fleet_members`.
    pub members: IntGauge,
}

impl FleetMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(FleetMetrics {
            requests: counter_vec(
                r,
                "dime_peer_requests_total",
                "Fleet tier requests: sent to the owner edge (result ok, connect_failed, error) and served to other \
                 edges (fetched, unauthorized, forbidden, behind).",
                &["direction", "result"],
            )?,
            fetch_duration: histogram_vec(
                r,
                "dime_peer_fetch_duration_seconds",
                "Fleet tier: time from choosing the owner edge to its response header, by route.",
                &[ROUTE],
                LATENCY_BUCKETS,
            )?,
            served_bytes: counter(
                r,
                "dime_peer_served_bytes_total",
                "Response body bytes this edge sent to other edges of the fleet (not counted as sent to clients).",
            )?,
            members: gauge(r, "dime_fleet_members", "Edges on this edge's ring (itself included; 0 without a fleet).")?,
        })
    }

    /// `dime_peer_requests_total{direction="sent", result}`: a request this edge sent to the owner of a key.
    pub fn sent(&self, result: Sent) -> IntCounter {
        self.requests.with_label_values(&["sent", result.as_str()])
    }

    /// `dime_peer_requests_total{direction="served", result}`: a request another edge sent to this one.
    pub fn served(&self, result: Served) -> IntCounter {
        self.requests.with_label_values(&["served", result.as_str()])
    }

    /// `dime_peer_fetch_duration_seconds{route}`.
    pub fn fetch_duration(&self, route: &str) -> Histogram {
        self.fetch_duration.with_label_values(&[route])
    }
}

/// How a request sent to the owner edge fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Its answer, with the owner's mark.
    Ok,
    /// The connection to the owner failed.
    ConnectFailed,
    /// The answer broke, or came without the owner's mark.
    Error,
    /// The owner refused it (its refusal header).
    Refused,
    /// The owner had not applied a fleet purge this edge had (it answered "behind", or its answer did not cover
    /// the purges applied here): fetched from the origin instead.
    Behind,
    /// The owner's origin failed it (`504 origin`, `503 origin`): asked of the origin once by this edge.
    OriginFailed,
}

impl Sent {
    pub const ALL: [Sent; 6] =
        [Sent::Ok, Sent::ConnectFailed, Sent::Error, Sent::Refused, Sent::Behind, Sent::OriginFailed];

    pub fn as_str(self) -> &'static str {
        match self {
            Sent::Ok => "ok",
            Sent::ConnectFailed => "connect_failed",
            Sent::Error => "error",
            Sent::Refused => "refused",
            Sent::Behind => "behind",
            Sent::OriginFailed => "origin_failed",
        }
    }
}

/// How this edge answered a request from another edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Fetched from the origin for it.
    Fetched,
    /// Refused with 401: no peer token.
    Unauthorized,
    /// Refused with 403: a wrong peer token.
    Forbidden,
    /// Refused with 503: the asking edge applied a fleet purge this one has not yet (the purge fence).
    Behind,
}

impl Served {
    pub const ALL: [Served; 4] = [Served::Fetched, Served::Unauthorized, Served::Forbidden, Served::Behind];

    pub fn as_str(self) -> &'static str {
        match self {
            Served::Fetched => "fetched",
            Served::Unauthorized => "unauthorized",
            Served::Forbidden => "forbidden",
            Served::Behind => "behind",
        }
    }
}
