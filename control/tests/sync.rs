//! dime-control against a real etcd + kube-apiserver (RBAC mode, started by scripts/kube-env), running under the
//! least-privilege RBAC of manifests/control/rbac.yaml: the old Traefik
//! ConfigMaps, applied verbatim, become the served table; edits reach a long-polling client; a malformed
//! ConfigMap is rejected alone; the API needs a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

const TOKEN: &str = "control-test-token-0123456789";
/// The token of control's ServiceAccount identity (a static token for `system:serviceaccount:dime-system:dime-control`).
const CONTROL_IDENTITY_TOKEN: &str = "dime-control-serviceaccount-token-0123456789";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// etcd + kube-apiserver for one test, stopped on drop.
struct Kube {
    dir: tempfile::TempDir,
}

impl Kube {
    fn start() -> Kube {
        let dir = tempfile::tempdir().unwrap();
        // An identity for control, bound by the manifests' RBAC like its ServiceAccount in a cluster.
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{CONTROL_IDENTITY_TOKEN},system:serviceaccount:dime-system:dime-control,control-uid,\"system:serviceaccounts\"\n"),
        )
        .unwrap();
        let status = Command::new(repo().join("scripts/kube-env"))
            .args(["start", dir.path().to_str().unwrap(), "--rbac"])
            .stdout(Stdio::null())
            .status()
            .expect("scripts/kube-env");
        assert!(status.success(), "kube-env start failed");
        Kube { dir }
    }
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
    /// A kubeconfig for control's own identity (same cluster, the ServiceAccount's token).
    fn control_kubeconfig(&self) -> PathBuf {
        let admin = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let start = admin.find("token: \"").unwrap() + "token: \"".len();
        let end = start + admin[start..].find('"').unwrap();
        let text = format!("{}{CONTROL_IDENTITY_TOKEN}{}", &admin[..start], &admin[end..]);
        let path = self.dir.path().join("control-kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        Client::try_from(config).unwrap()
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        let _ =
            Command::new(repo().join("scripts/kube-env")).args(["stop", self.dir.path().to_str().unwrap()]).status();
    }
}

fn configmap(name: &str, label: (&str, &str), key: &str, text: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(label.0.to_owned(), label.1.to_owned())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
        ..Default::default()
    }
}

struct Control {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies manifests/control/rbac.yaml as an administrator would.
async fn apply_rbac(client: &Client) {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let text = std::fs::read_to_string(repo().join("manifests/control/rbac.yaml")).unwrap();
    let pp = PostParams::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "Namespace" => drop(
                Api::<Namespace>::all(client.clone())
                    .create(&pp, &serde_yaml::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ServiceAccount" => drop(
                Api::<ServiceAccount>::namespaced(client.clone(), "dime-system")
                    .create(&pp, &serde_yaml::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ClusterRole" => drop(
                Api::<ClusterRole>::all(client.clone())
                    .create(&pp, &serde_yaml::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ClusterRoleBinding" => drop(
                Api::<ClusterRoleBinding>::all(client.clone())
                    .create(&pp, &serde_yaml::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            other => panic!("unexpected kind {other} in rbac.yaml"),
        }
    }
}

fn start_control(kube: &Kube) -> Control {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_dime-control"))
        .args(["run", "--namespace", "default", "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
        .arg(&tokens)
        .env("KUBECONFIG", kube.control_kubeconfig())
        .stderr(std::fs::File::create(dir.path().join("control.log")).unwrap())
        .spawn()
        .unwrap();
    Control { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
}

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
    let deadline = Instant::now() + Duration::from_secs(20);
    let (etag, body) = loop {
        if let Ok(r) = http.get(format!("{}/v1/routes", control.url)).bearer_auth(TOKEN).send().await {
            if r.status() == 200 {
                let etag = r.headers().get("etag").unwrap().to_str().unwrap().to_owned();
                break (etag, r.text().await.unwrap());
            }
        }
        assert!(Instant::now() < deadline, "control never served a table");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("video-router") && body.contains("whoami-router"), "{body}");
    let table = dime_routes::parse("served.json", &body).unwrap();
    assert_eq!(format!("\"{}\"", table.version()), etag);
    assert_eq!(http.get(format!("{}/readyz", control.url)).send().await.unwrap().status(), 200);
    // Control served that table under its own identity, which may not read what it does not need.
    let kc = Kubeconfig::read_from(kube.control_kubeconfig()).unwrap();
    let restricted =
        Client::try_from(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap()).unwrap();
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::all(restricted).list(&Default::default()).await;
    assert!(secrets.is_err(), "control's RBAC must not allow reading Secrets");

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
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let list = events.list(&Default::default()).await.unwrap();
        if let Some(e) = list.items.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken-config")
                && e.reason.as_deref() == Some("RoutesRejected")
        }) {
            break e;
        }
        assert!(Instant::now() < deadline, "no Event on the rejected ConfigMap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains("default/broken-config/b.yaml: http.routers.broken.rule"), "{note}");
    let metrics = http.get(format!("{}/metrics", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"dime_control_configmap_rejected{name="broken-config",namespace="default",reason="invalid"} 1"#
        ),
        "{metrics}"
    );
    let readyz = http.get(format!("{}/readyz", control.url)).send().await.unwrap().text().await.unwrap();
    assert!(readyz.contains("rejected configmap default/broken-config"), "{readyz}");

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
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let routes_text = "version: 1\nhttp:\n  routes:\n    - { name: video, match: [{ hosts: [video.example.com] }], upstream: origin }\n  upstreams:\n    origin: { servers: [{ service: \"default/nginx:http\" }] }\n";
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    cms.create(&pp, &configmap("video", ("dime-routes", "true"), "routes.yaml", routes_text)).await.unwrap();
    let control = start_control(&kube);
    let http = reqwest::Client::new();

    // No address yet (no MetalLB here): the ConfigMap is rejected, saying why.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let readyz = http.get(format!("{}/readyz", control.url)).send().await.map(|r| r.status().as_u16());
        if readyz.is_ok_and(|s| s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "control never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
