#!/usr/bin/env bash
# Write benchmark of the control plane (see BENCHMARKS.md):
#   bash scripts/bench-apply.sh [WRITES_PER_ROUND] [TOTAL_WRITES]
# Starts a 3-node release cluster on free loopback ports, measures single- and multi-client write
# latency and throughput with `switchyard bench apply`, then drives TOTAL_WRITES (default 100000)
# small writes and reports the leader's RSS and on-disk size with compaction on (default threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${1:-2000}
TOTAL=${2:-100000}
cargo build --release --bin switchyard >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
# shellcheck source=scripts/lib-cluster.sh
source scripts/lib-cluster.sh
start_cluster "$WORK"
leader=$LEADER
echo "3-node loopback cluster up, leader node $leader; $(nproc) cores"
echo
echo "== writes sent to the leader"
"$S" --endpoints "http://$(api "$leader")" bench apply --clients 1,16,64 --writes "$ROUND"
echo
echo "== writes spread over all three nodes (followers forward)"
"$S" --endpoints "$EPS" bench apply --clients 1,16,64 --writes "$ROUND"
echo
echo "== $TOTAL small writes (64 clients, to the leader), then leader RSS and disk"
"$S" --endpoints "http://$(api "$leader")" bench apply --clients 64 --writes "$TOTAL"
sleep 2 # let the last snapshot/purge settle before measuring (measurement, not synchronisation)
pid=$(cat "$WORK/n$leader.pid")
echo "leader RSS: $(grep VmRSS /proc/$pid/status | awk '{printf "%.1f MiB", $2/1024}')"
echo "leader data dir: $(du -sh "$WORK/n$leader" | cut -f1)"
curl -s "http://$(http "$leader")/metrics" | grep -E '^switchyard_(raft_applied_index|config_version|store_disk_bytes) '
