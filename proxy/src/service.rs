//! The HTTP proxy: Pingora's `ProxyHttp` phases, each kept thin. Decisions live elsewhere and are pure where they
//! can be: the gate in [`gate::admit`], cache rules in `cache::policy::decide`, server choice in the upstream
//! pool; this file wires them into a request's life.
//!
//! The phases in the order Pingora calls them for one request (each one's doc says what it returns); the ones
//! Dime does not override (`early_request_filter`, `cache_hit_filter`, `cache_miss`, `proxy_upstream_filter`,
//! the body and trailer filters of the response to the client) keep Pingora's defaults:
//!
//! 1. `new_ctx` — the per-request state.
//! 2. `request_filter` — the gate, then direct hits; may answer the request (then straight to 15).
//! 3. `request_cache_filter` — on caching routes, turns Pingora's cache on (GET and HEAD).
//! 4. `cache_key_callback` — the object's key; then Pingora looks it up (a fresh hit skips to 11).
//! 5. `should_serve_stale` — a stale hit: whether it is served while another request refreshes it (asked again
//!    before 14 when the origin failed).
//! 6. `upstream_peer` — the server to connect to (again for each retry).
//! 7. `connected_to_upstream` / `fail_to_connect` — connection outcome (health, retries: back to 6).
//! 8. `upstream_request_filter` — forwarding headers on the request to the origin.
//! 9. `upstream_response_filter` — the origin (or the owner edge) answered (health, timings).
//! 10. `response_cache_filter` and `cache_vary_filter` — whether and how the response is stored
//!     (`cache_vary_filter` also at 4, to look up the request's variant).
//! 11. `response_filter` — HSTS and `Cache-Status` on what goes to the client (hits and fetches).
//! 12. `upstream_response_body_filter` — bytes from an origin counted, per chunk.
//! 13. `error_while_proxy` — an error after the connection (retries: back to 6).
//! 14. `fail_to_proxy` — the request failed for good: the error response.
//! 15. `logging` — metrics and the access line, once per request however it ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::IpNet;
use pingora_cache::key::HashBinary;
use pingora_cache::{CacheKey, CacheMeta, CacheOptionOverrides, NoCacheReason, RespCacheable};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::cache::policy::{self, Decision, Kind};
use crate::cache::request::{cache_status, policy_response, stored_header, CacheCtx};
use crate::cache::{key, Cache};
use crate::metrics::fleet::{Sent, Served};
use crate::state::State;

mod direct;
mod done;
mod gate;
mod invalidate;
mod tier;
pub use gate::set_forwarded_headers;
use gate::{client_ip, is_tls, request_host, respond, Admit, Arrival, Sender};

/// How many times a request waiting for another request's fetch may wait again (each lock timeout hands the fetch
/// to one waiter); after that it fetches uncached.
const MAX_LOCK_RETRIES: usize = 8;

/// Settings the proxy needs on every request.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Port of the first HTTPS entrypoint, for redirects (omitted from the URL when 443).
    pub https_port: Option<u16>,
    pub trusted_proxies: Vec<IpNet>,
    pub access_log: bool,
    /// How access lines are written (the same as the other log lines).
    pub log_format: crate::config::LogFormat,
    pub retries: usize,
    /// `--upstream-idle-timeout`: how long an idle upstream connection is kept for reuse.
    pub upstream_idle: Duration,
    /// `--keepalive-timeout`, for Pingora's wait between requests on a kept-alive connection.
    pub keepalive_secs: u64,
}

#[derive(Debug, Clone)]
pub struct DimeProxy {
    pub state: Arc<State>,
    pub settings: ProxySettings,
    pub cache: Arc<Cache>,
    /// Signed-URL keys held by this edge (`--signing-keys`).
    pub keys: Arc<crate::signed::Keys>,
    /// ACME HTTP-01 tokens on offer.
    pub challenges: Arc<crate::acme::Challenges>,
    /// The other edges (`--peers`), when this edge is part of a fleet.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// This instance serves the peer listener: requests come from other edges.
    pub peer_listener: bool,
}

mod ctx;
mod failure;
use ctx::InFlight;
pub use ctx::RequestCtx;

