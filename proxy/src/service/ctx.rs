//! The per-request state the phases share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use pingora_cache::CacheKey;

use super::direct;
use crate::cache::policy::Kind;
use crate::cache::request::CacheCtx;
use crate::metrics::Metrics;
use crate::state::Active;
use crate::upstream::{Endpoint, Pool};

/// Per-request state. Holds the table snapshot the request was routed with, so a reload in the middle of a
/// request changes nothing for it.
#[derive(Debug)]
pub struct RequestCtx {
    // The request and its route: set by `request_filter`, read by every later phase.
    /// The route table (and its upstream pools) in service when the request arrived.
    pub(super) active: Option<Arc<Active>>,
    /// The index of the matched route in `active`'s table; `None` when the gate answered without one.
    pub(super) route: Option<usize>,
    /// The request came in on the peer listener (from another edge): never sent on to a peer.
    pub(super) from_peer: bool,

    // The cache's part of the request.
    /// What the cache phases recorded (object kind, bypass or skip reason, stored); `None` on routes that do not
    /// cache.
    pub(super) cache: Option<CacheCtx>,
    /// The object kind and cache key, when `request_filter` already computed them.
    pub(super) key: Option<(Kind, CacheKey)>,
    /// Set when `request_filter` answered a cache hit itself (see `direct`).
    pub(super) direct: Option<direct::Direct>,

    // Where the response is fetched from: a server of the route's upstream pool or, on a miss in a fleet, the
    // member that owns the key.
    /// The route's upstream pool (from `active`).
    pub(super) pool: Option<Arc<Pool>>,
    /// The pool's server address this attempt connects to; `None` while fetching from a fleet member.
    pub(super) endpoint: Option<Arc<Endpoint>>,
    /// Every address tried so far (servers and members), so a retry picks another.
    pub(super) tried: Vec<SocketAddr>,
    /// The fleet member this attempt fetches from (instead of the origin).
    pub(super) peer: Option<crate::fleet::Member>,
    /// How many of `tried` were fleet members.
    pub(super) peers_tried: usize,
    /// A member said its request to the origin failed: no other member is asked, the origin is (once).
    pub(super) tier_done: bool,
    /// The request revalidates an expired stored copy (the cache phase when it went upstream; Pingora disables
    /// the cache before `fail_to_proxy` runs).
    pub(super) revalidating: bool,
    /// The fields of the origin's `304` to a revalidation, merged into the stored header when it is stored again.
    pub(super) not_modified: Option<http::HeaderMap>,
    /// How long the member had held the object it answered with ([`dime_routes::wire::AGE_MS_HEADER`]).
    pub(super) peer_resident: Option<std::time::Duration>,
    /// The member's answer header was accepted (`upstream_response_filter`): a failure after it is a broken body.
    pub(super) peer_answered: bool,

    // Timing and metrics.
    /// When the request header was read (`new_ctx`): the start of the request's duration.
    pub(super) start: Instant,
    /// When `upstream_peer` chose this attempt's server or member: the start of the connect and peer fetch
    /// durations.
    pub(super) peer_chosen_at: Option<Instant>,
    /// When this attempt's connection was ready and the request went out: the start of the upstream response
    /// duration.
    pub(super) sent_at: Option<Instant>,
    /// Body bytes received from an origin on a caching route (counted once, at the end).
    pub(super) origin_bytes: u64,
    /// Counts the request in `dime_http_requests_in_flight` until the context is dropped.
    pub(super) _in_flight: InFlight,
}

impl RequestCtx {
    /// The route the request matched, in the table it was routed with (the one lookup of table and index).
    pub(super) fn route(&self) -> Option<&dime_routes::Route> {
        self.active.as_ref()?.table.routes().get(self.route?)
    }
    pub(super) fn route_name(&self) -> &str {
        self.route().map_or("unmatched", |r| r.name.as_str())
    }
    pub(super) fn upstream_name(&self) -> &str {
        self.pool.as_ref().map_or("-", |p| p.name())
    }
    pub(super) fn cache_policy(&self) -> Option<&dime_routes::CachePolicy> {
        self.route()?.cache.as_ref()
    }

    /// Whether the origin's cache tags are removed from this response: on a caching route, for a viewer (a peer
    /// stores and indexes them too), unless the route keeps them (`keep_tag_headers`).
    pub(super) fn strips_tags(&self) -> bool {
        !self.from_peer && self.cache_policy().is_some_and(|p| !p.keep_tag_headers)
    }

    /// Whether the origin's targeted cache-control fields (`CDN-Cache-Control`, `Dime-CDN-Cache-Control`) are
    /// removed from this response: on a caching route, for a viewer (a peer decides by them too), unless the
    /// route keeps them (`keep_cdn_cache_control`).
    pub(super) fn strips_targeted(&self) -> bool {
        !self.from_peer && self.cache_policy().is_some_and(|p| !p.keep_cdn_cache_control)
    }
}

/// Keeps `dime_http_requests_in_flight` right however the request ends.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Metrics>);

impl InFlight {
    pub(super) fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.http.in_flight.inc();
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.http.in_flight.dec();
    }
}
