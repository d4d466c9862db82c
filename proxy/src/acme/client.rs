//! The ACME protocol (RFC 8555) as far as HTTP-01 issuance needs it: JWS requests signed with an ES256 account
//! key, replay nonces, account registration, orders, authorizations, finalization with a CSR, and download.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::Challenges;

/// Each request: connect + answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an authorization or an order may stay pending/processing.
const POLL_LIMIT: Duration = Duration::from_secs(120);
const MAX_BODY: usize = 1 << 20;

/// An ACME failure, with the server's problem document when there is one.
#[derive(Debug)]
pub struct AcmeError(pub String);

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(text: impl Into<String>) -> AcmeError {
    AcmeError(text.into())
}

struct Response {
    status: u16,
    location: Option<String>,
    nonce: Option<String>,
    retry_after: Option<Duration>,
    body: Bytes,
}

impl Response {
    fn json(&self) -> Result<Value, AcmeError> {
        serde_json::from_slice(&self.body).map_err(|e| err(format!("the ACME server answered malformed JSON: {e}")))
    }
}

/// `https://host[:port]/path` → (authority, host, path).
fn split_url(url: &str) -> Result<(String, String, String), AcmeError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| err(format!("`{url}`: ACME URLs must be https://")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let with_port = if authority.starts_with('[') {
        if authority.ends_with(']') {
            format!("{authority}:443")
        } else {
            authority.to_owned()
        }
    } else if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    Ok((with_port, host.to_owned(), path.to_owned()))
}

/// One ACME account on one directory.
pub struct Client {
    tls: pingora_rustls::TlsConnector,
    key: EcdsaKeyPair,
    jwk: Value,
    thumbprint: String,
    new_nonce: String,
    new_account: String,
    new_order: String,
    nonce: Option<String>,
    kid: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A new ES256 account key, PKCS#8.
pub fn generate_account_key() -> Result<Vec<u8>, AcmeError> {
    let rng = ring::rand::SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| err("cannot generate an account key"))
}

async fn send(
    tls: &pingora_rustls::TlsConnector,
    method: http::Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, AcmeError> {
    let (authority, host, path) = split_url(url)?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(authority.as_str())
            .await
            .map_err(|e| err(format!("connect to {authority}: {e}")))?;
        let name = pingora_rustls::ServerName::try_from(host.clone()).map_err(|e| err(format!("`{host}`: {e}")))?;
        let stream = tls.connect(name, tcp).await.map_err(|e| err(format!("TLS with {authority}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| err(format!("{authority}: {e}")))?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::USER_AGENT, concat!("dime-edge/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/jose+json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| err(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| err(format!("{url}: {e}")))?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, location, nonce) = (resp.status().as_u16(), header("location"), header("replay-nonce"));
        let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs);
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| err(format!("{url}: reading the answer: {e}")))?
            .to_bytes();
        Ok(Response { status, location, nonce, retry_after, body })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| err(format!("{url}: no answer in time")))?
}

fn problem(url: &str, resp: &Response) -> AcmeError {
    let detail = serde_json::from_slice::<Value>(&resp.body).ok().map_or_else(
        || String::from_utf8_lossy(&resp.body).chars().take(300).collect(),
        |p| format!("{} {}", p["type"].as_str().unwrap_or_default(), p["detail"].as_str().unwrap_or_default()),
    );
    err(format!("{url}: {} {detail}", resp.status))
}

