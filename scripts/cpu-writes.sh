#!/usr/bin/env bash
# CPU per Raft write on each node (leader first), which load from other processes barely moves:
#   bash scripts/cpu-writes.sh [BINARY=target/release/switchyard] [WRITES=2000] [CLIENTS=1]
# Starts a 3-node loopback cluster with BINARY (scripts/lib-cluster.sh), warms it up with 200
# writes, then reads utime+stime of each node from /proc/PID/stat around `bench apply` and prints
# µs of CPU per write per node (10 ms clock ticks: use enough writes). Compare two binaries by
# alternating runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/switchyard}")
N=${2:-2000}
C=${3:-1}
W=$(mktemp -d)
# shellcheck source=scripts/lib-cluster.sh
source scripts/lib-cluster.sh
S=$BIN
trap 'for i in 1 2 3; do kill "$(cat "$W/n$i.pid")" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"' EXIT
start_cluster "$W" >/dev/null
EP="http://$(api "$LEADER")"
"$S" --endpoints "$EP" bench apply --clients "$C" --writes 200 >/dev/null
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$(cat "$W/n$1.pid")/stat"; }
declare -A before
for i in 1 2 3; do before[$i]=$(cpu "$i"); done
out=$("$S" --endpoints "$EP" bench apply --clients "$C" --writes "$N" | tail -1)
per_write() { echo $(( ($(cpu "$1") - ${before[$1]}) * 1000000 / tick / N )); }
line="$(basename "$BIN") clients=$C writes=$N | leader $(per_write "$LEADER") µs"
for i in 1 2 3; do
  [ "$i" = "$LEADER" ] || line="$line, follower $(per_write "$i") µs"
done
echo "$line | bench: $out"
