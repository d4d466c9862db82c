//! Whole-crate tests: the old setup's Traefik fragments, native documents, and errors with locations.

use super::*;

mod fuzz;

/// The old setup's ConfigMap fragments, verbatim.
pub const VIDEO_FRAGMENT: &str = include_str!("../../examples/traefik/video-config.yaml");
pub const WHOAMI_FRAGMENT: &str = include_str!("../../examples/traefik/whoami-config.yaml");

/// Runs `f` on its own thread and fails, naming `input` (escaped), if it panics or has not returned within
/// `limit`. A call that never returns leaves its thread spinning until the test binary exits. The proxy's tests
/// have the same helper in the test kit (`dime_testkit::fuzz`); this crate does not depend on the test kit.
pub(crate) fn within<T: Send + 'static>(
    limit: std::time::Duration,
    input: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("panicked ({message}) on input {input:?}")
        }
        Err(_) => panic!("did not return within {limit:?} on input {input:?}"),
    }
}

fn errors_of(text: &str) -> Vec<String> {
    parse("routes.yaml", text).unwrap_err().iter().map(|e| e.to_string()).collect()
}

#[test]
fn old_traefik_fragments_translate_and_merge_into_one_table() {
    let table = compile(&[
        Fragment { source: "default/video-config/video.yaml", text: VIDEO_FRAGMENT },
        Fragment { source: "default/whoami-config/whoami.yaml", text: WHOAMI_FRAGMENT },
    ])
    .unwrap();
    let video = table.find("video.edge.mycdndomain.us", "/hls/stream.m3u8").unwrap();
    assert_eq!(video.name, "video-router");
    assert_eq!(video.upstream, "video-service");
    assert!(video.cache.is_some(), "plugin-simplecache turns caching on");
    let whoami = table.find("WHOAMI.edge.mycdndomain.us.", "/").unwrap();
    assert_eq!(whoami.name, "whoami-router");
    let up = table.upstream("video-service").unwrap();
    assert_eq!((up.servers[0].host.as_str(), up.servers[0].port), ("video.cluster.mycdndomain.us", 8080));
    assert_eq!(table.upstream("whoami-service").unwrap().servers[0].port, 80);
    assert!(table.find("other.mycdndomain.us", "/").is_none());
}

#[test]
fn the_same_routes_give_the_same_version_in_any_fragment_order() {
    let a = compile(&[Fragment { source: "a", text: VIDEO_FRAGMENT }, Fragment { source: "b", text: WHOAMI_FRAGMENT }]);
    let b = compile(&[Fragment { source: "b", text: WHOAMI_FRAGMENT }, Fragment { source: "a", text: VIDEO_FRAGMENT }]);
    assert_eq!(a.unwrap().version(), b.unwrap().version());
}

#[test]
fn compiled_table_round_trips_through_the_native_schema() {
    let table =
        compile(&[Fragment { source: "a", text: VIDEO_FRAGMENT }, Fragment { source: "b", text: WHOAMI_FRAGMENT }])
            .unwrap();
    let again = parse("payload.json", &table.to_json()).unwrap();
    assert_eq!(again.version(), table.version());
    assert_eq!(again.routes(), table.routes());
}

const NATIVE: &str = r#"
version: 1
http:
  routes:
    - name: video-hls
      match:
        - hosts: [video.example.com]
          paths: [{ prefix: /hls/ }]
      upstream: video
      cache: {}
    - name: video
      match:
        - hosts: [video.example.com, "*.video.example.com"]
      upstream: video
    - name: ping
      match:
        - paths: [{ exact: /ping }]
      upstream: video
      priority: 1000
  upstreams:
    video:
      servers:
        - { url: "http://10.0.0.1:8080", weight: 3 }
        - { url: "http://10.0.0.2:8080" }
      health_check: { path: /healthz, interval: 2s }
      connect_timeout: 500ms
"#;

#[test]
fn longer_rule_wins_unless_priority_says_otherwise() {
    let table = parse("native.yaml", NATIVE).unwrap();
    assert_eq!(table.find("video.example.com", "/hls/a.ts").unwrap().name, "video-hls");
    assert_eq!(table.find("video.example.com", "/index.html").unwrap().name, "video");
    assert_eq!(table.find("a.video.example.com", "/hls/a.ts").unwrap().name, "video");
    assert_eq!(table.find("video.example.com", "/ping").unwrap().name, "ping");
    assert_eq!(table.find("unrelated.org", "/ping").unwrap().name, "ping");
    let up = table.upstream("video").unwrap();
    assert_eq!(up.servers[0].weight, 3);
    assert_eq!(up.connect_timeout, std::time::Duration::from_millis(500));
    assert_eq!(up.health_check.as_ref().unwrap().interval, std::time::Duration::from_secs(2));
}

