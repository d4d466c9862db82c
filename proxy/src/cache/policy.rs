//! What may be stored and for how long: RFC 9111 for ordinary content, Dime's live-streaming rules for HLS and
//! DASH. Pure functions of the route policy and the response; the proxy phases only gather the inputs.

use std::time::{Duration, SystemTime};

use dime_routes::CachePolicy;

/// What a path is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.m3u8`, `.mpd`: rewritten by the origin every segment; short TTL.
    Playlist,
    /// `.ts`, `.m4s`, `.mp4`, `.m4a`, `.m4v`, `.aac`, `.vtt`, `.cmfv`, `.cmfa`: written once; long TTL.
    Segment,
    Other,
}

pub fn classify(path: &str) -> Kind {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return Kind::Other,
    };
    match ext.as_str() {
        "m3u8" | "mpd" => Kind::Playlist,
        "ts" | "m4s" | "mp4" | "m4a" | "m4v" | "aac" | "vtt" | "cmfv" | "cmfa" => Kind::Segment,
        _ => Kind::Other,
    }
}

/// The Cache-Control directives Dime acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// Whether these directives forbid serving a stale copy (`must-revalidate`, `proxy-revalidate`,
    /// `s-maxage`, `no-cache`).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.s_maxage.is_some() || self.no_cache
    }
}

impl Directives {
    /// Parses every Cache-Control header value. Unknown directives are ignored, as RFC 9111 requires; a
    /// malformed number makes its directive count as "stale now" (0), the safe reading.
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Self {
        let mut d = Directives::default();
        for value in values {
            for part in value.split(',') {
                let (name, arg) = match part.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (part.trim(), None),
                };
                let secs = || arg.map(|a| a.parse::<u64>().unwrap_or(0));
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    // `no-cache="field"` and `private="field"` only restrict fields; treat them as the whole.
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                    "max-age" => d.max_age = secs(),
                    "s-maxage" => d.s_maxage = secs(),
                    "stale-while-revalidate" => d.stale_while_revalidate = secs(),
                    "stale-if-error" => d.stale_if_error = secs(),
                    _ => {}
                }
            }
        }
        d
    }
}

/// The parts of a response that decide its caching.
#[derive(Debug, Clone, Default)]
pub struct Response<'a> {
    pub status: u16,
    pub cache_control: Directives,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub age: Option<&'a str>,
    /// How long a fleet member had held it, to the millisecond ([`dime_routes::wire::AGE_MS_HEADER`]).
    pub resident: Option<Duration>,
    pub has_validator: bool,
    pub set_cookie: bool,
    pub vary: Option<&'a str>,
}

/// The verdict for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Store {
        fresh: Duration,
        stale_while_revalidate: Duration,
        stale_if_error: Duration,
        /// How old the response already was when it arrived (RFC 9111 §4.2.3, the corrected initial age): a
        /// hit's `Age` counts from it. Zero on live paths, whose TTLs replace the origin's freshness.
        initial_age: Duration,
    },
    /// Not stored; the reason is for logs and the Cache-Status header.
    Skip(&'static str),
}

/// Statuses RFC 9110 §15.1 calls heuristically cacheable: storable without explicit freshness.
fn heuristically_cacheable(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// Vary is honoured for Accept-Encoding only (the cache key varies on it); anything else would need a key per
/// header value, so such responses are not stored.
fn vary_supported(vary: Option<&str>) -> bool {
    vary.is_none_or(|v| {
        v.split(',').map(str::trim).filter(|h| !h.is_empty()).all(|h| h.eq_ignore_ascii_case("accept-encoding"))
    })
}

/// What makes a response unstorable whatever the route says: `no-store`, `private`, `Set-Cookie`, a `Vary`
/// other than Accept-Encoding.
fn never_stored(resp: &Response<'_>) -> Option<&'static str> {
    let cc = &resp.cache_control;
    if cc.no_store {
        Some("no-store")
    } else if cc.private {
        Some("private")
    } else if resp.set_cookie {
        Some("set-cookie")
    } else if !vary_supported(resp.vary) {
        Some("vary")
    } else {
        None
    }
}

/// The freshness lifetime the origin gives (RFC 9111 §4.2.1): `s-maxage`, else `max-age`, else `Expires`
/// minus `Date` (an unreadable `Expires` is already expired); `None` when it gives none.
fn origin_lifetime(resp: &Response<'_>, now: SystemTime) -> Option<Duration> {
    let cc = &resp.cache_control;
    cc.s_maxage.or(cc.max_age).map(Duration::from_secs).or_else(|| {
        let expires = httpdate::parse_http_date(resp.expires?).unwrap_or(SystemTime::UNIX_EPOCH);
        let date = resp.date.and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or(now);
        Some(expires.duration_since(date).unwrap_or_default())
    })
}

/// The largest `Age` a cache sends or counts (RFC 9111 §5.1: 2^31).
const MAX_AGE: u64 = 2_147_483_648;

/// How old the response was when it arrived (RFC 9111 §4.2.3): the larger of its `Age` and its apparent age
/// (now minus its `Date`, in whole seconds since `Date` has no finer grain, never negative), the time between the
/// request and the response left out (Dime measures none worth a second). `Age` is one non-negative integer; a
/// list (`7200, 0`, two `Age` fields merged) takes its first member, as the RFC asks of a repeated singleton, and
/// an `Age` that does not read as one (`abc`, `-5`, `1.5`) is ignored (§5.1). An answer from a fleet member
/// (`resident` set) is aged by its `Age` alone: the member's `Date` is its own clock's, and its `Age` already
/// counts what it held.
pub fn initial_age(resp: &Response<'_>, now: SystemTime) -> Duration {
    let age = resp.age.and_then(|a| {
        let first = a.split(',').next().unwrap_or("").trim();
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Duration::from_secs(first.parse::<u64>().unwrap_or(MAX_AGE).min(MAX_AGE)))
    });
    let apparent = match resp.resident {
        Some(_) => Duration::ZERO,
        None => resp
            .date
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|date| now.duration_since(date).ok())
            .map(|d| Duration::from_secs(d.as_secs()))
            .unwrap_or_default(),
    };
    age.unwrap_or_default().max(apparent)
}

