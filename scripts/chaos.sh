#!/usr/bin/env bash
# The long chaos run (see README "Chaos testing"):
#   bash scripts/chaos.sh [--minutes N] [--round-minutes M] [--seed S]
# Runs the chaos suite (tests/tests/chaos.rs) for N minutes (default 60; or SWITCHYARD_CHAOS_SECS)
# in rounds of at most M minutes (default 5), each on a fresh three-node cluster: leader, follower,
# majority and whole-cluster kills, restarts, partitions and one-way cuts, while clients write and
# read through different control nodes. Every round's history must be linearizable, lose no
# acknowledged write, and every node must converge. Stops at the first violation, printing the
# kept history file; the last line says how many minutes ran without a violation.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=60
round=5
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --round-minutes) round="$2"; shift 2 ;;
    --seed) export SWITCHYARD_CHAOS_SEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
export SWITCHYARD_CHAOS_SECS="${SWITCHYARD_CHAOS_SECS:-$((minutes * 60))}"
export SWITCHYARD_CHAOS_ROUND_SECS="${SWITCHYARD_CHAOS_ROUND_SECS:-$((round * 60))}"
cargo build --workspace --bins --locked
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="target/chaos-$stamp.log"
# Node directories and histories go under target/ (not a shared /tmp that others may clean).
export TMPDIR="$PWD/target/chaos-tmp/$stamp"
mkdir -p "$TMPDIR"
: >"$log"
echo "chaos: full output in $log"
status=0
cargo test -p switchyard-e2e --locked --test chaos -- --nocapture --exact \
  chaos_histories_are_linearizable_and_lose_nothing >"$log" 2>&1 &
pid=$!
tail -n +1 -f "$log" --pid "$pid" | grep --line-buffered '^chaos:' || true
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
  echo "chaos: FAILED; the end of $log:" >&2
  grep -v '^chaos:' "$log" | tail -n 80 >&2
fi
[ "$status" -eq 0 ] && rm -rf "$TMPDIR"
exit "$status"
