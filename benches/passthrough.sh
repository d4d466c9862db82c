#!/usr/bin/env bash
# Pass-through overhead of dime-edge: the same nginx origin loaded directly, through nginx as a reverse proxy
# (proxy_pass with upstream keepalive, the usual peer), and through dime-edge, in alternating rounds of one run,
# reported as ratios. One worker each. Loopback only; every load run is bounded by wrk's duration.
#
#   benches/passthrough.sh [--rounds N] [--duration SECONDS] [--connections N]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

rounds=3 duration=10 connections=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

need_packages cmake=cmake nginx=nginx wrk=wrk curl=curl
say "building dime-edge (release)"
cargo build --locked --release -p dime-edge

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as www-data
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port=$(free_port) edge_port=$(free_port) admin_port=$(free_port) proxy_port=$(free_port)

mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k.txt"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$origin_port;
    root $work/www;
  }
}
NGINX
cat > "$work/nginx-proxy.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
NGINX
say "origin: nginx (1 worker) on 127.0.0.1:$origin_port serving a 1 KiB file"
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
say "peer: nginx reverse proxy (1 worker, upstream keepalive) on 127.0.0.1:$proxy_port"
nginx -c "$work/nginx-proxy.conf" -p "$work" &
proxy_pid=$!
pids+=($proxy_pid)

cat > "$work/routes.yaml" <<ROUTES
version: 1
http:
  routes:
    - { name: bench, match: [{ hosts: [bench.test] }], upstream: origin }
  upstreams:
    origin: { servers: [{ url: "http://127.0.0.1:$origin_port" }] }
ROUTES
say "edge: dime-edge (1 thread, access log off) on 127.0.0.1:$edge_port"
target/release/dime-edge run --routes "$work/routes.yaml" --http "127.0.0.1:$edge_port" \
  --admin "127.0.0.1:$admin_port" --threads 1 --access-log false 2>"$work/edge.log" &
edge_pid=$!
pids+=($edge_pid)
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$admin_port/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$edge_port/1k.txt"

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run_wrk() { # url → requests/s, p50 ms, p99 ms, requests
  wrk -t1 -c"$connections" -d"${duration}s" --latency -H 'Host: bench.test' "$1" > "$work/wrk.out"
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /requests in/ {n=$1}
       END {print rps, p50, p99, n}' "$work/wrk.out"
}
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", v*1000 }'; }

hz=$(getconf CLK_TCK)
# CPU of a process and its children (nginx's worker is a child of its master) in ticks.
tree_ticks() { local t=0; for p in $1 $(pgrep -P "$1"); do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
per_1k() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { printf "%.2f", t / hz * 1000 / (n / 1000) }'; }
declare -a direct edge edge_cpu nginx nginx_cpu
for r in $(seq 1 "$rounds"); do
  say "round $r/$rounds: direct (${duration}s, $connections connections)"
  read -r rps p50 p99 n < <(run_wrk "http://127.0.0.1:$origin_port/1k.txt")
  direct+=("$rps"); echo "  direct: $rps req/s  p50 $(ms "$p50") ms  p99 $(ms "$p99") ms" >&2
  say "round $r/$rounds: through nginx proxy_pass"
  before=$(tree_ticks "$proxy_pid")
  read -r rps p50 p99 n < <(run_wrk "http://127.0.0.1:$proxy_port/1k.txt")
  cpu=$(per_1k $(($(tree_ticks "$proxy_pid") - before)) "$n")
  nginx+=("$rps"); nginx_cpu+=("$cpu")
  echo "  nginx:  $rps req/s  p50 $(ms "$p50") ms  p99 $(ms "$p99") ms  proxy CPU $cpu ms per 1,000 requests" >&2
  say "round $r/$rounds: through dime-edge"
  before=$(cpu_ticks "$edge_pid")
  read -r rps p50 p99 n < <(run_wrk "http://127.0.0.1:$edge_port/1k.txt")
  cpu=$(per_1k $(($(cpu_ticks "$edge_pid") - before)) "$n")
  edge+=("$rps"); edge_cpu+=("$cpu")
  echo "  edge:   $rps req/s  p50 $(ms "$p50") ms  p99 $(ms "$p99") ms  proxy CPU $cpu ms per 1,000 requests" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "${direct[@]}") e=$(median "${edge[@]}") c=$(median "${edge_cpu[@]}")
g=$(median "${nginx[@]}") gc=$(median "${nginx_cpu[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "pass-through, 1 KiB, wrk -t1 -c$connections -d${duration}s, $rounds alternating rounds, medians (absolute numbers are this machine's):"
echo "  origin direct:         $d req/s   (rounds: ${direct[*]})"
echo "  via nginx proxy_pass:  $g req/s   proxy CPU $gc ms/1k req   (rounds: ${nginx[*]})"
echo "  via dime-edge:         $e req/s   proxy CPU $c ms/1k req   (rounds: ${edge[*]})"
echo "  ratios: dime/direct $(ratio "$e" "$d")   dime/nginx req/s $(ratio "$e" "$g")   dime/nginx CPU per request $(ratio "$c" "$gc")"
