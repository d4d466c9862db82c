//! The gate: what the proxy answers itself, before any cache or origin is involved (ACME HTTP-01 tokens, no
//! table yet, no route, redirects to HTTPS, signed-URL refusals), decided by [`admit`] without I/O; the
//! plain-text answers; and the forwarding headers the origin is sent.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use dime_routes::RouteTable;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::signed::Reject;

/// A request as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub tls: bool,
    pub client: Option<IpAddr>,
    pub sender: Sender,
}

/// Who sent a request: a viewer (the HTTP and HTTPS entrypoints) or, on the peer listener, an edge, with what
/// its peer token was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sender {
    Viewer,
    Peer(PeerToken),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerToken {
    Missing,
    Wrong,
    Accepted,
}

impl<'a> Arrival<'a> {
    pub(super) fn of(session: &'a Session, sender: Sender) -> Self {
        let req = session.req_header();
        Arrival {
            host: request_host(req),
            path: req.uri.path(),
            query: req.uri.query(),
            tls: is_tls(session),
            client: client_ip(session),
            sender,
        }
    }
}

/// Replaces the request's path with its one reading, as the route that serves it wants it read
/// ([`RouteTable::read_path`]: dot segments resolved, unreserved characters decoded, other escapes uppercased;
/// encoded `/` and `\` refused unless that route has `allow_encoded_slash`; NUL, raw backslashes and control
/// bytes refused), the query kept as sent. Without a table, the strict reading. Nothing is copied when the path
/// is already in that form (the usual case). `Err`: the request is answered `400` with the reason.
pub(super) fn normalize_path(
    req: &mut RequestHeader,
    table: Option<&RouteTable>,
) -> std::result::Result<(), dime_routes::PathError> {
    let raw = req.uri.path();
    let normalized = match table {
        Some(table) => table.read_path(request_host(req), raw)?,
        None => dime_routes::path::normalize(raw, dime_routes::PathOptions::default())?,
    };
    if normalized.is_unchanged() {
        return Ok(());
    }
    let target = match req.uri.query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized.to_string(),
    };
    // The normalized path is made of the characters a URI path allows, so it always parses.
    if let Ok(uri) = target.parse::<http::Uri>() {
        req.set_uri(uri);
    }
    Ok(())
}

/// How a request on the peer listener identifies its sender ([`crate::fleet::Fleet::check`]: a signature by the
/// key control lists for the member it names, or a static fleet's token). A refusal is logged with the name it
/// claimed and why.
pub(super) fn peer_token(req: &RequestHeader, fleet: &crate::fleet::Fleet, now: u64) -> PeerToken {
    use dime_routes::wire;
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let peer = crate::fleet::PeerRequest {
        method: req.method.as_str(),
        host: header(http::header::HOST.as_str()).unwrap_or(""),
        target,
        sender: header(wire::PEER_HEADER),
        token: header(wire::PEER_TOKEN_HEADER),
        time: header(wire::PEER_TIME_HEADER),
        signature: header(wire::PEER_SIGNATURE_HEADER),
    };
    match fleet.check(&peer, now) {
        crate::fleet::PeerCheck::Heard => PeerToken::Accepted,
        crate::fleet::PeerCheck::Missing => PeerToken::Missing,
        crate::fleet::PeerCheck::Refused(why) => {
            let claimed: String = peer.sender.unwrap_or("").chars().take(64).collect();
            tracing::warn!(
                claimed,
                why,
                path = target,
                "peer listener: refused a request that does not prove its sender"
            );
            PeerToken::Wrong
        }
    }
}

/// What happens to a request, in the order the checks run: on the peer listener, a request without a valid peer
/// token is refused first (the peer listener is not an open proxy); an ACME token this edge offers is answered
/// (before routing and redirects, so validation works on any route); then there must be a table and a route (a
/// peer, too, gets only hosts the table routes); a route that wants HTTPS redirects plain requests from viewers;
/// a route with signed URLs refuses viewers without a valid token (a peer's request was checked by the edge the
/// viewer asked). Anything else goes on to the route (the cache and the origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admit {
    /// Proxy on the route at this index of the table.
    Route(usize),
    /// `200` with the key authorization of an ACME HTTP-01 token.
    Challenge(String),
    /// `503`: the edge has no route table yet (connections are held at start, see `downstream`).
    NoTable,
    /// `404`: no route for this host and path.
    NoRoute,
    /// `308` to the same URL over https; the route's index.
    RedirectToHttps(usize),
    /// `403`: a signed URL was required and this one is not valid; the route's index.
    Forbidden(usize, Reject),
    /// On the peer listener: `401` without a peer token, `403` with a wrong one.
    PeerRefused(u16),
}

impl Admit {
    /// The route the request was matched to, whether or not it goes on to it.
    pub(super) fn route(&self) -> Option<usize> {
        match self {
            Admit::Route(i) | Admit::RedirectToHttps(i) | Admit::Forbidden(i, _) => Some(*i),
            Admit::Challenge(_) | Admit::NoTable | Admit::NoRoute | Admit::PeerRefused(_) => None,
        }
    }
}

