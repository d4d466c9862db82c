//! A plain nginx serving static files from a temporary root: an origin that reads a request's path itself,
//! decoding `%XX` (`%2F` too), resolving `..` and merging `//` before it opens a file, as many origins do. A real
//! process on an ephemeral loopback port, stopped on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct StaticNginx {
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl StaticNginx {
    /// Serves `files` (a path under the root, its contents) from `127.0.0.1` on an ephemeral port, once it listens
    /// (at most 10 s). Every request is logged with nginx's own reading of its path ([`StaticNginx::served`]).
    pub fn start(files: &[(&str, &str)]) -> StaticNginx {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let file = dir.path().join("www").join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        let port = super::closed_port();
        let d = dir.path().display();
        // nginx workers drop privileges when started as root; let them read the temp dir.
        let user = if super::live::nix_euid_is_root() { "user root root;" } else { "" };
        let conf = format!(
            r#"
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  log_format paths '$uri $status';
  access_log {d}/access.log paths;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; text/plain txt; }}
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
  }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx must be installed (see scripts/test)");
        let nginx = StaticNginx { http: format!("127.0.0.1:{port}").parse().unwrap(), dir, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(nginx.http).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start: {}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Every request served so far: the path as nginx read it (`$uri`: decoded, dot segments resolved) and its
    /// status.
    pub fn served(&self) -> Vec<(String, u16)> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.rsplit_once(' '))
            .map(|(path, status)| (path.to_owned(), status.parse().unwrap_or(0)))
            .collect()
    }
}

impl Drop for StaticNginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(self.dir.path(), &mut child);
        }
    }
}

/// Stops the nginx started with the prefix `dir` (and `dir/nginx.conf`): `nginx -s stop` makes the master take
/// its workers down with it (killing only the master would leave the workers serving), then the master is reaped.
pub fn stop(dir: &Path, child: &mut Child) {
    let conf = dir.join("nginx.conf");
    let _ = Command::new("nginx").arg("-p").arg(dir).arg("-c").arg(&conf).args(["-s", "stop"]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
