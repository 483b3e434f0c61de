#!/usr/bin/env bash
# Config propagation benchmark (see BENCHMARKS.md):
#   bash scripts/bench-propagation.sh [CHANGES] [SIMULATED] [ROUTERS]
# Starts a 3-node release cluster and 2 real proxies (switchyard-proxy --control) on loopback, then
# runs `switchyard bench propagate`: ROUTERS routers (default 10000), CHANGES changes (200), timed
# from `apply` returning to every simulated stream (SIMULATED, default 200) having the version and
# to both real proxies having ACKed it.
set -euo pipefail
cd "$(dirname "$0")/.."
CHANGES=${1:-200}
SIMULATED=${2:-200}
ROUTERS=${3:-10000}
cargo build --release --bin switchyard --bin switchyard-proxy >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
# shellcheck source=scripts/lib-cluster.sh
source scripts/lib-cluster.sh
start_cluster "$WORK"
PP=($(free_ports 4))
for i in 0 1; do
  target/release/switchyard-proxy --control "$EPS" --proxy-id "real-$i" --zone "z$i" \
    --entrypoint "web=127.0.0.1:${PP[$((i*2))]}" --admin-addr "127.0.0.1:${PP[$((i*2+1))]}" \
    >"$WORK/p$i.log" 2>&1 &
done
for _ in $(seq 1 100); do
  n=$("$S" --endpoints "$EPS" -o json get proxies 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["proxies"]))' || echo 0)
  [ "$n" = 2 ] && break
  sleep 0.1
done
echo "3-node loopback cluster (leader node $LEADER), 2 real proxies attached; $(nproc) cores"
"$S" --endpoints "$EPS" bench propagate --changes "$CHANGES" --simulated "$SIMULATED" --routers "$ROUTERS"
# The proxies' own share: compile + swap per version, from their `config applied ms=` log lines
# (the first line is the base config, compiled whole).
for i in 0 1; do
  python3 - "real-$i" "$WORK/p$i.log" <<'PY'
import re, sys
ms = [float(m) for m in re.findall(r"config applied.*?ms=([0-9.]+)", open(sys.argv[2]).read())]
if len(ms) > 1:
    d = sorted(ms[1:])
    print(f"{sys.argv[1]}: compile+swap of {len(d)} deltas p50 {d[len(d)//2]:.2f} / p99 {d[min(len(d)-1, int(len(d)*0.99))]:.2f} / max {d[-1]:.2f} ms (base config {ms[0]:.1f} ms)")
PY
done
