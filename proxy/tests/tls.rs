//! HTTPS entrypoints with real TLS clients (curl, openssl s_client, and rustls): two names with different
//! certificates on one listener, chosen by SNI (exact and wildcard, default for others); HTTP/2 by ALPN; a
//! certificate replaced on disk is served for new handshakes with no failed handshake during the swap; a malformed
//! file is refused with the old certificate kept; the origin is told the request came over https.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use indoc::formatdoc;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::certs::{issue, served_serial};
use support::{Edge, Origin};

fn curl(port: u16, host: &str, dir: &Path, extra: &[&str]) -> (String, bool) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://{host}:{port}/tls-test"))
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_h2_and_certificate_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    issue(d, "a", &["a.test", "secure.test"], "0x0a01");
    issue(d, "b", &["*.b.test"], "0x0b01");
    let origin = Origin::start("tls-origin").await;
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: all, upstream: o }}
                - {{ name: secure, match: [{{ hosts: [secure.test] }}], upstream: o, https: {{ redirect: true, hsts_max_age: 8760h }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let port = support::free_port();
    let a = format!("{}:{}", d.join("a.crt").display(), d.join("a.key").display());
    let b = format!("{}:{}", d.join("b.crt").display(), d.join("b.key").display());
    let edge =
        Edge::start(&routes, &["--https", &format!("127.0.0.1:{port}"), "--tls-cert", &a, "--tls-cert", &b]).await;

    // SNI picks the certificate: exact name, wildcard, and the first pair for anything else.
    assert_eq!(served_serial(port, "a.test"), "serial=0A01");
    assert_eq!(served_serial(port, "x.b.test"), "serial=0B01");
    assert_eq!(served_serial(port, "other.test"), "serial=0A01");
    // curl verifies the chain and the name, gets HTTP/2, and the origin hears https.
    let (out, ok) = curl(port, "x.b.test", d, &["--http2", "-o", "/dev/null", "-w", "%{http_version}"]);
    assert!(ok && out == "2", "{out}");
    let (out, ok) = curl(port, "a.test", d, &["-D", "-", "-o", "/dev/null"]);
    assert!(ok && out.to_ascii_lowercase().contains("x-seen-xfp: https"), "{out}");

    // A route with `https: { redirect, hsts_max_age }`: plain HTTP is sent to https (308, same path and query,
    // the HTTPS entrypoint's port), HTTPS answers carry HSTS; other routes are untouched.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: secure.test"])
        .arg(format!("http://{}/x?y=1", edge.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("308 https://secure.test:{port}/x?y=1"));
    let (out, ok) = curl(port, "secure.test", d, &["-D", "-", "-o", "/dev/null"]);
    assert!(ok && out.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "{out}");
    let (out, ok) = curl(port, "a.test", d, &["-D", "-", "-o", "/dev/null"]);
    assert!(ok && !out.to_ascii_lowercase().contains("strict-transport-security"), "{out}");
    assert_eq!(edge.get("a.test", "/plain").await.status, 200, "no redirect where the route does not ask for it");

    // A rustls client: verifies against the CA, negotiates h2 by ALPN, and is given b's certificate for x.b.test.
    let mut roots = pingora_rustls::RootCertStore::empty();
    pingora_rustls::load_ca_file_into_store(d.join("ca.crt").to_str().unwrap(), &mut roots).unwrap();
    pingora_rustls::install_default_crypto_provider();
    let mut config = pingora_rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = pingora_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = pingora_rustls::ServerName::try_from("x.b.test").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let leaf = conn.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    assert_eq!(parsed.raw_serial_as_string(), "0b:01");

    // Hot reload under load: handshakes keep succeeding while a's certificate is replaced; then the new one is served.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let (stop, dpath) = (stop.clone(), d.to_path_buf());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                if curl(port, "a.test", &dpath, &["-o", "/dev/null"]).1 {
                    ok += 1
                } else {
                    failed += 1
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    issue(d, "a", &["a.test", "secure.test"], "0x0a02");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_serial(port, "a.test") != "serial=0A02" {
        assert!(Instant::now() < deadline, "the new certificate was not picked up; log:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = loader.join().unwrap();
    eprintln!("handshakes during the reload: {ok} ok, {failed} failed");
    assert!(ok > 5, "too few handshakes to mean anything: {ok}");
    assert_eq!(failed, 0, "no handshake may fail during a certificate reload");

    // A malformed file is refused; the certificate loaded before keeps serving.
    std::fs::write(d.join("a.crt"), "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edge.log_text().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < deadline, "no error logged for the malformed file; log:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(edge.log_text().contains(&d.join("a.crt").display().to_string()));
    assert_eq!(served_serial(port, "a.test"), "serial=0A02");
    assert!(curl(port, "a.test", d, &["-o", "/dev/null"]).1);
    assert!(edge.metric("dime_tls_reloads_total{result=\"failed\"}").await >= 1.0);
    assert!(
        edge.metric("dime_tls_certificate_expiry_timestamp_seconds").await > 0.0
            || edge.admin("/metrics").await.1.contains("dime_tls_certificate_expiry_timestamp_seconds{cert=")
    );
}

/// An HTTPS origin (rustls) with `name.crt`/`name.key` from `dir`, answering every request with `body`.
async fn tls_origin(dir: &Path, name: &str, body: &'static str) -> u16 {
    let (certs, key) = pingora_rustls::load_certs_and_key_files(
        dir.join(format!("{name}.crt")).to_str().unwrap(),
        dir.join(format!("{name}.key")).to_str().unwrap(),
    )
    .unwrap()
    .unwrap();
    pingora_rustls::install_default_crypto_provider();
    let config = pingora_rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    let acceptor = pingora_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(body.as_bytes()),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origins_are_verified_with_the_configured_ca_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    issue(d, "origin", &["origin.test"], "0x0c01");
    let port = tls_origin(d, "origin", "secret origin\n").await;
    let ca = d.join("ca.crt").display().to_string();
    let routes = |ca_file: &str| {
        formatdoc!(
            r#"
                version: 1
                http:
                  routes:
                {}  upstreams:
                    private-ca: {{ servers: [{{ url: "https://127.0.0.1:{port}" }}], tls: {{ ca_file: "{ca_file}", server_name: origin.test }} }}
                    system-roots: {{ servers: [{{ url: "https://127.0.0.1:{port}" }}], tls: {{ server_name: origin.test }} }}
                    wrong-name: {{ servers: [{{ url: "https://127.0.0.1:{port}" }}], tls: {{ ca_file: "{ca_file}", server_name: other.test }} }}
                    insecure: {{ servers: [{{ url: "https://127.0.0.1:{port}" }}], tls: {{ insecure_skip_verify: true }} }}
                "#,
            ["private-ca", "system-roots", "wrong-name", "insecure"]
                .iter()
                .map(|n| format!("    - {{ name: {n}, match: [{{ hosts: [{n}.test] }}], upstream: {n} }}\n"))
                .collect::<String>()
        )
    };
    let edge = Edge::start(&routes(&ca), &["--retries", "0"]).await;
    let r = edge.get("private-ca.test", "/").await;
    assert_eq!((r.status, r.body.as_str()), (200, "secret origin\n"), "verified with the configured CA and name");
    assert_eq!(edge.get("system-roots.test", "/").await.status, 502, "a private CA is not in the system roots");
    assert_eq!(edge.get("wrong-name.test", "/").await.status, 502, "the certificate does not name other.test");
    assert_eq!(edge.get("insecure.test", "/").await.status, 200);
    let log = edge.log_with("NOT verified (insecure_skip_verify)").await;
    assert!(log.contains("NOT verified (insecure_skip_verify)"), "{log}");

    // A CA file that cannot be read rejects the new table; the old one keeps serving.
    let version = edge.version().await;
    edge.write_routes(&routes("/nonexistent/ca.pem"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edge.log_text().contains("tls.ca_file /nonexistent/ca.pem") {
        assert!(Instant::now() < deadline, "no error for the missing CA file; log:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(edge.version().await, version);
    assert_eq!(edge.get("private-ca.test", "/").await.status, 200);
}

/// Certificates named by the route table (native `tls.certificates` files, the Traefik subset's
/// `tls.certificates` with certFile/keyFile as paths or as PEM text) serve an edge that has no --tls-cert; a new
/// table replaces them; `/config` never shows a private key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_the_route_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    issue(d, "t", &["t.test"], "0x0c01");
    issue(d, "old", &["old.test"], "0x0d01");
    issue(d, "inline", &["inline.test"], "0x0e01");
    let origin = Origin::start("table-certs").await;
    let native = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: all, upstream: o }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            tls:
              certificates:
                - {{ cert_file: {}, key_file: {} }}
            "#,
        origin.url(),
        d.join("t.crt").display(),
        d.join("t.key").display(),
    );
    let pem = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let traefik = format!(
        "tls:\n  certificates:\n    - certFile: {}\n      keyFile: {}\n    - certFile: {:?}\n      keyFile: {:?}\n",
        d.join("old.crt").display(),
        d.join("old.key").display(),
        pem("inline.crt"),
        pem("inline.key"),
    );
    let port = support::free_port();
    let edge = Edge::start(&format!("{native}---\n{traefik}"), &["--https", &format!("127.0.0.1:{port}")]).await;

    assert_eq!(served_serial(port, "t.test"), "serial=0C01");
    assert_eq!(served_serial(port, "old.test"), "serial=0D01");
    assert_eq!(served_serial(port, "inline.test"), "serial=0E01");
    let (out, ok) = curl(port, "old.test", d, &["-o", "/dev/null", "-w", "%{http_code}"]);
    assert!(ok && out == "200", "{out}");
    let (_, config) = edge.admin("/config").await;
    assert!(config.contains("<redacted>") && !config.contains("PRIVATE KEY"), "{config}");
    let metrics = edge.admin("/metrics").await.1;
    assert!(metrics.contains("dime_tls_certificate_expiry_timestamp_seconds{cert=\""), "{metrics}");

    // The Traefik document is dropped: its certificates go; the first remaining one is the default.
    edge.write_routes(&native);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_serial(port, "old.test") != "serial=0C01" {
        assert!(Instant::now() < deadline, "old.test still served its removed certificate; log:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(served_serial(port, "inline.test"), "serial=0C01");
}

/// HTTP/2 streams run outside their connection's task, where the header clock cannot see them: a long h2
/// download must outlive `--header-timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_download_outlives_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    issue(d, "a", &["a.test"], "0x0a01");
    let origin = Origin::start("h2-origin").await;
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: all, upstream: o }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let port = support::free_port();
    let a = format!("{}:{}", d.join("a.crt").display(), d.join("a.key").display());
    let _edge =
        Edge::start(&routes, &["--https", &format!("127.0.0.1:{port}"), "--tls-cert", &a, "--header-timeout", "1s"])
            .await;
    // 12 MB at 4 MB/s: about 3 s on one HTTP/2 connection, far more than socket buffers hold.
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--http2", "--limit-rate", "4M", "--cacert"])
        .arg(d.join("ca.crt"))
        .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
        .args(["-o", "/dev/null", "-w", "%{http_version} %{size_download}"])
        .arg(format!("https://a.test:{port}{}", support::ask("/big").size(12_000_000)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "2 12000000");
    assert!(started.elapsed() > Duration::from_secs(2), "the download was meant to outlast the header timeout");
}
