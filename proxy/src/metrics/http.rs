//! The HTTP entrypoints: requests by route, method and status class, their durations and body bytes, requests in
//! flight, client connections and the ones the edge closed on its own.

use std::collections::HashMap;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge, histogram_vec, per_route, sum, LATENCY_BUCKETS, ROUTE};

/// `dime_http_*` and `dime_downstream_closed_total`.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    /// `dime_http_requests_in_flight`.
    pub in_flight: IntGauge,
    /// `dime_http_connections_open` (the shutdown drain waits on it).
    pub connections_open: IntGauge,
    /// `dime_http_connections_total`.
    pub connections: IntCounter,
    closed: IntCounterVec,
}

impl HttpMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(HttpMetrics {
            requests: counter_vec(
                r,
                "dime_http_requests_total",
                "HTTP requests answered, by route, method and status class.",
                &[ROUTE, "method", "status"],
            )?,
            duration: histogram_vec(
                r,
                "dime_http_request_duration_seconds",
                "Time from request start to the end of the response.",
                &[ROUTE],
                LATENCY_BUCKETS,
            )?,
            request_bytes: counter_vec(
                r,
                "dime_http_request_body_bytes_total",
                "Request body bytes received from clients.",
                &[ROUTE],
            )?,
            response_bytes: counter_vec(
                r,
                "dime_http_response_body_bytes_total",
                "Response body bytes sent to clients.",
                &[ROUTE],
            )?,
            in_flight: gauge(r, "dime_http_requests_in_flight", "Requests being processed now.")?,
            connections_open: gauge(
                r,
                "dime_http_connections_open",
                "Client connections open now on the HTTP entrypoints.",
            )?,
            connections: counter(
                r,
                "dime_http_connections_total",
                "Client connections accepted on the HTTP entrypoints.",
            )?,
            closed: counter_vec(
                r,
                "dime_downstream_closed_total",
                "Downstream connections the edge closed on its own, by reason (header-timeout, keepalive-timeout, max-connections).",
                &["reason"],
            )?,
        })
    }

    /// `dime_http_requests_total{route, method, status}`: the method and the status reduced to a bounded set
    /// ([`method_label`], [`status_class`]).
    pub fn requests(&self, route: &str, method: &http::Method, status: u16) -> IntCounter {
        self.requests.with_label_values(&[route, method_label(method), status_class(status)])
    }

    /// `dime_http_request_duration_seconds{route}`.
    pub fn duration(&self, route: &str) -> Histogram {
        self.duration.with_label_values(&[route])
    }

    /// `dime_http_request_body_bytes_total{route}`.
    pub fn request_bytes(&self, route: &str) -> IntCounter {
        self.request_bytes.with_label_values(&[route])
    }

    /// `dime_http_response_body_bytes_total{route}`.
    pub fn response_bytes(&self, route: &str) -> IntCounter {
        self.response_bytes.with_label_values(&[route])
    }

    /// `dime_downstream_closed_total{reason}`.
    pub fn closed(&self, reason: Closed) -> IntCounter {
        self.closed.with_label_values(&[reason.as_str()])
    }

    /// Every request answered so far, all routes.
    pub fn requests_total(&self) -> f64 {
        sum(&self.requests, |_| true)
    }

    /// Requests answered so far, per route.
    pub fn requests_by_route(&self) -> HashMap<String, f64> {
        per_route(&self.requests, |_| true)
    }

    /// Response body bytes sent to clients so far, per route.
    pub fn response_bytes_by_route(&self) -> HashMap<String, f64> {
        per_route(&self.response_bytes, |_| true)
    }
}

/// Why the edge closed a client connection on its own: the `reason` of `dime_downstream_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No complete request header within `--header-timeout`.
    HeaderTimeout,
    /// Idle between requests for `--keepalive-timeout`.
    KeepaliveTimeout,
    /// Refused at accept: `--max-connections` were open.
    MaxConnections,
}

impl Closed {
    pub const ALL: [Closed; 3] = [Closed::HeaderTimeout, Closed::KeepaliveTimeout, Closed::MaxConnections];

    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header-timeout",
            Closed::KeepaliveTimeout => "keepalive-timeout",
            Closed::MaxConnections => "max-connections",
        }
    }
}

/// `200` → `2xx`: status classes keep the label set small.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The `method` label of a request: the common methods by name, the rest `OTHER` (bounded label values).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        _ => "OTHER",
    }
}
