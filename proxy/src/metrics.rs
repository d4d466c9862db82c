//! Prometheus metrics of the edge, all prefixed `dime_`. One registry per process, served on the admin
//! listener's `/metrics`.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request duration buckets: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the edge exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub request_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub requests_in_flight: IntGauge,
    pub connections_open: IntGauge,
    pub connections: IntCounter,
    pub upstream_connect_duration: HistogramVec,
    pub upstream_response_duration: HistogramVec,
    pub upstream_connect_failures: IntCounterVec,
    pub upstream_retries: IntCounterVec,
    pub peer_requests: IntCounterVec,
    pub peer_fetch_duration: HistogramVec,
    pub origin_bytes: IntCounterVec,
    pub peer_served_bytes: IntCounter,
    pub fleet_members: IntGauge,
    pub upstream_unavailable: IntCounterVec,
    pub upstream_endpoint_healthy: IntGaugeVec,
    pub upstream_dns_failures: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub config_loaded_time: Gauge,
    pub config_age: Gauge,
    pub config_routes: IntGauge,
    pub routes_fetch_failures: IntCounterVec,
    pub routes_fetch_last_success: Gauge,
    pub routes_state_write_failures: IntCounter,
    pub build_info: GaugeVec,
    pub cache_requests: IntCounterVec,
    pub cache_lock_waits: IntCounterVec,
    pub cache_lock_wait_duration: HistogramVec,
    pub cache_origin_fetches: IntCounterVec,
    pub cache_stored_bytes: IntGauge,
    pub cache_objects: IntGauge,
    pub cache_budget_bytes: IntGauge,
    pub cache_evictions: IntCounter,
    pub cache_write_failures: IntCounter,
    pub cache_purged: IntCounterVec,
    pub purge_feed_failures: IntCounterVec,
    pub purge_applied: IntGauge,
    pub purges_applied: IntCounter,
    pub purge_gaps: IntCounter,
    pub cache_direct_responses: IntCounterVec,
    pub cache_sendfile_bytes: IntCounter,
    pub cache_live_playlists: IntCounterVec,
    pub cache_live_dropped: IntCounter,
    pub cache_live_unreadable: IntCounter,
    /// The disk tier's (`--cache-dir`).
    pub disk: DiskMetrics,
    pub downstream_closed: IntCounterVec,
    pub log_lines_dropped: IntCounter,
    pub panics: IntCounter,
    pub signed_url_rejections: IntCounterVec,
    pub tls_cert_expiry: GaugeVec,
    pub tls_reloads: IntCounterVec,
    pub acme_orders: IntCounterVec,
    pub tcp_connections: IntCounterVec,
    pub tcp_active: IntGaugeVec,
    pub tcp_refused: IntCounterVec,
    pub tcp_bytes: IntCounterVec,
    pub tcp_connect_failures: IntCounterVec,
    pub tcp_duration: HistogramVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are static and unique, so registration cannot collide; a failure would only drop one metric.
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

macro_rules! build {
    ($reg:expr, $ty:ident, $name:expr, $help:expr) => {
        register(&$reg, $ty::new($name, $help)?)
    };
    ($reg:expr, $ty:ident, $name:expr, $help:expr, $labels:expr) => {
        register(&$reg, $ty::new(Opts::new($name, $help), $labels)?)
    };
}

