//! The fleet kept in the cluster, all real: etcd + kube-apiserver (RBAC) → dime-control (as its ServiceAccount,
//! with the manifests' Role for Leases) → four dime-edge processes pulling with --control and a peer listener
//! each, no --peers. The edges appear as Leases and in `GET /v1/edges`; control serves the members with the
//! table, so each object is fetched from the origin once for the fleet; a table the edges refuse shows them
//! refusing, with the reason; an edge that stops is marked gone when its Lease expires and leaves the others'
//! rings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use indoc::formatdoc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::Api;
use support::*;

const PEER_TOKEN: &str = "fleet-peer-token-0123456789";
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn routes(origin: &Origin) -> String {
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: video, match: [{{ hosts: [video.test] }}], upstream: o, cache: {{}} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    )
}

async fn edges_view(http: &reqwest::Client, control: &Control) -> serde_json::Value {
    let r = http.get(format!("{}/v1/edges", control.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

/// Waits (5 s) until control's `/metrics` has the line `sample`: its gauges follow within a tenth of a Lease.
async fn control_counts(http: &reqwest::Client, control: &Control, sample: &str) {
    let what = format!("control's /metrics never said {sample}");
    eventually(secs(5), ms(100), &what, String::new, || async move {
        let metrics = http.get(format!("{}/metrics", control.url)).send().await.ok()?.text().await.ok()?;
        metrics.lines().any(|l| l == sample).then_some(())
    })
    .await;
}

/// Waits (20 s) until `/v1/edges` shows every edge of [`NAMES`] in `state`.
async fn all_shown(http: &reqwest::Client, control: &Control, state: &str) {
    let what = format!("the edges were never all shown {state}");
    eventually(secs(20), ms(100), &what, String::new, || async move {
        let want: Vec<(String, String)> = NAMES.iter().map(|n| (n.to_string(), state.into())).collect();
        (states(&edges_view(http, control).await) == want).then_some(())
    })
    .await;
}

/// The state of each edge in `/v1/edges`, by name.
fn states(view: &serde_json::Value) -> Vec<(String, String)> {
    view["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_lives_in_leases_and_reaches_every_edge() {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let origin = Origin::start("o").await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let pp = PostParams::default();
    cms.create(&pp, &configmap("video", ("dime-routes", "true"), "routes.yaml", &routes(&origin))).await.unwrap();
    // Short Leases, so that a stopped edge is gone within the test.
    let control = start_control_args(&kube, None, &["--edge-lease", "3s"]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(w.join("peer-tokens"), format!("{PEER_TOKEN}\n")).unwrap();
    let mut edges = Vec::new();
    for name in NAMES {
        let peer = dime_testkit::free_addr().to_string();
        let state = w.join(format!("state-{name}"));
        let mut args = vec!["--edge-name", name, "--peer-listen", &peer];
        let tokens = w.join("peer-tokens");
        args.extend(["--peer-token-file", tokens.to_str().unwrap()]);
        edges.push(Edge::with_control(&[&control.url], &w.join("token"), &state, &args).await);
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // Every edge appears, current, with its peer URL; as a Lease too.
    let (h, c) = (&http, &control);
    all_shown(h, c, "current").await;
    let view = edges_view(&http, &control).await;
    assert!(view["edges"][0]["peer_url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{view}");
    let leases: Api<Lease> = Api::namespaced(k.clone(), "dime-system");
    let listed = leases.list(&ListParams::default().labels("dime.dev/edge")).await.unwrap();
    let mut holders: Vec<String> =
        listed.items.iter().filter_map(|l| l.spec.as_ref()?.holder_identity.clone()).collect();
    holders.sort();
    assert_eq!(holders, NAMES);

    // The members reach every edge's ring; then the fleet fetches each object from the origin once.
    for edge in &edges {
        eventually(
            secs(20),
            ms(100),
            "an edge never got the four members",
            || edge.log_text(),
            || async move { (edge.metric("dime_fleet_members").await == 4.0).then_some(()) },
        )
        .await;
    }
    for i in 0..12 {
        let path = format!("/hls/seg-{i}.ts");
        for edge in &edges {
            let r = edge.get("video.test", dime_testkit::ask(&path).size(5000).cache_control("max-age=60")).await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(origin.hits_for(&path), 1, "{path}");
    }

    control_counts(h, c, "dime_control_edges{state=\"current\"} 4").await;

    // A table control accepts but the edges cannot apply (an upstream's CA file is not on them): every edge
    // refuses it, keeps serving the last good table, and is shown refusing with its reason; fixed, all current.
    let missing_ca = "/nonexistent/dime-fleet-test-ca.pem";
    let refused_routes = format!(
        "{}    secure: {{ servers: [{{ url: \"https://127.0.0.1:9\" }}], tls: {{ ca_file: {missing_ca} }} }}\n",
        routes(&origin)
    )
    .replace(
        "cache: {} }\n",
        "cache: {} }\n    - { name: secure, match: [{ hosts: [secure.test] }], upstream: secure }\n",
    );
    let set_routes = |text: String| async {
        let mut cm = cms.get("video").await.unwrap();
        cm.data = Some(std::collections::BTreeMap::from([("routes.yaml".to_owned(), text)]));
        cms.replace("video", &pp, &cm).await.unwrap();
    };
    set_routes(refused_routes).await;
    all_shown(h, c, "refusing").await;
    let view = edges_view(&http, &control).await;
    let reason = view["edges"][0]["refused_reason"].as_str().unwrap_or_default();
    assert!(reason.contains(missing_ca) && reason.contains("secure"), "the refusal's reason: {view}");
    control_counts(h, c, "dime_control_edges{state=\"refusing\"} 4").await;
    for edge in &edges {
        let r = edge.get("video.test", dime_testkit::ask("/hls/seg-0.ts").size(5000).cache_control("max-age=60")).await;
        assert_eq!(r.status, 200, "the last good table keeps serving");
    }
    set_routes(routes(&origin)).await;
    control_counts(h, c, "dime_control_edges{state=\"current\"} 4").await;

    // Edge b stops: its Lease expires, it is shown gone, and the others drop it from their rings.
    edges[1].stop();
    eventually(secs(20), ms(200), "edge b never showed as gone", String::new, || async move {
        let view = edges_view(h, c).await;
        states(&view).contains(&("b".into(), "gone".into())).then_some(())
    })
    .await;
    control_counts(h, c, "dime_control_edges{state=\"gone\"} 1").await;
    let a = &edges[0];
    eventually(
        secs(20),
        ms(100),
        "edge a kept b on its ring",
        || a.log_text(),
        || async move { (a.metric("dime_fleet_members").await == 3.0).then_some(()) },
    )
    .await;
    for i in 0..6 {
        let r = a.get("video.test", dime_testkit::ask(&format!("/hls/after-{i}.ts")).size(100)).await;
        assert_eq!(r.status, 200);
    }
}
