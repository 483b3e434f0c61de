#!/usr/bin/env bash
# The etcd side of the write comparison in BENCHMARKS.md:
#   bash scripts/bench-etcd.sh [WRITES_PER_ROUND]
# Installs etcd 3.4 from Debian when missing, starts a 3-member etcd cluster on free loopback ports
# and drives the same workload as `switchyard bench apply` (src: tests/src/bin/etcd_put_bench.rs).
# `scripts/bench-writes.sh` runs this and Switchyard side by side, interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${1:-2000}
cargo build --release -p switchyard-e2e --bin etcd_put_bench >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
# shellcheck source=scripts/lib-cluster.sh
source scripts/lib-cluster.sh
start_etcd "$WORK"
echo "3-member etcd $(etcd --version | head -1 | awk '{print $3}') loopback cluster, leader $ETCD_LEADER; $(nproc) cores"
echo
echo "== puts sent to the leader"
target/release/etcd_put_bench "$ETCD_LEADER" 1,16,64 "$ROUND"
echo
echo "== puts spread over all three members"
target/release/etcd_put_bench "$ETCD_EPS" 1,16,64 "$ROUND"
