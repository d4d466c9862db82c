//! ACME HTTP-01 against a real ACME server: Debian's `pebble` (Let's Encrypt's test CA), validating over real
//! HTTP on loopback, with `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for the test name (public
//! DNS is what cannot run here). The edge orders, answers the challenge itself, serves the issued certificate by
//! SNI (curl verifies it against pebble's root), keeps it across a restart without ordering again, and renews
//! it when it comes within `--acme-renew-before` of expiry. A second edge, which only routes
//! `/.well-known/acme-challenge/` to the first, shows issuance shared between edges behind one name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use indoc::formatdoc;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::certs::{issue_by, served_serial};
use support::{free_port, Edge, Origin};

/// pebble + its DNS, killed on drop.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    management: u16,
    ca: PathBuf,
    log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// Validates HTTP-01 on `http_port` of whatever the test name resolves to (127.0.0.1).
    fn start(dir: &Path, http_port: u16) -> Pebble {
        // pebble's own HTTPS listener gets a certificate from a CA the edge is told to trust (--acme-ca).
        issue_by(dir, "pebble-ca", "pebble", &["DNS:localhost", "IP:127.0.0.1"], "0x77");
        let (listen, management, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.crt"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            // 90 days, like Let's Encrypt.
            "certificateValidityPeriod": 90 * 24 * 3600
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = dir.join("pebble.log");
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble)");
        let p = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://localhost:{listen}/dir"),
            management,
            ca: dir.join("pebble-ca.crt"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", dns_mgmt)).is_err()
        {
            assert!(Instant::now() < deadline, "pebble did not start; log:\n{}", p.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The root pebble issues under (a fresh one every run), from its management interface.
    fn root(&self, dir: &Path) -> PathBuf {
        let path = dir.join("pebble-root.pem");
        let ok = Command::new("curl")
            .args(["-sSf", "--max-time", "5", "--cacert"])
            .arg(&self.ca)
            .arg(format!("https://localhost:{}/roots/0", self.management))
            .arg("-o")
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot fetch pebble's root");
        path
    }
}

fn acme_args(pebble: &Pebble, dir: &Path, http: u16, https: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--http".into(),
        format!("127.0.0.1:{http}"),
        "--https".into(),
        format!("127.0.0.1:{https}"),
        "--acme-domain".into(),
        "acme.test".into(),
        "--acme-directory".into(),
        pebble.directory.clone(),
        "--acme-ca".into(),
        pebble.ca.display().to_string(),
        "--acme-dir".into(),
        dir.join("acme").display().to_string(),
        "--acme-email".into(),
        "ops@acme.test".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn wait_for_serial(port: u16, edge: &Edge, pebble: &Pebble, not: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let serial = served_serial(port, "acme.test");
        if !serial.is_empty() && serial != not {
            return serial;
        }
        assert!(
            Instant::now() < deadline,
            "no ACME certificate served; edge log:\n{}\npebble log:\n{}",
            edge.log_text(),
            pebble.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn curl_verified(root: &Path, https: u16, path: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("acme.test:{https}:127.0.0.1")])
        .arg(format!("https://acme.test:{https}{path}"))
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_the_edge_serves_keeps_and_renews() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let origin = Origin::start("acme-origin").await;
    let routes = support::one_route("all", "acme.test", &[(&origin.url(), 1)]);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(d, http);

    let args = acme_args(&pebble, d, http, https, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let edge = Edge::start(&routes, &args).await;
    let first = wait_for_serial(https, &edge, &pebble, "").await;
    // curl verifies the chain up to pebble's root and the name: the certificate is pebble's, for acme.test.
    let root = pebble.root(d);
    let (ok, out) = curl_verified(&root, https, "/hello");
    assert!(ok && out.contains("acme-origin"), "{out}");
    assert_eq!(edge.metric("dime_acme_orders_total{domain=\"acme.test\",result=\"ok\"}").await, 1.0);
    // The first order succeeds: the edge waits for its HTTP entrypoint before asking for validation.
    assert_eq!(edge.metric("dime_acme_orders_total{domain=\"acme.test\",result=\"failed\"}").await, 0.0);
    assert!(edge
        .admin("/metrics")
        .await
        .1
        .contains("dime_tls_certificate_expiry_timestamp_seconds{cert=\"acme:acme.test\"}"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("acme/acme.test/key.pem")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the key is owner-only");
    assert!(pebble.log_text().contains("acme.test"), "pebble validated acme.test:\n{}", pebble.log_text());

    // A restart serves the saved certificate at once, without ordering again.
    drop(edge);
    let edge = Edge::start(&routes, &args).await;
    assert_eq!(served_serial(https, "acme.test"), first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(edge.metric("dime_acme_orders_total{domain=\"acme.test\",result=\"ok\"}").await, 0.0);
    let log = edge.log_with("ACME certificate loaded").await;
    assert!(log.contains("ACME certificate loaded"), "{log}");

    // Due for renewal (renew-before, 2200 h, longer than the 90-day validity): renewed, the old one served meanwhile.
    drop(edge);
    let renew = acme_args(&pebble, d, http, https, &["--acme-renew-before", "2200h"]);
    let renew: Vec<&str> = renew.iter().map(String::as_str).collect();
    let edge = Edge::start(&routes, &renew).await;
    let second = wait_for_serial(https, &edge, &pebble, &first).await;
    assert_ne!(first, second);
    assert!(curl_verified(&root, https, "/").0);
    drop(edge);
}

/// Two edges behind one name: the one the ACME server reaches has a route sending
/// `/.well-known/acme-challenge/` to the edge that orders; the token is answered there and the order succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_is_shared_by_routing_challenges_to_the_ordering_edge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let origin = Origin::start("shared-origin").await;
    let (issuer_http, front_http, https) = (free_port(), free_port(), free_port());
    // pebble validates on the front edge's port.
    let pebble = Pebble::start(d, front_http);
    let front_routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: all, upstream: o }}
                - {{ name: acme, match: [{{ paths: [{{ prefix: /.well-known/acme-challenge/ }}] }}], upstream: issuer }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
                issuer: {{ servers: [{{ url: "http://127.0.0.1:{issuer_http}" }}] }}
            "#,
        origin.url()
    );
    let _front = Edge::start(&front_routes, &["--http", &format!("127.0.0.1:{front_http}")]).await;
    let routes = support::one_route("all", "acme.test", &[(&origin.url(), 1)]);
    let args = acme_args(&pebble, d, issuer_http, https, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let issuer = Edge::start(&routes, &args).await;
    wait_for_serial(https, &issuer, &pebble, "").await;
    let (ok, out) = curl_verified(&pebble.root(d), https, "/");
    assert!(ok && out.contains("shared-origin"), "{out}");
}
