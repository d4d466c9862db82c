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

/// The first valid targeted field (in [`TARGETED`] order) the response carries: its directives. A targeted field
/// is a Structured Fields dictionary (RFC 9213 §2.1, RFC 8941 §3.2); one that does not parse as one is ignored,
/// as if absent, and so is a directive whose value has the wrong type (`max-age="600"`).
fn targeted(resp: &ResponseHeader) -> Option<Directives> {
    TARGETED.iter().find_map(|name| {
        let values: Vec<&str> = resp.headers.get_all(*name).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() || values.len() != resp.headers.get_all(*name).iter().count() {
            return None;
        }
        let joined = values.join(",");
        let members = sf::dictionary(&joined)?;
        let mut d = Directives::default();
        for (key, value) in members {
            let flag = matches!(value, sf::Item::Bool(true) | sf::Item::String | sf::Item::Token);
            let secs = match value {
                sf::Item::Integer(n) => u64::try_from(n).ok(),
                _ => None,
            };
            match key {
                "no-store" => d.no_store |= flag,
                "no-cache" => d.no_cache |= flag,
                "private" => d.private |= flag,
                "public" => d.public |= flag,
                "must-revalidate" | "proxy-revalidate" => d.must_revalidate |= flag,
                "max-age" => d.max_age = secs.or(d.max_age),
                "s-maxage" => d.s_maxage = secs.or(d.s_maxage),
                "stale-while-revalidate" => d.stale_while_revalidate = secs.or(d.stale_while_revalidate),
                "stale-if-error" => d.stale_if_error = secs.or(d.stale_if_error),
                _ => {}
            }
        }
        Some(d)
    })
}

/// Just enough of RFC 8941 (Structured Field Values) to tell a valid dictionary from an invalid one and read
/// its bare items: written here because targeted cache-control fields are its only use in Dime, and the
/// crates that implement it whole (sfv) would add a dependency for a dozen directives.
mod sf {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Item {
        Integer(i64),
        Decimal,
        String,
        Token,
        Bytes,
        Bool(bool),
    }

