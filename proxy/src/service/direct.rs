//! Direct hits: a plain GET for a fresh cached object, answered from `request_filter` before Pingora's cache phases
//! run: a large body sent with `sendfile` from its file, a small one in the same `sendmsg` as the header
//! ([`crate::socket_send`]).
//!
//! Only the simplest and by far the most common case qualifies, and everything else falls through to Pingora's hit
//! path, which answers it the same way: GET over plain-text HTTP/1.1, no `Range` and no conditional header, a
//! complete object that is fresh, status 200, no `Vary`. The answer carries what a Pingora hit carries: the stored
//! header, `Age`, `Content-Length`, `Date`, `Connection`, and `Cache-Status`; it is counted as a hit and as an access
//! for eviction, and logged like any request. What it saves: Pingora's hit path copies the stored header twice,
//! runs every response phase and writes header and body in two sends.

use std::sync::Arc;
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
use crate::metrics::cache::DirectBody;
use crate::socket_send::Payload;

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
    let key = crate::cache::key::cache_key(super::request_host(req), &req.uri, kind, policy.query_keys.as_deref());
    // Most hits are on small objects: the one lookup comes before the header checks. A disk object whose body
    // the kernel no longer holds in memory goes the hit path too, which reads it without blocking the event loop.
    let object = proxy.cache.store.complete(&key.combined_bin());
    let ready = |o: &Arc<Object>| !NEEDS_HIT_PATH.iter().any(|h| req.headers.contains_key(h)) && o.sendable_now();
    let Some(object) = object.filter(ready) else {
        ctx.key = Some((kind, key));
        return Ok(false);
    };
    let now = SystemTime::now();
    let meta = object.meta();
    let keepalive = session.as_downstream().as_http1().map(|v1| v1.will_keepalive());
    let socket = crate::socket_send::socket(session);
    let head = match keepalive {
        Some(keepalive) if socket.is_some() && meta.is_fresh(now) && meta.variance().is_none() => {
            let (metrics, route) = (&proxy.state.metrics, ctx.route_name());
            let ttl = Some(status::ttl_left(meta.fresh_until(), now));
            let owner = proxy.fleet.as_ref().filter(|_| ctx.from_peer);
            let owner = owner.map(|fleet| (fleet.me.as_str(), fleet.purged().map(|c| c.header_value())));
            let cache_status = || status::answer(metrics, route, Outcome::Hit, ttl, false, None);
            response_head(&object, keepalive, owner, (ctx.strips_tags(), ctx.strips_targeted()), cache_status)
        }
        _ => None,
    };
    let (Some(head), Some(socket)) = (head, socket) else {
        ctx.key = Some((kind, key));
        return Ok(false);
    };

    if object.from_disk() {
        proxy.cache.store.disk_hit(&object);
    } else {
        let entry = CacheEntryKey::from_entry_id(object.compact_key().clone(), None);
        EvictionManager::access(proxy.cache.eviction, &entry, object.size(), meta.fresh_until());
    }
    ctx.cache = Some(CacheCtx { kind: Some(kind), ..Default::default() });

    let payload = object.payload();
    let outcome = crate::socket_send::send(socket, &head, payload, SEND_IDLE).await;
    let (sent, error) = match outcome {
        Ok(sent) => (sent, None),
        Err((e, sent)) => (sent, Some(e.to_string())),
    };
    let body = if let Payload::File(_) = payload { DirectBody::File } else { DirectBody::Memory };
    proxy.state.metrics.cache.direct_sent(body, sent.body);
    if error.is_some() {
        // Part of a response may be on the wire: the connection cannot carry another one.
        session.set_keepalive(None);
    }
    ctx.direct = Some(Direct { status: 200, body_bytes: sent.body, error });
    Ok(true)
}

/// Response headers the direct answer sets itself; the stored ones of these names are not copied. (The origin's
/// `Date` is kept: it says when the response was generated, and a hit's `Age` counts from then; RFC 9110 §6.6.1.)
static SET_HERE: [header::HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::AGE,
    header::CONNECTION,
    header::HeaderName::from_static("cache-status"),
];

/// The response head for a direct hit on `object`, written straight from the stored header (no copy of it), or
/// `None` when the object is not one a direct hit answers. `cache_status` gives the `Cache-Status` value (and
/// counts the hit), asked only once the object qualifies. `owner` is this edge's name and purge position when the
/// request came from a peer: the answer carries the marks the asking edge checks
/// ([`dime_routes::wire::OWNER_HEADER`], [`dime_routes::wire::PURGE_CURSOR_HEADER`]). `strip_tags` leaves
/// the stored cache tags out ([`RequestCtx::strips_tags`]), `strip_targeted` the targeted cache-control fields
/// ([`RequestCtx::strips_targeted`]).
fn response_head(
    object: &Object,
    keepalive: bool,
    owner: Option<(&str, Option<String>)>,
    (strip_tags, strip_targeted): (bool, bool),
    cache_status: impl FnOnce() -> String,
) -> Option<BytesMut> {
    let meta = object.meta();
    let stored = meta.response_header();
    if stored.status != http::StatusCode::OK || stored.headers.contains_key(header::VARY) {
        return None;
    }
    let mut buf = BytesMut::with_capacity(256 + stored.headers.len() * 48);
    buf.put_slice(b"HTTP/1.1 200 OK\r\n");
    let mut field = |name: &[u8], value: &[u8]| {
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(value);
        buf.put_slice(b"\r\n");
    };
    let exposed = crate::cache::cors::exposed(&stored.headers);
    for (name, value) in stored.headers.iter() {
        let tag = name == crate::cache::tags::SURROGATE_KEY || name == crate::cache::tags::CACHE_TAG;
        let replaced = exposed.is_some() && name == header::ACCESS_CONTROL_EXPOSE_HEADERS;
        let internal = dime_routes::wire::is_internal(name.as_str());
        let targeted = strip_targeted && crate::cache::request::TARGETED.contains(&name.as_str());
        if !(SET_HERE.contains(name) || strip_tags && tag || replaced || internal || targeted) {
            field(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if let Some(exposed) = &exposed {
        field(header::ACCESS_CONTROL_EXPOSE_HEADERS.as_str().as_bytes(), exposed.as_bytes());
    }
    field(b"content-length", object.body_len().to_string().as_bytes());
    field(b"age", meta.age().as_secs().to_string().as_bytes());
    field(b"cache-status", cache_status().as_bytes());
    if !stored.headers.contains_key(header::DATE) {
        field(b"date", get_cached_date().as_bytes());
    }
    field(b"connection", if keepalive { b"keep-alive" } else { b"close" });
    if let Some((owner, purged)) = owner {
        field(dime_routes::wire::OWNER_HEADER.as_bytes(), owner.as_bytes());
        field(dime_routes::wire::AGE_MS_HEADER.as_bytes(), meta.age().as_millis().to_string().as_bytes());
        if let Some(purged) = purged {
            field(dime_routes::wire::PURGE_CURSOR_HEADER.as_bytes(), purged.as_bytes());
        }
    }
    buf.put_slice(b"\r\n");
    Some(buf)
}
