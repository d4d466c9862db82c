//! Signed URLs (`signed.rs`): requests refused, by route and why.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter_vec, ROUTE};
use crate::signed::Reject;

/// `dime_signed_url_rejections_total`.
#[derive(Debug)]
pub struct SignedMetrics {
    rejections: IntCounterVec,
}

impl SignedMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(SignedMetrics {
            rejections: counter_vec(
                r,
                "dime_signed_url_rejections_total",
                "Requests refused with 403 on routes that require signed URLs, by route and reason.",
                &[ROUTE, "reason"],
            )?,
        })
    }

    /// `dime_signed_url_rejections_total{route, reason}`.
    pub fn rejections(&self, route: &str, reason: Reject) -> IntCounter {
        self.rejections.with_label_values(&[route, reason.as_str()])
    }
}
