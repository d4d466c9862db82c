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

/// The fleet's promises about who is who, tried as an edge that lies would: edge a's credential speaking for b
/// (a poll, a purge acknowledgement), names folded onto another's Lease, an old shared token announcing a member,
/// and requests to b's peer listener that claim to come from a without proving it.
async fn identity_is_bound_to_the_credential(
    http: &reqwest::Client,
    control: &Control,
    leases: &Api<Lease>,
    edges: &[Edge],
    peers: &[String],
    states: &std::path::Path,
) {
    let b_lease = || async { leases.get("dime-edge-b").await.unwrap() };
    let before = b_lease().await;
    let ask = |path: &str, token: String, name: &str| {
        let url = format!("{}{path}", control.url);
        http.get(url).bearer_auth(token).header("x-dime-edge", name).header("x-dime-peer-url", "http://127.0.0.1:9")
    };
    // a's credential presenting b's name: refused, counted, logged with both names.
    let r = ask("/v1/routes", edge_token("a"), "b").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("`a`") && body.contains("`b`"), "{body}");
    // A forged purge acknowledgement for b.
    let r = ask("/v1/purges?after=99&log=forged-log&wait=0s", edge_token("a"), "b").send().await.unwrap();
    assert_eq!(r.status(), 403, "a forged acknowledgement");
    // Spellings an older control folded onto b's Lease, with a's credential; and a name nobody has.
    for folded in ["B", "b_", "b.x"] {
        let r = ask("/v1/routes", edge_token("a"), folded).send().await.unwrap();
        assert_eq!(r.status(), 400, "{folded}");
    }
    let r = ask("/v1/routes", edge_token("a"), "nobody").send().await.unwrap();
    assert_eq!(r.status(), 403, "a's credential announcing a new member");
    // The old shared token reads, but announces nobody.
    let r = ask("/v1/routes", TOKEN.to_owned(), "intruder").send().await.unwrap();
    assert_eq!(r.status(), 200);
    control_counts(http, control, "dime_control_identity_refusals_total{reason=\"another-edge\"} 3").await;
    control_counts(http, control, "dime_control_identity_refusals_total{reason=\"bad-name\"} 3").await;
    let log = std::fs::read_to_string(control.dir.path().join("control.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("credential=\"a\"") && l.contains("claimed=\"b\"")
            || l.contains("credential=a") && l.contains("claimed=b")),
        "control logs both names:\n{log}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = b_lease().await;
    let annotation = |l: &Lease, k: &str| l.metadata.annotations.as_ref().and_then(|a| a.get(k).cloned());
    for key in ["dime.dev/peer-url", "dime.dev/purge-log", "dime.dev/purge-applied"] {
        assert_eq!(annotation(&after, key), annotation(&before, key), "b's Lease {key} was written by a's credential");
    }
    assert!(leases.get_opt("dime-edge-intruder").await.unwrap().is_none(), "a shared token made a member");
    assert!(leases.get_opt("dime-edge-nobody").await.unwrap().is_none(), "a's credential made a member");

    // b's peer listener hears only a member that proves its name: no proof (401), a shared token (401: no such
    // thing in a fleet from control), a made-up signature (403), c's real key signing as a (403), a request c
    // signed for b replayed under another name (403); c as itself is heard and answered as the owner.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let c_key = std::fs::read(states.join("state-c").join("peer-key.pk8")).unwrap();
    let c_key = ring::signature::Ed25519KeyPair::from_pkcs8(&c_key).unwrap();
    let sign = |sender: &str| {
        use base64::Engine;
        let message = dime_routes::wire::peer_message("GET", "video.test", "/hls/forged.ts", sender, "b", now);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c_key.sign(&message).as_ref())
    };
    let (now_text, as_a, as_c) = (now.to_string(), sign("a"), sign("c"));
    let b_peer = &peers[1];
    let attempts: [(&[(&str, &str)], u16); 6] = [
        (&[("x-dime-peer", "a")], 401),
        (&[("x-dime-peer", "a"), ("x-dime-peer-token", "fleet-peer-token-0123456789")], 401),
        (&[("x-dime-peer", "a"), ("x-dime-peer-time", &now_text), ("x-dime-peer-signature", "AAAA")], 403),
        (&[("x-dime-peer", "a"), ("x-dime-peer-time", &now_text), ("x-dime-peer-signature", &as_a)], 403),
        (&[("x-dime-peer", "d"), ("x-dime-peer-time", &now_text), ("x-dime-peer-signature", &as_c)], 403),
        (&[("x-dime-peer", "c"), ("x-dime-peer-time", &now_text), ("x-dime-peer-signature", &as_c)], 200),
    ];
    for (headers, status) in attempts {
        let mut req = http.get(format!("http://{b_peer}/hls/forged.ts")).header("host", "video.test");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{headers:?}");
        let owner = r.headers().get("x-dime-owner").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            owner.as_deref(),
            (status == 200).then_some("b"),
            "{headers:?}: answered as the owner only when heard"
        );
    }
    assert_eq!(
        edges[1].metric_reaches("dime_peer_requests_total{direction=\"served\",result=\"unauthorized\"}", 2.0).await,
        2.0
    );
    assert_eq!(
        edges[1].metric_reaches("dime_peer_requests_total{direction=\"served\",result=\"forbidden\"}", 3.0).await,
        3.0
    );
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
    // Each edge its own credential; no peer token: the edges sign their peer requests with keys of their own.
    let (mut edges, mut peers) = (Vec::new(), Vec::new());
    for name in NAMES {
        let token = edge_credential(&k, w, name).await;
        let peer = dime_testkit::free_addr().to_string();
        let state = w.join(format!("state-{name}"));
        let args = ["--edge-name", name, "--peer-listen", &peer];
        edges.push(Edge::with_control(&[&control.url], &token, &state, &args).await);
        peers.push(peer);
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
    identity_is_bound_to_the_credential(&http, &control, &leases, &edges, &peers, w).await;

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

    // d's credential is revoked (its Secret deleted): d leaves every ring at once, not when its Lease expires.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(k.clone(), "dime-system");
    secrets.delete("dime-edge-credential-d", &Default::default()).await.unwrap();
    eventually(
        secs(20),
        ms(100),
        "edge a kept the revoked d on its ring",
        || a.log_text(),
        || async move { (a.metric("dime_fleet_members").await == 2.0).then_some(()) },
    )
    .await;
    let r = http.get(format!("{}/v1/routes", control.url)).bearer_auth(edge_token("d")).send().await.unwrap();
    assert_eq!(r.status(), 401, "a revoked credential");
}
