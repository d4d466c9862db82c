//! The cache's part of a request: what the proxy phases record about it, the inputs the policy needs from a
//! response, the header stored with an object, and how the outcome is reported.

use pingora_cache::CachePhase;
use pingora_core::Result;
use pingora_http::ResponseHeader;

use super::policy::{self, Directives, Kind};
use super::status::Outcome;

/// Per-request cache state, present when the route caches.
#[derive(Debug, Default)]
pub struct CacheCtx {
    /// What the object is (playlist, segment, ...), for the policy and the key; `None` when the cache is bypassed.
    pub kind: Option<Kind>,
    /// Why the cache was not used for this request (e.g. `method`).
    pub bypass: Option<&'static str>,
    /// Why the fetched response is not stored.
    pub skip: Option<&'static str>,
    /// The policy stored the fetched response (`response_cache_filter`).
    pub stored: bool,
}

/// RFC 9213 targeted cache-control fields Dime obeys, the most specific first: `Dime-CDN-Cache-Control` (for
/// Dime alone), then `CDN-Cache-Control` (for every CDN).
pub const TARGETED: [&str; 2] = ["dime-cdn-cache-control", "cdn-cache-control"];

/// The first targeted field (in [`TARGETED`] order) the response carries with a value: its directives.
fn targeted(resp: &ResponseHeader) -> Option<Directives> {
    TARGETED.iter().find_map(|name| {
        let values: Vec<&str> = resp.headers.get_all(*name).iter().filter_map(|v| v.to_str().ok()).collect();
        values.iter().any(|v| !v.trim().is_empty()).then(|| Directives::parse(values.into_iter()))
    })
}

/// The pieces of a response the cache policy looks at. A targeted field (RFC 9213) replaces `Cache-Control`
/// and `Expires` for the edge's decisions: an origin can say `Cache-Control: no-store` to browsers and
/// `CDN-Cache-Control: max-age=600` to the edge.
pub fn policy_response(resp: &ResponseHeader) -> policy::Response<'_> {
    let text = |name: http::header::HeaderName| resp.headers.get(name).and_then(|v| v.to_str().ok());
    let targeted = targeted(resp);
    let has_targeted = targeted.is_some();
    policy::Response {
        status: resp.status.as_u16(),
        cache_control: targeted.unwrap_or_else(|| {
            Directives::parse(resp.headers.get_all(http::header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()))
        }),
        expires: if has_targeted { None } else { text(http::header::EXPIRES) },
        date: text(http::header::DATE),
        age: text(http::header::AGE),
        resident: None,
        has_validator: resp.headers.contains_key(http::header::ETAG)
            || resp.headers.contains_key(http::header::LAST_MODIFIED),
        set_cookie: resp.headers.contains_key(http::header::SET_COOKIE),
        vary: text(http::header::VARY),
    }
}

/// The header kept with a cached object: the origin's, without hop-by-hop fields, and without the record of the
/// origin's header-name case (HTTP field names are case-insensitive). Every hit clones this header twice, so
/// keeping it lean is measurable on small objects.
/// The stored header updated by a `304`'s fields (RFC 9111 §3.2): every field the 304 carries replaces the
/// stored field of that name (`Date`, `Age`, `Cache-Control`, `Expires`, `ETag`, `Last-Modified`, targeted fields,
/// the origin's own), except those that describe the stored body or the hop (`Content-Length`,
/// `Content-Encoding`, `Content-Range`, `Transfer-Encoding` and the hop-by-hop fields) and the edges' own
/// `x-dime-*`. `Vary` is kept as stored: the stored response is the variant it was.
pub fn updated_by_304(stored: &ResponseHeader, fields: &http::HeaderMap) -> Result<ResponseHeader> {
    const KEPT: &[&str] = &[
        "content-length",
        "content-encoding",
        "content-range",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "vary",
    ];
    let mut header = stored.clone();
    for name in fields.keys() {
        if KEPT.contains(&name.as_str()) || dime_routes::wire::is_internal(name.as_str()) {
            continue;
        }
        header.remove_header(name);
        for value in fields.get_all(name) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(header)
}

/// Removes the fields a response's `Connection` names (RFC 9110 §7.6.1: they are for the hop that sent it, and
/// neither stored nor forwarded; RFC 9111 §3.1). `Connection` itself is the proxy's to write.
pub fn strip_connection_listed(resp: &mut ResponseHeader) {
    let named: Vec<String> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n != "close" && n != "keep-alive" && n != "connection")
        .collect();
    for name in named {
        resp.remove_header(&name);
    }
}

pub fn stored_header(resp: &ResponseHeader) -> Result<ResponseHeader> {
    const HOP_BY_HOP: &[&str] =
        &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"];
    let mut header = ResponseHeader::build_no_case(resp.status, Some(resp.headers.len()))?;
    header.set_version(resp.version);
    for (name, value) in resp.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(header)
}

/// The `Cache-Status` of a response Pingora's cache phases handled (a hit, stale, revalidated or fetched), with
/// the hit accounting ([`super::status::answer`], shared with direct hits).
pub fn cache_status(
    cache: &pingora_cache::HttpCache,
    cache_ctx: &CacheCtx,
    metrics: &crate::metrics::Metrics,
    route: &str,
) -> String {
    let outcome = cache_outcome(cache.phase(), cache_ctx);
    let ttl = match outcome {
        Outcome::Hit | Outcome::Stale | Outcome::Revalidated => {
            cache.maybe_cache_meta().map(|m| super::status::ttl_left(m.fresh_until(), std::time::SystemTime::now()))
        }
        _ => None,
    };
    let stored = cache_ctx.stored && matches!(outcome, Outcome::Miss | Outcome::Expired);
    let detail = match outcome {
        Outcome::Stale => Some("stale"),
        _ => cache_ctx.skip,
    };
    super::status::answer(metrics, route, outcome, ttl, stored, detail)
}

/// How a request fared in the cache, for Cache-Status and metrics.
pub fn cache_outcome(phase: CachePhase, ctx: &CacheCtx) -> Outcome<'static> {
    if let Some(reason) = ctx.bypass {
        return Outcome::Bypass(reason);
    }
    match phase {
        CachePhase::Hit => Outcome::Hit,
        CachePhase::Stale | CachePhase::StaleUpdating => Outcome::Stale,
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => Outcome::Revalidated,
        CachePhase::Expired => Outcome::Expired,
        CachePhase::Miss => Outcome::Miss,
        CachePhase::Disabled(_) if ctx.skip.is_some() => Outcome::Miss,
        CachePhase::Disabled(reason) => Outcome::Bypass(reason.as_str()),
        CachePhase::Bypass | CachePhase::Uninit | CachePhase::CacheKey => Outcome::Bypass("bypass"),
    }
}
