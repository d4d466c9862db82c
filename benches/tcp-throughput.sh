#!/usr/bin/env bash
# TCP passthrough throughput: iperf3 through a dime-edge TCP entrypoint vs iperf3 direct, in alternating rounds
# of one run, reported as a ratio, with the edge's CPU per GiB forwarded. Loopback only; every iperf3 run is
# bounded by its duration.
#
#   benches/tcp-throughput.sh [--rounds N] [--duration SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
parse_bench_options "$@"
need_packages iperf3=iperf3
bench_setup

server_port=$(free_port) entry_port=$(free_port)
say "iperf3 server on 127.0.0.1:$server_port"
iperf3 -s -B 127.0.0.1 -p "$server_port" >/dev/null 2>&1 &
pids+=($!)
cat > "$work/routes.yaml" <<ROUTES
version: 1
tcp:
  routes:
    - { name: bench, entrypoints: [bench], upstream: iperf }
  upstreams:
    iperf: { servers: [{ address: "127.0.0.1:$server_port" }] }
ROUTES
say "dime-edge (1 thread) with TCP entrypoint bench=127.0.0.1:$entry_port"
start_edge "$work/routes.yaml" --tcp "bench=127.0.0.1:$entry_port"
wait_port "$server_port"; wait_port "$entry_port"

# gbps PORT: one iperf3 run; prints "Gbit/s bytes".
gbps() {
  iperf3 -c 127.0.0.1 -p "$1" -t "$duration" -f g > "$work/iperf.out"
  awk '/receiver/ {for (i=1;i<=NF;i++) if ($i ~ /bits\/sec/) {rate=$(i-1)}; for (i=1;i<=NF;i++) if ($i=="GBytes"||$i=="MBytes") {b=$(i-1); u=$i}} END {mult=(u=="GBytes")?1073741824:1048576; printf "%s %.0f\n", rate, b*mult}' "$work/iperf.out"
}

declare -a direct edge cpu
for r in $(seq 1 "$rounds"); do
  say "round $r/$rounds: direct (${duration}s)"
  read -r rate _ < <(gbps "$server_port"); direct+=("$rate"); echo "  direct: $rate Gbit/s" >&2
  say "round $r/$rounds: through dime-edge"
  before=$(cpu_ticks "$edge_pid")
  read -r rate bytes < <(gbps "$entry_port")
  ticks=$(($(cpu_ticks "$edge_pid") - before))
  c=$(awk -v t="$ticks" -v hz="$hz" -v b="$bytes" 'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')
  edge+=("$rate"); cpu+=("$c"); echo "  edge:   $rate Gbit/s  edge CPU $c s per GiB" >&2
done
d=$(median "${direct[@]}") e=$(median "${edge[@]}") c=$(median "${cpu[@]}")
echo
echo "TCP passthrough, iperf3 -t $duration, $rounds alternating rounds, medians (absolute numbers are this machine's):"
echo "  direct:          $d Gbit/s   (rounds: ${direct[*]})"
echo "  via dime-edge:   $e Gbit/s   edge CPU $c s per GiB   (rounds: ${edge[*]})"
echo "  ratio edge/direct: $(ratio "$e" "$d")"