#[test]
fn traefik_priority_defaults_to_rule_length() {
    let text = r#"
http:
  routers:
    short: { rule: "Host(`a.com`)", service: s }
    long: { rule: "Host(`a.com`) && PathPrefix(`/x`)", service: s }
    pinned: { rule: "PathPrefix(`/x/y`)", service: s, priority: 1 }
  services:
    s: { loadBalancer: { servers: [{ url: "http://127.0.0.1:1" }] } }
"#;
    let table = parse("t.yaml", text).unwrap();
    assert_eq!(table.find("a.com", "/x/y").unwrap().name, "long");
    assert_eq!(table.find("a.com", "/z").unwrap().name, "short");
    assert_eq!(table.find("b.com", "/x/y").unwrap().name, "pinned");
}

#[test]
fn every_error_is_reported_with_its_location() {
    let text = r#"
http:
  routers:
    r1: { rule: "HostRegexp(`.*`)", service: s }
    r2: { rule: "Host(`a.com`)", service: missing }
    r3: { rule: "Host(`b.com`)", service: s, middlewares: [nope] }
  services:
    s: { loadBalancer: { servers: [{ url: "ftp://x" }] } }
"#;
    let errors = errors_of(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let want = [
        "routes.yaml:4: http.routers.r1.rule: `HostRegexp(`.*`)`: `HostRegexp` (Traefik host regular expressions) is not supported by Dime; instead, write Host(`*.example.com`) for a wildcard",
        "routes.yaml:5: http.routers.r2.service: `missing` is not a defined upstream/service",
        "routes.yaml:6: http.routers.r3.middlewares[0]: middleware `nope` is not defined",
        "routes.yaml:8: http.services.s.loadBalancer.servers[0].url: `ftp://x`: unsupported scheme `ftp`",
    ];
    for w in want {
        assert!(errors.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errors:#?}");
    }
}

#[test]
fn unsupported_traefik_features_are_errors_not_ignored() {
    for (text, want) in [
        (
            "http:\n  routers:\n    r: { rule: \"Host(`a`)\", service: s, tls: { certResolver: le } }\n",
            "http.routers.r.tls.certResolver",
        ),
        (
            "http:\n  services:\n    s: { weighted: {} }\n",
            "`weighted` (Traefik weighted round robin services) is not supported",
        ),
        (
            "http:\n  services:\n    s: { loadBalancer: { servers: [], sticky: {} } }\n",
            "http.services.s.loadBalancer.sticky: `sticky` (Traefik sticky sessions) is not supported by Dime",
        ),
        ("http:\n  middlewares:\n    m: { headers: {} }\n", "`headers` (Traefik Headers middleware) is not supported"),
        ("udp:\n  routers: {}\nhttp: {}\n", "`udp` (Traefik UDP routers and services) is not supported by Dime"),
        ("http:\n  middlewares:\n    m: { plugin: { other: {} } }\n", "unsupported plugin"),
        (
            "tcp:\n  routers:\n    r: { rule: \"HostSNI(`a.com`)\", entryPoints: [rtmp], service: s }\n",
            "only HostSNI(`*`)",
        ),
        ("http:\n  routers:\n    r: { rule: \"Host(`a`)\", service: s@kubernetescrd }\n", "provider"),
    ] {
        let errors = errors_of(text);
        assert!(errors.iter().any(|e| e.contains(want)), "{want:?} not in {errors:#?}");
    }
}

#[test]
fn duplicate_names_across_fragments_name_both_places() {
    let err = compile(&[
        Fragment { source: "ns/a/k", text: VIDEO_FRAGMENT },
        Fragment { source: "ns/b/k", text: VIDEO_FRAGMENT },
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("route `video-router` is also defined at ns/a/k"), "{text}");
    assert!(text.contains("upstream `video-service` is also defined at ns/a/k"), "{text}");
}

#[test]
fn native_errors_name_route_index_and_field() {
    let text = "version: 1\nhttp:\n  routes:\n    - name: r\n      match: [{ hosts: [\"a.com:80\"], paths: [{ prefix: nope }] }]\n      upstream: u\n";
    let errors = errors_of(text);
    assert!(
        errors.iter().any(|e| e.starts_with("routes.yaml:5: http.routes[0] (r).match[0].hosts[0]: invalid host")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("http.routes[0] (r).match[0].paths[0]: invalid path `nope`")),
        "{errors:#?}"
    );
    let upstream = "routes.yaml:6: http.routes[0] (r).upstream: `u` is not a defined";
    assert!(errors.iter().any(|e| e.starts_with(upstream)), "{errors:#?}");
}

#[test]
fn unknown_documents_and_versions_are_rejected() {
    assert!(errors_of("routers: {}\n")[0].contains("neither a Dime routes document"));
    assert!(errors_of("version: 2\n")[0].contains("unsupported schema version"));
    assert!(errors_of("version: 1\nhttp: { routes: [{ name: a, upstream: u, colour: red }] }\n")[0]
        .contains("unknown field `colour`"));
}

#[test]
fn server_urls_parse_strictly() {
    use crate::validate::parse_server_url;
    assert_eq!(parse_server_url("http://a.b:8080").unwrap(), ("a.b".into(), 8080, false));
    assert_eq!(parse_server_url("http://A.b/").unwrap(), ("a.b".into(), 80, false));
    assert_eq!(parse_server_url("http://[::1]:81").unwrap(), ("::1".into(), 81, false));
    assert_eq!(parse_server_url("https://a.b").unwrap(), ("a.b".into(), 443, true));
    for bad in ["http://a.b/path", "http://a.b:0", "http://:80", "a.b:80", "http://u@a.b", "ftp://a.b"] {
        assert!(parse_server_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_empty_file_is_an_empty_table() {
    let table = parse("empty.yaml", "# nothing yet\n").unwrap();
    assert!(table.routes().is_empty());
}

const TRAEFIK_TCP: &str = r#"
tcp:
  routers:
    rtmp-router:
      rule: HostSNI(`*`)
      entryPoints: [rtmp]
      service: rtmp-service
  services:
    rtmp-service:
      loadBalancer:
        servers:
          - address: nginx.cluster.mycdndomain.us:1935
"#;

#[test]
fn traefik_tcp_routers_translate_with_the_private_default_allowlist() {
    let table = parse("tcp.yaml", TRAEFIK_TCP).unwrap();
    let route = table.tcp_route_for("rtmp").unwrap();
    assert_eq!((route.name.as_str(), route.upstream.as_str()), ("rtmp-router", "rtmp-service"));
    assert!(route.allows("10.1.2.3".parse().unwrap()));
    assert!(route.allows("::ffff:192.168.1.5".parse().unwrap()));
    assert!(!route.allows("203.0.113.9".parse().unwrap()), "not open to the world by default");
    let up = &table.tcp_upstreams()["rtmp-service"];
    assert_eq!((up.servers[0].host.as_str(), up.servers[0].port), ("nginx.cluster.mycdndomain.us", 1935));
    assert!(table.tcp_route_for("web").is_none());
}

#[test]
fn native_tcp_routes_validate_every_field() {
    let text = r#"
version: 1
tcp:
  routes:
    - { name: a, entrypoints: [rtmp], upstream: o, allow: ["0.0.0.0/0", "bogus"], max_connections: 0 }
    - { name: b, entrypoints: [rtmp], upstream: missing, idle_timeout: 5x }
  upstreams:
    o: { servers: [{ address: "origin:1935" }, { address: "nope" }] }
"#;
    let errors = errors_of(text);
    for want in [
        "tcp.routes[0] (a).allow[1]: `bogus` is not a CIDR",
        "tcp.routes[0] (a).max_connections: must be at least 1",
        "tcp.routes[1] (b).upstream: `missing` is not a defined TCP upstream",
        "tcp.routes[1] (b).idle_timeout: invalid duration",
        "tcp.routes[1] (b).entrypoints: entrypoint `rtmp` is already served by TCP route `a`",
        "tcp.upstreams.o.servers[1].address: `nope`: expected host:port",
    ] {
        assert!(errors.iter().any(|e| e.contains(want)), "missing {want:?} in {errors:#?}");
    }
}

/// A resolver with one known Service, as dime-control builds from LoadBalancer status.
struct OneService;

impl crate::ServiceResolver for OneService {
    fn resolve(&self, s: &crate::ServiceRef<'_>) -> Result<(String, u16), crate::Invalid> {
        match (s.namespace, s.name, s.port) {
            ("video", "nginx", "1935" | "rtmp") => Ok(("192.0.2.10".into(), 1935)),
            ("video", "nginx", "8080" | "http") => Ok(("192.0.2.10".into(), 8080)),
            ("video", "v6", _) => Ok(("2001:db8::1".into(), 80)),
            _ => Err(format!("Service {}/{} not found", s.namespace, s.name).into()),
        }
    }
}

const SERVICE_ROUTES: &str = r#"
version: 1
http:
  routes:
    - { name: video, match: [{ hosts: [video.example.com] }], upstream: origin }
  upstreams:
    origin: { servers: [{ service: "video/nginx:http" }, { service: "video/v6:80" }] }
tcp:
  routes:
    - { name: rtmp, entrypoints: [rtmp], upstream: rtmp }
  upstreams:
    rtmp: { servers: [{ service: "video/nginx:1935" }] }
"#;

#[test]
fn service_references_resolve_to_addresses_in_the_compiled_document() {
    let table = crate::compile_with(&[Fragment { source: "ns/cm/routes", text: SERVICE_ROUTES }], &OneService).unwrap();
    let up = &table.upstreams()["origin"];
    assert_eq!((up.servers[0].host.as_str(), up.servers[0].port), ("192.0.2.10", 8080));
    assert_eq!((up.servers[1].host.as_str(), up.servers[1].port), ("2001:db8::1", 80));
    assert_eq!(table.tcp_upstreams()["rtmp"].servers[0].port, 1935);
    // What edges receive names addresses only, and reads back as the same table.
    let json = table.to_json();
    assert!(json.contains("http://192.0.2.10:8080") && json.contains("http://[2001:db8::1]:80"), "{json}");
    assert!(!json.contains("service"), "{json}");
    assert_eq!(crate::parse("served.json", &json).unwrap().version(), table.version());
}

#[test]
fn service_references_are_errors_outside_control_and_when_unresolved() {
    let errors = errors_of(SERVICE_ROUTES);
    assert!(
        errors.iter().any(|e| e.contains("http.upstreams.origin.servers[0].service: `video/nginx:http`: Kubernetes Service references are resolved by dime-control only")),
        "{errors:#?}"
    );
    let text = r#"
version: 1
http:
  upstreams:
    a: { servers: [{ service: "video/missing:80" }, { service: "no-namespace:80" }, { url: "http://x", service: "video/nginx:80" }, {}] }
"#;
    let errors = crate::compile_with(&[Fragment { source: "f", text }], &OneService).unwrap_err();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for want in [
        "servers[0].service: `video/missing:80`: Service video/missing not found",
        "servers[1].service: `no-namespace:80`: expected a Service as namespace/name:port",
        "servers[2].service: give either a Service or a direct address, not both",
        "servers[3].url: missing: a server needs `url`",
    ] {
        assert!(errors.iter().any(|e| e.contains(want)), "missing {want:?} in {errors:#?}");
    }
}

#[test]
fn traefik_routers_with_an_empty_tls_block_are_accepted() {
    let text = "http:\n  routers:\n    r: { rule: \"Host(`a.test`)\", service: s, tls: {} }\n  services:\n    s: { loadBalancer: { servers: [{ url: \"http://10.0.0.1\" }] } }\n";
    assert!(crate::parse("f", text).unwrap().find("a.test", "/").is_some());
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

#[test]
fn native_certificates_compile_from_files_or_inline_pem() {
    let text = format!(
        "version: 1\ntls:\n  certificates:\n    - {{ cert_file: /etc/dime/a.pem, key_file: /etc/dime/a.key }}\n    - name: inline\n      cert_pem: {CERT:?}\n      key_pem: {KEY:?}\n"
    );
    let table = crate::parse("f.yaml", &text).unwrap();
    let certs = table.certificates();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].label, "/etc/dime/a.pem");
    assert_eq!(
        certs[0].source,
        crate::CertificateSource::Files { cert: "/etc/dime/a.pem".into(), key: "/etc/dime/a.key".into() }
    );
    assert_eq!(certs[1].label, "inline");
    assert!(matches!(&certs[1].source, crate::CertificateSource::Pem { key, .. } if key == KEY));
    // What /config shows never holds the key; what control serves does.
    let shown = serde_json::to_string(&table.redacted_document()).unwrap();
    assert!(!shown.contains("MIIE") && shown.contains("<redacted>"), "{shown}");
    assert!(table.to_json().contains("MIIE"));
    assert!(!format!("{:?}", table.certificates()).contains("MIIE"));
}

#[test]
fn certificate_entries_must_name_exactly_one_source() {
    for (entry, want) in [
        ("{ cert_file: /a.pem }", "tls.certificates[0].key_file: missing"),
        ("{ cert_file: /a.pem, key_file: /a.key, secret: s }", "give exactly one of"),
        ("{}", "give exactly one of"),
        (
            "{ secret: video-tls }",
            "tls.certificates[0].secret: `video-tls`: Kubernetes Secrets are read by dime-control only",
        ),
        ("{ cert_pem: nope, key_pem: nope }", "tls.certificates[0].cert_pem: not a PEM certificate"),
    ] {
        let text = format!("version: 1\ntls:\n  certificates:\n    - {entry}\n");
        let errors = crate::parse("f.yaml", &text).unwrap_err().to_string();
        assert!(errors.contains(want), "{entry}: {want:?} not in {errors}");
    }
}

#[test]
fn secrets_are_resolved_through_the_resolver() {
    struct Cluster;
    impl crate::ServiceResolver for Cluster {
        fn resolve(&self, _: &crate::ServiceRef<'_>) -> Result<(String, u16), crate::Invalid> {
            Err("none".into())
        }
        fn secret(&self, source: &str, name: &str) -> Result<crate::TlsSecret, crate::Invalid> {
            let ns = source.split('/').next().unwrap_or_default();
            Ok(crate::TlsSecret { label: format!("{ns}/{name}"), cert_pem: CERT.into(), key_pem: KEY.into() })
        }
    }
    let text = "version: 1\ntls:\n  certificates:\n    - secret: video-tls\n";
    let table = crate::compile_with(&[Fragment { source: "video/routes/routes.yaml", text }], &Cluster).unwrap();
    assert_eq!(table.certificates()[0].label, "video/video-tls");
    let served = table.document().tls.certificates[0].clone();
    assert_eq!((served.secret, served.name.as_deref()), (None, Some("video/video-tls")));
    assert_eq!(served.key_pem.as_deref(), Some(KEY));
}

#[test]
fn traefik_tls_certificates_translate_paths_and_inline_pem() {
    let text = format!(
        "tls:\n  certificates:\n    - certFile: /certs/a.crt\n      keyFile: /certs/a.key\n    - certFile: {CERT:?}\n      keyFile: {KEY:?}\n      stores: [default]\n"
    );
    let table = crate::parse("old.yaml", &text).unwrap();
    assert_eq!(
        table.certificates()[0].source,
        crate::CertificateSource::Files { cert: "/certs/a.crt".into(), key: "/certs/a.key".into() }
    );
    assert!(matches!(table.certificates()[1].source, crate::CertificateSource::Pem { .. }));
    for (text, want) in [
        (
            "tls:\n  options:\n    default: { minVersion: VersionTLS13 }\n",
            "old.yaml:2: tls.options: `tls.options` is not supported",
        ),
        (
            "tls:\n  certificates:\n    - { certFile: /a, keyFile: /b, stores: [other] }\n",
            "tls.certificates[0].stores: only the `default` store",
        ),
        ("tls:\n  certificates:\n    - { certFile: /a }\n", "missing field `keyFile`"),
    ] {
        let errors = crate::parse("old.yaml", text).unwrap_err().to_string();
        assert!(errors.contains(want), "{want:?} not in {errors}");
    }
}

#[test]
fn a_caching_route_chooses_its_fleet_tier() {
    let doc = |tier: &str, cache: &str| {
        format!(
            "version: 1\nhttp:\n  routes:\n    - {{ name: v, upstream: o{cache}, tier: {tier} }}\n  upstreams:\n    o: {{ servers: [{{ url: \"http://127.0.0.1:9\" }}] }}\n"
        )
    };
    let tier_of = |tier: &str| parse("routes.yaml", &doc(tier, ", cache: {}")).unwrap().routes()[0].tier.clone();
    assert_eq!(tier_of("none"), crate::Tier::Off);
    assert_eq!(tier_of("fleet"), crate::Tier::Fleet);
    assert_eq!(tier_of("{ shield: [edge-a, edge-b] }"), crate::Tier::Shield(vec!["edge-a".into(), "edge-b".into()]));
    let plain = "version: 1\nhttp:\n  routes:\n    - { name: v, upstream: o, cache: {} }\n  upstreams:\n    o: { servers: [{ url: \"http://127.0.0.1:9\" }] }\n";
    assert_eq!(parse("routes.yaml", plain).unwrap().routes()[0].tier, crate::Tier::Fleet, "on by default");
    let errors = errors_of(&doc("sometimes", ", cache: {}"));
    assert!(errors.iter().any(|e| e.contains("http.routes[0] (v).tier") && e.contains("`sometimes`")), "{errors:?}");
    let errors = errors_of(&doc("{ shield: [] }", ", cache: {}"));
    assert!(errors.iter().any(|e| e.contains("tier.shield") && e.contains("at least one edge")), "{errors:?}");
    let errors = errors_of(&doc("none", ""));
    assert!(errors.iter().any(|e| e.contains("for caching routes")), "{errors:?}");
}

/// The corpus: every fragment the old setup shipped (`examples/traefik/`) reads without an error, and a fragment
/// with features beyond the subset or mistakes (there, and native ones in `examples/invalid/`) gets exactly the
/// errors its `.errors` file lists, all in one run.
/// `DIME_BLESS=1 cargo test -p dime-routes corpus` rewrites the `.errors` files after a deliberate change.
#[test]
fn the_corpus_reports_every_problem_at_once() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    let entries = ["examples/traefik", "examples/invalid"].map(|d| std::fs::read_dir(root.join(d)).unwrap());
    for entry in entries.into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<String> = match parse(&name, &text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        };
        let golden = path.with_extension("errors");
        if std::env::var_os("DIME_BLESS").is_some() {
            let body: String = got.iter().map(|e| format!("{e}\n")).collect();
            if body.is_empty() {
                let _ = std::fs::remove_file(&golden);
            } else {
                std::fs::write(&golden, body).unwrap();
            }
        }
        let want: Vec<String> =
            std::fs::read_to_string(&golden).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default();
        assert_eq!(got, want, "{name}: the errors differ from {}", golden.display());
        checked += 1;
    }
    assert!(checked >= 6, "the corpus has the old setup's fragments, the migration ones and a native one");
}

proptest::proptest! {
    /// Validation never stops early: a document with N independent problems (each router using a feature Dime
    /// does not have) gets N errors.
    #[test]
    fn every_independent_problem_is_reported(kinds in proptest::collection::vec(0usize..4, 1..12)) {
        let mut text = String::from("http:\n  routers:\n");
        for (i, kind) in kinds.iter().enumerate() {
            let problem = ["sticky: {}", "observability: {}", "rule2: x", "tls: { certResolver: le }"][*kind];
            text += &format!("    r{i}: {{ rule: \"Host(`h{i}.example.com`)\", service: s, {problem} }}\n");
        }
        text += "  services:\n    s: { loadBalancer: { servers: [{ url: \"http://127.0.0.1:1\" }] } }\n";
        let errors = errors_of(&text);
        proptest::prop_assert_eq!(errors.len(), kinds.len(), "{:#?}", errors);
    }

    /// The same for the native schema: N routes, each with one structural problem (an unknown key, a wrong
    /// type, an unknown key in a nested mapping or sequence item) or a value the validator refuses, get N errors.
    #[test]
    fn every_independent_native_problem_is_reported(kinds in proptest::collection::vec(0usize..5, 1..12)) {
        let mut text = String::from("version: 1\nhttp:\n  routes:\n");
        for (i, kind) in kinds.iter().enumerate() {
            let problem = [
                "colour: blue",
                "priority: high",
                "cache: { sizes: 1 }",
                "match: [{ hosts: [h.test], hostz: [x] }]",
                "cache: { default_ttl: soon }",
            ][*kind];
            text += &format!("    - {{ name: r{i}, upstream: o, {problem} }}\n");
        }
        text += "  upstreams:\n    o: { servers: [{ url: \"http://127.0.0.1:1\" }] }\n";
        let errors = errors_of(&text);
        proptest::prop_assert_eq!(errors.len(), kinds.len(), "{:#?}", errors);
    }
}
