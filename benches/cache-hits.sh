#!/usr/bin/env bash
# Cached hits: dime-edge's cache against nginx proxy_cache (proxy_cache_lock on), both in front of the same
# nginx origin, for a 1 KiB and a 1 MiB object, in alternating rounds of one run. Both proxies run one worker;
# both objects are warm in both caches before measuring. Reports requests/s and proxy CPU per 1,000 requests,
# as ratios dime/nginx. Loopback only; every load run is bounded by wrk's duration.
#
#   benches/cache-hits.sh [--rounds N] [--duration SECONDS] [--connections N]
#
# Like nginx, whose proxy_cache files live under the work directory, dime-edge keeps large bodies in files there
# (--cache-body-dir). BODIES=memory runs it with its default instead: anonymous memory files.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
parse_bench_options "$@"
bench_setup

origin_port=$(free_port) proxy_port=$(free_port)
mkdir -p "$work/www" "$work/nginx-cache"
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c 1048576 /dev/urandom > "$work/www/1m.bin"
say "origin: nginx (1 worker) on 127.0.0.1:$origin_port, objects with Cache-Control: max-age=3600"
start_nginx origin "  server { listen 127.0.0.1:$origin_port; root $work/www; add_header Cache-Control \"max-age=3600\"; }"
say "peer: nginx proxy_cache (1 worker, proxy_cache_lock on, cache in $work/nginx-cache) on 127.0.0.1:$proxy_port"
start_nginx proxy "  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=bench:64m max_size=512m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_valid 200 1h;
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }"
proxy_pid=$last_pid
bench_routes "$work/routes.yaml" "$origin_port" ", cache: {}"
if [ "${BODIES:-dir}" = memory ]; then
  say "edge: dime-edge (1 thread, access log off, --cache-size 512MiB, large bodies in memory files)"
  start_edge "$work/routes.yaml" --cache-size 512MiB
else
  say "edge: dime-edge (1 thread, access log off, --cache-size 512MiB, large bodies in $work/dime-bodies)"
  start_edge "$work/routes.yaml" --cache-size 512MiB --cache-body-dir "$work/dime-bodies"
fi
wait_port "$origin_port"; wait_port "$proxy_port"

for obj in 1k.bin 1m.bin; do
  for port in "$proxy_port" "$edge_port"; do
    for _ in 1 2 3; do curl -fs -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/$obj"; done
  done
  nginx_status=$(curl -fs -o /dev/null -D - -H 'Host: bench.test' "http://127.0.0.1:$proxy_port/$obj" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}')
  dime_status=$(curl -fs -o /dev/null -D - -H 'Host: bench.test' "http://127.0.0.1:$edge_port/$obj" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}')
  say "warm: $obj nginx=$nginx_status dime=$dime_status"
  case "$nginx_status/$dime_status" in HIT/dime\;\ hit*) ;; *) say "objects are not cached in both; aborting"; exit 1 ;; esac
done

report=()
for obj in 1k.bin 1m.bin; do
  declare -a n_rps=() n_cpu=() d_rps=() d_cpu=() n_p99=() d_p99=()
  for r in $(seq 1 "$rounds"); do
    say "$obj round $r/$rounds: nginx proxy_cache (${duration}s, $connections connections)"
    read -r rps p50 p99 cpu < <(measure "$proxy_pid" "http://127.0.0.1:$proxy_port/$obj")
    n_rps+=("$rps"); n_cpu+=("$cpu"); n_p99+=("$p99"); echo "  nginx: $rps req/s  p50 $p50  p99 $p99  CPU $cpu ms/1k req" >&2
    say "$obj round $r/$rounds: dime-edge"
    read -r rps p50 p99 cpu < <(measure "$edge_pid" "http://127.0.0.1:$edge_port/$obj")
    d_rps+=("$rps"); d_cpu+=("$cpu"); d_p99+=("$p99"); echo "  dime:  $rps req/s  p50 $p50  p99 $p99  CPU $cpu ms/1k req" >&2
  done
  nr=$(median "${n_rps[@]}") nc=$(median "${n_cpu[@]}") dr=$(median "${d_rps[@]}") dc=$(median "${d_cpu[@]}")
  report+=("$(printf '  %-7s nginx %10s req/s %7s CPU-ms/1k | dime %10s req/s %7s CPU-ms/1k | dime/nginx req/s %s, CPU/req %s\n          rounds nginx: %s | dime: %s' \
    "$obj" "$nr" "$nc" "$dr" "$dc" "$(ratio "$dr" "$nr")" "$(ratio "$dc" "$nc")" "${n_rps[*]}" "${d_rps[*]}")")
done
echo
echo "cached hits, wrk -t1 -c$connections -d${duration}s, $rounds alternating rounds, medians (absolute numbers are this machine's):"
printf '%s\n' "${report[@]}"