fn histogram(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    Ok(register(reg, HistogramVec::new(opts, labels)?))
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let m = Metrics {
            requests: build!(
                r,
                IntCounterVec,
                "dime_http_requests_total",
                "HTTP requests answered, by route, method and status class.",
                &["route", "method", "status"]
            ),
            request_duration: histogram(
                &r,
                "dime_http_request_duration_seconds",
                "Time from request start to the end of the response.",
                &["route"],
            )?,
            request_bytes: build!(
                r,
                IntCounterVec,
                "dime_http_request_body_bytes_total",
                "Request body bytes received from clients.",
                &["route"]
            ),
            response_bytes: build!(
                r,
                IntCounterVec,
                "dime_http_response_body_bytes_total",
                "Response body bytes sent to clients.",
                &["route"]
            ),
            requests_in_flight: build!(r, IntGauge, "dime_http_requests_in_flight", "Requests being processed now."),
            fleet_members: build!(
                r,
                IntGauge,
                "dime_fleet_members",
                "Edges on this edge's ring (itself included; 0 without a fleet)."
            ),
            connections_open: build!(
                r,
                IntGauge,
                "dime_http_connections_open",
                "Client connections open now on the HTTP entrypoints."
            ),
            connections: build!(
                r,
                IntCounter,
                "dime_http_connections_total",
                "Client connections accepted on the HTTP entrypoints."
            ),
            upstream_connect_duration: histogram(
                &r,
                "dime_upstream_connect_duration_seconds",
                "Time to open a new connection to an upstream server.",
                &["upstream"],
            )?,
            upstream_response_duration: histogram(
                &r,
                "dime_upstream_response_duration_seconds",
                "Time from sending the request upstream to its response header.",
                &["upstream"],
            )?,
            peer_fetch_duration: histogram(
                &r,
                "dime_peer_fetch_duration_seconds",
                "Fleet tier: time from choosing the owner edge to its response header, by route.",
                &["route"],
            )?,
            origin_bytes: build!(
                r,
                IntCounterVec,
                "dime_cache_origin_bytes_total",
                "Response body bytes fetched from origins on caching routes (not from other edges), by route.",
                &["route"]
            ),
            peer_served_bytes: build!(
                r,
                IntCounter,
                "dime_peer_served_bytes_total",
                "Response body bytes this edge sent to other edges of the fleet (not counted as sent to clients)."
            ),
            upstream_connect_failures: build!(
                r,
                IntCounterVec,
                "dime_upstream_connect_failures_total",
                "Failed connection attempts to upstream servers.",
                &["upstream"]
            ),
            upstream_retries: build!(
                r,
                IntCounterVec,
                "dime_upstream_retries_total",
                "Requests retried on another server after a connect failure.",
                &["upstream"]
            ),
            peer_requests: build!(
                r,
                IntCounterVec,
                "dime_peer_requests_total",
                "Fleet tier requests: sent to the owner edge (result ok, connect_failed, error) and served to other \
                 edges (fetched, unauthorized, forbidden).",
                &["direction", "result"]
            ),
            upstream_unavailable: build!(
                r,
                IntCounterVec,
                "dime_upstream_unavailable_total",
                "Requests refused because no healthy server was left.",
                &["upstream"]
            ),
            upstream_endpoint_healthy: build!(
                r,
                IntGaugeVec,
                "dime_upstream_endpoint_healthy",
                "1 if an upstream address is in rotation, 0 if ejected or failing its health check.",
                &["upstream", "address"]
            ),
            upstream_dns_failures: build!(
                r,
                IntCounterVec,
                "dime_upstream_dns_failures_total",
                "Failed resolutions of upstream server names.",
                &["upstream"]
            ),
            config_reloads: build!(
                r,
                IntCounterVec,
                "dime_config_reloads_total",
                "Route table loads, by result (ok or failed).",
                &["result"]
            ),
            routes_fetch_failures: build!(
                r,
                IntCounterVec,
                "dime_routes_fetch_failures_total",
                "Failed pulls of the route table from dime-control, by reason (connect, timeout, unauthorized, status, body, invalid).",
                &["reason"]
            ),
            routes_fetch_last_success: build!(
                r,
                Gauge,
                "dime_routes_fetch_last_success_timestamp_seconds",
                "When dime-control last answered a route table pull (Unix time; 0: never)."
            ),
            routes_state_write_failures: build!(
                r,
                IntCounter,
                "dime_routes_state_write_failures_total",
                "Route tables that could not be saved to --state-dir."
            ),
            config_info: build!(
                r,
                IntGaugeVec,
                "dime_config_info",
                "The active route table: 1 for its version and source.",
                &["version", "source"]
            ),
            config_loaded_time: build!(
                r,
                Gauge,
                "dime_config_loaded_timestamp_seconds",
                "Unix time the active route table was applied."
            ),
            config_age: build!(
                r,
                Gauge,
                "dime_config_age_seconds",
                "Seconds since the active route table was applied."
            ),
            config_routes: build!(r, IntGauge, "dime_config_routes", "HTTP routes in the active route table."),
            build_info: build!(r, GaugeVec, "dime_build_info", "Build information.", &["version"]),
            cache_requests: build!(
                r,
                IntCounterVec,
                "dime_cache_requests_total",
                "Requests on caching routes, by route and result (hit, stale, revalidated, miss, expired, bypass).",
                &["route", "result"]
            ),
            cache_lock_waits: build!(
                r,
                IntCounterVec,
                "dime_cache_lock_waits_total",
                "Requests that waited for another request to fetch the object.",
                &["route"]
            ),
            cache_lock_wait_duration: histogram(
                &r,
                "dime_cache_lock_wait_duration_seconds",
                "Time requests waited for another request's fetch.",
                &["route"],
            )?,
            cache_origin_fetches: build!(
                r,
                IntCounterVec,
                "dime_cache_origin_fetches_total",
                "Responses fetched from the origin on caching routes.",
                &["route"]
            ),
            cache_stored_bytes: build!(
                r,
                IntGauge,
                "dime_cache_stored_bytes",
                "Bytes held by cached objects (body, header and key)."
            ),
            cache_objects: build!(r, IntGauge, "dime_cache_objects", "Objects in the cache."),
            cache_budget_bytes: build!(
                r,
                IntGauge,
                "dime_cache_budget_bytes",
                "The cache's byte budget (--cache-size)."
            ),
            cache_evictions: build!(
                r,
                IntCounter,
                "dime_cache_evictions_total",
                "Objects evicted to stay within the budget."
            ),
            cache_write_failures: build!(
                r,
                IntCounter,
                "dime_cache_write_failures_total",
                "Objects whose fetch failed mid-body and were not stored."
            ),
            cache_purged: build!(
                r,
                IntCounterVec,
                "dime_cache_purged_total",
                "Objects removed (or made stale, soft) by purges, by what named them: url, prefix, tag, all (a purge-log gap).",
                &["kind"]
            ),
            purge_feed_failures: build!(
                r,
                IntCounterVec,
                "dime_purge_feed_failures_total",
                "Failed polls of dime-control's purge feed, by reason (connect, tls, timeout, unauthorized, status, body).",
                &["reason"]
            ),
            purge_applied: build!(
                r,
                IntGauge,
                "dime_purge_applied_seq",
                "The last fleet purge (its id in control's purge log) this edge applied; 0 before any."
            ),
            purges_applied: build!(r, IntCounter, "dime_purges_applied_total", "Fleet purges applied from control's purge log."),
            purge_gaps: build!(
                r,
                IntCounter,
                "dime_purge_gaps_total",
                "Times this edge missed purges that control's log no longer held, and so dropped its whole cache."
            ),

            cache_direct_responses: build!(
                r,
                IntCounterVec,
                "dime_cache_direct_responses_total",
                "Plain GET hits over HTTP/1.1 answered before Pingora's cache phases, by where the body came from (file: sendfile; memory).",
                &["body"]
            ),
            cache_sendfile_bytes: build!(
                r,
                IntCounter,
                "dime_cache_sendfile_bytes_total",
                "Body bytes sent with sendfile."
            ),
            cache_live_playlists: build!(
                r,
                IntCounterVec,
                "dime_cache_live_playlists_total",
                "Live playlist fetches, by how they relate to the previous fetch of the same playlist (continuous, first, gap, or what went backwards: epoch, media-sequence, discontinuity-sequence, renumbered).",
                &["continuity"]
            ),
            cache_live_dropped: build!(
                r,
                IntCounter,
                "dime_cache_live_dropped_total",
                "Cached segments (or fills of them) dropped because a fresh playlist did not vouch for them: a previous stream's bytes under a reused name."
            ),
            cache_live_unreadable: build!(
                r,
                IntCounter,
                "dime_cache_live_unreadable_total",
                "Fetched playlists that could not be read as HLS or DASH (nothing they list is vouched for)."
            ),
            log_lines_dropped: build!(
                r,
                IntCounter,
                "dime_log_lines_dropped_total",
                "Log lines dropped because the log buffer was full (the writer could not keep up with stderr)."
            ),
            panics: build!(
                r,
                IntCounter,
                "dime_panics_total",
                "Panics in the edge: each one ended what it was doing (a request's connection, or a background task). A bug: report it with the logged panic line."
            ),
            downstream_closed: build!(
                r,
                IntCounterVec,
                "dime_downstream_closed_total",
                "Downstream connections the edge closed on its own, by reason (header-timeout, keepalive-timeout, max-connections).",
                &["reason"]
            ),
            tls_cert_expiry: build!(
                r,
                GaugeVec,
                "dime_tls_certificate_expiry_timestamp_seconds",
                "When each served TLS certificate expires (Unix time), by certificate file.",
                &["cert"]
            ),
            tls_reloads: build!(
                r,
                IntCounterVec,
                "dime_tls_reloads_total",
                "TLS certificate file reloads, by result (ok, failed: the previous certificate keeps serving).",
                &["result"]
            ),
            acme_orders: build!(
                r,
                IntCounterVec,
                "dime_acme_orders_total",
                "ACME certificate orders, by domain and result (ok, failed: retried with backoff, the certificate in service keeps serving).",
                &["domain", "result"]
            ),
            signed_url_rejections: build!(
                r,
                IntCounterVec,
                "dime_signed_url_rejections_total",
                "Requests refused with 403 on routes that require signed URLs, by route and reason.",
                &["route", "reason"]
            ),
            tcp_connections: build!(
                r,
                IntCounterVec,
                "dime_tcp_connections_total",
                "TCP connections forwarded, by route.",
                &["route"]
            ),
            tcp_active: build!(
                r,
                IntGaugeVec,
                "dime_tcp_connections_active",
                "TCP connections open now, by route.",
                &["route"]
            ),
            tcp_refused: build!(
                r,
                IntCounterVec,
                "dime_tcp_refused_total",
                "TCP connections refused, by entrypoint and reason (no_route, allowlist, limit, no_upstream).",
                &["entrypoint", "reason"]
            ),
            tcp_bytes: build!(
                r,
                IntCounterVec,
                "dime_tcp_bytes_total",
                "Bytes forwarded, by route and direction (to_upstream, to_client).",
                &["route", "direction"]
            ),
            tcp_connect_failures: build!(
                r,
                IntCounterVec,
                "dime_tcp_connect_failures_total",
                "Failed connection attempts to TCP upstream servers, by route.",
                &["route"]
            ),
            tcp_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "dime_tcp_connection_duration_seconds",
                        "How long forwarded TCP connections lasted.",
                    )
                    .buckets(vec![0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0]),
                    &["route"],
                )?,
            ),
            disk: DiskMetrics::register(&r)?,
            registry: r,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        m.config_reloads.with_label_values(&["ok"]);
        m.config_reloads.with_label_values(&["failed"]);
        Ok(m)
    }

    /// The exposition in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// The disk tier's metrics (`--cache-dir`); the memory tier's are `dime_cache_stored_bytes` and its neighbours.
