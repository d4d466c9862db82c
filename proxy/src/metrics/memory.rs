//! The memory tier (`--cache-size`): what the store holds and what it let go. The disk tier's are
//! [`super::disk`].

use prometheus::{IntCounter, IntGauge, Registry};

use super::{counter, gauge};

/// `dime_cache_stored_bytes` and its neighbours. No labels: every field is the metric itself.
#[derive(Debug)]
pub struct MemoryMetrics {
    pub stored_bytes: IntGauge,
    pub objects: IntGauge,
    pub budget_bytes: IntGauge,
    pub evictions: IntCounter,
    pub write_failures: IntCounter,
}

impl MemoryMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(MemoryMetrics {
            stored_bytes: gauge(r, "dime_cache_stored_bytes", "Bytes held by cached objects (body, header and key).")?,
            objects: gauge(r, "dime_cache_objects", "Objects in the cache.")?,
            budget_bytes: gauge(r, "dime_cache_budget_bytes", "The cache's byte budget (--cache-size).")?,
            evictions: counter(r, "dime_cache_evictions_total", "Objects evicted to stay within the budget.")?,
            write_failures: counter(
                r,
                "dime_cache_write_failures_total",
                "Objects whose fetch failed mid-body and were not stored.",
            )?,
        })
    }
}
