//! dime-control against a real etcd + kube-apiserver (RBAC mode, started by scripts/kube-env), running under the
//! least-privilege RBAC of manifests/control/rbac.yaml: the old Traefik
//! ConfigMaps, applied verbatim, become the served table; edits reach a long-polling client; a malformed
//! ConfigMap is rejected alone (with an Event and a metric); Services resolve to their LoadBalancer address; the
//! API needs a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use indoc::indoc;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use support::*;

async fn routes(
    client: &reqwest::Client,
    c: &Control,
    etag: Option<&str>,
    wait: &str,
) -> (u16, Option<String>, String) {
    let mut req = client.get(format!("{}/v1/routes?wait={wait}", c.url)).bearer_auth(TOKEN);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let r = req.send().await.unwrap();
    let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), etag, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_configmaps_become_the_served_table_and_edits_reach_long_polls() {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let video = include_str!("../../examples/traefik/video-config.yaml");
    let whoami = include_str!("../../examples/traefik/whoami-config.yaml");
    let pp = PostParams::default();
    cms.create(&pp, &configmap("video-config", ("traefik-config-fragment", "true"), "video.yaml", video))
        .await
        .unwrap();
    cms.create(&pp, &configmap("whoami-config", ("traefik-config-fragment", "true"), "whoami.yaml", whoami))
        .await
        .unwrap();

    let control = start_control(&kube);
    let http = reqwest::Client::new();
    let (h, url) = (&http, format!("{}/v1/routes", control.url));
    let (etag, body) = eventually(secs(20), ms(100), "control never served a table", String::new, || {
        let url = url.clone();
        async move {
            let r = h.get(url).bearer_auth(TOKEN).send().await.ok().filter(|r| r.status() == 200)?;
            let etag = r.headers().get("etag").unwrap().to_str().unwrap().to_owned();
            Some((etag, r.text().await.unwrap()))
        }
    })
    .await;
    assert!(body.contains("video-router") && body.contains("whoami-router"), "{body}");
    let table = dime_routes::parse("served.json", &body).unwrap();
    assert_eq!(format!("\"{}\"", table.version()), etag);
    assert_eq!(http.get(format!("{}/readyz", control.url)).send().await.unwrap().status(), 200);
    // Control served that table under its own identity, which may not read what it does not need.
    let kc = Kubeconfig::read_from(kube.control_kubeconfig()).unwrap();
    let restricted =
        Client::try_from(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap()).unwrap();
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::all(restricted).list(&Default::default()).await;
    assert!(secrets.is_err(), "control's RBAC must not allow listing Secrets cluster-wide (only its own namespace's)");

    // Unchanged: 304.
    let (status, _, _) = routes(&http, &control, Some(&etag), "0s").await;
    assert_eq!(status, 304);
    // No token: 401.
    assert_eq!(http.get(format!("{}/v1/routes", control.url)).send().await.unwrap().status(), 401);

    // A malformed ConfigMap is rejected alone: the served table does not change.
    let broken = "http:\n  routers:\n    broken: { rule: \"Nope(`x`)\", service: s }\n";
    cms.create(&pp, &configmap("broken-config", ("traefik-config-fragment", "true"), "b.yaml", broken)).await.unwrap();
    let (status, _, _) = routes(&http, &control, Some(&etag), "2s").await;
    assert_eq!(status, 304, "a bad ConfigMap must not change the table");
    // ...and it gets a Warning Event naming the problem, and a metric.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(k.clone(), "default");
    let ev = &events;
    let event = eventually(secs(10), ms(100), "no Event on the rejected ConfigMap", String::new, || async move {
        ev.list(&Default::default()).await.unwrap().items.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken-config")
                && e.reason.as_deref() == Some("RoutesRejected")
        })
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains("default/broken-config/b.yaml:3: http.routers.broken.rule"), "{note}");
    let metrics = http.get(format!("{}/metrics", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"dime_control_configmap_rejected{name="broken-config",namespace="default",reason="invalid"} 1"#
        ),
        "{metrics}"
    );
    let readyz = http.get(format!("{}/readyz", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(readyz.contains("rejected configmap default/broken-config"), "{readyz}");
    assert!(readyz.contains("1 error(s): default/broken-config/b.yaml:3: http.routers.broken.rule"), "{readyz}");

    // An edit reaches a long-polling client.
    let poll = {
        let (http, etag, url) = (http.clone(), etag.clone(), control.url.clone());
        tokio::spawn(async move {
            let r = http
                .get(format!("{url}/v1/routes?wait=30s"))
                .bearer_auth(TOKEN)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap(), Instant::now())
        })
    };
    // The poll is parked in control before the edit is made.
    let metrics = format!("{}/metrics", control.url);
    eventually(secs(10), ms(20), "the long-poll never reached control", String::new, || {
        let (http, metrics) = (http.clone(), metrics.clone());
        async move {
            let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
            text.lines().any(|l| l == "dime_control_long_polls 1").then_some(())
        }
    })
    .await;
    let edited = video.replace("video.edge.mycdndomain.us", "video2.edge.mycdndomain.us");
    let mut cm = cms.get("video-config").await.unwrap();
    cm.data = Some(BTreeMap::from([("video.yaml".to_owned(), edited)]));
    let applied = Instant::now();
    cms.replace("video-config", &pp, &cm).await.unwrap();
    let (status, body, answered) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("video2.edge.mycdndomain.us"), "{body}");
    eprintln!("ConfigMap edit to long-poll answer: {:?}", answered.duration_since(applied));
    assert!(answered.duration_since(applied) < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_naming_a_service_follow_its_loadbalancer_address() {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let pp = PostParams::default();
    let services: Api<Service> = Api::namespaced(k.clone(), "default");
    let service = Service {
        metadata: ObjectMeta { name: Some("nginx".into()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort { name: Some("http".into()), port: 8080, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    services.create(&pp, &service).await.unwrap();
    let routes_text = indoc!(
        r#"
        version: 1
        http:
          routes:
            - { name: video, match: [{ hosts: [video.example.com] }], upstream: origin }
          upstreams:
            origin: { servers: [{ service: "default/nginx:http" }] }
        "#
    );
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    cms.create(&pp, &configmap("video", ("dime-routes", "true"), "routes.yaml", routes_text)).await.unwrap();
    let control = start_control(&kube);
    let http = reqwest::Client::new();

    // No address yet (no MetalLB here): the ConfigMap is rejected, saying why.
    let (h, url) = (&http, format!("{}/readyz", control.url));
    eventually(secs(20), ms(100), "control never became ready", String::new, || {
        let url = url.clone();
        async move { h.get(url).send().await.ok().filter(|r| r.status() == 200).map(drop) }
    })
    .await;
    let readyz = http.get(format!("{}/readyz", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(readyz.contains("Service default/nginx has no LoadBalancer address yet"), "{readyz}");
    let (_, etag, body) = routes(&http, &control, None, "0s").await;
    assert!(!body.contains("video"), "{body}");

    // What MetalLB does when it assigns an address: write the Service's status. The table follows.
    let set_address = |ip: &'static str| {
        let services = services.clone();
        async move {
            let status = serde_json::json!({ "status": { "loadBalancer": { "ingress": [{ "ip": ip }] } } });
            services
                .patch_status("nginx", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&status))
                .await
                .unwrap();
        }
    };
    set_address("192.0.2.10").await;
    let (status, etag2, body) = routes(&http, &control, etag.as_deref(), "10s").await;
    assert_eq!(status, 200);
    assert!(body.contains("http://192.0.2.10:8080"), "{body}");
    set_address("192.0.2.20").await;
    let (status, _, body) = routes(&http, &control, etag2.as_deref(), "10s").await;
    assert_eq!(status, 200);
    assert!(body.contains("http://192.0.2.20:8080") && !body.contains("192.0.2.10"), "{body}");
}
