//! Direct hits: a plain GET for a fresh, large cached object, answered from `request_filter` with the body sent by
//! `sendfile` from its file ([`crate::zerocopy`]), before Pingora's cache phases run.
//!
//! Only the simplest case qualifies, and everything else falls through to Pingora's hit path, which answers it the
//! same way with a copy: GET over plain-text HTTP/1.1, no `Range` and no conditional header, a complete object that
//! is fresh, status 200, no `Vary`, body in a file. The answer carries what a Pingora hit carries: the stored
//! header, `Age`, `Content-Length`, `Date`, `Connection`, and `Cache-Status`; it is counted as a hit and as an access
//! for eviction, and logged like any request.

use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use http::header;
use pingora_cache::eviction::{CacheEntryKey, EvictionManager};
use pingora_cache::key::CacheHashKey;
use pingora_core::protocols::http::date::get_cached_date;
use pingora_core::Result;
use pingora_proxy::Session;

use super::{DimeProxy, RequestCtx};
use crate::cache::policy;
use crate::cache::request::CacheCtx;
use crate::cache::status::{self, Outcome};
use crate::cache::storage::Object;

/// How long a client may leave its receive window shut before a direct send gives up and closes the connection.
const SEND_IDLE: Duration = Duration::from_secs(60);

/// What a direct answer sent, for the access log and metrics.
#[derive(Debug)]
pub(super) struct Direct {
    pub status: u16,
    pub body_bytes: usize,
    pub error: Option<String>,
}

/// Request headers that need Pingora's hit path (ranges, validators).
const NEEDS_HIT_PATH: &[header::HeaderName] = &[
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
];

/// Answers the request directly when it qualifies; `Ok(false)` leaves it to the normal phases (with the cache key,
/// when it was computed, kept in `ctx` for `cache_key_callback`).
pub(super) async fn serve(proxy: &DimeProxy, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let Some(policy) = ctx.cache_policy() else { return Ok(false) };
    let req = session.req_header();
    if req.method != http::Method::GET || req.version != http::Version::HTTP_11 {
        return Ok(false);
    }
    let kind = policy::classify(req.uri.path());
    let key = super::cache_key(req, kind, policy.query_keys.as_deref());
    // Most hits are on small objects: the one lookup comes before the header checks.
    let object = proxy.cache.store.sendable(&key.combined_bin());
    let Some(object) = object.filter(|_| !NEEDS_HIT_PATH.iter().any(|h| req.headers.contains_key(h))) else {
        ctx.key = Some(key);
        return Ok(false);
    };
    let now = SystemTime::now();
    let meta = object.meta();
    let keepalive = session.as_downstream().as_http1().map(|v1| v1.will_keepalive());
    let head = match keepalive {
        Some(keepalive) if meta.is_fresh(now) && meta.variance().is_none() => response_head(&object, now, keepalive)?,
        _ => None,
    };
    let (Some(head), Some(file), Some(socket)) = (head, object.file(), crate::zerocopy::socket(session)) else {
        ctx.key = Some(key);
        return Ok(false);
    };

    let entry = CacheEntryKey::from_entry_id(object.compact_key().clone(), None);
    EvictionManager::access(proxy.cache.eviction, &entry, object.size(), meta.fresh_until());
    let metrics = &proxy.state.metrics;
    metrics.cache_requests.with_label_values(&[ctx.route_name(), "hit"]).inc();
    ctx.cache = Some(CacheCtx { kind: Some(kind), ..Default::default() });

    let outcome = crate::zerocopy::send(socket, &head, file, SEND_IDLE).await;
    let (sent, error) = match outcome {
        Ok(sent) => (sent, None),
        Err((e, sent)) => (sent, Some(e.to_string())),
    };
    metrics.cache_sendfile_responses.inc();
    metrics.cache_sendfile_bytes.inc_by(sent.body as u64);
    if error.is_some() {
        // Part of a response may be on the wire: the connection cannot carry another one.
        session.set_keepalive(None);
    }
    ctx.direct = Some(Direct { status: 200, body_bytes: sent.body, error });
    Ok(true)
}

/// The response head for a direct hit on `object`: what Pingora's hit path would write, or `None` when the object
/// is not one a direct hit answers.
fn response_head(object: &Object, now: SystemTime, keepalive: bool) -> Result<Option<BytesMut>> {
    let meta = object.meta();
    let stored = meta.response_header();
    if stored.status != http::StatusCode::OK || stored.headers.contains_key(header::VARY) {
        return Ok(None);
    }
    let Some(file) = object.file() else { return Ok(None) };
    let mut head = meta.response_header_copy();
    head.set_version(http::Version::HTTP_11);
    head.remove_header(&header::TRANSFER_ENCODING);
    head.insert_header(header::CONTENT_LENGTH, file.len())?;
    head.insert_header(header::AGE, meta.age().as_secs())?;
    let ttl = meta.fresh_until().duration_since(now).map_or(0, |d| d.as_secs() as i64);
    head.insert_header("cache-status", status::header_value(Outcome::Hit, Some(ttl), false, None))?;
    head.insert_header(header::DATE, get_cached_date())?;
    head.insert_header(header::CONNECTION, if keepalive { "keep-alive" } else { "close" })?;

    let mut buf = BytesMut::with_capacity(512);
    buf.put_slice(b"HTTP/1.1 200 OK\r\n");
    head.header_to_h1_wire(&mut buf);
    buf.put_slice(b"\r\n");
    Ok(Some(buf))
}
