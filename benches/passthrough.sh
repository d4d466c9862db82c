#!/usr/bin/env bash
# Pass-through overhead of dime-edge: the same nginx origin loaded directly, through nginx as a reverse proxy
# (proxy_pass with upstream keepalive, the usual peer), and through dime-edge, in alternating rounds of one run,
# reported as ratios. One worker each. Loopback only; every load run is bounded by wrk's duration.
#
#   benches/passthrough.sh [--rounds N] [--duration SECONDS] [--connections N]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
parse_bench_options "$@"
bench_setup

origin_port=$(free_port) proxy_port=$(free_port)
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k.txt"
say "origin: nginx (1 worker) on 127.0.0.1:$origin_port serving a 1 KiB file"
start_nginx origin "  server { listen 127.0.0.1:$origin_port; root $work/www; }"
origin_pid=$last_pid
say "peer: nginx reverse proxy (1 worker, upstream keepalive) on 127.0.0.1:$proxy_port"
start_nginx proxy "  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }"
proxy_pid=$last_pid
bench_routes "$work/routes.yaml" "$origin_port"
say "edge: dime-edge (1 thread, access log off)"
start_edge "$work/routes.yaml"
wait_port "$origin_port"; wait_port "$proxy_port"

declare -a direct nginx nginx_cpu edge edge_cpu
for r in $(seq 1 "$rounds"); do
  say "round $r/$rounds: origin direct (${duration}s, $connections connections)"
  read -r rps p50 p99 _ < <(measure "$origin_pid" "http://127.0.0.1:$origin_port/1k.txt")
  direct+=("$rps"); echo "  direct: $rps req/s  p50 $p50  p99 $p99" >&2
  say "round $r/$rounds: through nginx proxy_pass"
  read -r rps p50 p99 cpu < <(measure "$proxy_pid" "http://127.0.0.1:$proxy_port/1k.txt")
  nginx+=("$rps"); nginx_cpu+=("$cpu"); echo "  nginx:  $rps req/s  p50 $p50  p99 $p99  proxy CPU $cpu ms/1k req" >&2
  say "round $r/$rounds: through dime-edge"
  read -r rps p50 p99 cpu < <(measure "$edge_pid" "http://127.0.0.1:$edge_port/1k.txt")
  edge+=("$rps"); edge_cpu+=("$cpu"); echo "  dime:   $rps req/s  p50 $p50  p99 $p99  proxy CPU $cpu ms/1k req" >&2
done

d=$(median "${direct[@]}") g=$(median "${nginx[@]}") gc=$(median "${nginx_cpu[@]}") e=$(median "${edge[@]}") c=$(median "${edge_cpu[@]}")
echo
echo "pass-through, 1 KiB, wrk -t1 -c$connections -d${duration}s, $rounds alternating rounds, medians (absolute numbers are this machine's):"
echo "  origin direct:         $d req/s   (rounds: ${direct[*]})"
echo "  via nginx proxy_pass:  $g req/s   proxy CPU $gc ms/1k req   (rounds: ${nginx[*]})"
echo "  via dime-edge:         $e req/s   proxy CPU $c ms/1k req   (rounds: ${edge[*]})"
echo "  ratios: dime/direct $(ratio "$e" "$d")   dime/nginx req/s $(ratio "$e" "$g")   dime/nginx CPU per request $(ratio "$c" "$gc")"