pub fn decide(
    policy: &CachePolicy,
    kind: Kind,
    request_has_authorization: bool,
    resp: &Response<'_>,
    now: SystemTime,
) -> Decision {
    let cc = &resp.cache_control;
    if let Some(reason) = never_stored(resp) {
        return Decision::Skip(reason);
    }
    let mut stale_if_error = Duration::from_secs(cc.stale_if_error.unwrap_or(policy.stale_if_error.as_secs()));
    let mut stale_while_revalidate =
        policy.stale_while_revalidate.or(cc.stale_while_revalidate.map(Duration::from_secs)).unwrap_or_default();
    let cap = |d: Duration| policy.max_ttl.map_or(d, |m| d.min(m));

    let live = matches!(kind, Kind::Playlist | Kind::Segment) && !policy.respect_origin;
    if live {
        // Live origins (nginx-rtmp) send `no-cache` on everything; an edge that obeys it sends every viewer to
        // the origin. Dime's TTLs apply instead, unless the route says `respect_origin`.
        let fresh = match (resp.status, kind) {
            (200, Kind::Playlist) => policy.playlist_ttl,
            (200, _) => policy.segment_ttl,
            (404, _) => policy.negative_ttl,
            _ => return Decision::Skip("status"),
        };
        // The time a fleet member already held it counts against it, so a playlist from another edge is never
        // older than `playlist_ttl` in all. An origin's `Age` does not: Dime's TTLs replace the origin's freshness
        // on live paths (an `Age: 1` from a cache in front of the origin would leave a 1 s playlist no freshness).
        let fresh = fresh.saturating_sub(resp.resident.unwrap_or_default());
        // A playlist must never be served stale while revalidating: viewers would see an old segment list.
        let swr = if kind == Kind::Playlist { Duration::ZERO } else { stale_while_revalidate };
        return Decision::Store {
            fresh: cap(fresh),
            stale_while_revalidate: swr,
            stale_if_error,
            initial_age: Duration::ZERO,
        };
    }
    // RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10, §5.2.2.4: `must-revalidate`, `proxy-revalidate`, `s-maxage` and
    // `no-cache` forbid serving the response stale, whatever the route's or the response's own
    // `stale-if-error` / `stale-while-revalidate` say: with the origin down, the viewer gets a 504.
    if cc.forbids_stale() {
        stale_if_error = Duration::ZERO;
        stale_while_revalidate = Duration::ZERO;
    }

    // RFC 9111 §3.5: a response to a request with Authorization is stored only if explicitly allowed.
    if request_has_authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Decision::Skip("authorization");
    }
    let age = initial_age(resp, now);
    let fresh = match origin_lifetime(resp, now) {
        _ if cc.no_cache => Duration::ZERO,
        Some(lifetime) => lifetime.saturating_sub(age),
        None if heuristically_cacheable(resp.status) => match policy.default_ttl {
            Some(ttl) => ttl.saturating_sub(age),
            None => return Decision::Skip("no-freshness"),
        },
        None => return Decision::Skip("status"),
    };
    if fresh.is_zero() && !resp.has_validator {
        // Stored but immediately stale with nothing to revalidate against: pointless.
        return Decision::Skip(if cc.no_cache { "no-cache" } else { "expired" });
    }
    Decision::Store { fresh: cap(fresh), stale_while_revalidate, stale_if_error, initial_age: age }
}

#[cfg(test)]
mod tests;
