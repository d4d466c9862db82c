//! Route sync end to end, all real: etcd + kube-apiserver (RBAC) → dime-control (as its ServiceAccount) →
//! dime-edge processes pulling with --control, routing to a local origin. The old Traefik ConfigMaps, applied
//! verbatim, route on the edge; edits reach it by long-poll; a malformed ConfigMap disturbs nothing; a deleted one
//! takes its routes away; the apiserver stopping leaves control serving; control stopping leaves the edge serving;
//! an edge restarted while control is down serves from its state dir; a wrong token gets nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../proxy/tests/support/certs.rs"]
mod certs;
mod support;

use indoc::{formatdoc, indoc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use support::*;

/// GET `/` through the edge with a Host header: (status, body), or None if the edge did not answer.
async fn get(edge: &Edge, host: &str) -> Option<(u16, String)> {
    edge.try_get(host, "/").await.map(|r| (r.status, r.body))
}

/// What the test origin named `name` answers for `/`.
fn answer(name: &str) -> String {
    format!("origin={name} path=/\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_follow_configmaps_and_keep_serving_through_api_and_control_outages() {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let pp = PostParams::default();
    let video = include_str!("../../examples/traefik/video-config.yaml");
    let whoami = include_str!("../../examples/traefik/whoami-config.yaml");
    cms.create(&pp, &configmap("video-config", ("traefik-config-fragment", "true"), "video.yaml", video))
        .await
        .unwrap();
    cms.create(&pp, &configmap("whoami-config", ("traefik-config-fragment", "true"), "whoami.yaml", whoami))
        .await
        .unwrap();

    let video_origin = Origin::start("video").await;
    let whoami_origin = Origin::start("whoami").await;
    // The fragments name the cluster's hosts; --resolve points them here (no public DNS in a test).
    let resolve = vec![
        "--resolve".to_owned(),
        format!("video.cluster.mycdndomain.us:8080={}", video_origin.addr),
        "--resolve".to_owned(),
        format!("whoami.cluster.mycdndomain.us:80={}", whoami_origin.addr),
    ];
    let control = start_control(&kube);
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let state_dir = work.path().join("state");
    // The first control URL is down: the edge fails over to the second.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let control_url = control.url.clone();
    let controls = [dead.as_str(), control_url.as_str()];
    let mut edge = Edge::with_control(&controls, &token_file, &state_dir, &resolve).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    edge.until("video.edge.mycdndomain.us", 200, Some(&answer("video"))).await;
    edge.until("whoami.edge.mycdndomain.us", 200, Some(&answer("whoami"))).await;
    // The status page names the control URL in use (the second: the first never answered, so no failover).
    let (status, page) = edge.admin("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("<td data-field=\"control\">{control_url}</td>")), "{page}");
    assert!(page.contains("data-field=\"failovers\" data-value=\"0\""), "{page}");
    // The table is saved right after it is applied (fsync included), so give the write a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state_dir.join("routes.json").exists() {
        assert!(Instant::now() < deadline, "the table is not saved to the state dir");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Edits reach the edge by long-poll: time from the API accepting the edit to the edge routing differently.
    let mut times = Vec::new();
    for i in 1..=5 {
        let host = format!("video{i}.edge.mycdndomain.us");
        let edited = video.replace("video.edge.mycdndomain.us", &host);
        let mut cm = cms.get("video-config").await.unwrap();
        cm.data = Some(BTreeMap::from([("video.yaml".to_owned(), edited)]));
        cms.replace("video-config", &pp, &cm).await.unwrap();
        let start = Instant::now();
        edge.until(&host, 200, Some(&answer("video"))).await;
        times.push(start.elapsed());
    }
    times.sort();
    eprintln!("ConfigMap edit → edge routing the new host: {times:?} (median {:?})", times[times.len() / 2]);
    // Well inside one 30 s long-poll: the change was pushed, not picked up by a later poll.
    assert!(times[times.len() - 1] < Duration::from_secs(10), "{times:?}");
    let last_host = "video5.edge.mycdndomain.us";
    assert_eq!(get(&edge, "video.edge.mycdndomain.us").await.unwrap().0, 404, "the old host is gone");

    // A malformed ConfigMap disturbs nothing.
    let version_before = edge.admin("/readyz").await.1;
    let broken = "http:\n  routers:\n    broken: { rule: \"Host(`x`\", service: nowhere }\n";
    cms.create(&pp, &configmap("broken", ("traefik-config-fragment", "true"), "b.yaml", broken)).await.unwrap();
    // Once control has looked at it and refused it, the edge's table is still the one before.
    readyz_until(&http, &control, "rejected configmap default/broken").await;
    assert_eq!(edge.admin("/readyz").await.1, version_before);
    assert_eq!(get(&edge, last_host).await.unwrap(), (200, answer("video")));
    assert_eq!(get(&edge, "whoami.edge.mycdndomain.us").await.unwrap(), (200, answer("whoami")));

    // Deleting a ConfigMap removes its routes, and only those.
    cms.delete("whoami-config", &DeleteParams::default()).await.unwrap();
    edge.until("whoami.edge.mycdndomain.us", 404, None).await;
    assert_eq!(get(&edge, last_host).await.unwrap().0, 200);

    // The apiserver goes away: control keeps serving its last table and says the API is lost.
    kube.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let readyz = http.get(format!("{}/readyz", control.url)).send().await.unwrap();
        assert_eq!(readyz.status(), 200, "control stays ready with its last table");
        if readyz.text().await.unwrap().contains("kubernetes api: unreachable") {
            break;
        }
        assert!(Instant::now() < deadline, "control never noticed the API was gone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = http.get(format!("{}/metrics", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dime_control_kube_api_up 0"), "{metrics}");
    let served = http.get(format!("{}/v1/routes", control.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(served.text().await.unwrap().contains("video5.edge.mycdndomain.us"));
    assert_eq!(get(&edge, last_host).await.unwrap().0, 200);

    // Control goes away too: the edge keeps serving, and counts the failures.
    drop(control);
    // The long-poll in flight ends when control dies; the next attempts fail.
    let e = &edge;
    eventually(secs(20), ms(200), "the edge did not count failed pulls", String::new, || async move {
        (e.metric_sum("dime_routes_fetch_failures_total").await >= 2.0).then_some(())
    })
    .await;
    for _ in 0..20 {
        assert_eq!(get(&edge, last_host).await.unwrap(), (200, answer("video")));
    }

    // Restarted while control is down, the edge starts from its state dir.
    edge.stop();
    let restarted = Edge::with_control(&controls, &token_file, &state_dir, &resolve).await;
    restarted.until(last_host, 200, Some(&answer("video"))).await;
    let config = restarted.admin("/config").await.1;
    assert!(config.contains("state:"), "the table came from the state dir: {config}");
    assert_eq!(get(&restarted, "whoami.edge.mycdndomain.us").await.unwrap().0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_with_a_wrong_token_gets_no_routes() {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let control = start_control(&kube);
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(&token_file, "not-the-right-token-0123456789\n").unwrap();
    let edge = Edge::with_control(&[&control.url], &token_file, &work.path().join("state"), &[] as &[&str; 0]).await;
    let http = reqwest::Client::new();
    let e = &edge;
    eventually(secs(20), ms(100), "no unauthorized failure counted", String::new, || async move {
        (e.metric_sum("dime_routes_fetch_failures_total{reason=\"unauthorized\"}").await >= 1.0).then_some(())
    })
    .await;
    let readyz = http.get(format!("http://{}/readyz", edge.admin)).send().await.unwrap();
    assert_eq!(readyz.status(), 503, "no table without a valid token");
    assert!(!work.path().join("state/routes.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_reach_control_over_tls_with_a_pinned_ca() {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let origin = Origin::start("tls-control").await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: app, match: [{{ hosts: [app.test] }}], upstream: o }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    cms.create(&PostParams::default(), &configmap("app", ("dime-routes", "true"), "routes.yaml", &routes))
        .await
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    certs::issue_by(w, "pinned-ca", "control", &["DNS:localhost", "IP:127.0.0.1"], "7");
    let other = w.join("other");
    std::fs::create_dir(&other).unwrap();
    certs::ca(&other, "other");
    let tls_cert = format!("{}:{}", w.join("control.crt").display(), w.join("control.key").display());
    let control = start_control_with(&kube, Some(&tls_cert));
    let token_file = w.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // Pinned to control's CA: routes arrive over TLS.
    let ca = w.join("pinned-ca.crt").display().to_string();
    let edge =
        Edge::with_control(&[&control.url], &token_file, &w.join("state1"), &["--control-ca".to_owned(), ca]).await;
    edge.until("app.test", 200, Some(&answer("tls-control"))).await;

    // Pinned to another CA: the handshake fails, nothing is applied, the failure is counted as tls.
    let wrong = other.join("other.crt").display().to_string();
    let refused =
        Edge::with_control(&[&control.url], &token_file, &w.join("state2"), &["--control-ca".to_owned(), wrong]).await;
    let e = &refused;
    let log = || refused.log_text();
    eventually(secs(20), ms(100), "no tls failure counted", log, || async move {
        (e.metric_sum("dime_routes_fetch_failures_total{reason=\"tls\"}").await >= 1.0).then_some(())
    })
    .await;
    let readyz = http.get(format!("http://{}/readyz", refused.admin)).send().await.unwrap();
    assert_eq!(readyz.status(), 503);
}

/// The objects of manifests/tls/video-tls.example.yaml, in order.
fn tls_example() -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo().join("manifests/tls/video-tls.example.yaml")).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn tls_secret(dir: &std::path::Path, name: &str, file: &str) -> k8s_openapi::api::core::v1::Secret {
    let read = |ext: &str| k8s_openapi::ByteString(std::fs::read(dir.join(format!("{file}.{ext}"))).unwrap());
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([("tls.crt".to_owned(), read("crt")), ("tls.key".to_owned(), read("key"))])),
        ..Default::default()
    }
}

/// Control's /readyz once it mentions `needle`.
async fn readyz_until(http: &reqwest::Client, control: &Control, needle: &str) -> String {
    let url = format!("{}/readyz", control.url);
    let what = format!("control's /readyz never mentioned {needle}");
    eventually(secs(20), ms(200), &what, String::new, || {
        let url = url.clone();
        async move {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            text.contains(needle).then_some(text)
        }
    })
    .await
}

/// Waits until the edge's HTTPS port presents the certificate with serial `want` for video.test.
async fn serial_until(port: u16, want: &str, what: &str, detail: impl Fn() -> String) {
    eventually(secs(60), ms(250), what, detail, || async move {
        (certs::served_serial(port, "video.test") == want).then_some(())
    })
    .await;
}

/// A route ConfigMap names a Kubernetes TLS Secret; control (as its ServiceAccount) reads it only once the
/// documented Role grants that one Secret, serves it inline, and a real edge presents it by SNI; replacing the
/// Secret (renewal) reaches the edge; a ConfigMap naming another namespace's Secret is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_tls_secrets_reach_edges() {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let pp = PostParams::default();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    certs::issue(w, "video1", &["video.test"], "0x5e01");
    certs::issue(w, "video2", &["video.test"], "0x5e02");
    let secrets: Api<Secret> = Api::namespaced(k.clone(), "default");
    secrets.create(&pp, &tls_secret(w, "video-tls", "video1")).await.unwrap();
    // A Secret control is not granted: it must never be served.
    secrets.create(&pp, &tls_secret(w, "not-granted", "video2")).await.unwrap();

    let origin = Origin::start("tls-secret").await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: video, match: [{{ hosts: [video.test] }}], upstream: o }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    cms.create(&pp, &configmap("video-routes", ("dime-routes", "true"), "routes.yaml", &routes)).await.unwrap();
    let example = tls_example();
    cms.create(&pp, &serde_yaml::from_value(example[0].clone()).unwrap()).await.unwrap();

    let control = start_control(&kube);
    let token_file = w.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let https = free_port();
    let https_arg = format!("127.0.0.1:{https}");
    let edge = Edge::with_control(&[&control.url], &token_file, &w.join("state"), &["--https", &https_arg]).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    edge.until("video.test", 200, Some(&answer("tls-secret"))).await;

    // Without the Role the Secret is forbidden: its ConfigMap is rejected saying so, the routes still apply.
    let readyz = readyz_until(&http, &control, "default/video-certificates").await;
    assert!(readyz.contains("forbidden"), "{readyz}");
    assert!(readyz.contains("grant it get/list/watch on this Secret by name"), "{readyz}");

    // The documented Role + RoleBinding (resourceNames: [video-tls]): the certificate reaches the edge.
    Api::<Role>::namespaced(k.clone(), "default")
        .create(&pp, &serde_yaml::from_value(example[1].clone()).unwrap())
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(k.clone(), "default")
        .create(&pp, &serde_yaml::from_value(example[2].clone()).unwrap())
        .await
        .unwrap();
    let log = || edge.log_text();
    serial_until(https, "serial=5E01", "the Secret's certificate never reached the edge", log).await;
    let table =
        http.get(format!("{}/v1/routes", control.url)).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(table.contains("\"name\": \"default/video-tls\"") && table.contains("PRIVATE KEY"), "{table}");
    let config = edge.admin("/config").await.1;
    assert!(!config.contains("PRIVATE KEY"), "the edge's /config shows a private key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(w.join("state/routes.json")).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the saved table holds keys: owner-only, got {mode:o}");

    // Renewal: the Secret is replaced; the edge presents the new certificate.
    let mut renewed = tls_secret(w, "video-tls", "video2");
    renewed.metadata.resource_version = secrets.get("video-tls").await.unwrap().metadata.resource_version;
    secrets.replace("video-tls", &pp, &renewed).await.unwrap();
    serial_until(https, "serial=5E02", "the renewed Secret never reached the edge", log).await;

    // Another namespace's Secret, or one control may not read, never gets into the table.
    let other = indoc!(
        r#"
        version: 1
        tls:
          certificates:
            - secret: kube-system/anything
            - secret: not-granted
        "#
    );
    cms.create(&pp, &configmap("sneaky", ("dime-routes", "true"), "tls.yaml", other)).await.unwrap();
    let readyz = readyz_until(&http, &control, "default/sneaky").await;
    assert!(readyz.contains("own namespace") && readyz.contains("not-granted"), "{readyz}");
    assert_eq!(certs::served_serial(https, "video.test"), "serial=5E02");
}
