//! A real `dime-edge run` process on ephemeral loopback ports, killed on drop; with a routes file or pulling from
//! dime-control.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_addr, workspace_binary};

/// A running `dime-edge run`.
pub struct Edge {
    pub child: Child,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The routes file (for an edge started with [`Edge::start`]).
    pub routes: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (lossy), for assertions on text bodies.
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// What the edge must say before [`Edge::launch`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `/readyz` is 200: a route table is in service.
    Ready,
    /// `/healthz` answers: the process is up and listening (it may still have no table).
    Listening,
}

impl Edge {
    /// An edge with `routes` as its routes file, once it is ready. `extra`: more `dime-edge run` arguments.
    pub async fn start(routes: &str, extra: &[&str]) -> Edge {
        let routes = routes.to_owned();
        Edge::launch(Wait::Ready, extra, move |dir| {
            let path = dir.join("routes.yaml");
            std::fs::write(&path, &routes).unwrap();
            vec!["--routes".into(), path.into()]
        })
        .await
    }

    /// An edge pulling from `controls` with the token in `token_file`, keeping its last table in `state_dir`, once
    /// it listens (whether or not control gave it a table).
    pub async fn with_control<S: AsRef<OsStr>>(
        controls: &[&str],
        token_file: &Path,
        state_dir: &Path,
        extra: &[S],
    ) -> Edge {
        let mut args: Vec<OsString> = Vec::new();
        for c in controls {
            args.extend(["--control".into(), OsString::from(c)]);
        }
        args.extend(["--control-token-file".into(), token_file.into(), "--state-dir".into(), state_dir.into()]);
        // A name of its own unless the test gives one (the host name may not be an edge name on every machine).
        if !extra.iter().any(|a| a.as_ref() == "--edge-name") {
            args.extend(["--edge-name".into(), "test-edge".into()]);
        }
        Edge::launch(Wait::Listening, extra, move |_| args.clone()).await
    }

    /// Starts the edge and waits as `wait` says. Ports are picked by the OS and released before the edge binds
    /// them; if another test grabbed one meanwhile, the edge exits and is started again on new ports.
    async fn launch<S: AsRef<OsStr>>(wait: Wait, extra: &[S], source: impl Fn(&Path) -> Vec<OsString>) -> Edge {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("edge.log");
            let (http, admin) = (free_addr(), free_addr());
            let child = Command::new(workspace_binary("dime-edge"))
                .arg("run")
                .args(source(dir.path()))
                .args(["--http", &http.to_string(), "--admin", &admin.to_string(), "--threads", "2"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
            let routes = dir.path().join("routes.yaml");
            let mut edge = Edge { child, http, admin, routes, log, _dir: dir, client };
            if edge.wait(wait).await {
                return edge;
            }
            eprintln!("edge exited before it listened, retrying on new ports; log:\n{}", edge.log_text());
        }
        panic!("dime-edge did not start in three attempts");
    }

    /// Waits (at most 20 s) for `wait`; false if the process exited first (e.g. a port was taken).
    async fn wait(&mut self, wait: Wait) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        let path = if wait == Wait::Ready { "/readyz" } else { "/healthz" };
        loop {
            if let Ok(r) = self.client.get(format!("http://{}{path}", self.admin)).send().await {
                if r.status() == 200 {
                    return true;
                }
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            assert!(Instant::now() < deadline, "edge: no 200 on {path} in 20s; log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The edge's log once it contains `needle`, or as it is after 5 s: the edge writes its log in batches, a
    /// few milliseconds after the lines are logged.
    pub async fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_text();
            if log.contains(needle) || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET `target` (a path, or an [`crate::Ask`]) with `Host: host` through the edge.
    pub async fn get(&self, host: &str, target: impl Display) -> Reply {
        self.request(reqwest::Method::GET, host, target, &[]).await
    }

    /// [`Edge::get`], or `None` when the edge does not answer (stopped, or not listening yet).
    pub async fn try_get(&self, host: &str, target: impl Display) -> Option<Reply> {
        self.try_request(reqwest::Method::GET, host, target, &[]).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: impl Display,
        headers: &[(&str, &str)],
    ) -> Reply {
        match self.try_request(method, host, path, headers).await {
            Some(reply) => reply,
            None => panic!("request to the edge failed; log:\n{}", self.log_text()),
        }
    }

    async fn try_request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: impl Display,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        let mut req = self.client.request(method, format!("http://{}{}", self.http, path)).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.ok()?.to_vec();
        Some(Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned(), bytes })
    }

    /// Waits (at most 20 s) until the edge answers `host` with `status` (and, if given, this body); returns how
    /// long that took.
    pub async fn until(&self, host: &str, status: u16, body: Option<&str>) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(r) = self.try_get(host, "/").await {
                if r.status == status && body.is_none_or(|want| r.body == want) {
                    return start.elapsed();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "edge never answered {host} with {status}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// GET on the admin listener: (status, body).
    pub async fn admin(&self, path: &str) -> (u16, String) {
        let resp = self.client.get(format!("http://{}{}", self.admin, path)).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The value of one metric sample, e.g. `dime_config_reloads_total{result="failed"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.admin("/metrics").await;
        text.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
    }

    /// The sum of every sample whose line starts with `prefix` (all label sets of a metric); 0 when the edge
    /// does not answer.
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let Ok(r) = self.client.get(format!("http://{}/metrics", self.admin)).send().await else { return 0.0 };
        let text = r.text().await.unwrap_or_default();
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// `metric`, read again until it is `want` (at most 5 s): Pingora counts a request in its `logging` phase,
    /// which may run just after the client has the whole response.
    pub async fn metric_reaches(&self, sample: &str, want: f64) -> f64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.metric(sample).await;
            if value == want || tokio::time::Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most `limit`, polling every 50 ms) until `sample` is at least `want`; fails the test with
    /// `what` and the edge's log otherwise. The value reached.
    pub async fn metric_at_least(&self, sample: &str, want: f64, limit: Duration, what: &str) -> f64 {
        let every = Duration::from_millis(50);
        crate::eventually(
            limit,
            every,
            what,
            || self.log_text(),
            || async {
                let value = self.metric(sample).await;
                (value >= want).then_some(value)
            },
        )
        .await
    }

    pub async fn version(&self) -> String {
        let (_, text) = self.admin("/config").await;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["active"]["version"].as_str().unwrap_or_default().to_owned()
    }

    /// Replaces the routes file the way config management does: write aside, then rename over.
    pub fn write_routes(&self, text: &str) {
        let tmp = self.routes.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.routes).unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it.
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
