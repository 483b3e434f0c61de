#!/usr/bin/env bash
# Time to ready after a restart with a long log (BENCHMARKS.md, "Restart replay"):
#   bash scripts/bench-restart.sh [ENTRIES=10000] [CLIENTS=8] [ROUTERS]
# Commits ENTRIES writes that each add one router to a 3-node secure cluster (default timers and
# snapshot threshold), then restarts a follower, then the whole cluster, timing /readyz.
# With ROUTERS: first ROUTERS routers in documents of 1,000, then ENTRIES writes that each rewrite
# one of CLIENTS routers (e.g. `bash scripts/bench-restart.sh 100000 1 100000`: a 100k-entry log
# over a 100k-router config).
# PROFILE=debug uses target/debug (no release build); the default builds release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -p switchyard -p switchyard-e2e --bin switchyard --bin restart_bench >/dev/null
else
  cargo build -p switchyard -p switchyard-e2e --bin switchyard --bin restart_bench >/dev/null
fi
SWITCHYARD_BIN_DIR="$PWD/target/$PROFILE" "target/$PROFILE/restart_bench" "${1:-10000}" "${2:-8}" ${3:+"$3"} 2>/dev/null
