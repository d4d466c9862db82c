//! The fleet (`fleet.rs`): the edges with a Lease, by state against the table served now.

use dime_routes::wire::EdgeState;
use prometheus::{IntGauge, IntGaugeVec, Registry};

use super::{gauge, gauge_vec};

/// `dime_control_edges`, `dime_control_edge_credentials`.
#[derive(Debug)]
pub struct FleetMetrics {
    edges: IntGaugeVec,
    /// `dime_control_edge_credentials`: edges with a usable credential Secret.
    pub credentials: IntGauge,
}

impl FleetMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(FleetMetrics {
            edges: gauge_vec(
                r,
                "dime_control_edges",
                "Edges with a Lease, by state against the table served now (current, stale, refusing, gone).",
                &["state"],
            )?,
            credentials: gauge(
                r,
                "dime_control_edge_credentials",
                "Edges with a usable credential (a Secret labelled dime.dev/edge-credential).",
            )?,
        })
    }

    /// `dime_control_edges{state}`: edges by state against the table served now.
    pub fn edges(&self, state: EdgeState) -> IntGauge {
        self.edges.with_label_values(&[state.as_str()])
    }
}