/// Decides what happens to `arrival` (see [`Admit`] for the order). `now` (Unix seconds) is asked only for a
/// signed-URL check.
pub(super) fn admit(
    arrival: &Arrival<'_>,
    table: Option<&RouteTable>,
    challenges: &crate::acme::Challenges,
    keys: &crate::signed::Keys,
    now: impl FnOnce() -> u64,
) -> Admit {
    match arrival.sender {
        Sender::Peer(PeerToken::Missing) => return Admit::PeerRefused(401),
        Sender::Peer(PeerToken::Wrong) => return Admit::PeerRefused(403),
        Sender::Peer(PeerToken::Accepted) | Sender::Viewer => {}
    }
    let viewer = arrival.sender == Sender::Viewer;
    if let Some(answer) = challenges.answer(arrival.path).filter(|_| viewer) {
        return Admit::Challenge(answer);
    }
    let Some(table) = table else { return Admit::NoTable };
    let Some(index) = table.find_index(arrival.host, arrival.path) else { return Admit::NoRoute };
    let route = &table.routes()[index];
    if route.https.redirect && !arrival.tls && viewer {
        return Admit::RedirectToHttps(index);
    }
    if let Some(signed) = route.signed.as_ref().filter(|_| viewer) {
        if let Err(reason) = crate::signed::verify(keys, signed, arrival.path, arrival.query, arrival.client, now()) {
            return Admit::Forbidden(index, reason);
        }
    }
    Admit::Route(index)
}

/// The Host a request asked for: the Host header, or the authority of an absolute URI / HTTP/2 `:authority`.
pub(super) fn request_host(req: &RequestHeader) -> &str {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

pub(super) fn client_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

/// Did this request come over TLS?
pub(super) fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

pub(super) async fn respond(session: &mut Session, status: u16, body: String) -> Result<()> {
    respond_with(session, status, "text/plain; charset=utf-8", body).await
}

/// A refusal of the gate (no table, no route, no peer token). To another edge it is marked
/// ([`dime_routes::wire::PEER_REFUSED_HEADER`]), so that edge knows it is this edge refusing, not the origin answering,
/// and asks the next member or the origin instead of passing the refusal to its viewer.
pub(super) async fn refuse(session: &mut Session, status: u16, body: String, to_peer: bool) -> Result<()> {
    let extra = to_peer.then(|| (dime_routes::wire::PEER_REFUSED_HEADER, status.to_string()));
    respond_full(session, status, "text/plain; charset=utf-8", body, extra).await
}

/// On the peer listener: a refusal that tells the asking edge why, in a word after the status
/// ([`dime_routes::wire::PEER_REFUSED_ORIGIN`]: this owner's origin request failed;
/// [`dime_routes::wire::PEER_REFUSED_BEHIND`]: it has not applied a fleet purge the asker has). Either way the
/// asking edge goes to the origin itself and asks no other member.
pub(super) async fn refuse_peer_with(session: &mut Session, status: u16, word: &str, body: String) -> Result<()> {
    let value = format!("{status} {word}");
    let extra = Some((dime_routes::wire::PEER_REFUSED_HEADER, value));
    respond_full(session, status, "text/plain; charset=utf-8", body, extra).await
}

pub(super) async fn respond_with(session: &mut Session, status: u16, content_type: &str, body: String) -> Result<()> {
    respond_full(session, status, content_type, body, None).await
}

async fn respond_full(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: String,
    extra: Option<(&'static str, String)>,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    if let Some((name, value)) = extra {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(http::header::CONTENT_TYPE, content_type.to_owned())?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(Bytes::from(body)), true).await?;
    }
    Ok(())
}

/// Sets X-Forwarded-For/-Proto/-Host. Values a client sent are kept (XFF appended to) only when the client is
/// a trusted proxy; anyone else could forge them.
pub fn set_forwarded_headers(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    trusted: bool,
    original_host: &str,
    tls: bool,
) -> Result<()> {
    // One string, written once: the prior list (from a trusted proxy) and the client's address.
    let mut xff = String::with_capacity(48);
    if let Some(prior) = req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        if trusted && !prior.is_empty() {
            xff.push_str(prior);
            xff.push_str(", ");
        }
    }
    if let Some(ip) = client {
        let _ = write!(xff, "{ip}");
    }
    req.insert_header("x-forwarded-for", xff)?;
    if !(trusted && req.headers.contains_key("x-forwarded-proto")) {
        req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
    }
    let keep_host = trusted && req.headers.contains_key("x-forwarded-host");
    if !keep_host && !original_host.is_empty() {
        req.insert_header("x-forwarded-host", original_host.to_owned())?;
    }
    Ok(())
}

/// 308 to the same host, path and query over https (the first HTTPS entrypoint's port, omitted when 443).
pub(super) async fn redirect_to_https(session: &mut Session, https_port: Option<u16>) -> Result<()> {
    let req = session.req_header();
    let host = dime_routes::normalize_host(request_host(req)).into_owned();
    let port = https_port.filter(|&p| p != 443).map(|p| format!(":{p}")).unwrap_or_default();
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut resp = ResponseHeader::build(308, Some(3))?;
    resp.insert_header(http::header::LOCATION, format!("https://{host}{port}{target}"))?;
    resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(resp), true).await
}

#[cfg(test)]
mod tests;
