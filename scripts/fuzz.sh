#!/usr/bin/env bash
# Coverage-guided fuzzing of the rule parser, the config decoder and the proxy's request head
# handling with AFL++ through cargo-afl, on stable Rust (see fuzz/src/lib.rs for the targets).
#
#   bash scripts/fuzz.sh [--seconds N] [--targets rule,config,head]
#
# Each target runs N seconds (default 60) from its seed corpus fuzz/corpus/TARGET; AFL++'s
# output goes to target/afl/out/TARGET. Every crash is copied to fuzz/regressions/TARGET/,
# which `cargo test -p switchyard-fuzz` replays from then on: commit it with the fix. Prints
# executions, exec/s, corpus size, crashes and hangs per target; exits 1 when a target crashed.
#
# Installs cargo-afl (which builds AFL++ for the current rustc) when it is missing. The
# instrumented build goes to target/afl (several minutes on 2 cores the first time); CI does
# not run this script: `cargo test` replays the corpus and the regressions instead.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
targets="rule,config,head"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! cargo afl --version >/dev/null 2>&1; then
  echo "installing cargo-afl (builds AFL++; needs a C compiler and make)"
  cargo install cargo-afl --version 0.18.2 --locked
fi
# AFL++ and its runtime for this rustc (already there after a fresh install).
if ! out=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$out"; then
  echo "$out" >&2
  exit 1
fi

export CARGO_TARGET_DIR=target/afl
cargo afl build -p switchyard-fuzz --features afl --bin switchyard-fuzz-afl
bin=target/afl/debug/switchyard-fuzz-afl

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
AFL_MAP_SIZE=$(AFL_DUMP_MAP_SIZE=1 "$bin" rule </dev/null || true)
export AFL_MAP_SIZE

stat() { sed -n "s/^$2 *: *//p" "$1" | head -1; }

crashed=0
summary=()
IFS=',' read -ra names <<<"$targets"
for t in "${names[@]}"; do
  out="target/afl/out/$t"
  rm -rf "$out"
  mkdir -p "$out"
  echo "== fuzzing $t for ${seconds}s (log: $out.log)"
  cargo afl fuzz -V "$seconds" -i "fuzz/corpus/$t" -o "$out" -- "$bin" "$t" >"$out.log" 2>&1 || {
    echo "afl-fuzz failed for $t:" >&2
    tail -20 "$out.log" >&2
    exit 1
  }
  s="$out/default/fuzzer_stats"
  execs=$(stat "$s" execs_done)
  rate=$(stat "$s" execs_per_sec)
  corpus=$(stat "$s" corpus_count)
  crashes=$(stat "$s" saved_crashes)
  hangs=$(stat "$s" saved_hangs)
  summary+=("$t: $execs execs ($rate/s) in ${seconds}s, corpus $corpus, crashes $crashes, hangs $hangs")
  if [ "${crashes:-0}" != "0" ]; then
    crashed=1
    mkdir -p "fuzz/regressions/$t"
    for f in "$out"/default/crashes/id:*; do
      [ -f "$f" ] || continue
      sum=$(sha1sum "$f" | cut -c1-12)
      cp "$f" "fuzz/regressions/$t/crash-$sum"
      echo "   crash saved as fuzz/regressions/$t/crash-$sum"
    done
  fi
done

echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "$crashed" = 1 ]; then
  echo "crashes were found: see fuzz/regressions/ (cargo test -p switchyard-fuzz replays them)" >&2
  exit 1
fi
