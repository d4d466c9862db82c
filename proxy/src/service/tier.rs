//! The fleet tier on the request path ([`crate::fleet`]): which member a cache miss is fetched from, how the
//! request to it is marked and authenticated, and what the owner removes before it asks the origin.

use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::{DimeProxy, RequestCtx};
use crate::cache::policy::Kind;
use crate::fleet::{Fleet, Member};
use crate::metrics::fleet::Sent;
use dime_routes::wire::{OWNER_HEADER, PEER_HEADER, PEER_REFUSED_HEADER as REFUSED_HEADER};

/// The member to fetch this request from instead of the origin, if any: only a cache miss on a caching route
/// (GET or HEAD), never for a request that came from a peer (no second hop), skipping members this request
/// already failed on; `None` when this edge owns the key.
pub(super) fn target(
    proxy: &DimeProxy,
    session: &Session,
    ctx: &RequestCtx,
) -> Option<(Member, std::sync::Arc<Fleet>)> {
    let fleet = proxy.fleet.as_ref()?;
    let route = ctx.route()?;
    if ctx.from_peer || route.cache.is_none() || !session.cache.enabled() {
        return None;
    }
    // A member already said the origin failed it, or the members' share of the attempts is spent: the origin.
    if ctx.tier_done || ctx.peers_tried >= dime_routes::wire::MAX_PEER_ATTEMPTS {
        return None;
    }
    let only = match &route.tier {
        dime_routes::Tier::Off => return None,
        dime_routes::Tier::Fleet => None,
        dime_routes::Tier::Shield(names) => Some(names.as_slice()),
    };
    let key = session.cache.cache_key().primary_key_str()?;
    // Invalidated here lately (an unsafe request): the owner's copy may predate the change; the origin.
    if proxy.cache.invalidated_at(key).is_some() {
        return None;
    }
    let kind = ctx.cache.as_ref().and_then(|c| c.kind).unwrap_or(Kind::Other);
    // A segment its playlist lists from another directory: the playlist's ring key, learnt from the playlist.
    let stream = (kind == Kind::Segment).then(|| proxy.cache.store.stream_of(key)).flatten();
    let ring = stream.as_deref().unwrap_or_else(|| ring_key(key, kind));
    fleet.ask_for(ring.as_bytes(), &ctx.tried, only).map(|m| (m, fleet.clone()))
}

/// What the ring hashes for an object: its cache key; for a live playlist or segment, the key up to the last `/`
/// of the path, so that a stream's playlists and segments have one owner. The owner then fetches every playlist
/// from the origin before any edge can learn a segment name from it, and judges it first (`cache::live`): a
/// segment it fills for another edge was never created before its own playlist listed it, so no later playlist
/// drops it (with a segment on another owner than its playlist, that owner would drop and fetch it again). A
/// segment in a sub-directory of its playlist (`seg/0.ts`) takes the playlist's key instead, once this edge has
/// read that playlist ([`crate::cache::live::index::LiveIndex::stream_of`]).
fn ring_key(key: &str, kind: Kind) -> &str {
    match kind {
        Kind::Playlist | Kind::Segment => crate::cache::live::index::stream_key(key),
        Kind::Other => key,
    }
}

/// The connection to `member`'s peer listener: plain HTTP on the overlay, connecting within the fleet's
/// `--peer-timeout`; reading for the route's read timeout plus [`dime_routes::wire::PEER_READ_MARGIN`] (the owner
/// may itself be waiting on the origin, and must give up on it first).
pub(super) fn peer(member: &Member, fleet: &Fleet, read_timeout: Option<std::time::Duration>) -> HttpPeer {
    let mut peer = HttpPeer::new(member.addr, false, String::new());
    peer.options.connection_timeout = Some(fleet.timeout);
    peer.options.total_connection_timeout = Some(fleet.timeout);
    peer.options.read_timeout = read_timeout;
    peer
}

/// Marks a request to `member`: this edge's name (so the owner never sends it on to another peer) and its proof
/// of that name ([`Fleet::proof`]: a signature of the request for that member, or a static fleet's token), in
/// headers of their own (the viewer's `Authorization`, if any, goes on to the origin untouched). Nothing may
/// change the request after this: the owner checks the signature against what it receives.
pub(super) fn mark(upstream_request: &mut RequestHeader, fleet: &Fleet, member: &Member) -> pingora_core::Result<()> {
    upstream_request.insert_header(PEER_HEADER, fleet.me.as_str())?;
    let host = upstream_request.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let target = upstream_request.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = upstream_request.method.as_str();
    for (name, value) in fleet.proof(method, host, target, member, dime_routes::clock::unix_now()) {
        upstream_request.insert_header(name, value)?;
    }
    if let Some(cursor) = fleet.required() {
        upstream_request.insert_header(dime_routes::wire::PURGE_CURSOR_HEADER, cursor.header_value())?;
    }
    Ok(())
}

