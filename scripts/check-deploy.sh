#!/usr/bin/env bash
# Checks the deploy files with real offline tools (part of scripts/test.sh):
#   - deploy/docker/compose.yaml: `docker compose config` (the compose plugin) or, where the
#     plugin is missing, `docker-compose config` (Debian package docker-compose, installed here
#     when missing); every profile included.
#   - deploy/kubernetes: each overlay rendered with `kubectl kustomize` and every object
#     validated strictly (unknown fields are errors) against the Kubernetes OpenAPI schemas
#     shipped in the PyPI package kubernetes-validate (installed when missing; no network
#     needed at check time).
#   - deploy/systemd: `systemd-analyze verify` on both units, with /usr/local/bin replaced by the
#     binaries built in target/ (verify checks that ExecStart's binary exists); any warning fails.
# Which flags the files pass is checked against the binaries' --help by tests/tests/deploy.rs.
#   bash scripts/check-deploy.sh        (needs target/debug/switchyard{,-proxy}: cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION="${SWITCHYARD_K8S_VERSION:-1.33.0}"
BIN_DIR="${SWITCHYARD_BIN_DIR:-$PWD/target/debug}"

apt_install() {
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  fi
}

fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- compose ---
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    echo "installing docker-compose (validates compose files offline) with apt-get"
    apt_install docker-compose
  fi
  compose=(docker-compose)
fi
echo "compose: ${compose[*]}"
if "${compose[@]}" -f deploy/docker/compose.yaml --profile otel --profile cli config -q; then
  echo "ok   deploy/docker/compose.yaml"
else
  echo "FAIL deploy/docker/compose.yaml" >&2
  fail=1
fi

# --- kubernetes ---
if ! command -v kubectl >/dev/null 2>&1; then
  echo "installing kubectl (kustomize) with apt-get"
  apt_install kubernetes-client
fi
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "installing kubernetes-validate (offline Kubernetes schemas) with pip"
  python3 -m pip install -q kubernetes-validate
fi
for overlay in deploy/kubernetes/overlays/*/; do
  out="$tmp/$(basename "$overlay").yaml"
  if kubectl kustomize "$overlay" > "$out" \
    && python3 -m kubernetes_validate --strict --quiet --kubernetes-version "$K8S_VERSION" "$out"; then
    echo "ok   $overlay ($(grep -c '^kind:' "$out") objects, Kubernetes $K8S_VERSION schemas)"
  else
    echo "FAIL $overlay" >&2
    fail=1
  fi
done

# --- systemd ---
for bin in switchyard switchyard-proxy; do
  if [ ! -x "$BIN_DIR/$bin" ]; then
    echo "error: $BIN_DIR/$bin missing: cargo build --bins first" >&2
    exit 1
  fi
done
mkdir -p "$tmp/units"
for unit in deploy/systemd/*.service; do
  sed "s#/usr/local/bin/#$BIN_DIR/#" "$unit" > "$tmp/units/$(basename "$unit")"
done
for unit in "$tmp"/units/*.service; do
  name="deploy/systemd/$(basename "$unit")"
  if out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ]; then
    echo "ok   $name"
  else
    printf 'FAIL %s\n%s\n' "$name" "$out" >&2
    fail=1
  fi
done

exit "$fail"
