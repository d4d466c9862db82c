# Shared by the benchmark scripts: options, processes, load runs, CPU accounting, statistics.
# Everything listens on 127.0.0.1; every load run is bounded by wrk's duration.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

rounds=3 duration=10 connections=32
parse_bench_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) rounds=$2; shift 2 ;;
      --duration) duration=$2; shift 2 ;;
      --connections) connections=$2; shift 2 ;;
      -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
}

bench_setup() {
  need_packages cmake=cmake nginx=nginx wrk=wrk curl=curl python3=python3
  say "building dime-edge (release)"
  cargo build --locked --release -p dime-edge
  work=$(mktemp -d)
  chmod 755 "$work"  # nginx workers run as www-data
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx NAME CONFIG-BODY: runs nginx (1 worker) with the given http{} body; sets $last_pid.
start_nginx() {
  local name=$1 body=$2
  cat > "$work/$name.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/$name.pid;
error_log $work/$name-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush off;
  keepalive_requests 1000000;
$body
}
NGINX
  nginx -c "$work/$name.conf" -p "$work" &
  last_pid=$!
  pids+=("$last_pid")
}

# start_edge ROUTES-FILE [EXTRA ARGS...]: runs dime-edge (1 thread, no access log); sets $edge_port, $edge_pid.
start_edge() {
  local routes=$1; shift
  edge_port=$(free_port)
  local admin_port
  admin_port=$(free_port)
  target/release/dime-edge run --routes "$routes" --http "127.0.0.1:$edge_port" --admin "127.0.0.1:$admin_port" \
    --threads 1 --access-log false "$@" 2>"$work/edge.log" &
  edge_pid=$!
  pids+=("$edge_pid")
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$admin_port/readyz" && return 0; sleep 0.1; done
  say "dime-edge did not become ready"; cat "$work/edge.log" >&2; exit 1
}

# bench_routes FILE ORIGIN_PORT [ROUTE-OPTIONS]: one route for Host bench.test to the origin, e.g. ", cache: {}".
bench_routes() {
  cat > "$1" <<ROUTES
version: 1
http:
  routes:
    - { name: bench, match: [{ hosts: [bench.test] }], upstream: origin${3:-} }
  upstreams:
    origin: { servers: [{ url: "http://127.0.0.1:$2" }] }
ROUTES
}

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# CPU of a process and its children (nginx's worker is a child of its master), in clock ticks.
tree_ticks() { local t=0 p; for p in $1 $(pgrep -P "$1"); do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
hz=$(getconf CLK_TCK)
per_1k() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { printf "%.2f", t / hz * 1000 / (n / 1000) }'; }

# measure PID URL: one wrk run; prints "req/s p50 p99 cpu-ms-per-1k" (latencies as wrk prints them).
measure() {
  local pid=$1 url=$2 before after
  before=$(tree_ticks "$pid")
  wrk -t1 -c"$connections" -d"${duration}s" --latency -H 'Host: bench.test' "$url" > "$work/wrk.out"
  after=$(tree_ticks "$pid")
  awk -v cpu="$(per_1k $((after - before)) "$(awk '/requests in/ {print $1}' "$work/wrk.out")")" \
    '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99, cpu}' "$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then say "warning: non-2xx answers in this run"; grep "Non-2xx" "$work/wrk.out" >&2; fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