/// Every `x-dime-*` header of a request to an origin or a peer goes ([`dime_routes::wire::INTERNAL_PREFIX`]): a
/// peer's name and token are the fleet's business, not the origin's, and a viewer's are nobody's. The edge's own
/// marks for a peer are added after this ([`mark`]).
pub(super) fn strip_request(upstream_request: &mut RequestHeader) {
    for name in internal_names(&upstream_request.headers) {
        tracing::debug!(header = %name, "removed an x-dime-* header from the request before the upstream");
        upstream_request.remove_header(&name);
    }
}

/// Every `x-dime-*` header of a response goes: an origin's before the cache stores it or a viewer or a peer sees
/// it (an origin cannot answer as an edge would), a peer's once [`check_answer`] has read its marks.
pub(super) fn strip_response(response: &mut pingora_http::ResponseHeader) {
    for name in internal_names(&response.headers) {
        response.remove_header(&name);
    }
}

/// The `x-dime-*` names among `headers` (no allocation when there are none, the usual case).
fn internal_names(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    headers.keys().filter(|n| dime_routes::wire::is_internal(n.as_str())).cloned().collect()
}

/// The owner's answer, checked before anything uses it. A refusal of its gate or its own failure (marked
/// [`REFUSED_HEADER`]: no table, no route, not our token, its origin unreachable), or an answer without the mark
/// of the member asked ([`OWNER_HEADER`]: not a Dime edge at that address, or another one than listed), is that
/// member's failure: counted, the member charged, and an error that Pingora retries (the next member or the
/// origin), so nothing of it is stored or reaches the viewer. `None` for an answer of the owner (its cache's or
/// its origin's, whatever the status), with the mark removed.
pub(super) fn check_answer(
    proxy: &DimeProxy,
    upstream_response: &mut pingora_http::ResponseHeader,
    ctx: &mut RequestCtx,
) -> Option<Box<pingora_core::Error>> {
    let (member, fleet) = (ctx.peer.as_ref()?, proxy.fleet.as_ref()?);
    let refused = upstream_response.headers.get(REFUSED_HEADER).map(|v| v.to_str().unwrap_or_default().to_owned());
    let marked = upstream_response.headers.get(OWNER_HEADER).is_some_and(|v| v.as_bytes() == member.name.as_bytes());
    let (result, why) = match refused {
        Some(status) => {
            let says = |word: &str| status.split_whitespace().any(|w| w == word);
            let result = if says(dime_routes::wire::PEER_REFUSED_ORIGIN) {
                Sent::OriginFailed
            } else if says(dime_routes::wire::PEER_REFUSED_BEHIND) {
                Sent::Behind
            } else {
                Sent::Refused
            };
            // The owner's origin failed it, or the owner has not applied a purge yet: asking another member would
            // ask the origin again or meet the same; this edge asks the origin itself, once.
            if result != Sent::Refused {
                ctx.tier_done = true;
            }
            (result, format!("peer {} refused ({status})", member.name))
        }
        // The owner's answer must cover every purge this edge applied or is applying by now (the request said
        // what it had then; a purge may have come since): else it may be a copy a purge removed.
        None if marked && !covers_now(upstream_response, fleet) => {
            ctx.tier_done = true;
            (Sent::Behind, format!("peer {} answered from behind this edge's purges", member.name))
        }
        None if marked => {
            upstream_response.remove_header(OWNER_HEADER);
            let held = upstream_response.headers.get(dime_routes::wire::AGE_MS_HEADER);
            ctx.peer_resident = held.and_then(|v| v.to_str().ok()?.trim().parse().ok()).map(Duration::from_millis);
            return None;
        }
        None => {
            let status = upstream_response.status.as_u16();
            (Sent::Error, format!("peer {} answered {status} without its mark (not that Dime edge)", member.name))
        }
    };
    proxy.state.metrics.fleet.sent(result).inc();
    // The origin failed the owner, or the owner has not applied a purge yet: not a fault of the owner's, so it
    // is not charged (three such answers would eject a healthy owner).
    if !ctx.tier_done && fleet.record_failure(member.addr) {
        tracing::warn!(peer = member.name, reason = why, "peer ejected: its answers cannot be used");
    }
    // Taken: the error below is this member's, already counted (`error_while_proxy` sees no peer).
    ctx.peer = None;
    let mut e = pingora_core::Error::explain(pingora_core::ErrorType::HTTPStatus(502), why);
    e.set_retry(true);
    Some(e)
}

/// On the owner: whether the asking edge has applied a fleet purge this edge has not (its
/// [`dime_routes::wire::PURGE_CURSOR_HEADER`] ahead of this edge's purge position): then this edge answers
/// "behind" and the asking edge fetches from the origin, never a copy this edge still has of a purged object.
pub(super) fn behind_asker(req: &RequestHeader, proxy: &DimeProxy) -> bool {
    let Some(fleet) = &proxy.fleet else { return false };
    let asked = req.headers.get(dime_routes::wire::PURGE_CURSOR_HEADER).and_then(|v| v.to_str().ok());
    asked.and_then(dime_routes::wire::Cursor::from_header).is_some_and(|c| fleet.behind(&c))
}

