//! Real live-video parts for tests: an nginx-rtmp origin writing HLS (as the old cluster's origin does) and an
//! ffmpeg test-pattern publisher. Both are real processes on ephemeral loopback ports, killed on drop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx with the RTMP module: RTMP app `live` with HLS into `hls/`, served over HTTP under `/hls/` with
/// `Cache-Control: no-cache` and CORS `*`, like the seed origin. Every HTTP request is logged by path.
pub struct RtmpOrigin {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// How the nginx-rtmp origin is set up; `Default` is the seed's HLS origin with a 10 s playlist.
#[derive(Debug, Clone)]
pub struct OriginOptions {
    /// The RTMP listener requires a PROXY protocol header (nginx verifies it).
    pub proxy_protocol: bool,
    /// `hls_playlist_length` (and `dash_playlist_length`), e.g. `10s`. nginx-rtmp's cleanup removes a stopped
    /// stream's files a few playlist lengths later, after which numbering restarts at 0.
    pub playlist_length: &'static str,
    /// `hls_fragment_naming` (`sequential`, `timestamp`, `system`).
    pub naming: &'static str,
    /// Also write DASH (`dash on`) into `dash/`, served under `/dash/`.
    pub dash: bool,
    /// nginx's `keepalive_timeout` for HTTP clients (the edge's upstream connections), e.g. `1s`.
    pub keepalive: &'static str,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            proxy_protocol: false,
            playlist_length: "10s",
            naming: "sequential",
            dash: false,
            keepalive: "75s",
        }
    }
}

impl RtmpOrigin {
    pub fn start() -> RtmpOrigin {
        Self::start_opts(OriginOptions::default())
    }

    /// `proxy_protocol`: the RTMP listener requires a PROXY protocol header (nginx verifies it).
    pub fn start_with(proxy_protocol: bool) -> RtmpOrigin {
        Self::start_opts(OriginOptions { proxy_protocol, ..Default::default() })
    }

    pub fn start_opts(opts: OriginOptions) -> RtmpOrigin {
        let OriginOptions { proxy_protocol, playlist_length, naming, dash, keepalive } = opts;
        let dir = tempfile::tempdir().unwrap();
        let (http, rtmp) = (super::closed_port(), super::closed_port());
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("hls")).unwrap();
        std::fs::create_dir_all(dir.path().join("dash")).unwrap();
        let dash = if dash {
            format!("dash on; dash_path {d}/dash; dash_fragment 1s; dash_playlist_length {playlist_length};")
        } else {
            String::new()
        };
        // nginx workers drop privileges when started as root; let them write HLS into the temp dir.
        let user = if nix_euid_is_root() { "user root root;" } else { "" };
        let pp = if proxy_protocol { " proxy_protocol" } else { "" };
        let conf = format!(
            r#"
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp}{pp};
    application live {{
      live on;
      hls on;
      hls_path {d}/hls;
      hls_fragment 1s;
      hls_playlist_length {playlist_length};
      hls_fragment_naming {naming};
      {dash}
    }}
  }}
}}
http {{
  log_format paths '$uri $status';
  access_log {d}/access.log paths;
  keepalive_timeout {keepalive};
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; application/dash+xml mpd; video/mp4 m4v; audio/mp4 m4a; }}
  server {{
    listen 127.0.0.1:{http};
    location /hls/ {{
      alias {d}/hls/;
      add_header Cache-Control no-cache;
      add_header Access-Control-Allow-Origin *;
    }}
    location /dash/ {{
      alias {d}/dash/;
      add_header Cache-Control no-cache;
    }}
    # The same HLS stream laid out with its segments in a sub-directory of its playlist (`seg/stream-0.ts`).
    location = /nested/stream/index.m3u8 {{
      alias {d}/hls/stream.m3u8;
      sub_filter_types application/vnd.apple.mpegurl;
      sub_filter 'stream-' 'seg/stream-';
      sub_filter_once off;
      add_header Cache-Control no-cache;
    }}
    location /nested/stream/seg/ {{
      alias {d}/hls/;
      add_header Cache-Control no-cache;
    }}
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
            .expect("nginx must be installed with libnginx-mod-rtmp (see .ci/run)");
        let origin = RtmpOrigin {
            http: format!("127.0.0.1:{http}").parse().unwrap(),
            rtmp: format!("127.0.0.1:{rtmp}").parse().unwrap(),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(origin.rtmp).is_err() {
            assert!(Instant::now() < deadline, "nginx-rtmp did not start: {}", origin.error_log());
            std::thread::sleep(Duration::from_millis(50));
        }
        origin
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// HTTP requests the origin served, by path.
    pub fn requests(&self) -> HashMap<String, usize> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let mut counts = HashMap::new();
        for line in log.lines() {
            if let Some(path) = line.split_whitespace().next() {
                *counts.entry(path.to_owned()).or_default() += 1;
            }
        }
        counts
    }

    pub fn hls_dir(&self) -> PathBuf {
        self.dir.path().join("hls")
    }

    /// GET `path` from the origin itself (not through the edge): status and body.
    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = reqwest::get(format!("{}{path}", self.url())).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }

    /// Stops nginx (an origin outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::nginx::stop(self.dir.path(), &mut c);
        }
        // The master's workers exit with it; make sure nothing still listens.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(self.http).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RtmpOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn nix_euid_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// An ffmpeg publisher pushing a test pattern with audio over RTMP, for at most `seconds`.
pub struct Publisher {
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Publisher {
    pub fn ffmpeg(rtmp_url: &str, seconds: u32) -> Publisher {
        Self::ffmpeg_source(rtmp_url, seconds, "testsrc")
    }

    /// An ffmpeg publisher of the lavfi video `source` (`testsrc`, `smptebars`, `rgbtestsrc`...): two publishers
    /// with different sources write visibly different segments.
    pub fn ffmpeg_source(rtmp_url: &str, seconds: u32, source: &str) -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ffmpeg.log");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "warning", "-re"])
            .args(["-f", "lavfi", "-i", &format!("{source}=size=320x180:rate=30")])
            .args(["-f", "lavfi", "-i", "sine=frequency=440"])
            .args(["-t", &seconds.to_string()])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30"])
            .args(["-c:a", "aac", "-f", "flv", rtmp_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ffmpeg must be installed (see .ci/run)");
        Publisher { child, log, _dir: dir }
    }

    /// A gstreamer pipeline of the same shape as the old cluster's publisher: videotestsrc → x264enc
    /// (zerolatency) → flvmux (streamable) → rtmpsink, with AAC audio from audiotestsrc, for at most `seconds`.
    pub fn gstreamer(rtmp_url: &str, seconds: u32) -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gst.log");
        let buffers = (seconds * 30).to_string();
        let pipeline = format!(
            "videotestsrc is-live=true num-buffers={buffers} ! video/x-raw,width=320,height=180,framerate=30/1 ! videoconvert \
             ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 ! video/x-h264,profile=main ! flvmux streamable=true name=mux \
             ! rtmpsink location=\"{rtmp_url} live=1\" \
             audiotestsrc is-live=true ! audioconvert ! audioresample ! voaacenc bitrate=64000 ! mux."
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec gst-launch-1.0 -q {pipeline}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("gst-launch-1.0 must be installed (see .ci/run)");
        Publisher { child, log, _dir: dir }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still publishing?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Publisher {
    /// Stops publishing now (the RTMP connection goes away, as when a publisher pod is restarted).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
