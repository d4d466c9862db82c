//! The `Cache-Status` response header (RFC 9211), e.g. `dime; hit; ttl=4` or `dime; fwd=miss; stored`.

/// What happened to a request in the cache, as the proxy saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Served from a fresh object.
    Hit,
    /// Served from a stale object (origin failing, or refreshed in the background).
    Stale,
    /// A stale object was revalidated with the origin (304) and served.
    Revalidated,
    /// Not in the cache; fetched.
    Miss,
    /// In the cache but stale; fetched again.
    Expired,
    /// Not looked up; the reason says why (e.g. `method`, a lock timeout).
    Bypass(&'a str),
}

impl Outcome<'_> {
    /// The `result` label of `dime_cache_requests_total` (a bypass's reason is not part of it).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Revalidated => "revalidated",
            Outcome::Miss => "miss",
            Outcome::Expired => "expired",
            Outcome::Bypass(_) => "bypass",
        }
    }
}

/// The seconds of freshness an object has left at `now`, negative once it is stale: `Cache-Status`'s `ttl`.
pub fn ttl_left(fresh_until: std::time::SystemTime, now: std::time::SystemTime) -> i64 {
    match fresh_until.duration_since(now) {
        Ok(left) => left.as_secs() as i64,
        Err(past) => -(past.duration().as_secs() as i64),
    }
}

/// The `Cache-Status` of an answer, and its count in `dime_cache_requests_total{route,outcome}`: the one place
/// both hit paths (Pingora's and [`crate::service`]'s direct one) and the fetches get them, so they cannot drift.
/// `ttl` is the used object's freshness left ([`ttl_left`]), when one was used.
pub fn answer(
    metrics: &crate::metrics::Metrics,
    route: &str,
    outcome: Outcome<'_>,
    ttl: Option<i64>,
    stored: bool,
    detail: Option<&str>,
) -> String {
    metrics.cache.requests(route, outcome).inc();
    header_value(outcome, ttl, stored, detail)
}

/// `ttl` is the remaining freshness in seconds (negative when stale), if an object was used; `stored` whether the
/// fetched response is being stored; `detail` why it is not, when known.
pub fn header_value(outcome: Outcome<'_>, ttl: Option<i64>, stored: bool, detail: Option<&str>) -> String {
    let mut v = String::from("dime");
    match outcome {
        Outcome::Hit => v.push_str("; hit"),
        Outcome::Stale => v.push_str("; hit"),
        Outcome::Revalidated => v.push_str("; fwd=stale; fwd-status=304"),
        Outcome::Miss => v.push_str("; fwd=miss"),
        Outcome::Expired => v.push_str("; fwd=stale"),
        Outcome::Bypass(reason) => {
            v.push_str("; fwd=bypass; detail=");
            v.push_str(reason);
            return v;
        }
    }
    if let Some(ttl) = ttl {
        v.push_str(&format!("; ttl={ttl}"));
    }
    if stored {
        v.push_str("; stored");
    }
    if let Some(d) = detail {
        v.push_str("; detail=");
        v.push_str(d);
    }
    v
}

#[cfg(test)]
mod tests;
