//! A request's end (Pingora's `logging` phase, however the request ended): its metrics and its access line.

use pingora_core::Error;
use pingora_proxy::Session;

use super::gate::{client_ip, request_host};
use super::{DimeProxy, RequestCtx};
use crate::metrics::status_class;

/// Counts the request (by route, method and status class; bytes; cache-lock waits) and writes its access line.
pub(super) fn record(proxy: &DimeProxy, session: &mut Session, e: Option<&Error>, ctx: &RequestCtx) {
    let direct = ctx.direct.as_ref();
    let status = session.response_written().map(|r| r.status.as_u16()).or(direct.map(|d| d.status)).unwrap_or(0);
    let route = ctx.route_name();
    let method = crate::metrics::method_label(&session.req_header().method);
    let elapsed = ctx.start.elapsed();
    let m = &proxy.state.metrics;
    m.requests.with_label_values(&[route, method, status_class(status)]).inc();
    m.request_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    let sent = session.as_downstream().body_bytes_sent() + direct.map_or(0, |d| d.body_bytes);
    let read = session.as_downstream().body_bytes_read();
    if ctx.from_peer {
        m.peer_served_bytes.inc_by(sent as u64);
    } else {
        m.response_bytes.with_label_values(&[route]).inc_by(sent as u64);
    }
    m.request_bytes.with_label_values(&[route]).inc_by(read as u64);
    if ctx.origin_bytes > 0 {
        m.origin_bytes.with_label_values(&[route]).inc_by(ctx.origin_bytes);
    }
    if let Some(waited) = session.cache.lock_duration() {
        m.cache_lock_waits.with_label_values(&[route]).inc();
        m.cache_lock_wait_duration.with_label_values(&[route]).observe(waited.as_secs_f64());
    }
    if proxy.settings.access_log {
        let req = session.req_header();
        let direct_error = direct.and_then(|d| d.error.as_ref());
        let error: Option<&dyn std::fmt::Display> = match (e, direct_error) {
            (Some(e), _) => Some(e),
            (None, Some(d)) => Some(d),
            (None, None) => None,
        };
        let line = crate::access::Line {
            client: client_ip(session),
            method: req.method.as_str(),
            host: request_host(req),
            path: &req.uri,
            status,
            route,
            upstream: ctx.upstream_name(),
            server: ctx.endpoint.as_ref().map(|e| e.addr),
            bytes: sent,
            duration: elapsed,
            error,
        };
        crate::access::log(proxy.settings.log_format, &line);
    }
}
