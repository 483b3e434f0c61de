#!/usr/bin/env bash
# Runs every check and test of the workspace: the one test command README names, and what CI runs.
#   bash scripts/test.sh
# Installs what the tests need when it is missing (today: nothing beyond Rust's toolchain and
# cargo-nextest, which is optional). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries (the end-to-end suites start them)"
cargo build --workspace --bins --locked

step "tests"
# The end-to-end suites start real clusters; two at a time suits a 2-core machine.
threads="${SWITCHYARD_TEST_THREADS:-2}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --test-threads "$threads"
else
  cargo test --workspace --locked --no-fail-fast -- --test-threads "$threads"
fi
