#!/usr/bin/env bash
# dime-control at scale on a real etcd + kube-apiserver: 1,000 routes in 200 ConfigMaps, 100 long-polling
# clients; prints propagation p50/p99 (ConfigMap edit -> every client), control CPU per edit and memory.
# Every loop is bounded (edit count; 30 s per edit).
#
#   benches/control-scale.sh [--configmaps N] [--routes-per-configmap N] [--clients N] [--edits N]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages etcd=etcd-server openssl=openssl curl=curl
say "building kube-apiserver (cached after the first time) and the release control binary"
scripts/build-kube-apiserver >/dev/null
exec cargo bench -p dime-control --bench scale -- "$@"
