#!/usr/bin/env bash
# Dashboard page weight and time to first render (BENCHMARKS.md, "Dashboard"):
#   bash scripts/bench-dashboard.sh [ROUTERS=10000] [RUNS=5]
# Applies ROUTERS routers to a 1-node cluster with a proxy, times the API answers the routers page
# needs, and loads /dashboard/#/routers RUNS times in headless chromium (apt-get install chromium).
# PROFILE=debug uses target/debug (no release build); the default builds release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -p switchyard -p switchyard-proxy -p switchyard-e2e --bin switchyard --bin switchyard-proxy --bin dashboard_bench >/dev/null
else
  cargo build -p switchyard -p switchyard-proxy -p switchyard-e2e --bin switchyard --bin switchyard-proxy --bin dashboard_bench >/dev/null
fi
SWITCHYARD_BIN_DIR="$PWD/target/$PROFILE" "target/$PROFILE/dashboard_bench" "${1:-10000}" "${2:-5}" 2>/dev/null
