//! The failure phases' work (Pingora's `fail_to_connect`, `error_while_proxy`, `fail_to_proxy`; their docs in
//! `service.rs` say when each runs): what counts against a server or a fleet member, what is retried, and the
//! error response.

use pingora_cache::{CachePhase, NoCacheReason};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType};
use pingora_proxy::{FailToProxy, Session};

use super::{gate, tier, DimeProxy, RequestCtx};
use crate::metrics::fleet::Sent;

/// `fail_to_connect`: counts against the server (or skips an unreachable member); idempotent requests with
/// servers left are made retryable.
pub(super) fn connect_failed(
    proxy: &DimeProxy,
    session: &mut Session,
    peer: &HttpPeer,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
) -> Box<Error> {
    if tier::unreachable(proxy, ctx, &e) {
        // A peer that cannot be reached costs the viewer nothing: the next member, or the origin.
        e.set_retry(true);
        return e;
    }
    let upstream = ctx.upstream_name().to_owned();
    proxy.state.metrics.upstream.connect_failures(&upstream).inc();
    if let Some(ep) = &ctx.endpoint {
        if ep.record_failure() {
            tracing::warn!(upstream, address = %ep.addr, "upstream address ejected after repeated failures");
        }
    }
    let idempotent = session.req_header().method.is_idempotent();
    let origin_tries = ctx.tried.len() - ctx.peers_tried;
    let others_left = ctx.pool.as_ref().is_some_and(|p| p.endpoints().list.len() > origin_tries);
    if idempotent && others_left && origin_tries <= proxy.settings.retries {
        proxy.state.metrics.upstream.retries(&upstream).inc();
        tracing::debug!(upstream, peer = %peer, error = %e, "connect failed; retrying on another server");
        e.set_retry(true);
    }
    e
}

/// `error_while_proxy`: counts against the server or member; decides whether the error is retryable.
pub(super) fn proxy_error(
    proxy: &DimeProxy,
    peer: &HttpPeer,
    session: &mut Session,
    e: Box<Error>,
    ctx: &mut RequestCtx,
    client_reused: bool,
) -> Box<Error> {
    let from_peer_answer = ctx.peer.is_some();
    if let (Some(member), Some(fleet)) = (&ctx.peer, &proxy.fleet) {
        proxy.state.metrics.fleet.sent(Sent::Error).inc();
        // A body broken after the member's header was accepted (truncated, garbled): the member is skipped
        // at once, not after three such answers.
        let broken = ctx.peer_answered;
        if (broken && fleet.eject(member.addr)) || (!broken && fleet.record_failure(member.addr)) {
            tracing::warn!(peer = member.name, error = %e, "peer ejected after a failed answer");
        }
    } else if e.esource() == &ErrorSource::Upstream {
        if let Some(ep) = &ctx.endpoint {
            ep.record_failure();
        }
    }
    let mut e = e.more_context(format!("peer: {peer}"));
    let storing = fills(session);
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        e.set_retry(false);
    } else if from_peer_answer {
        // A failed owner edge costs the viewer nothing while nothing has reached it yet: the next member or
        // the origin. Once a response started, a retry would mix two answers: the error stands. A fill that
        // had begun is given up first (its lock released for the edge's other viewers): the cache takes one
        // answer per fill, and the owner's partial one is never stored.
        let unseen = session.response_written().is_none();
        if unseen && storing {
            session.cache.disable(NoCacheReason::UpstreamError);
        }
        e.set_retry(unseen);
    } else if storing {
        // The origin broke a fill off: the one answer this fill takes was begun (Pingora panics on a second).
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    e
}

/// Whether this request is filling the cache (a miss or an expired object whose answer is being stored).
/// Pingora's `miss_handler` panics in any other phase, and `error_while_proxy` runs in all of them: on a route
/// without a cache (`Disabled`) and on a bypass as well.
fn fills(session: &mut Session) -> bool {
    matches!(session.cache.phase(), CachePhase::Miss | CachePhase::Expired) && session.cache.miss_handler().is_some()
}

/// `fail_to_proxy`: writes the error response.
pub(super) async fn respond(session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    let mut code = error_status(e);
    if matches!(code, 502 | 503) && ctx.revalidating {
        // A stored copy that could not be revalidated and may not be served stale (`must-revalidate` and the
        // like, or past its stale windows): RFC 9111 §4.2.4 asks for a 504, whatever kept the origin away (it
        // refused the connection, or no server of the upstream is healthy).
        code = 504;
    }
    let written = match code {
        0 => Ok(()),
        _ if ctx.from_peer && session.response_written().is_none() && e.esource() == &ErrorSource::Upstream => {
            let body = format!("{code} from peer listener: the origin failed\n");
            gate::refuse_peer_with(session, code, dime_routes::wire::PEER_REFUSED_ORIGIN, body).await
        }
        _ if ctx.from_peer && session.response_written().is_none() => {
            gate::refuse(session, code, format!("{code} from peer listener\n"), true).await
        }
        _ => session.respond_error(code).await,
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "the error response could not be sent");
    }
    FailToProxy { error_code: code, can_reuse_downstream: false }
}
/// The status of the error response for a failed request, by Pingora's rule (its default `fail_to_proxy`, which
/// keeps it private) but for timeouts: an HTTP status error's own, 504 for an upstream that timed out, 502 for
/// the upstream's other failures, 0 when the client's connection is gone, 400 for the client's other errors, 500
/// for ours.
pub(super) fn error_status(e: &Error) -> u16 {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        // An origin that does not answer in time is a gateway timeout (as nginx answers), not a bad gateway.
        (ErrorType::ReadTimedout | ErrorType::ConnectTimedout | ErrorType::WriteTimedout, ErrorSource::Upstream) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed, ErrorSource::Downstream) => 0,
        (_, ErrorSource::Downstream) => 400,
        (_, ErrorSource::Internal | ErrorSource::Unset) => 500,
    }
}
