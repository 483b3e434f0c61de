#!/usr/bin/env bash
# The multi-region lab (issue 11): three voter regions (eu, us, ap) and a learner region (sa) on
# this machine, every Raft link through a userspace delay relay (eu<->us 80 ms, us<->ap 120 ms,
# eu<->ap 160 ms round trip; sa 110-200 ms), one proxy per region. Prints the elections seen
# while the cluster idles (none allowed with the WAN profile) beside the relays' own lateness,
# commit latency and apply -> ACK p50/p99 per region, and the time from losing the leader's
# region to the first write committed elsewhere (tests/tests/lab.rs; figures in BENCHMARKS.md).
# CI runs the same test with a 10 s idle watch.
#   bash scripts/lab.sh                                # WAN profile, 10 s idle watch
#   bash scripts/lab.sh --hold-secs 300                # 5 idle minutes without an election
#   bash scripts/lab.sh --hold-secs 300 --profile lan  # count the LAN timers' elections
set -euo pipefail
cd "$(dirname "$0")/.."
hold=10
profile=wan
while [ $# -gt 0 ]; do
  case "$1" in
    --hold-secs) hold="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "usage: $0 [--hold-secs N] [--profile lan|wan]" >&2; exit 2 ;;
  esac
done
cargo build --bins
SWITCHYARD_LAB_HOLD_SECS="$hold" SWITCHYARD_LAB_PROFILE="$profile" \
  cargo test -p switchyard-e2e --test lab -- --nocapture --test-threads 1
