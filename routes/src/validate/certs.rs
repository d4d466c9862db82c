//! `tls.certificates`: where each certificate comes from. The edge parses the PEM itself (and keeps the previous
//! certificate when a new one does not load); here each entry is checked to name exactly one source, and a
//! Secret reference is replaced by the Secret's PEM, so the compiled document carries what the edge needs.

use crate::error::{Collector, Location};
use crate::load::Dialect;
use crate::schema::CertificateSpec;
use crate::table::{Certificate, CertificateSource};
use crate::ServiceResolver;

fn at(source: &str, dialect: Dialect, index: usize, field: &str) -> Location {
    let path = match dialect {
        Dialect::Native => format!("tls.certificates[{index}].{field}"),
        Dialect::Traefik => {
            let field = match field {
                "cert_file" | "cert_pem" => "certFile",
                "key_file" | "key_pem" => "keyFile",
                other => other,
            };
            format!("tls.certificates[{index}].{field}")
        }
    };
    Location::new(source, path)
}

/// Looks like PEM of the given kind (`CERTIFICATE`, or any `... PRIVATE KEY`).
fn pem_has(text: &str, kind: &str) -> bool {
    text.lines().any(|l| l.trim().strip_prefix("-----BEGIN ").is_some_and(|r| r.ends_with(&format!("{kind}-----"))))
}

/// `cert_file` + `key_file`, both given and non-empty.
fn file_source(
    spec: &CertificateSpec,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> Option<CertificateSource> {
    let (Some(cert), Some(key)) = (&spec.cert_file, &spec.key_file) else {
        let missing = if spec.cert_file.is_none() { "cert_file" } else { "key_file" };
        errors.push(at(missing), "missing: `cert_file` and `key_file` go together");
        return None;
    };
    for (field, path) in [("cert_file", cert), ("key_file", key)] {
        if path.is_empty() {
            errors.push(at(field), "empty path");
            return None;
        }
    }
    Some(CertificateSource::Files { cert: cert.clone(), key: key.clone() })
}

/// `cert_pem` + `key_pem` (inline, or what a Secret resolved to), both given and PEM of the right kind.
fn pem_source(
    spec: &CertificateSpec,
    at: &dyn Fn(&str) -> Location,
    errors: &mut Collector,
) -> Option<CertificateSource> {
    let (Some(cert), Some(key)) = (&spec.cert_pem, &spec.key_pem) else {
        let missing = if spec.cert_pem.is_none() { "cert_pem" } else { "key_pem" };
        errors.push(at(missing), "missing: `cert_pem` and `key_pem` go together");
        return None;
    };
    if !pem_has(cert, "CERTIFICATE") {
        errors.push(at("cert_pem"), "not a PEM certificate (no `-----BEGIN CERTIFICATE-----`)");
        return None;
    }
    if !pem_has(key, "PRIVATE KEY") {
        errors.push(at("key_pem"), "not a PEM private key (no `-----BEGIN ... PRIVATE KEY-----`)");
        return None;
    }
    Some(CertificateSource::Pem { cert: cert.clone(), key: key.clone() })
}

/// Resolves and checks one entry; on success the spec is rewritten to its served form (Secrets become inline PEM).
pub(super) fn compile_certificate(
    spec: &mut CertificateSpec,
    source: &str,
    dialect: Dialect,
    index: usize,
    services: &dyn ServiceResolver,
    errors: &mut Collector,
) -> Option<Certificate> {
    let at = |field: &str| at(source, dialect, index, field);
    let files = spec.cert_file.is_some() || spec.key_file.is_some();
    let inline = spec.cert_pem.is_some() || spec.key_pem.is_some();
    let given = [files, spec.secret.is_some(), inline].iter().filter(|g| **g).count();
    if given != 1 {
        errors.push(
            at(""),
            "give exactly one of: `cert_file` + `key_file` (PEM files on the edge), `secret` (a Kubernetes TLS Secret, with dime-control), `cert_pem` + `key_pem`",
        );
        return None;
    }
    if let Some(name) = spec.secret.take() {
        match services.secret(source, &name) {
            Ok(secret) => {
                spec.name = Some(secret.label);
                spec.cert_pem = Some(secret.cert_pem);
                spec.key_pem = Some(secret.key_pem);
            }
            Err(e) => {
                errors.push(at("secret"), format!("`{name}`: {e}"));
                spec.secret = Some(name);
                return None;
            }
        }
    }
    if let Some(name) = &spec.name {
        if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(at("name"), format!("invalid name `{name}`: 1-253 characters, no spaces"));
        }
    }
    let certificate = if files { file_source(spec, &at, errors)? } else { pem_source(spec, &at, errors)? };
    let label = spec.name.clone().unwrap_or_else(|| match &certificate {
        CertificateSource::Files { cert, .. } => cert.clone(),
        CertificateSource::Pem { .. } => format!("{source}#tls.certificates[{index}]"),
    });
    Some(Certificate { label, source: certificate })
}
