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

/// Whom a client trusts for `https://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// Only the CAs of this PEM file (a pinned CA: `--control-ca`, `--acme-ca`, `--ca`).
    CaFile(&'a Path),
    /// The system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    System,
    /// Nobody: a client that only makes plain `http://` calls (no system roots are read).
    Nobody,
}

impl<'a> Trust<'a> {
    /// A CA file when one is given, else the system's roots.
    pub fn ca_or_system(ca_file: Option<&'a Path>) -> Trust<'a> {
        ca_file.map_or(Trust::System, Trust::CaFile)
    }
}

/// The roots of `trust`. A CA file without a certificate is an error; a system without roots (a minimal
/// container image) is said in the log, not refused: an `https://` call then fails naming the certificate it
/// could not verify.
pub fn roots(trust: Trust<'_>) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    let path = match trust {
        Trust::CaFile(path) => path,
        Trust::Nobody => return Ok(roots),
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map_or("none found".to_owned(), |e| e.to_string());
                tracing::warn!(why, "no system root certificates: https calls without a CA file will fail");
            }
            return Ok(roots);
        }
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
pub fn client_config(trust: Trust<'_>) -> Result<ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Client(e.to_string()))?
        .with_root_certificates(roots(trust)?)
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
        assert_eq!(roots(Trust::CaFile(&good)).unwrap().len(), 1);
        assert!(client_config(Trust::CaFile(&good)).is_ok());
        assert!(roots(Trust::Nobody).unwrap().is_empty());

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, says) in [(&empty, "no certificate in it"), (&missing, "No such file")] {
            let e = roots(Trust::CaFile(path)).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()) && e.contains(says), "{e}");
        }
    }
}
