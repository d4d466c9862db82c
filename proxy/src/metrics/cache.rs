//! The cache as the requests see it: lookups by route and result, waits on another request's fill, fetches and
//! bytes from origins, direct hits. (What the tiers hold: [`super::memory`], [`super::disk`].)

use std::collections::{BTreeMap, HashMap};

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};

use super::{counter, counter_vec, histogram_vec, per_route, sum, LATENCY_BUCKETS, ROUTE};
use crate::cache::status::Outcome;

/// The label of [`Outcome`] in `dime_cache_requests_total`.
const RESULT: &str = "result";

/// The outcomes the status page counts as hits: answered from the cache, fresh or stale.
const HITS: [Outcome<'static>; 2] = [Outcome::Hit, Outcome::Stale];

/// `dime_cache_requests_total` and the other per-request cache metrics.
#[derive(Debug)]
pub struct CacheMetrics {
    requests: IntCounterVec,
    lock_waits: IntCounterVec,
    lock_wait_duration: HistogramVec,
    origin_fetches: IntCounterVec,
    origin_bytes: IntCounterVec,
    direct_responses: IntCounterVec,
    /// Counted with `direct_responses` ([`CacheMetrics::direct_sent`]).
    sendfile_bytes: IntCounter,
    /// `dime_cache_invalidations_total`.
    pub invalidations: IntCounter,
}

impl CacheMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(CacheMetrics {
            requests: counter_vec(
                r,
                "dime_cache_requests_total",
                "Requests on caching routes, by route and result (hit, stale, revalidated, miss, expired, bypass).",
                &[ROUTE, RESULT],
            )?,
            lock_waits: counter_vec(
                r,
                "dime_cache_lock_waits_total",
                "Requests that waited for another request to fetch the object.",
                &[ROUTE],
            )?,
            lock_wait_duration: histogram_vec(
                r,
                "dime_cache_lock_wait_duration_seconds",
                "Time requests waited for another request's fetch.",
                &[ROUTE],
                LATENCY_BUCKETS,
            )?,
            origin_fetches: counter_vec(
                r,
                "dime_cache_origin_fetches_total",
                "Responses fetched from the origin on caching routes.",
                &[ROUTE],
            )?,
            origin_bytes: counter_vec(
                r,
                "dime_cache_origin_bytes_total",
                "Response body bytes fetched from origins on caching routes (not from other edges), by route.",
                &[ROUTE],
            )?,
            direct_responses: counter_vec(
                r,
                "dime_cache_direct_responses_total",
                "Plain GET hits over HTTP/1.1 answered before Pingora's cache phases, by where the body came from (file: sendfile; memory).",
                &["body"],
            )?,
            sendfile_bytes: counter(r, "dime_cache_sendfile_bytes_total", "Body bytes sent with sendfile.")?,
            invalidations: counter(
                r,
                "dime_cache_invalidations_total",
                "Stored objects invalidated by a successful unsafe request (POST, PUT, DELETE...) to their URL, or naming it in Location or Content-Location.",
            )?,
        })
    }

    /// `dime_cache_requests_total{route, result}`.
    pub fn requests(&self, route: &str, outcome: Outcome<'_>) -> IntCounter {
        self.requests.with_label_values(&[route, outcome.label()])
    }

    /// `dime_cache_lock_waits_total{route}`.
    pub fn lock_waits(&self, route: &str) -> IntCounter {
        self.lock_waits.with_label_values(&[route])
    }

    /// `dime_cache_lock_wait_duration_seconds{route}`.
    pub fn lock_wait_duration(&self, route: &str) -> Histogram {
        self.lock_wait_duration.with_label_values(&[route])
    }

    /// `dime_cache_origin_fetches_total{route}`.
    pub fn origin_fetches(&self, route: &str) -> IntCounter {
        self.origin_fetches.with_label_values(&[route])
    }

    /// `dime_cache_origin_bytes_total{route}`.
    pub fn origin_bytes(&self, route: &str) -> IntCounter {
        self.origin_bytes.with_label_values(&[route])
    }

    /// A direct hit sent: `dime_cache_direct_responses_total{body}`, and its body bytes in
    /// `dime_cache_sendfile_bytes_total` when they went from a file.
    pub fn direct_sent(&self, body: DirectBody, body_bytes: usize) {
        self.direct_responses.with_label_values(&[body.as_str()]).inc();
        if body == DirectBody::File {
            self.sendfile_bytes.inc_by(body_bytes as u64);
        }
    }

    /// (hits, lookups) so far, all routes: a hit is one of [`HITS`].
    pub fn hits_and_lookups(&self) -> (f64, f64) {
        (sum(&self.requests, is_hit), sum(&self.requests, |_| true))
    }

    /// (hits, lookups) so far, per route.
    pub fn hits_and_lookups_by_route(&self) -> (HashMap<String, f64>, HashMap<String, f64>) {
        (per_route(&self.requests, is_hit), per_route(&self.requests, |_| true))
    }

    /// Body bytes fetched from origins so far, per route.
    pub fn origin_bytes_by_route(&self) -> HashMap<String, f64> {
        per_route(&self.origin_bytes, |_| true)
    }
}

fn is_hit(labels: &BTreeMap<String, String>) -> bool {
    labels.get(RESULT).is_some_and(|result| HITS.iter().any(|o| o.label() == result))
}

/// Where a direct hit's body came from: the `body` of `dime_cache_direct_responses_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectBody {
    /// A file, sent with `sendfile`.
    File,
    Memory,
}

impl DirectBody {
    pub const ALL: [DirectBody; 2] = [DirectBody::File, DirectBody::Memory];

    pub fn as_str(self) -> &'static str {
        match self {
            DirectBody::File => "file",
            DirectBody::Memory => "memory",
        }
    }
}
