//! What the proxy answers itself, before any origin is involved: ACME HTTP-01 tokens, redirects to HTTPS,
//! signed-URL checks, plain-text error answers; and the forwarding headers the origin is sent.

use std::net::IpAddr;

use bytes::Bytes;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

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

pub(super) async fn respond_with(session: &mut Session, status: u16, content_type: &str, body: String) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
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
    let client = client.map(|ip| ip.to_string()).unwrap_or_default();
    let xff = match req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) if trusted && !prior.is_empty() => format!("{prior}, {client}"),
        _ => client,
    };
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

/// The signed-URL check of a route that requires one.
pub(super) fn check_signed(
    keys: &crate::signed::Keys,
    signed: &dime_routes::SignedUrls,
    session: &Session,
) -> std::result::Result<(), crate::signed::Reject> {
    let req = session.req_header();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    crate::signed::verify(keys, signed, req.uri.path(), req.uri.query(), client_ip(session), now)
}