    struct Input<'a> {
        s: &'a [u8],
        at: usize,
    }

    impl Input<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.at).copied()
        }
        fn skip_sp(&mut self) {
            while self.peek() == Some(b' ') {
                self.at += 1;
            }
        }
        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.at += 1;
            }
        }
    }

    /// The members of a dictionary, `None` when `text` is not one. Inner lists are not accepted (no cache
    /// directive uses one).
    pub fn dictionary(text: &str) -> Option<Vec<(&str, Item)>> {
        let mut i = Input { s: text.as_bytes(), at: 0 };
        i.skip_sp();
        let mut out = Vec::new();
        i.peek()?;
        loop {
            let key = key(&mut i, text)?;
            let value = if i.peek() == Some(b'=') {
                i.at += 1;
                bare_item(&mut i)?
            } else {
                Item::Bool(true)
            };
            parameters(&mut i, text)?;
            out.push((key, value));
            i.skip_ows();
            match i.peek() {
                None => return Some(out),
                Some(b',') => {
                    i.at += 1;
                    i.skip_ows();
                    i.peek()?;
                }
                Some(_) => return None,
            }
        }
    }

    fn key<'a>(i: &mut Input<'_>, text: &'a str) -> Option<&'a str> {
        let start = i.at;
        match i.peek() {
            Some(b'a'..=b'z' | b'*') => i.at += 1,
            _ => return None,
        }
        while matches!(i.peek(), Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')) {
            i.at += 1;
        }
        text.get(start..i.at)
    }

    fn parameters(i: &mut Input<'_>, text: &str) -> Option<()> {
        while i.peek() == Some(b';') {
            i.at += 1;
            i.skip_sp();
            key(i, text)?;
            if i.peek() == Some(b'=') {
                i.at += 1;
                bare_item(i)?;
            }
        }
        Some(())
    }

    fn bare_item(i: &mut Input<'_>) -> Option<Item> {
        match i.peek()? {
            b'-' | b'0'..=b'9' => number(i),
            b'"' => {
                i.at += 1;
                loop {
                    match i.peek()? {
                        b'\\' => {
                            i.at += 1;
                            if !matches!(i.peek()?, b'"' | b'\\') {
                                return None;
                            }
                            i.at += 1;
                        }
                        b'"' => {
                            i.at += 1;
                            return Some(Item::String);
                        }
                        0x20..=0x7e => i.at += 1,
                        _ => return None,
                    }
                }
            }
            b':' => {
                i.at += 1;
                while matches!(i.peek()?, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=') {
                    i.at += 1;
                }
                (i.peek()? == b':').then(|| i.at += 1)?;
                Some(Item::Bytes)
            }
            b'?' => {
                i.at += 1;
                let b = match i.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                i.at += 1;
                Some(Item::Bool(b))
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => {
                i.at += 1;
                while matches!(
                    i.peek(),
                    Some(
                        b'A'..=b'Z'
                        | b'a'..=b'z'
                        | b'0'..=b'9'
                        | b'!'
                        | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                        | b':'
                        | b'/',
                    )
                ) {
                    i.at += 1;
                }
                Some(Item::Token)
            }
            _ => None,
        }
    }

    fn number(i: &mut Input<'_>) -> Option<Item> {
        let negative = i.peek() == Some(b'-');
        if negative {
            i.at += 1;
        }
        let start = i.at;
        while matches!(i.peek(), Some(b'0'..=b'9')) {
            i.at += 1;
        }
        let int_digits = i.at - start;
        if int_digits == 0 {
            return None;
        }
        if i.peek() == Some(b'.') {
            i.at += 1;
            let frac = i.at;
            while matches!(i.peek(), Some(b'0'..=b'9')) {
                i.at += 1;
            }
            let frac_digits = i.at - frac;
            return (int_digits <= 12 && (1..=3).contains(&frac_digits)).then_some(Item::Decimal);
        }
        if int_digits > 15 {
            return None;
        }
        let n: i64 = std::str::from_utf8(&i.s[start..i.at]).ok()?.parse().ok()?;
        Some(Item::Integer(if negative { -n } else { n }))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dictionaries_valid_and_not() {
            assert_eq!(dictionary("max-age=600"), Some(vec![("max-age", Item::Integer(600))]));
            assert_eq!(
                dictionary("no-store, max-age=60;x=1, a=\"q,\\\"\", b=?0, c=tok/en, d=:aGk=:, e=1.5"),
                Some(vec![
                    ("no-store", Item::Bool(true)),
                    ("max-age", Item::Integer(60)),
                    ("a", Item::String),
                    ("b", Item::Bool(false)),
                    ("c", Item::Token),
                    ("d", Item::Bytes),
                    ("e", Item::Decimal),
                ])
            );
            for bad in ["", "max-age=10000, &&&&&", "Max-Age=1", "max-age=", "a=\"open", "a,", "a=(1 2)", "a b"] {
                assert_eq!(dictionary(bad), None, "{bad:?}");
            }
        }
    }
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

/// The stored header updated by a `304`'s fields (RFC 9111 §3.2): every field the 304 carries replaces the
/// stored field of that name (`Date`, `Age`, `Cache-Control`, `Expires`, `ETag`, `Last-Modified`, targeted fields,
/// the origin's own), except those that describe the stored body or the hop (`Content-Length`,
/// `Content-Encoding`, `Content-Range`, `Transfer-Encoding` and the hop-by-hop fields) and the edges' own
/// `x-dime-*`. `Vary` is kept as stored: the stored response is the variant it was. `Set-Cookie` is not taken
/// (a cookie on a 304 is for its viewer, and would make the object unstorable), nor are cache tags (the object
/// is indexed by the tags it was stored with). A 304 without `Date` dates the stored header now (RFC 9110
/// §6.6.1: it was generated now), and one without `Age` leaves none (the stored one was the old response's).
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
        "set-cookie",
        "surrogate-key",
        "cache-tag",
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
    if !fields.contains_key(http::header::DATE) {
        header.insert_header(http::header::DATE, httpdate::fmt_http_date(std::time::SystemTime::now()))?;
    }
    if !fields.contains_key(http::header::AGE) {
        header.remove_header(&http::header::AGE);
    }
    Ok(header)
}

/// Removes the fields a response's `Connection` names (RFC 9110 §7.6.1: they are for the hop that sent it, and
/// neither stored nor forwarded; RFC 9111 §3.1). `Connection` itself is the proxy's to write.
pub fn strip_connection_listed(resp: &mut ResponseHeader) {
    if resp.status.is_informational() {
        // A 101's `Connection: upgrade` names the `Upgrade` field the viewer needs (WebSocket): 1xx answers are
        // the protocol's own, not stored, and left as they are.
        return;
    }
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

/// The header kept with a cached object: the origin's, without hop-by-hop fields, and without the record of the
/// origin's header-name case (HTTP field names are case-insensitive). Every hit clones this header twice, so
/// keeping it lean is measurable on small objects.
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
