#!/usr/bin/env bash
# Write availability across leader kills (BENCHMARKS.md, "Leader failover"):
#   bash scripts/bench-failover.sh [KILLS] [STEADY_SECONDS]      (defaults: 20 and 60)
# Starts a 3-node secure cluster with the default Raft timers, runs a steady single-client writer,
# counts elections during STEADY_SECONDS of load without faults, then kills the leader KILLS times
# (kill -9, restarting it each time) and prints write unavailability p50/p99/max (kill to the first
# successful write started after it) and the restarted nodes' time to /readyz.
# PROFILE=debug uses target/debug (no release build); the default builds release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
STEADY=${2:-60}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -p switchyard -p switchyard-e2e --bin switchyard --bin failover_bench >/dev/null
else
  cargo build -p switchyard -p switchyard-e2e --bin switchyard --bin failover_bench >/dev/null
fi
SWITCHYARD_BIN_DIR="$PWD/target/$PROFILE" "target/$PROFILE/failover_bench" "$KILLS" "$STEADY" \
  2> >(grep -E '^kill ' >&2)
