//! TLS (`tls.rs`, `acme/`): each served certificate's expiry, reloads of certificate files, ACME orders.

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, Registry};

use super::{counter_vec, float_gauge_vec, series, Attempt};

/// The label of `dime_tls_certificate_expiry_timestamp_seconds`: [`crate::tls::CertSource::label`].
const CERT: &str = "cert";

/// `dime_tls_*` and `dime_acme_orders_total`.
#[derive(Debug)]
pub struct TlsMetrics {
    cert_expiry: GaugeVec,
    reloads: IntCounterVec,
    acme_orders: IntCounterVec,
}

impl TlsMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(TlsMetrics {
            cert_expiry: float_gauge_vec(
                r,
                "dime_tls_certificate_expiry_timestamp_seconds",
                "When each served TLS certificate expires (Unix time), by certificate file.",
                &[CERT],
            )?,
            reloads: counter_vec(
                r,
                "dime_tls_reloads_total",
                "TLS certificate file reloads, by result (ok, failed: the previous certificate keeps serving).",
                &["result"],
            )?,
            acme_orders: counter_vec(
                r,
                "dime_acme_orders_total",
                "ACME certificate orders, by domain and result (ok, failed: retried with backoff, the certificate in service keeps serving).",
                &["domain", "result"],
            )?,
        })
    }

    /// `dime_tls_certificate_expiry_timestamp_seconds{cert}`.
    pub fn cert_expiry(&self, cert: &str) -> Gauge {
        self.cert_expiry.with_label_values(&[cert])
    }

    /// Drops the expiry of a certificate no longer served.
    pub fn forget_cert(&self, cert: &str) {
        // An error only says there was no such series.
        let _ = self.cert_expiry.remove_label_values(&[cert]);
    }

    /// Every served certificate's (label, expiry as Unix time).
    pub fn cert_expiries(&self) -> Vec<(String, f64)> {
        series(&self.cert_expiry)
            .into_iter()
            .map(|(mut labels, expiry)| (labels.remove(CERT).unwrap_or_default(), expiry))
            .collect()
    }

    /// `dime_tls_reloads_total{result}`.
    pub fn reloads(&self, result: Attempt) -> IntCounter {
        self.reloads.with_label_values(&[result.as_str()])
    }

    /// `dime_acme_orders_total{domain, result}`.
    pub fn acme_orders(&self, domain: &str, result: Attempt) -> IntCounter {
        self.acme_orders.with_label_values(&[domain, result.as_str()])
    }
}
