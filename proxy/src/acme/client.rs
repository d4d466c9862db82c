//! Issuing one certificate with ACME HTTP-01. The protocol (RFC 8555: JWS, nonces, account, order, authorization
//! and certificate polling) is `instant-acme`'s; this module gives it Dime's one HTTP client ([`dime_client::http`]:
//! trusting `--acme-ca` or the system's roots, each exchange bounded in time and size), keeps the account key in
//! `--acme-dir`, and offers the challenge answers through [`Challenges`].

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient, Identifier, Key, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Challenges;

/// Each request: connect, TLS, request and the whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an order may stay pending or processing.
const POLL_LIMIT: Duration = Duration::from_secs(120);
/// Largest answer read from the ACME server (a certificate chain is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// Why an order did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server refused (with its problem document) or could not be reached.
    #[error("{0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("ACME CA: {0}")]
    Trust(#[from] dime_client::TrustError),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{name}: the ACME server offers no http-01 challenge")]
    NoHttp01 { name: String },
    #[error("{name}: HTTP-01 validation failed: {why}")]
    Validation { name: String, why: String },
    #[error("order ended {0:?}")]
    Order(OrderStatus),
    #[error("certificate: {0}")]
    Certificate(String),
}

/// One exchange failed in the transport (not an ACME problem).
#[derive(Debug, thiserror::Error)]
#[error("{url}: {why}")]
struct TransportError {
    url: String,
    why: Exchange,
}

/// What went wrong in one exchange with the ACME server.
#[derive(Debug, thiserror::Error)]
enum Exchange {
    #[error("no answer in time")]
    Timeout,
    #[error("ACME URLs must be https://")]
    NotHttps,
    /// Sending the request, connecting included.
    #[error("{}", dime_client::describe(.0))]
    Send(reqwest::Error),
    #[error("reading the answer: {}", dime_client::describe(.0))]
    Read(reqwest::Error),
    #[error("an answer over {MAX_BODY} bytes")]
    TooLarge,
    /// The answer could not be handed on as an `http::Response`.
    #[error("{0}")]
    Answer(#[from] http::Error),
}

/// instant-acme's HTTP client: Dime's one client, HTTPS only.
struct Transport {
    http: reqwest::Client,
}

impl HttpClient for Transport {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let http = self.http.clone();
        Box::pin(async move {
            let url = req.uri().to_string();
            let fail = |why: Exchange| instant_acme::Error::Other(Box::new(TransportError { url: url.clone(), why }));
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&http, req)).await {
                Err(_) => Err(fail(Exchange::Timeout)),
                Ok(Err(why)) => Err(fail(why)),
                Ok(Ok(resp)) => Ok(BytesResponse::from(resp)),
            }
        })
    }
}

/// One request; the answer read whole (at most [`MAX_BODY`]).
async fn exchange(
    http: &reqwest::Client,
    req: http::Request<BodyWrapper<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, Exchange> {
    let (parts, body) = req.into_parts();
    if parts.uri.scheme_str() != Some("https") {
        return Err(Exchange::NotHttps);
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // instant-acme's request bodies are bytes in memory: reading them cannot fail.
        Err(never) => match never {},
    };
    let request = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
    let mut resp = request.send().await.map_err(Exchange::Send)?;
    let mut answer = http::Response::builder().status(resp.status()).version(resp.version());
    if let Some(headers) = answer.headers_mut() {
        *headers = std::mem::take(resp.headers_mut());
    }
    let mut read = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(Exchange::Read)? {
        if read.len() + chunk.len() > MAX_BODY {
            return Err(Exchange::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(answer.body(Full::new(read.freeze()))?)
}

/// The account of this edge on `directory`: the key kept in `key_path` (PKCS#8, owner-only) is registered (or
/// found again) on each order; a new key is made, registered with `email` as contact and saved the first time.
pub async fn account(
    directory: &str,
    ca_file: Option<&Path>,
    key_path: &Path,
    email: Option<&str>,
) -> Result<Account, AcmeError> {
    let http = dime_client::http(dime_client::Trust::ca_or_system(ca_file))?;
    let builder = || Account::builder_with_http(Box::new(Transport { http: http.clone() }));
    let io = |error| AcmeError::Io { path: key_path.display().to_string(), error };
    match std::fs::read(key_path) {
        Ok(der) => {
            let key = Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(der.as_slice()))?;
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der));
            Ok(builder().create_from_key((key, der), directory.to_owned()).await?.0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact = email.map(|e| format!("mailto:{e}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
            let (account, credentials) = builder().create(&new, directory.to_owned(), None).await?;
            crate::files::write_private(key_path, credentials.private_key().secret_pkcs8_der()).map_err(io)?;
            tracing::info!(path = %key_path.display(), "new ACME account key");
            Ok(account)
        }
        Err(e) => Err(io(e)),
    }
}

/// Orders one certificate for `name`, answering its HTTP-01 challenge through `challenges`. Returns (chain PEM,
/// key PEM).
pub async fn issue(account: &Account, name: &str, challenges: &Arc<Challenges>) -> Result<(String, String), AcmeError> {
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut offered = Vec::new();
    let outcome = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge =
                authz.challenge(ChallengeType::Http01).ok_or_else(|| AcmeError::NoHttp01 { name: name.to_owned() })?;
            challenges.insert(&challenge.token, challenge.key_authorization().as_str().to_owned());
            offered.push(challenge.token.clone());
            challenge.set_ready().await?;
        }
        order.poll_ready(&RetryPolicy::new().timeout(POLL_LIMIT)).await.map_err(AcmeError::from)
    }
    .await;
    for token in &offered {
        challenges.remove(token);
    }
    match outcome? {
        OrderStatus::Ready => {}
        OrderStatus::Invalid => {
            return Err(AcmeError::Validation { name: name.to_owned(), why: why_invalid(&mut order).await })
        }
        other => return Err(AcmeError::Order(other)),
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AcmeError::Certificate(format!("key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| AcmeError::Certificate(format!("CSR: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| AcmeError::Certificate(format!("CSR: {e}")))?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&RetryPolicy::new().timeout(POLL_LIMIT)).await?;
    Ok((chain, key.serialize_pem()))
}

/// What the server said about a failed HTTP-01 validation (the challenge's problem document).
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else { continue };
        for c in state.challenges.iter().filter(|c| c.r#type == ChallengeType::Http01) {
            if let Some(problem) = &c.error {
                reasons.push(problem.to_string());
            }
        }
    }
    if reasons.is_empty() {
        "the order is invalid".into()
    } else {
        reasons.join("; ")
    }
}
