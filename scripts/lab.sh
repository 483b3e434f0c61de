#!/usr/bin/env bash
# The multi-region lab (issue 11): three voter regions (eu, us, ap) and a learner region (sa) on
# this machine, every Raft link through a userspace delay relay (eu<->us 80 ms, us<->ap 120 ms,
# eu<->ap 160 ms round trip; sa 110-200 ms), `--raft-profile wan`, one proxy per region. Prints
# commit latency per region, apply -> every-proxy ACK, and the time from losing the leader's
# region to the first write committed elsewhere (tests/tests/lab.rs; figures in BENCHMARKS.md).
#   bash scripts/lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins
cargo test -p switchyard-e2e --test lab -- --nocapture --test-threads 1
