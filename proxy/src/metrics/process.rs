//! The edge process itself: its build, its log, its panics.

use prometheus::{IntCounter, Registry};

use super::{counter, float_gauge_vec};

/// `dime_log_lines_dropped_total`, `dime_panics_total`; and `dime_build_info`, set once at registration (the
/// registry keeps it).
#[derive(Debug)]
pub struct ProcessMetrics {
    pub log_lines_dropped: IntCounter,
    pub panics: IntCounter,
}

impl ProcessMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let build_info = float_gauge_vec(r, "dime_build_info", "Build information.", &["version"])?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        Ok(ProcessMetrics {
            log_lines_dropped: counter(
                r,
                "dime_log_lines_dropped_total",
                "Log lines dropped because the log buffer was full (the writer could not keep up with stderr).",
            )?,
            panics: counter(
                r,
                "dime_panics_total",
                "Panics in the edge: each one ended what it was doing (a request's connection, or a background task). A bug: report it with the logged panic line.",
            )?,
        })
    }
}
