//! Purges: objects removed by what named them (the admin listener's or the fleet's), and the fleet's purge feed
//! from dime-control.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::config::FetchFailure;
use super::{counter, counter_vec, gauge};
use crate::cache::select::Selector;

/// `dime_cache_purged_total` and `dime_purge*`.
#[derive(Debug)]
pub struct PurgeMetrics {
    purged: IntCounterVec,
    feed_failures: IntCounterVec,
    /// `dime_purge_applied_seq`: the last fleet purge applied.
    pub applied_seq: IntGauge,
    /// `dime_purges_applied_total`.
    pub applied: IntCounter,
    /// `dime_purge_gaps_total`.
    pub gaps: IntCounter,
    /// `dime_purge_replica_behind_total`.
    pub replica_behind: IntCounter,
}

impl PurgeMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(PurgeMetrics {
            purged: counter_vec(
                r,
                "dime_cache_purged_total",
                "Objects removed (or made stale, soft) by purges, by what named them: url, prefix, tag, all (a purge-log gap).",
                &["kind"],
            )?,
            feed_failures: counter_vec(
                r,
                "dime_purge_feed_failures_total",
                "Failed polls of dime-control's purge feed, by reason (connect, tls, timeout, unauthorized, status, body).",
                &["reason"],
            )?,
            applied_seq: gauge(
                r,
                "dime_purge_applied_seq",
                "The last fleet purge (its id in control's purge log) this edge applied; 0 before any.",
            )?,
            applied: counter(r, "dime_purges_applied_total", "Fleet purges applied from control's purge log.")?,
            gaps: counter(
                r,
                "dime_purge_gaps_total",
                "Times this edge missed purges that control's log no longer held, and so dropped its whole cache.",
            )?,
            replica_behind: counter(
                r,
                "dime_purge_replica_behind_total",
                "Purge feed answers from a control replica that had not read purges this edge had already applied (the next poll asks the next control URL first).",
            )?,
        })
    }

    /// `dime_cache_purged_total{kind}`: the kind of what `selector` names ([`Selector::label`]).
    pub fn purged(&self, selector: &Selector) -> IntCounter {
        self.purged.with_label_values(&[selector.label()])
    }

    /// `dime_purge_feed_failures_total{reason}`.
    pub fn feed_failures(&self, reason: FetchFailure) -> IntCounter {
        self.feed_failures.with_label_values(&[reason.as_str()])
    }
}