#[async_trait]
impl ProxyHttp for DimeProxy {
    type CTX = RequestCtx;

    /// Phase 1: the per-request state, once the request header is read.
    fn new_ctx(&self) -> Self::CTX {
        crate::downstream::request_started();
        RequestCtx {
            active: None,
            route: None,
            from_peer: false,
            cache: None,
            key: None,
            direct: None,
            pool: None,
            endpoint: None,
            tried: Vec::new(),
            peer: None,
            peers_tried: 0,
            tier_done: false,
            revalidating: false,
            not_modified: None,
            peer_resident: None,
            peer_answered: false,
            start: Instant::now(),
            peer_chosen_at: None,
            sent_at: None,
            origin_bytes: 0,
            _in_flight: InFlight::new(&self.state.metrics),
        }
    }

    /// Phase 2, once per request: the path read once, as its route wants it read ([`gate::normalize_path`]:
    /// `400` for one that does not read), the gate ([`gate::admit`]: ACME token, table, route, HTTPS redirect, signed URL), then, on a caching
    /// route, a direct hit ([`direct::serve`]). `Ok(true)`: answered here, Pingora
    /// goes straight to `logging` (15); `Ok(false)`: on to the cache phases and the origin.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        if session.get_keepalive().is_some_and(|t| t != self.settings.keepalive_secs) {
            // Only where the connection is kept alive at all (a client's `Connection: close` stays).
            session.set_keepalive(Some(self.settings.keepalive_secs));
        }
        let active = self.state.current();
        let table = active.as_ref().map(|a| &a.table);
        // One reading of the path, before anything looks at it (docs/edge.md, "How the edge reads a path"): the
        // route, the gate's checks, the cache and ring keys and the origin all see the same normalized path, read
        // with the table the gate then uses (a route's `allow_encoded_slash`).
        if let Err(e) = gate::normalize_path(session.req_header_mut(), table) {
            gate::refuse(session, 400, format!("bad request path: {e}\n"), self.peer_listener).await?;
            return Ok(true);
        }
        let sender = match (&self.fleet, self.peer_listener) {
            (Some(fleet), true) => {
                Sender::Peer(gate::peer_token(session.req_header(), fleet, dime_routes::clock::unix_now()))
            }
            _ => Sender::Viewer,
        };
        ctx.from_peer = self.peer_listener;
        let arrival = Arrival::of(session, sender);
        let admit = gate::admit(&arrival, table, &self.challenges, &self.keys, dime_routes::clock::unix_now);
        ctx.route = admit.route();
        ctx.active = active;
        match admit {
            Admit::Route(_) if ctx.from_peer && tier::behind_asker(session.req_header(), self) => {
                // The purge fence: the asking edge applied a purge this edge has not; it goes to the origin.
                self.state.metrics.fleet.served(Served::Behind).inc();
                let body = "503 from peer listener: a fleet purge you applied is not applied here yet\n".to_owned();
                gate::refuse_peer_with(session, 503, dime_routes::wire::PEER_REFUSED_BEHIND, body).await?;
                Ok(true)
            }
            Admit::Route(_) => {
                let upstream = ctx.route().map(|r| r.upstream.as_str()).unwrap_or_default();
                ctx.pool = ctx.active.as_ref().and_then(|a| a.pools.get(upstream).cloned());
                if ctx.cache_policy().is_some() {
                    return direct::serve(self, session, ctx).await;
                }
                Ok(false)
            }
            Admit::Challenge(answer) => {
                gate::respond_with(session, 200, "application/octet-stream", answer).await?;
                Ok(true)
            }
            Admit::NoTable => {
                gate::refuse(session, 503, "dime-edge has no route table yet\n".into(), self.peer_listener).await?;
                Ok(true)
            }
            Admit::NoRoute => {
                let req = session.req_header();
                let body = format!("no route for host `{}` and path `{}`\n", request_host(req), req.uri.path());
                gate::refuse(session, 404, body, self.peer_listener).await?;
                Ok(true)
            }
            Admit::RedirectToHttps(_) => {
                gate::redirect_to_https(session, self.settings.https_port).await?;
                Ok(true)
            }
            Admit::PeerRefused(status) => {
                let result = if status == 401 { Served::Unauthorized } else { Served::Forbidden };
                self.state.metrics.fleet.served(result).inc();
                let body = "dime-edge peer listener: the request does not prove which fleet edge sent it\n".to_owned();
                gate::refuse(session, status, body, true).await?;
                Ok(true)
            }
            Admit::Forbidden(_, reason) => {
                // Refused before the cache or the origin is touched.
                self.state.metrics.signed.rejections(ctx.route_name(), reason).inc();
                respond(session, 403, format!("forbidden: signed URL {}\n", reason.as_str())).await?;
                Ok(true)
            }
        }
    }

    /// Phase 3: turns Pingora's cache on for routes that ask for it, for GET and HEAD (other methods are
    /// recorded as a bypass). Never fails.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        if ctx.cache_policy().is_none() {
            return Ok(());
        }
        let method = &session.req_header().method;
        if method != http::Method::GET && method != http::Method::HEAD {
            ctx.cache = Some(CacheCtx { bypass: Some("method"), ..Default::default() });
            return Ok(());
        }
        let c = &self.cache;
        // No reader wait timeout: waiting requests are released when the writer has the header (and then
        // stream the body) or when its lock times out, when exactly one of them takes over the fetch. Each
        // release counts as a retry; pingora's default of 2 would send the whole herd to the origin after the
        // second take-over.
        let mut overrides = CacheOptionOverrides::default();
        overrides.max_lock_retries = Some(MAX_LOCK_RETRIES);
        session.cache.enable(c.store, Some(c.eviction), None, Some(c.lock()), Some(overrides));
        session.cache.set_max_file_size_bytes(c.settings.max_object);
        let kind = match &ctx.key {
            Some((kind, _)) => *kind,
            None => policy::classify(session.req_header().uri.path()),
        };
        ctx.cache = Some(CacheCtx { kind: Some(kind), ..Default::default() });
        Ok(())
    }

    /// Phase 4: the cache key (host, path and the query parameters that matter, see `cache::key`); reuses the one
    /// `request_filter` computed for a direct-hit attempt.
    fn cache_key_callback(&self, session: &Session, ctx: &mut Self::CTX) -> Result<CacheKey> {
        if let Some((_, key)) = ctx.key.take() {
            return Ok(key);
        }
        let kind = ctx.cache.as_ref().and_then(|c| c.kind).unwrap_or(Kind::Other);
        let query_keys = ctx.cache_policy().and_then(|p| p.query_keys.as_deref());
        let req = session.req_header();
        Ok(key::cache_key(request_host(req), &req.uri, kind, query_keys))
    }

    /// Phase 5, after the lookup found a stale object (`error` is `None`), and again before `fail_to_proxy` (14)
    /// when the origin failed: whether a stale object may be served: while refreshing (within
    /// stale-while-revalidate) and when the origin fails (connection errors and 5xx, within stale-if-error);
    /// Pingora checks the windows.
    fn should_serve_stale(&self, _session: &mut Session, _ctx: &mut Self::CTX, error: Option<&Error>) -> bool {
        match error {
            None => true,
            Some(e) => {
                e.esource() == &ErrorSource::Upstream || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
            }
        }
    }

    /// Phase 6: on a cache miss in a fleet, the member that owns the key ([`tier::target`]); otherwise the next
    /// server by weight, skipping those this request already failed on. `Err` (503) when the route has no pool or
    /// no healthy server is left.
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        let Some(pool) = ctx.pool.clone() else {
            return Err(Error::explain(ErrorType::HTTPStatus(503), "route has no upstream pool"));
        };
        ctx.peer = None;
        ctx.peer_answered = false;
        ctx.peer_resident = None;
        ctx.revalidating =
            matches!(session.cache.phase(), pingora_cache::CachePhase::Stale | pingora_cache::CachePhase::Expired);
        if let Some((member, fleet)) = tier::target(self, session, ctx) {
            // Waited on for as long as the owner may take to give up on the origin and a margin: the owner says
            // the origin failed first, rather than this edge asking another member. The owner may first wait
            // on its own fill of the object (another viewer's, up to the fill lock's timeout) before it asks
            // the origin itself (connect, then read); members share the fill lock timeout.
            let owner_gives_up = self.cache.settings.lock_timeout + pool.spec.connect_timeout + pool.spec.read_timeout;
            let peer = tier::peer(&member, &fleet, Some(owner_gives_up + dime_routes::wire::PEER_READ_MARGIN));
            ctx.tried.push(member.addr);
            ctx.peers_tried += 1;
            ctx.endpoint = None;
            ctx.peer = Some(member);
            ctx.peer_chosen_at = Some(Instant::now());
            return Ok(Box::new(peer));
        }
        let Some(endpoint) = pool.select(&ctx.tried) else {
            self.state.metrics.upstream.unavailable(pool.name()).inc();
            tracing::warn!(route = ctx.route_name(), upstream = pool.name(), tried = ?ctx.tried, "no healthy upstream server");
            // The origin's failure (every server failing its checks), not this edge's: an asking edge is told
            // so (`503 origin`) and does not charge this one for it.
            let mut e =
                Error::explain(ErrorType::HTTPStatus(503), format!("no healthy server in upstream {}", pool.name()));
            e.esource = ErrorSource::Upstream;
            return Err(e);
        };
        let mut peer = match &pool.spec.tls {
            None => HttpPeer::new(endpoint.addr, false, String::new()),
            Some(tls) => {
                let sni = tls.server_name.clone().unwrap_or_else(|| pool.spec.servers[endpoint.server].host.clone());
                let mut peer = HttpPeer::new(endpoint.addr, true, sni);
                peer.options.ca = pool.ca.clone();
                peer.group_key = pool.tls_group;
                peer.options.verify_cert = tls.verify;
                peer.options.verify_hostname = tls.verify;
                peer
            }
        };
        peer.options.connection_timeout = Some(pool.spec.connect_timeout);
        peer.options.read_timeout = Some(pool.spec.read_timeout);
        peer.options.idle_timeout = Some(self.settings.upstream_idle);
        ctx.tried.push(endpoint.addr);
        ctx.endpoint = Some(endpoint);
        ctx.peer_chosen_at = Some(Instant::now());
        Ok(Box::new(peer))
    }

    /// Phase 7: a connection to the origin is ready; records how long a new one took. Never fails.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let now = Instant::now();
        if let (false, Some(chosen)) = (reused, ctx.peer_chosen_at) {
            self.state.metrics.upstream.connect_duration(ctx.upstream_name()).observe((now - chosen).as_secs_f64());
        }
        ctx.sent_at = Some(now);
        Ok(())
    }

    /// Phase 7 (on failure): counts against the server and, for idempotent requests, marks the error retryable so
    /// Pingora calls `upstream_peer` (6) again (up to `--retries`).
    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        failure::connect_failed(self, session, peer, ctx, e)
    }

    /// Phase 8: the request as the origin gets it: `X-Forwarded-For/-Proto/-Host` (kept from trusted proxies
    /// only), signed-URL parameters removed, the server's Host unless `pass_host_header`. `Err` only if a header
    /// cannot be set.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let client = client_ip(session);
        // An authenticated peer is a trusted proxy: the viewer's address it forwards is kept.
        let trusted =
            ctx.from_peer || client.is_some_and(|ip| self.settings.trusted_proxies.iter().any(|n| n.contains(&ip)));
        set_forwarded_headers(upstream_request, client, trusted, request_host(session.req_header()), is_tls(session))?;
        tier::strip_request(upstream_request);
        if let (Some(member), Some(fleet)) = (&ctx.peer, &self.fleet) {
            // To the owner: the viewer's Host (the owner routes by it), marked as a peer request and signed for it.
            return tier::mark(upstream_request, fleet, member);
        }
        // Signed-URL tokens are the edge's business, not the origin's.
        if let Some(query) = upstream_request.uri.query().filter(|q| q.contains("dime_")) {
            let path = upstream_request.uri.path();
            let uri = match crate::signed::strip(query) {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            if let Ok(uri) = uri.parse::<http::Uri>() {
                upstream_request.set_uri(uri);
            }
        }
        if let (Some(pool), Some(ep)) = (&ctx.pool, &ctx.endpoint) {
            if !pool.spec.pass_host_header {
                let server = &pool.spec.servers[ep.server];
                let host = if server.port == 80 { server.host.clone() } else { server.authority() };
                upstream_request.insert_header(http::header::HOST, host)?;
            }
        }
        Ok(())
    }

    /// Phase 9: the origin's response header arrived: the server is healthy, the origin fetch and its duration
    /// are counted. Never fails.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(ep) = &ctx.endpoint {
            ep.record_success();
        }
        if let Some(e) = tier::check_answer(self, upstream_response, ctx) {
            return Err(e);
        }
        // Before the cache stores it and anyone sees it.
        tier::strip_response(upstream_response);
        crate::cache::request::strip_connection_listed(upstream_response);
        invalidate::after_unsafe(self, session, upstream_response, ctx);
        if upstream_response.status == http::StatusCode::NOT_MODIFIED
            && session.cache.phase() == pingora_cache::CachePhase::Stale
        {
            // Pingora merges only a few of a 304's fields into the stored header; all of them are due (RFC 9111
            // §3.2, §4.3.4): kept for `response_cache_filter`, which stores the header.
            ctx.not_modified = Some(upstream_response.headers.clone());
        }
        if let (Some(member), Some(fleet)) = (&ctx.peer, &self.fleet) {
            ctx.peer_answered = true;
            fleet.record_success(member.addr);
            let m = &self.state.metrics.fleet;
            m.sent(Sent::Ok).inc();
            if let Some(chosen) = ctx.peer_chosen_at {
                m.fetch_duration(ctx.route_name()).observe(chosen.elapsed().as_secs_f64());
            }
        } else if ctx.cache.is_some() {
            self.state.metrics.cache.origin_fetches(ctx.route_name()).inc();
        }
        if ctx.from_peer {
            self.state.metrics.fleet.served(Served::Fetched).inc();
        }
        if let Some(sent) = ctx.sent_at {
            self.state.metrics.upstream.response_duration(ctx.upstream_name()).observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Phase 10: the route's cache policy ([`policy::decide`]) applied to the origin's response: `Cacheable` with
    /// its freshness windows, or `Uncacheable` with the reason (shown in `Cache-Status`).
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        let Some(policy) = ctx.cache_policy().cloned() else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let updated;
        let resp = match ctx.not_modified.take() {
            Some(fields) => {
                updated = crate::cache::request::updated_by_304(resp, &fields)?;
                &updated
            }
            None => resp,
        };
        // An answer to a request sent before the object was invalidated may predate the change: not stored.
        let primary = session.cache.cache_key().primary_key_str();
        let invalidated = primary.and_then(|p| self.cache.invalidated_at(p));
        if let (Some(at), Some(sent)) = (invalidated, ctx.sent_at) {
            if sent < at {
                ctx.cache.get_or_insert_with(CacheCtx::default).skip = Some("invalidated");
                return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom("invalidated")));
            }
        }
        let kind = ctx.cache.as_ref().and_then(|c| c.kind).unwrap_or(Kind::Other);
        let has_auth = session.req_header().headers.contains_key(http::header::AUTHORIZATION);
        let now = std::time::SystemTime::now();
        let response = policy::Response { resident: ctx.peer_resident, ..policy_response(resp) };
        let decision = policy::decide(&policy, kind, has_auth, &response, now);
        let cache_ctx = ctx.cache.get_or_insert_with(CacheCtx::default);
        match decision {
            Decision::Store { fresh, stale_while_revalidate, stale_if_error, initial_age } => {
                cache_ctx.stored = true;
                let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
                let mut meta = CacheMeta::new(
                    now + fresh,
                    now,
                    secs(stale_while_revalidate),
                    secs(stale_if_error),
                    stored_header(resp)?,
                );
                if !initial_age.is_zero() {
                    // A hit's `Age` is the age it arrived with plus the time held here (RFC 9111 §4.2.3).
                    meta.set_epoch_override(now.checked_sub(initial_age).unwrap_or(std::time::UNIX_EPOCH));
                }
                if kind == Kind::Playlist {
                    // A playlist that turns out to be VOD (`#EXT-X-ENDLIST`) is kept like a segment (cache::live).
                    let vod = policy.max_ttl.map_or(policy.segment_ttl, |m| policy.segment_ttl.min(m));
                    meta.extensions_mut().insert(crate::cache::live::index::VodTtl(vod));
                }
                Ok(RespCacheable::Cacheable(meta))
            }
            Decision::Skip(reason) => {
                cache_ctx.skip = Some(reason);
                Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)))
            }
        }
    }

    /// Phase 10 (and at the lookup, 4): objects that say `Vary: Accept-Encoding` are kept per normalized
    /// Accept-Encoding of the request; `None` (one variant) otherwise.
    fn cache_vary_filter(&self, meta: &CacheMeta, _ctx: &mut Self::CTX, req: &RequestHeader) -> Option<HashBinary> {
        key::encoding_variance(meta.headers(), &req.headers)
    }

    /// Phase 11: HSTS on TLS requests of routes that set it; cache tags removed for viewers on caching routes
    /// (kept for peers, which index them too, and with `keep_tag_headers`); on caching routes `Cache-Status` and the outcome's
    /// count ([`status::answer`], the same builder as direct hits), exposed to cross-origin pages the origin lets
    /// read ([`crate::cache::cors`]). `Err` only if a header cannot be set.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(hsts) = ctx.route().and_then(|r| r.https.hsts.as_ref()) {
            if is_tls(session) {
                resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.as_str())?;
            }
        }
        // An object stored before origins' `x-dime-*` headers were removed (a disk tier kept across an upgrade).
        tier::strip_response(resp);
        if ctx.from_peer {
            tier::vouch(resp, self)?;
            if let Some(meta) = session.cache.maybe_cache_meta() {
                resp.insert_header(dime_routes::wire::AGE_MS_HEADER, meta.age().as_millis().to_string())?;
            }
        }
        if ctx.strips_tags() {
            resp.remove_header(crate::cache::tags::SURROGATE_KEY);
            resp.remove_header(crate::cache::tags::CACHE_TAG);
        }
        if ctx.strips_targeted() {
            for name in crate::cache::request::TARGETED {
                resp.remove_header(name);
            }
        }
        let Some(cache_ctx) = &ctx.cache else { return Ok(()) };
        let value = cache_status(&session.cache, cache_ctx, &self.state.metrics, ctx.route_name());
        resp.insert_header("cache-status", value)?;
        if let Some(exposed) = crate::cache::cors::exposed(&resp.headers) {
            resp.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed)?;
        }
        Ok(())
    }

    /// Phase 12, per body chunk from upstream (after `response_filter` had the header): counts the bytes fetched
    /// from an origin on a caching route (the denominator of origin offload). Never fails, never delays.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let (Some(b), Some(_), None) = (body.as_ref(), &ctx.cache, &ctx.peer) {
            ctx.origin_bytes += b.len() as u64;
        }
        Ok(None)
    }

    /// Phase 13: an error after the connection (reading or writing the origin): counts against the server;
    /// returns the error, retryable (back to `upstream_peer`, 6) only for idempotent requests whose body is still
    /// buffered.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        failure::proxy_error(self, peer, session, e, ctx, client_reused)
    }

    /// Phase 14, when the request failed for good: the error response, as Pingora's default writes it; to a peer
    /// it is marked as this edge's own failure ([`dime_routes::wire::PEER_REFUSED_HEADER`]), so the asking edge tries the
    /// next member or the origin instead of passing it on (the origin's own error answers are not marked).
    /// Returns the status written, 0 when the client is gone.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Self::CTX) -> FailToProxy {
        failure::respond(session, e, ctx).await
    }

    /// Phase 15: metrics and the access line; called once per request however it ended (answered by the gate, a
    /// direct hit, the cache or the origin, or failed).
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        crate::downstream::request_done();
        done::record(self, session, e, ctx);
    }
}

#[cfg(test)]
mod tests;
