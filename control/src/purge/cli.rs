//! `dime-control purge`: sends one purge to control's API and reports the edges' acknowledgements. One HTTP
//! request, made with hyper's client connection (and rustls for `https://`, trusting the CA given).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dime_routes::purge::{Prefix, Purge};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Why the purge was not sent, or not taken.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--prefix `{0}`: expected HOST/PATH, e.g. video.example.com/hls/")]
    Prefix(String),
    #[error("--control `{0}`: expected http(s)://HOST:PORT")]
    Url(String),
    #[error("--control {0}: https needs the CA that signed control's certificate (--ca FILE)")]
    NoCa(String),
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Token(#[from] dime_routes::TokenFileError),
    #[error("{0}")]
    Purge(String),
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    #[error("control refused the purge ({status}): {body}")]
    Refused { status: http::StatusCode, body: String },
}

/// The purge the flags name.
pub fn purge_of(urls: Vec<String>, prefixes: &[String], tags: Vec<String>, soft: bool) -> Result<Purge, CliError> {
    let prefixes = prefixes
        .iter()
        .map(|p| match p.find('/') {
            Some(i) if i > 0 => Ok(Prefix { host: p[..i].to_owned(), prefix: p[i..].to_owned() }),
            _ => Err(CliError::Prefix(p.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let purge = Purge { urls, prefixes, tags, soft };
    purge.check().map_err(|errors| CliError::Purge(errors.join("; ")))?;
    Ok(purge)
}

/// How control answered a purge that it took.
#[derive(Debug)]
pub struct Sent {
    pub body: serde_json::Value,
    pub all_acked: bool,
}

/// Sends `purge` to `control` (`POST /v1/purge?wait=`) with the first token of `token_file`.
pub async fn send(
    control: &str,
    token_file: &Path,
    ca: Option<&Path>,
    purge: &Purge,
    wait: Duration,
) -> Result<Sent, CliError> {
    let token = dime_routes::read_token_file(token_file)?.into_iter().next().unwrap_or_default();
    let (https, rest) = match control.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        _ => return Err(CliError::Url(control.to_owned())),
    };
    let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
    let http_err = |why: String| CliError::Http { url: control.to_owned(), why };
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| http_err(e.to_string()))?;
    let body = serde_json::to_vec(purge).unwrap_or_default();
    let req = http::Request::post(format!("{prefix}/v1/purge?wait={}ms", wait.as_millis()))
        .header(http::header::HOST, authority)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| http_err(e.to_string()))?;
    let (status, text) = if https {
        let ca = ca.ok_or_else(|| CliError::NoCa(control.to_owned()))?;
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h).trim_matches(['[', ']']);
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| CliError::Tls(format!("`{host}`: {e}")))?;
        let tls = connector(ca)?.connect(name, stream).await.map_err(|e| http_err(format!("TLS: {e}")))?;
        exchange(TokioIo::new(tls), req).await.map_err(http_err)?
    } else {
        exchange(TokioIo::new(stream), req).await.map_err(http_err)?
    };
    if status != http::StatusCode::OK {
        return Err(CliError::Refused { status, body: text.trim().to_owned() });
    }
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| http_err(format!("the answer: {e}")))?;
    let all_acked = body["all_acked"].as_bool().unwrap_or(false);
    Ok(Sent { body, all_acked })
}

fn connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, CliError> {
    let tls = |why: String| CliError::Tls(format!("--ca {}: {why}", ca.display()));
    let pem = std::fs::read(ca).map_err(|e| tls(e.to_string()))?;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.map_err(|e| tls(e.to_string()))?).map_err(|e| tls(e.to_string()))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn exchange<T>(io: TokioIo<T>, req: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, String), String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One line for a person: how many live edges applied the purge, the slowest, and who did not yet.
pub fn summary(body: &serde_json::Value) -> String {
    let id = &body["id"];
    let edges = body["edges"].as_object().cloned().unwrap_or_default();
    let acked: Vec<i64> = edges.values().filter_map(|e| e["acked_ms"].as_i64()).collect();
    let pending: Vec<&String> = edges.iter().filter(|(_, e)| e["state"] == "pending").map(|(n, _)| n).collect();
    let gone = edges.values().filter(|e| e["state"] == "gone").count();
    let slowest = acked.iter().max().map_or(String::new(), |ms| format!(", the last after {ms} ms"));
    let mut line =
        format!("purge {id}: applied by {} of {} live edges{slowest}", acked.len(), acked.len() + pending.len());
    if !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(|s| s.as_str()).collect();
        line.push_str(&format!("; not yet: {}", names.join(", ")));
    }
    if gone > 0 {
        line.push_str(&format!("; {gone} gone (they apply it when they return)"));
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_make_a_purge_and_a_bad_one_is_named() {
        let p = purge_of(vec!["https://v.test/a".into()], &["v.test/hls/".into()], vec!["t".into()], true).unwrap();
        assert_eq!(p.prefixes, vec![Prefix { host: "v.test".into(), prefix: "/hls/".into() }]);
        assert!(matches!(purge_of(vec![], &["/hls/".into()], vec![], false), Err(CliError::Prefix(_))));
        assert!(purge_of(vec![], &[], vec![], false).unwrap_err().to_string().contains("an empty purge"));
    }

    #[test]
    fn the_summary_names_the_edges_not_done() {
        let body = serde_json::json!({"id": 7, "edges": {
            "a": {"acked_ms": 3, "state": "acked"}, "b": {"acked_ms": 12, "state": "acked"},
            "c": {"acked_ms": null, "state": "pending"}, "d": {"acked_ms": null, "state": "gone"}}});
        assert_eq!(
            summary(&body),
            "purge 7: applied by 2 of 3 live edges, the last after 12 ms; not yet: c; 1 gone (they apply it when they return)"
        );
    }
}
