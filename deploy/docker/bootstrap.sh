#!/bin/sh
# The compose file's one-shot `bootstrap` service (installed in the image as
# /usr/local/bin/switchyard-bootstrap). Once the three control nodes formed the cluster it:
#   1. copies the cluster CA certificate (written by every node to DATA_DIR/ca.pem) to /bootstrap/ca.pem,
#   2. copies the bootstrap admin token (DATA_DIR/admin.token on the first leader) to /bootstrap/admin.token,
#   3. creates a proxy join token (/bootstrap/join.token) for the proxies,
#   4. applies the demo config (/etc/switchyard/demo.yaml).
# Every node's data directory is mounted read-only under /nodes/ID. A second run (another
# `docker compose up`) finds /bootstrap/join.token and only re-applies the demo config.
# The paths can be moved with BOOTSTRAP_NODES_DIR, BOOTSTRAP_DIR and BOOTSTRAP_DEMO_CONFIG (the
# test that runs the compose stack as plain processes, tests/tests/deploy.rs, does).
set -eu

NODES="${BOOTSTRAP_NODES_DIR:-/nodes}"
OUT="${BOOTSTRAP_DIR:-/bootstrap}"
DEMO="${BOOTSTRAP_DEMO_CONFIG:-/etc/switchyard/demo.yaml}"
ENDPOINTS="${SWITCHYARD_ENDPOINTS:-node1:7400,node2:7400,node3:7400}"
DEADLINE=$(( $(date +%s) + ${BOOTSTRAP_TIMEOUT_SECS:-180} ))

# Polls until the cluster formed: the CA is on node 1 and one node holds the admin token.
while :; do
  token=$(cat "$NODES"/*/admin.token 2>/dev/null | head -n 1 || true)
  if [ -s "$NODES/1/ca.pem" ] && [ -n "$token" ]; then
    break
  fi
  if [ "$(date +%s)" -ge "$DEADLINE" ]; then
    echo "switchyard-bootstrap: the cluster did not form (no $NODES/1/ca.pem or admin.token) in time" >&2
    exit 1
  fi
  sleep 1
done

umask 077
cp "$NODES/1/ca.pem" "$OUT/ca.pem.tmp" && chmod 0644 "$OUT/ca.pem.tmp" && mv "$OUT/ca.pem.tmp" "$OUT/ca.pem"
printf '%s\n' "$token" > "$OUT/admin.token.tmp" && mv "$OUT/admin.token.tmp" "$OUT/admin.token"

export SWITCHYARD_ENDPOINTS="$ENDPOINTS"
export SWITCHYARD_CA_CERT="$OUT/ca.pem"
export SWITCHYARD_TOKEN="$token"

if [ ! -s "$OUT/join.token" ]; then
  switchyard token create --role proxy --description compose-proxies > "$OUT/join.token.tmp"
  mv "$OUT/join.token.tmp" "$OUT/join.token"
  echo "switchyard-bootstrap: created the proxy join token"
fi

switchyard apply -f "$DEMO"
echo "switchyard-bootstrap: done (CA, admin token and join token in the bootstrap volume)"
