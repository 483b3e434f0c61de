#!/usr/bin/env bash
# Raft writes, Switchyard against etcd 3.4, side by side in one run (see BENCHMARKS.md):
#   bash scripts/bench-writes.sh [WRITES_PER_ROUND] [REPS]
# Starts three 3-node clusters on loopback at once: etcd, Switchyard with write batching off
# (`--max-write-batch 1`: one Raft entry per write) and Switchyard as shipped, then for each client
# count (1, 16, 64) runs one round against each leader in turn, REPS times (default 2), so the
# three see the same machine load. Same workload everywhere: each client rewrites its own
# ~300-byte document (`switchyard bench apply` / `etcd_put_bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${1:-2000}
REPS=${2:-2}
cargo build --release -p switchyard --bin switchyard -p switchyard-e2e --bin etcd_put_bench >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
# shellcheck source=scripts/lib-cluster.sh
source scripts/lib-cluster.sh
start_etcd "$WORK"
mkdir -p "$WORK/one" "$WORK/batched"
SERVER_FLAGS="--max-write-batch 1" start_cluster "$WORK/one"
ONE="http://$(api "$LEADER")"
SERVER_FLAGS="" start_cluster "$WORK/batched"
BATCHED="http://$(api "$LEADER")"
echo "etcd $(etcd --version | head -1 | awk '{print $3}') and two Switchyard 3-node loopback clusters; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPS"); do
  for c in 1 16 64; do
    echo
    echo "== rep $rep, $c clients, writes to the leader"
    printf 'etcd              '; target/release/etcd_put_bench "$ETCD_LEADER" "$c" "$ROUND" | tail -1
    printf 'switchyard batch1 '; "$S" --endpoints "$ONE" bench apply --clients "$c" --writes "$ROUND" | tail -1
    printf 'switchyard        '; "$S" --endpoints "$BATCHED" bench apply --clients "$c" --writes "$ROUND" | tail -1
  done
done
