//! Whom Dime's HTTPS calls trust: the one place that loads a CA file (`--control-ca`, `--acme-ca`,
//! `dime-control purge --ca`) or the system's roots into a rustls client configuration.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Why no trust could be set up: which file (or the system's roots), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {why}")]
    CaFile { path: String, why: String },
    #[error("the HTTP client: {0}")]
    Client(String),
}

/// The roots: every certificate of the PEM file `ca_file` (none: an error), or the system's roots. A system
/// without roots (a minimal container image) is said in the log, not refused: its plain `http://` calls work,
/// and an `https://` one fails naming the certificate it could not verify.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca_file else {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found.errors.first().map_or("none found".to_owned(), |e| e.to_string());
            tracing::warn!(why, "no system root certificates: https calls without a CA file will fail");
        }
        return Ok(roots);
    };
    let fail = |why: String| TrustError::CaFile { path: path.display().to_string(), why };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| fail(format!("not PEM: {e}")))?;
        roots.add(cert).map_err(|e| fail(format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(roots)
}

/// A rustls client configuration (ring, TLS 1.2 and 1.3) trusting [`roots`].
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Client(e.to_string()))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ca_file_is_read_or_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["control.test".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert_eq!(roots(Some(&good)).unwrap().len(), 1);
        assert!(client_config(Some(&good)).is_ok());

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, says) in [(&empty, "no certificate in it"), (&missing, "No such file")] {
            let e = roots(Some(path)).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()) && e.contains(says), "{e}");
        }
    }
}