impl Client {
    /// Reads the directory; `account_key` is the PKCS#8 ES256 key.
    pub async fn new(
        directory: &str,
        tls: pingora_rustls::TlsConnector,
        account_key: &[u8],
    ) -> Result<Client, AcmeError> {
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, account_key, &rng)
            .map_err(|e| err(format!("account key: {e}")))?;
        let public = key.public_key().as_ref();
        let (x, y) = (B64.encode(&public[1..33]), B64.encode(&public[33..65]));
        // RFC 7638: the thumbprint hashes the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()));
        let jwk = json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
        let resp = send(&tls, http::Method::GET, directory, None).await?;
        if resp.status != 200 {
            return Err(problem(directory, &resp));
        }
        let dir = resp.json()?;
        let url = |name: &str| {
            dir[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(format!("{directory}: no `{name}` in the directory")))
        };
        Ok(Client {
            new_nonce: url("newNonce")?,
            new_account: url("newAccount")?,
            new_order: url("newOrder")?,
            tls,
            key,
            jwk,
            thumbprint,
            nonce: None,
            kid: None,
        })
    }

    async fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let resp = send(&self.tls, http::Method::HEAD, &self.new_nonce.clone(), None).await?;
        resp.nonce.ok_or_else(|| err(format!("{}: no Replay-Nonce", self.new_nonce)))
    }

    /// A signed POST (`payload` None: POST-as-GET). A `badNonce` refusal is retried with the nonce it carries.
    async fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, AcmeError> {
        let payload = payload.map_or_else(String::new, |p| B64.encode(p.to_string()));
        for _ in 0..5 {
            let nonce = self.fresh_nonce().await?;
            let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
            match &self.kid {
                Some(kid) => protected["kid"] = json!(kid),
                None => protected["jwk"] = self.jwk.clone(),
            }
            let protected = B64.encode(protected.to_string());
            let rng = ring::rand::SystemRandom::new();
            let signature =
                self.key.sign(&rng, format!("{protected}.{payload}").as_bytes()).map_err(|_| err("signing failed"))?;
            let body = json!({"protected": protected, "payload": payload, "signature": B64.encode(signature)});
            let resp = send(&self.tls, http::Method::POST, url, Some(body.to_string().into_bytes())).await?;
            self.nonce = resp.nonce.clone();
            let bad_nonce = resp.status == 400
                && serde_json::from_slice::<Value>(&resp.body)
                    .is_ok_and(|p| p["type"] == "urn:ietf:params:acme:error:badNonce");
            if !bad_nonce {
                return Ok(resp);
            }
        }
        Err(err(format!("{url}: the server kept refusing nonces")))
    }

    /// Registers the account (or finds the existing one for this key).
    pub async fn account(&mut self, email: Option<&str>) -> Result<(), AcmeError> {
        let mut payload = json!({"termsOfServiceAgreed": true});
        if let Some(e) = email {
            payload["contact"] = json!([format!("mailto:{e}")]);
        }
        let url = self.new_account.clone();
        let resp = self.post(&url, Some(&payload)).await?;
        if !(resp.status == 200 || resp.status == 201) {
            return Err(problem(&url, &resp));
        }
        self.kid = Some(resp.location.ok_or_else(|| err(format!("{url}: no account URL (Location)")))?);
        Ok(())
    }

    /// POST-as-GET `url` until its `status` leaves `pending`/`processing`.
    async fn poll(&mut self, url: &str) -> Result<Value, AcmeError> {
        let deadline = Instant::now() + POLL_LIMIT;
        loop {
            let resp = self.post(url, None).await?;
            if resp.status != 200 {
                return Err(problem(url, &resp));
            }
            let body = resp.json()?;
            let status = body["status"].as_str().unwrap_or_default();
            if !matches!(status, "pending" | "processing") {
                return Ok(body);
            }
            if Instant::now() > deadline {
                return Err(err(format!("{url}: still {status} after {POLL_LIMIT:?}")));
            }
            let wait = resp.retry_after.unwrap_or(Duration::from_millis(500)).min(Duration::from_secs(10));
            tokio::time::sleep(wait).await;
        }
    }

    /// Orders one certificate for `names`, answering HTTP-01 through `challenges`. Returns (chain PEM, key PEM).
    pub async fn issue(
        &mut self,
        names: &[String],
        challenges: &Arc<Challenges>,
    ) -> Result<(String, String), AcmeError> {
        let identifiers: Vec<Value> = names.iter().map(|n| json!({"type": "dns", "value": n})).collect();
        let url = self.new_order.clone();
        let resp = self.post(&url, Some(&json!({"identifiers": identifiers}))).await?;
        if resp.status != 201 {
            return Err(problem(&url, &resp));
        }
        let order_url = resp.location.clone().ok_or_else(|| err(format!("{url}: no order URL (Location)")))?;
        let order = resp.json()?;
        let authorizations: Vec<String> = order["authorizations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let finalize = order["finalize"].as_str().map(str::to_owned).ok_or_else(|| err("order without `finalize`"))?;
        for authz_url in authorizations {
            self.authorize(&authz_url, challenges).await?;
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| err(format!("certificate key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| err(format!("CSR: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| err(format!("CSR: {e}")))?;
        let resp = self.post(&finalize, Some(&json!({"csr": B64.encode(csr.der())}))).await?;
        if resp.status != 200 {
            return Err(problem(&finalize, &resp));
        }
        let order = self.poll(&order_url).await?;
        if order["status"] != "valid" {
            return Err(err(format!("order {order_url} ended {}: {}", order["status"], order["error"])));
        }
        let cert_url =
            order["certificate"].as_str().ok_or_else(|| err("valid order without `certificate`"))?.to_owned();
        let resp = self.post(&cert_url, None).await?;
        if resp.status != 200 {
            return Err(problem(&cert_url, &resp));
        }
        let chain = String::from_utf8(resp.body.to_vec()).map_err(|_| err("certificate chain is not PEM text"))?;
        Ok((chain, key.serialize_pem()))
    }

    async fn authorize(&mut self, authz_url: &str, challenges: &Arc<Challenges>) -> Result<(), AcmeError> {
        let resp = self.post(authz_url, None).await?;
        if resp.status != 200 {
            return Err(problem(authz_url, &resp));
        }
        let authz = resp.json()?;
        let name = authz["identifier"]["value"].as_str().unwrap_or_default().to_owned();
        if authz["status"] == "valid" {
            return Ok(());
        }
        let challenge = authz["challenges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "http-01")
            .ok_or_else(|| err(format!("{name}: the ACME server offers no http-01 challenge")))?;
        let token = challenge["token"].as_str().ok_or_else(|| err("http-01 challenge without a token"))?.to_owned();
        let url = challenge["url"].as_str().ok_or_else(|| err("http-01 challenge without a URL"))?.to_owned();
        challenges.insert(&token, format!("{token}.{}", self.thumbprint));
        let outcome = async {
            let resp = self.post(&url, Some(&json!({}))).await?;
            if resp.status != 200 {
                return Err(problem(&url, &resp));
            }
            let done = self.poll(authz_url).await?;
            if done["status"] != "valid" {
                let why = done["challenges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "http-01")
                    .map(|c| c["error"]["detail"].as_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                return Err(err(format!("{name}: HTTP-01 validation failed ({}): {why}", done["status"])));
            }
            Ok(())
        }
        .await;
        challenges.remove(&token);
        outcome
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::split_url;

    #[test]
    fn urls_split_into_authority_host_and_path() {
        assert_eq!(
            split_url("https://acme.example:14000/dir").unwrap(),
            ("acme.example:14000".into(), "acme.example".into(), "/dir".into())
        );
        assert_eq!(
            split_url("https://acme.example").unwrap(),
            ("acme.example:443".into(), "acme.example".into(), "/".into())
        );
        assert_eq!(split_url("https://[::1]/d").unwrap(), ("[::1]:443".into(), "::1".into(), "/d".into()));
        assert!(split_url("http://acme.example/dir").is_err());
    }
}
