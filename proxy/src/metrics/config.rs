//! The route table (`state.rs`, `source/`): loads by result, the table in service (version, source, when, how
//! many routes), pulls from dime-control and saving tables to `--state-dir`.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter, counter_vec, float_gauge, gauge, gauge_vec, Attempt};

/// `dime_config_*` and `dime_routes_*`.
#[derive(Debug)]
pub struct ConfigMetrics {
    reloads: IntCounterVec,
    info: IntGaugeVec,
    /// `dime_config_loaded_timestamp_seconds`.
    pub loaded_time: Gauge,
    /// `dime_config_age_seconds`, set when `/metrics` is read.
    pub age: Gauge,
    /// `dime_config_routes`.
    pub routes: IntGauge,
    fetch_failures: IntCounterVec,
    /// `dime_routes_fetch_last_success_timestamp_seconds`.
    pub fetch_last_success: Gauge,
    /// `dime_routes_state_write_failures_total`.
    pub state_write_failures: IntCounter,
}

impl ConfigMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = ConfigMetrics {
            reloads: counter_vec(r, "dime_config_reloads_total", "Route table loads, by result (ok or failed).", &["result"])?,
            info: gauge_vec(
                r,
                "dime_config_info",
                "The active route table: 1 for its version and source.",
                &["version", "source"],
            )?,
            loaded_time: float_gauge(
                r,
                "dime_config_loaded_timestamp_seconds",
                "Unix time the active route table was applied.",
            )?,
            age: float_gauge(r, "dime_config_age_seconds", "Seconds since the active route table was applied.")?,
            routes: gauge(r, "dime_config_routes", "HTTP routes in the active route table.")?,
            fetch_failures: counter_vec(
                r,
                "dime_routes_fetch_failures_total",
                "Failed pulls of the route table from dime-control, by reason (connect, timeout, unauthorized, status, body, invalid).",
                &["reason"],
            )?,
            fetch_last_success: float_gauge(
                r,
                "dime_routes_fetch_last_success_timestamp_seconds",
                "When dime-control last answered a route table pull (Unix time; 0: never).",
            )?,
            state_write_failures: counter(
                r,
                "dime_routes_state_write_failures_total",
                "Route tables that could not be saved to --state-dir.",
            )?,
        };
        for result in Attempt::ALL {
            m.reloads(result);
        }
        Ok(m)
    }

    /// `dime_config_reloads_total{result}`.
    pub fn reloads(&self, result: Attempt) -> IntCounter {
        self.reloads.with_label_values(&[result.as_str()])
    }

    /// `dime_config_info{version, source}`: 1 for the table now in service, the previous one's series gone.
    pub fn set_info(&self, version: &str, source: &str) {
        self.info.reset();
        self.info.with_label_values(&[version, source]).set(1);
    }

    /// `dime_routes_fetch_failures_total{reason}`.
    pub fn fetch_failures(&self, reason: FetchFailure) -> IntCounter {
        self.fetch_failures.with_label_values(&[reason.as_str()])
    }
}

/// Why a pull from dime-control (the route table, or the purge feed) failed: the `reason` of
/// `dime_routes_fetch_failures_total` and `dime_purge_feed_failures_total`. The call's own failures are the
/// client's [`dime_client::Reason`] (one vocabulary for both); `invalid` is the edge's: a route table that does not
/// validate (routes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    Call(dime_client::Reason),
    Invalid,
}

impl From<dime_client::Reason> for FetchFailure {
    fn from(reason: dime_client::Reason) -> Self {
        FetchFailure::Call(reason)
    }
}

impl FetchFailure {
    pub const ALL: [FetchFailure; 7] = {
        use dime_client::Reason;
        [
            FetchFailure::Call(Reason::Connect),
            FetchFailure::Call(Reason::Tls),
            FetchFailure::Call(Reason::Timeout),
            FetchFailure::Call(Reason::Unauthorized),
            FetchFailure::Call(Reason::Status),
            FetchFailure::Call(Reason::Body),
            FetchFailure::Invalid,
        ]
    };

    pub fn as_str(self) -> &'static str {
        match self {
            FetchFailure::Call(reason) => reason.as_str(),
            FetchFailure::Invalid => "invalid",
        }
    }
}
