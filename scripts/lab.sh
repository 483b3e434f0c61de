#!/usr/bin/env bash
# The multi-region lab (issue 11): three voter regions (eu, us, ap) and a learner region (sa) on
# this machine, every Raft link through a userspace delay relay (eu<->us 80 ms, us<->ap 120 ms,
# eu<->ap 160 ms round trip; sa 110-200 ms), `--raft-profile wan`, one proxy per region. Prints
# the elections seen while the cluster idles (none allowed), commit latency per region,
# apply -> every-proxy ACK, and the time from losing the leader's region to the first write
# committed elsewhere (tests/tests/lab.rs; figures in BENCHMARKS.md).
#   bash scripts/lab.sh                  # 15 s idle watch (not in CI yet: see BENCHMARKS.md)
#   bash scripts/lab.sh --hold-secs 300  # 5 idle minutes without an election
set -euo pipefail
cd "$(dirname "$0")/.."
hold=15
if [ "${1:-}" = "--hold-secs" ]; then hold="$2"; fi
cargo build --bins
SWITCHYARD_LAB_HOLD_SECS="$hold" cargo test -p switchyard-e2e --test lab -- --ignored --nocapture --test-threads 1
