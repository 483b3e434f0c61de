#!/usr/bin/env bash
# Runs every check and test of the workspace: the one test command README names, and what CI runs.
#   bash scripts/test.sh
# Installs what the tests need when it is missing: `pebble` and `pebble-challtestsrv` (Debian
# package `pebble`; the ACME suite's CA and DNS), `curl` (README's commands, run by the README
# test; the middlewares suite's digest client), `jq` (the Traefik API suite) and `chromium` (the
# dashboard suite). cargo-nextest is optional. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "test dependencies"
if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
  echo "installing pebble (ACME test CA) with apt-get"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble
  else
    echo "error: pebble is missing and neither root nor sudo is available: apt-get install -y pebble" >&2
    exit 1
  fi
fi
echo "pebble: $(command -v pebble)"
# The README test (tests/tests/readme.rs) runs README's commands, which use curl; the middlewares
# suite logs in with curl's digest authentication (an independent client).
if ! command -v curl >/dev/null 2>&1; then
  echo "installing curl (README's commands) with apt-get"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
  fi
fi
# The Traefik API suite (tests/tests/traefik_api.rs) runs README's curl | jq commands; the
# dashboard suite (tests/tests/dashboard.rs) drives Debian's headless chromium.
for tool in jq:jq chromium:chromium; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "installing ${tool#*:} with apt-get"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}"
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}"
    fi
  fi
done

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries (the end-to-end suites start them)"
cargo build --workspace --bins --locked

step "deploy files (compose, Kubernetes, systemd validators)"
bash scripts/check-deploy.sh

step "tests"
# The end-to-end suites start real clusters; two at a time suits a 2-core machine.
threads="${SWITCHYARD_TEST_THREADS:-2}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --test-threads "$threads"
else
  cargo test --workspace --locked --no-fail-fast -- --test-threads "$threads"
fi
