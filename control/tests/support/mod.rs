//! Shared by the control tests: a real etcd + kube-apiserver (scripts/kube-env, RBAC mode), control running as
//! its manifests' ServiceAccount, and a small origin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

pub const TOKEN: &str = "control-test-token-0123456789";
/// The token of control's `--purge-token-file`.
pub const PURGE_TOKEN: &str = "control-test-purge-token-0123456789";
/// The token of control's ServiceAccount identity (a static token for `system:serviceaccount:dime-system:dime-control`).
pub const CONTROL_IDENTITY_TOKEN: &str = "dime-control-serviceaccount-token-0123456789";

#[allow(unused_imports)]
pub use dime_testkit::{eventually, free_port, repo, Edge, Origin};

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
            "Role" => drop(
                Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), "dime-system")
                    .create(&pp, &serde_yaml::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "RoleBinding" => drop(
                Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(client.clone(), "dime-system")
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
    start_control_args(kube, tls_cert, &[])
}

/// [`start_control_with`], with more `dime-control run` arguments.
pub fn start_control_args(kube: &Kube, tls_cert: Option<&str>, extra: &[&str]) -> Control {
    start_control_through(kube, &kube.control_kubeconfig(), tls_cert, extra)
}

/// [`start_control_args`] with the kubeconfig at `kubeconfig` (e.g. through a [`Pausable`] proxy).
pub fn start_control_through(
    kube: &Kube,
    kubeconfig: &std::path::Path,
    tls_cert: Option<&str>,
    extra: &[&str],
) -> Control {
    let _ = kube;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let purge_tokens = dir.path().join("purge-tokens");
    std::fs::write(&purge_tokens, format!("{PURGE_TOKEN}\n")).unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dime-control"));
    cmd.args(["run", "--namespace", "default", "--listen", &format!("127.0.0.1:{port}"), "--token-file"]).arg(&tokens);
    cmd.arg("--purge-token-file").arg(&purge_tokens);
    if let Some(t) = tls_cert {
        cmd.args(["--tls-cert", t]);
    }
    cmd.args(extra);
    let child = cmd
        .env("KUBECONFIG", kubeconfig)
        .stderr(std::fs::File::create(dir.path().join("control.log")).unwrap())
        .spawn()
        .unwrap();
    let scheme = if tls_cert.is_some() { "https://localhost" } else { "http://127.0.0.1" };
    Control { child, url: format!("{scheme}:{port}"), dir }
}

/// Makes `name` an edge of the fleet as an administrator would: a credential Secret in control's namespace
/// (what `dime-control credential NAME` prints) and the token in `DIR/token-NAME`, whose path is returned.
pub async fn edge_credential(client: &Client, dir: &std::path::Path, name: &str) -> PathBuf {
    use dime_control::credentials::{hash, hex, HASH_KEY, LABEL};
    use k8s_openapi::api::core::v1::Secret;
    let token = edge_token(name);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("dime-edge-credential-{name}")),
            labels: Some(BTreeMap::from([(LABEL.to_owned(), name.to_owned())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(HASH_KEY.to_owned(), hex(&hash(&token)))])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), "dime-system").create(&PostParams::default(), &secret).await.unwrap();
    let path = dir.join(format!("token-{name}"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

/// Edge `name`'s token ([`edge_credential`]).
pub fn edge_token(name: &str) -> String {
    format!("edge-credential-of-{name}-0123456789")
}

/// A TCP proxy in front of the kube-apiserver that the test can pause: while paused, no byte moves on any of its
/// connections and new ones are held (what a replica whose API access hangs sees: its watches stall without an
/// error). Stops with the test.
pub struct Pausable {
    pub addr: std::net::SocketAddr,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Pausable {
    pub async fn start(to: std::net::SocketAddr) -> Pausable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(to).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(Pausable::pipe(cr, sw, rx.clone()), Pausable::pipe(sr, cw, rx));
                });
            }
        });
        Pausable { addr, paused }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut paused: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if paused.wait_for(|p| !*p).await.is_err() {
                return;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Read while running, held while paused: nothing goes on until the proxy runs again.
            if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// A copy of `kubeconfig` (in the same directory, named `name`) that reaches the API through this proxy.
    pub fn kubeconfig(&self, kubeconfig: &std::path::Path, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let (start, end) = Pausable::server(&text);
        let path = kubeconfig.with_file_name(name);
        std::fs::write(&path, format!("{}{}{}", &text[..start], self.addr, &text[end..])).unwrap();
        path
    }

    /// The API server's address in `kubeconfig`.
    pub fn api_addr(kubeconfig: &std::path::Path) -> std::net::SocketAddr {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let (start, end) = Pausable::server(&text);
        text[start..end].parse().unwrap()
    }

    /// Where the `HOST:PORT` of the cluster's `server: "https://HOST:PORT"` is in a kubeconfig.
    fn server(text: &str) -> (usize, usize) {
        let at = text.find("server:").unwrap();
        let start = at + text[at..].find("https://").unwrap() + "https://".len();
        let end = start + text[start..].find(|c: char| c.is_whitespace() || c == '"' || c == ',').unwrap();
        (start, end)
    }
}

pub fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

pub fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}
