//! A request's end (Pingora's `logging` phase, however the request ended): its metrics and its access line.

use pingora_core::Error;
use pingora_proxy::Session;

use super::gate::{client_ip, request_host};
use super::{DimeProxy, RequestCtx};

/// Counts the request (by route, method and status class; bytes; cache-lock waits) and writes its access line.
pub(super) fn record(proxy: &DimeProxy, session: &mut Session, e: Option<&Error>, ctx: &RequestCtx) {
    let direct = ctx.direct.as_ref();
    let status = session.response_written().map(|r| r.status.as_u16()).or(direct.map(|d| d.status)).unwrap_or(0);
    let route = ctx.route_name();
    let elapsed = ctx.start.elapsed();
    let m = &proxy.state.metrics;
    m.http.requests(route, &session.req_header().method, status).inc();
    m.http.duration(route).observe(elapsed.as_secs_f64());
    let sent = session.as_downstream().body_bytes_sent() + direct.map_or(0, |d| d.body_bytes);
    let read = session.as_downstream().body_bytes_read();
    if ctx.from_peer {
        m.fleet.served_bytes.inc_by(sent as u64);
    } else {
        m.http.response_bytes(route).inc_by(sent as u64);
    }
    m.http.request_bytes(route).inc_by(read as u64);
    if ctx.origin_bytes > 0 {
        m.cache.origin_bytes(route).inc_by(ctx.origin_bytes);
    }
    if let Some(waited) = session.cache.lock_duration() {
        m.cache.lock_waits(route).inc();
        m.cache.lock_wait_duration(route).observe(waited.as_secs_f64());
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
