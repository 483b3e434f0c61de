#!/usr/bin/env bash
# The etcd side of the write comparison in BENCHMARKS.md:
#   bash scripts/bench-etcd.sh [WRITES_PER_ROUND]
# Installs etcd 3.4 from Debian when missing, starts a 3-member etcd cluster on free loopback ports
# and drives the same workload as `switchyard bench apply` (src: tests/src/bin/etcd_put_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${1:-2000}
if ! command -v etcd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server
fi
cargo build --release -p switchyard-e2e --bin etcd_put_bench >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
ports=($(python3 - <<'PY'
import socket
socks=[socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
))
IC="e1=http://127.0.0.1:${ports[1]},e2=http://127.0.0.1:${ports[3]},e3=http://127.0.0.1:${ports[5]}"
for i in 1 2 3; do
  c=${ports[$(( (i-1)*2 ))]}; p=${ports[$(( (i-1)*2+1 ))]}
  etcd --name e$i --data-dir "$WORK/e$i" \
    --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
    --initial-cluster "$IC" --initial-cluster-state new >"$WORK/e$i.log" 2>&1 &
done
EPS="127.0.0.1:${ports[0]},127.0.0.1:${ports[2]},127.0.0.1:${ports[4]}"
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
leader=$(ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint status -w json \
  | python3 -c 'import json,sys; print(next(e["Endpoint"] for e in json.load(sys.stdin) if e["Status"]["leader"]==e["Status"]["header"]["member_id"]))')
echo "3-member etcd $(etcd --version | head -1 | awk '{print $3}') loopback cluster, leader $leader; $(nproc) cores"
echo
echo "== puts sent to the leader"
target/release/etcd_put_bench "http://$leader" 1,16,64 "$ROUND"
echo
echo "== puts spread over all three members"
target/release/etcd_put_bench "http://${EPS//,/,http://}" 1,16,64 "$ROUND"
