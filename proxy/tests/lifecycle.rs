//! The edge as an operator meets it: admin endpoints, metrics that Prometheus accepts, `check`, startup
//! refusal on a broken file, and a bounded graceful shutdown on SIGTERM.

mod support;

use indoc::indoc;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{ask, one_route, Edge, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_readiness_and_the_active_table() {
    let origin = Origin::start("o").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &[]).await;
    assert_eq!(edge.admin("/healthz").await.0, 200);
    let (status, ready) = edge.admin("/readyz").await;
    assert_eq!(status, 200);
    let version = edge.version().await;
    assert!(ready.contains(&version), "{ready}");
    let (_, config) = edge.admin("/config").await;
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let active = &config["active"];
    assert_eq!(active["routes"], 1);
    assert_eq!(active["source"], format!("file:{}", edge.routes.display()));
    assert!(active["age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(active["upstreams"][0]["addresses"][0]["address"], origin.addr.to_string());
    assert_eq!(edge.admin("/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exposition_passes_promtool_and_counts_requests() {
    let origin = Origin::start("o").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &[]).await;
    for _ in 0..5 {
        edge.get("r.test", "/").await;
    }
    edge.get("nowhere.test", "/").await;
    let (_, text) = edge.admin("/metrics").await;
    for name in [
        "dime_http_requests_total{method=\"GET\",route=\"r\",status=\"2xx\"} 5",
        "dime_http_request_duration_seconds_bucket{route=\"r\",le=\"0.0005\"}",
        "dime_http_request_duration_seconds_bucket{route=\"r\",le=\"10\"}",
        "dime_upstream_connect_duration_seconds_count{upstream=\"r\"}",
        "dime_upstream_response_duration_seconds_count{upstream=\"r\"} 5",
        "dime_http_response_body_bytes_total{route=\"r\"}",
        "dime_http_request_body_bytes_total{route=\"r\"}",
        "dime_http_connections_open",
        "dime_config_reloads_total{result=\"ok\"} 1",
        "dime_config_info{",
        "dime_config_age_seconds",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    // promtool is a real dependency of this test (installed by .ci/run with the prometheus package).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian package `prometheus`)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_report_gives_every_part_of_a_traefik_setup_its_verdict() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/traefik");
    let files: Vec<String> = ["migration-unsupported.yaml", "video-config.yaml", "whoami-config.yaml"]
        .iter()
        .map(|f| format!("{corpus}/{f}"))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge"))
        .args(["check", "--report", "--format", "json"])
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "not everything is supported as is");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdict = |kind: &str, name: &str| {
        let entries = report["entries"].as_array().unwrap();
        let e = entries.iter().find(|e| e["kind"] == kind && e["name"] == name).unwrap();
        (e["verdict"].as_str().unwrap().to_owned(), e["notes"].to_string())
    };
    assert_eq!(verdict("router", "video-router").0, "as_is");
    let (v, notes) = verdict("middleware", "to-https");
    assert_eq!(v, "with_change");
    assert!(notes.contains("https: { redirect: true }"), "{notes}");
    let (v, notes) = verdict("service", "site");
    assert_eq!(v, "not_supported");
    assert!(notes.contains("`sticky` (Traefik sticky sessions) is not supported by Dime"), "{notes}");
    assert_eq!(report["summary"], serde_json::json!({ "as_is": 7, "with_change": 4, "not_supported": 6, "to_fix": 0 }));

    // A `kubectl get configmap -o yaml` dump: each data key is a fragment named as control names it.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("fragments.yaml");
    let fragment = std::fs::read_to_string(&files[1]).unwrap().replace('\n', "\n        ");
    std::fs::write(
        &dump,
        format!(
            "apiVersion: v1\nkind: List\nitems:\n  - kind: ConfigMap\n    metadata: {{ name: video-config, namespace: media }}\n    data:\n      video.yaml: |\n        {fragment}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge")).args(["check", "--report"]).arg(&dump).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("media/video-config/video.yaml\n  router video-router: supported as is"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge")).arg("check").arg(&dump).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_prints_every_error_with_its_location_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "http:\n  routers:\n    r1: { rule: \"Query(`a`)\", service: s }\n    r2: { rule: \"Host(`b.test`)\", service: gone }\n  services:\n    s: { loadBalancer: { servers: [{ url: \"http://s.test:99999\" }] } }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge")).arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = bad.display().to_string();
    for want in [
        format!(
            "{name}:3: http.routers.r1.rule: `Query(`a`)`: `Query` (Traefik query matchers) is not supported by Dime"
        ),
        format!("{name}:4: http.routers.r2.service: `gone` is not a defined upstream/service"),
        format!("{name}:6: http.services.s.loadBalancer.servers[0].url: `http://s.test:99999`: invalid port"),
        format!("{name}: 3 error(s)"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    }
    let lines: Vec<&str> = stderr.lines().map(|l| l.split(": ").next().unwrap_or("")).collect();
    assert_eq!(lines, [format!("{name}:3"), format!("{name}:4"), format!("{name}:6"), name], "in the order written");

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, include_str!("../../examples/routes.yaml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge")).arg("check").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn run_refuses_to_start_on_an_invalid_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("routes.yaml");
    std::fs::write(
        &bad,
        indoc!(
            r#"
        version: 1
        http:
          routes:
            - { name: r, upstream: missing }
        "#
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge"))
        .args(["run", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--routes"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http.routes[0] (r).upstream: `missing` is not a defined upstream"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_open_requests_refuses_new_ones_and_exits_within_the_bound() {
    let origin = Origin::start("slow").await;
    let mut edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &["--shutdown-timeout", "5s"]).await;
    let url = format!("http://{}{}", edge.http, ask("/slow").delay(Duration::from_secs(1)));
    let client = edge.client.clone();
    let in_flight =
        tokio::spawn(async move { client.get(url).header("host", "r.test").send().await.map(|r| r.status()) });
    // In flight: the origin has it (and answers it a second later).
    let o = &origin;
    support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(10),
        "never reached the origin",
        String::new,
        || async move { (o.hits_for("/slow") == 1).then_some(()) },
    )
    .await;
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &edge.pid().to_string()]).status().unwrap().success());

    let status = in_flight.await.unwrap().expect("the request in flight at SIGTERM completes");
    assert_eq!(status, 200);
    let exit = loop {
        if let Some(status) = edge.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(8), "still running 8s after SIGTERM with a 5s bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
    eprintln!("SIGTERM to exit with one open request: {:?}", signalled.elapsed());
    // Log lines are buffered off the request path; none is lost on the way out.
    let log = edge.log_text();
    assert!(log.contains("dime::access") && log.contains("path=/slow"), "the in-flight request's access line:\n{log}");
    assert!(log.contains("drained; exiting"), "the last line before exit:\n{log}");
    assert!(std::net::TcpStream::connect(edge.http).is_err(), "no new connections after shutdown");
}