#[derive(Debug)]
pub struct DiskMetrics {
    pub enabled: IntGauge,
    pub budget_bytes: IntGauge,
    pub stored_bytes: IntGauge,
    pub objects: IntGauge,
    pub hits: IntCounter,
    pub writes: IntCounter,
    pub evictions: IntCounter,
    pub errors: IntCounterVec,
    pub index_load_seconds: Gauge,
}

impl DiskMetrics {
    /// The kinds `dime_cache_disk_errors_total` counts, shown at 0 from the start.
    pub const ERROR_KINDS: [&'static str; 8] =
        ["truncated", "checksum", "garbled", "io", "full", "read_only", "busy", "unavailable"];

    fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = DiskMetrics {
            enabled: build!(r, IntGauge, "dime_cache_disk_enabled", "1 while the disk tier serves and stores, 0 when off."),
            budget_bytes: build!(r, IntGauge, "dime_cache_disk_budget_bytes", "The disk tier's byte budget (--cache-disk-size)."),
            stored_bytes: build!(r, IntGauge, "dime_cache_disk_stored_bytes", "Bytes of the disk tier's object files."),
            objects: build!(r, IntGauge, "dime_cache_disk_objects", "Objects in the disk tier."),
            hits: build!(r, IntCounter, "dime_cache_disk_hits_total", "Memory misses answered from the disk tier."),
            writes: build!(r, IntCounter, "dime_cache_disk_writes_total", "Objects written to the disk tier."),
            evictions: build!(
                r,
                IntCounter,
                "dime_cache_disk_evictions_total",
                "Objects evicted from the disk tier to stay within its budget."
            ),
            errors: build!(
                r,
                IntCounterVec,
                "dime_cache_disk_errors_total",
                "Disk tier problems, by kind: truncated, checksum, garbled (damaged files, dropped and refetched), io, full, read_only (writes), busy (too many writes waiting; kept in memory only), unavailable (--cache-dir unusable at start).",
                &["kind"]
            ),
            index_load_seconds: build!(
                r,
                Gauge,
                "dime_cache_index_load_seconds",
                "How long rebuilding the disk tier's index from its files took at start."
            ),
        };
        for kind in Self::ERROR_KINDS {
            m.errors.with_label_values(&[kind]);
        }
        Ok(m)
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
