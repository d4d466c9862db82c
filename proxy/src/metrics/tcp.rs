//! TCP routes (`tcp.rs`): connections forwarded and open, refused, bytes each way, connect failures, how long
//! connections lasted.

use std::collections::HashMap;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec, histogram_vec, per_route, ROUTE};

/// Connection durations: 100 ms to a day.
const DURATION_BUCKETS: &[f64] = &[0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0];

/// `dime_tcp_*`.
#[derive(Debug)]
pub struct TcpMetrics {
    connections: IntCounterVec,
    active: IntGaugeVec,
    refused: IntCounterVec,
    bytes: IntCounterVec,
    connect_failures: IntCounterVec,
    duration: HistogramVec,
}

impl TcpMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(TcpMetrics {
            connections: counter_vec(
                r,
                "dime_tcp_connections_total",
                "TCP connections forwarded, by route.",
                &[ROUTE],
            )?,
            active: gauge_vec(r, "dime_tcp_connections_active", "TCP connections open now, by route.", &[ROUTE])?,
            refused: counter_vec(
                r,
                "dime_tcp_refused_total",
                "TCP connections refused, by entrypoint and reason (no_route, allowlist, limit, no_upstream).",
                &["entrypoint", "reason"],
            )?,
            bytes: counter_vec(
                r,
                "dime_tcp_bytes_total",
                "Bytes forwarded, by route and direction (to_upstream, to_client).",
                &[ROUTE, "direction"],
            )?,
            connect_failures: counter_vec(
                r,
                "dime_tcp_connect_failures_total",
                "Failed connection attempts to TCP upstream servers, by route.",
                &[ROUTE],
            )?,
            duration: histogram_vec(
                r,
                "dime_tcp_connection_duration_seconds",
                "How long forwarded TCP connections lasted.",
                &[ROUTE],
                DURATION_BUCKETS,
            )?,
        })
    }

    /// `dime_tcp_connections_total{route}`.
    pub fn connections(&self, route: &str) -> IntCounter {
        self.connections.with_label_values(&[route])
    }

    /// `dime_tcp_connections_active{route}`.
    pub fn active(&self, route: &str) -> IntGauge {
        self.active.with_label_values(&[route])
    }

    /// `dime_tcp_refused_total{entrypoint, reason}`.
    pub fn refused(&self, entrypoint: &str, reason: TcpRefusal) -> IntCounter {
        self.refused.with_label_values(&[entrypoint, reason.as_str()])
    }

    /// `dime_tcp_bytes_total{route, direction}`.
    pub fn bytes(&self, route: &str, direction: TcpDirection) -> IntCounter {
        self.bytes.with_label_values(&[route, direction.as_str()])
    }

    /// `dime_tcp_connect_failures_total{route}`.
    pub fn connect_failures(&self, route: &str) -> IntCounter {
        self.connect_failures.with_label_values(&[route])
    }

    /// `dime_tcp_connection_duration_seconds{route}`.
    pub fn duration(&self, route: &str) -> Histogram {
        self.duration.with_label_values(&[route])
    }

    /// Connections open now, per route.
    pub fn active_by_route(&self) -> HashMap<String, f64> {
        per_route(&self.active, |_| true)
    }

    /// Connections forwarded so far, per route.
    pub fn connections_by_route(&self) -> HashMap<String, f64> {
        per_route(&self.connections, |_| true)
    }
}

/// Why a TCP connection was refused: the `reason` of `dime_tcp_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRefusal {
    /// The entrypoint has no route in the table in service.
    NoRoute,
    /// The client's address is not on the route's allowlist.
    Allowlist,
    /// The route's connection limit is reached.
    Limit,
    /// The route's upstream is missing, or none of its servers could be reached.
    NoUpstream,
}

impl TcpRefusal {
    pub const ALL: [TcpRefusal; 4] =
        [TcpRefusal::NoRoute, TcpRefusal::Allowlist, TcpRefusal::Limit, TcpRefusal::NoUpstream];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpRefusal::NoRoute => "no_route",
            TcpRefusal::Allowlist => "allowlist",
            TcpRefusal::Limit => "limit",
            TcpRefusal::NoUpstream => "no_upstream",
        }
    }
}

/// Which way forwarded bytes went: the `direction` of `dime_tcp_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpDirection {
    ToUpstream,
    ToClient,
}

impl TcpDirection {
    pub const ALL: [TcpDirection; 2] = [TcpDirection::ToUpstream, TcpDirection::ToClient];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpDirection::ToUpstream => "to_upstream",
            TcpDirection::ToClient => "to_client",
        }
    }
}
