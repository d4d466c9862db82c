//! The fleet's purges (`purge.rs`, `purge/api.rs`): `POST /v1/purge` by result, the time to the last live edge's
//! acknowledgement, the purge log's length, polls from edges ahead of this replica.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Registry};

use super::{add, counter, counter_vec, gauge};
use crate::purge::api::Submitted;

/// Purge acknowledgement buckets: 5 ms to 30 s.
const ACK_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// `dime_control_purge_*`.
#[derive(Debug)]
pub struct PurgeMetrics {
    requests: IntCounterVec,
    /// `dime_control_purge_ack_seconds`: from a purge accepted by this replica to its acknowledgement by the last
    /// live edge.
    pub ack_seconds: Histogram,
    /// `dime_control_purge_log_entries`: purges in the log now.
    pub log_entries: IntGauge,
    /// `dime_control_purge_feed_behind_total`: feed polls from an edge ahead of this replica's purge log (its
    /// watch lags another replica's); one that keeps growing is a replica whose watch is stuck.
    pub feed_behind: IntCounter,
}

impl PurgeMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(PurgeMetrics {
            requests: counter_vec(
                r,
                "dime_control_purge_requests_total",
                "POST /v1/purge requests by result (accepted, invalid, unauthorized, unavailable).",
                &["result"],
            )?,
            ack_seconds: add(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "dime_control_purge_ack_seconds",
                        "From a purge accepted by this replica to its acknowledgement by the last live edge.",
                    )
                    .buckets(ACK_BUCKETS.to_vec()),
                )?,
            ),
            log_entries: gauge(r, "dime_control_purge_log_entries", "Purges held in the purge log now.")?,
            feed_behind: counter(
                r,
                "dime_control_purge_feed_behind_total",
                "Purge feed polls from an edge that applied purges this replica has not read yet (its watch lags).",
            )?,
        })
    }

    /// `dime_control_purge_requests_total{result}`.
    pub fn requests(&self, result: Submitted) -> IntCounter {
        self.requests.with_label_values(&[result.as_str()])
    }
}
