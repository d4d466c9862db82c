//! Live playlists (`cache/live/`): how each fetch relates to the previous one, and what was dropped because a
//! fresh playlist did not vouch for it.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, counter_vec};
use crate::cache::live::Continuity;

/// `dime_cache_live_*`.
#[derive(Debug)]
pub struct LiveMetrics {
    playlists: IntCounterVec,
    pub dropped: IntCounter,
    pub unreadable: IntCounter,
}

impl LiveMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(LiveMetrics {
            playlists: counter_vec(
                r,
                "dime_cache_live_playlists_total",
                "Live playlist fetches, by how they relate to the previous fetch of the same playlist (continuous, first, gap, or what went backwards: epoch, media-sequence, discontinuity-sequence, renumbered).",
                &["continuity"],
            )?,
            dropped: counter(
                r,
                "dime_cache_live_dropped_total",
                "Cached segments (or fills of them) dropped because a fresh playlist did not vouch for them: a previous stream's bytes under a reused name.",
            )?,
            unreadable: counter(
                r,
                "dime_cache_live_unreadable_total",
                "Fetched playlists that could not be read as HLS or DASH (nothing they list is vouched for).",
            )?,
        })
    }

    /// `dime_cache_live_playlists_total{continuity}`.
    pub fn playlists(&self, continuity: Continuity) -> IntCounter {
        self.playlists.with_label_values(&[continuity.label()])
    }
}
