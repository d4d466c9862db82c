//! HTTPS entrypoints with real TLS clients (curl, openssl s_client, and rustls): two names with different
//! certificates on one listener, chosen by SNI (exact and wildcard, default for others); HTTP/2 by ALPN; a
//! certificate replaced on disk is served for new handshakes with no failed handshake during the swap; a malformed
//! file is refused with the old certificate kept; the origin is told the request came over https.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Edge, Origin};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, then `name.crt`/`name.key` for the DNS names given, signed by it.
fn issue(dir: &Path, name: &str, dns: &[&str], serial: &str) {
    if !dir.join("ca.crt").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=Dime test CA",
            ],
        );
    }
    let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
    std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName={}\n", san.join(","))).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key.new"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={}", dns[0]),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "1",
            "-out",
            &format!("{name}.crt.new"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    // Replace as deploy tools do: key and certificate renamed into place.
    std::fs::rename(dir.join(format!("{name}.key.new")), dir.join(format!("{name}.key"))).unwrap();
    std::fs::rename(dir.join(format!("{name}.crt.new")), dir.join(format!("{name}.crt"))).unwrap();
}

/// The serial number of the certificate the edge presents for `sni`, via openssl s_client.
fn served_serial(port: u16, sni: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

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
    let routes = format!(
        "version: 1\nhttp:\n  routes:\n    - {{ name: all, upstream: o }}\n    - {{ name: secure, match: [{{ hosts: [secure.test] }}], upstream: o, https: {{ redirect: true, hsts_max_age: 8760h }} }}\n  upstreams:\n    o: {{ servers: [{{ url: \"{}\" }}] }}\n",
        origin.url()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
