//! Shared by the control tests: a real etcd + kube-apiserver (scripts/kube-env, RBAC mode), control running as
//! its manifests' ServiceAccount, and a small origin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

pub const TOKEN: &str = "control-test-token-0123456789";
/// The token of control's ServiceAccount identity (a static token for `system:serviceaccount:dime-system:dime-control`).
pub const CONTROL_IDENTITY_TOKEN: &str = "dime-control-serviceaccount-token-0123456789";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// etcd + kube-apiserver for one test, stopped on drop.
pub struct Kube {
    pub dir: tempfile::TempDir,
}

impl Kube {
    pub fn start() -> Kube {
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
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
    /// A kubeconfig for control's own identity (same cluster, the ServiceAccount's token).
    pub fn control_kubeconfig(&self) -> PathBuf {
        let admin = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let start = admin.find("token: \"").unwrap() + "token: \"".len();
        let end = start + admin[start..].find('"').unwrap();
        let text = format!("{}{CONTROL_IDENTITY_TOKEN}{}", &admin[..start], &admin[end..]);
        let path = self.dir.path().join("control-kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Stops etcd and the apiserver (what an API outage looks like to control).
    pub fn stop(&self) {
        let _ =
            Command::new(repo().join("scripts/kube-env")).args(["stop", self.dir.path().to_str().unwrap()]).status();
    }

    pub async fn client(&self) -> Client {
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

pub fn configmap(name: &str, label: (&str, &str), key: &str, text: &str) -> ConfigMap {
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

pub struct Control {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies manifests/control/rbac.yaml as an administrator would.
pub async fn apply_rbac(client: &Client) {
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

pub fn start_control(kube: &Kube) -> Control {
    start_control_with(kube, None)
}

/// Control serving https with `CERT:KEY` when given; `url` is then https://localhost:PORT.
pub fn start_control_with(kube: &Kube, tls_cert: Option<&str>) -> Control {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dime-control"));
    cmd.args(["run", "--namespace", "default", "--listen", &format!("127.0.0.1:{port}"), "--token-file"]).arg(&tokens);
    if let Some(t) = tls_cert {
        cmd.args(["--tls-cert", t]);
    }
    let child = cmd
        .env("KUBECONFIG", kube.control_kubeconfig())
        .stderr(std::fs::File::create(dir.path().join("control.log")).unwrap())
        .spawn()
        .unwrap();
    let scheme = if tls_cert.is_some() { "https://localhost" } else { "http://127.0.0.1" };
    Control { child, url: format!("{scheme}:{port}"), dir }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An HTTP origin answering every request with `name` (not cacheable), on loopback.
pub async fn origin(name: &'static str) -> std::net::SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(name)));
                    r.headers_mut().insert("cache-control", http::HeaderValue::from_static("no-store"));
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

/// Newest modification time of the files under `dir` (recursively).
fn newest(dir: &Path) -> std::time::SystemTime {
    let mut t = std::time::SystemTime::UNIX_EPOCH;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let m = if p.is_dir() { newest(&p) } else { e.metadata().and_then(|m| m.modified()).unwrap_or(t) };
            t = t.max(m);
        }
    }
    t
}

/// The dime-edge binary of this workspace. It belongs to another package, so cargo does not hand it to this one's
/// tests: `cargo test --workspace` has just built it (used as is when newer than its sources); otherwise it is built
/// here.
pub fn edge_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
            let binary = target.join("debug/dime-edge");
            let sources = ["proxy", "routes", "Cargo.lock", "Cargo.toml"]
                .iter()
                .map(|p| {
                    let p = repo().join(p);
                    if p.is_dir() {
                        newest(&p)
                    } else {
                        p.metadata().and_then(|m| m.modified()).unwrap()
                    }
                })
                .max()
                .unwrap();
            let fresh = binary.metadata().and_then(|m| m.modified()).is_ok_and(|built| built > sources);
            if !fresh {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "dime-edge", "--bin", "dime-edge"])
                    .current_dir(repo())
                    .status()
                    .expect("cargo build -p dime-edge");
                assert!(status.success(), "building dime-edge failed");
            }
            binary
        })
        .clone()
}

/// A dime-edge process pulling routes from control.
pub struct Edge {
    pub child: Child,
    pub http: u16,
    pub admin: u16,
    pub log: PathBuf,
}

impl Edge {
    /// `extra`: more arguments (e.g. --resolve).
    pub fn start(controls: &[&str], token_file: &Path, state_dir: &Path, log: PathBuf, extra: &[String]) -> Edge {
        let (http, admin) = (free_port(), free_port());
        let mut cmd = Command::new(edge_binary());
        cmd.args(["run", "--http", &format!("127.0.0.1:{http}"), "--admin", &format!("127.0.0.1:{admin}")]);
        for c in controls {
            cmd.args(["--control", c]);
        }
        cmd.arg("--control-token-file").arg(token_file).arg("--state-dir").arg(state_dir);
        cmd.args(["--threads", "1"]).args(extra);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Edge { child, http, admin, log }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Calls `check` every `every` until it gives a value; after `limit` fails with `what` and the last `check`'s
/// context (`detail`, read at failure time).
pub async fn eventually<T, Fut>(
    limit: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    detail: impl Fn() -> String,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}\n{}", detail());
        tokio::time::sleep(every).await;
    }
}

/// The sum of the samples of `prefix` in an edge's /metrics (0 when the edge does not answer).
pub async fn edge_metric(http: &reqwest::Client, edge: &Edge, prefix: &str) -> f64 {
    let Ok(r) = http.get(format!("http://127.0.0.1:{}/metrics", edge.admin)).send().await else { return 0.0 };
    let text = r.text().await.unwrap_or_default();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

pub fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

pub fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}