/// On the owner: marks an answer to a peer with this edge's name ([`OWNER_HEADER`]) and the fleet purges it had
/// applied ([`dime_routes::wire::PURGE_CURSOR_HEADER`]).
pub(super) fn vouch(resp: &mut pingora_http::ResponseHeader, proxy: &DimeProxy) -> pingora_core::Result<()> {
    let Some(fleet) = &proxy.fleet else { return Ok(()) };
    resp.insert_header(OWNER_HEADER, fleet.me.as_str())?;
    if let Some(cursor) = fleet.purged() {
        resp.insert_header(dime_routes::wire::PURGE_CURSOR_HEADER, cursor.header_value())?;
    }
    Ok(())
}

/// Whether an owner's answer covers every purge this edge applied or is applying (nothing to cover: yes).
fn covers_now(resp: &pingora_http::ResponseHeader, fleet: &Fleet) -> bool {
    let Some(required) = fleet.required() else { return true };
    let echoed = resp.headers.get(dime_routes::wire::PURGE_CURSOR_HEADER).and_then(|v| v.to_str().ok());
    dime_routes::wire::Cursor::covers(echoed.and_then(dime_routes::wire::Cursor::from_header).as_ref(), &required)
}

/// The connection to the owner failed: counted, the member charged; true if this attempt was to a peer.
pub(super) fn unreachable(proxy: &DimeProxy, ctx: &mut RequestCtx, e: &pingora_core::Error) -> bool {
    let (Some(member), Some(fleet)) = (ctx.peer.take(), proxy.fleet.as_ref()) else { return false };
    proxy.state.metrics.fleet.sent(Sent::ConnectFailed).inc();
    if fleet.record_failure(member.addr) {
        tracing::warn!(peer = member.name, address = %member.addr, "peer ejected after repeated failures");
    }
    tracing::debug!(peer = member.name, error = %e, "peer unreachable; trying the next member or the origin");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owners_answer_must_cover_the_purges_applied_or_being_applied_here() {
        use dime_routes::wire::{Cursor, PURGE_CURSOR_HEADER};
        let settings = crate::fleet::FleetSettings {
            name: "a".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: "http://127.0.0.1:1".into(),
            members: Vec::new(),
            token_file: None,
            timeout: std::time::Duration::from_millis(200),
        };
        let fleet = Fleet::new(&settings, crate::fleet::PeerAuth::Shared(Vec::new()));
        let answer = |echo: Option<&str>| {
            let mut resp = pingora_http::ResponseHeader::build(200, None).unwrap();
            if let Some(e) = echo {
                resp.insert_header(PURGE_CURSOR_HEADER, e).unwrap();
            }
            resp
        };
        assert!(covers_now(&answer(None), &fleet), "this edge follows no purge log: nothing to cover");
        fleet.set_purged(Cursor { log: String::new(), applied: 0 });
        assert!(covers_now(&answer(None), &fleet), "control has no purge log yet: nothing to cover");
        assert!(!fleet.behind(&Cursor { log: "L".into(), applied: 0 }), "nor to be behind of (a log of nothing)");
        let at = |applied| Cursor { log: "L".into(), applied };
        fleet.set_purged(at(4));
        assert!(covers_now(&answer(Some("L 4")), &fleet));
        assert!(!covers_now(&answer(Some("L 3")), &fleet), "the owner is behind");
        assert!(!covers_now(&answer(None), &fleet), "an owner that says nothing covers nothing");
        // A purge arrives while the request is on its way: the answer must cover it, though the request did not.
        fleet.set_purging(at(5));
        assert!(!covers_now(&answer(Some("L 4")), &fleet));
        assert_eq!(fleet.required(), Some(at(5)));
        fleet.set_purged(at(5));
        assert!(covers_now(&answer(Some("L 5")), &fleet));
        assert!(fleet.behind(&at(6)) && !fleet.behind(&at(5)));
    }

    #[test]
    fn a_streams_playlist_and_segments_share_one_owner() {
        let key = |path: &str| format!("live.test\n{path}");
        let (playlist, segment) = (key("/hls/stream.m3u8"), key("/hls/stream-8.ts?v=1"));
        assert_eq!(ring_key(&playlist, Kind::Playlist), "live.test\n/hls/");
        assert_eq!(ring_key(&segment, Kind::Segment), "live.test\n/hls/");
        assert_eq!(ring_key(&key("/a/b.bin"), Kind::Other), key("/a/b.bin"));
        assert_eq!(ring_key(&key("/dash/s/a.m4s?x=/y"), Kind::Segment), "live.test\n/dash/s/");
    }
}
