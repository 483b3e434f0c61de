#!/usr/bin/env bash
# switchyard-proxy memory per router (see BENCHMARKS.md "Proxy memory per router"):
#   bash scripts/bench-proxy-rss.sh [REPS]        (default 3)
# Starts switchyard-proxy --config-file with 1 router (idle: the catch-all and its service),
# 10k and 100k host routers (the generator of scripts/bench-proxy.sh: 99,998 routers
# ``Host(`svcN.example.com`) && PathPrefix(`/`)`` + the catch-all + the service = 100k
# resources, the per-document limit), waits for /readyz, checks that a request for a host
# router is routed (502: the backend port is closed; 404 would mean not routed), and prints
# VmRSS after start. The proxy runs on core 1 as in scripts/bench-proxy.sh (one CPU: a
# single-threaded runtime). REPS rounds, median per size (RSS is deterministic to a few hundred KB).
# PROFILE=debug uses target/debug. BIN=/path/to/switchyard-proxy measures another build
# (e.g. a copy of an older one) without building.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
PROFILE=${PROFILE:-release}
if [ -z "${BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release -p switchyard-proxy --bin switchyard-proxy >/dev/null
  else
    cargo build -p switchyard-proxy --bin switchyard-proxy >/dev/null
  fi
  BIN=$PWD/target/$PROFILE/switchyard-proxy
fi
W=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
read -r PORT ADM BACK < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')

config() { # routers file  (the generator of scripts/bench-proxy.sh)
  python3 - "$1" "$BACK" >"$2" <<'PY'
import sys
n, back = int(sys.argv[1]), sys.argv[2]
print("http:\n  services:\n    back:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%s" % back)
print("  routers:")
print("    all:\n      rule: PathPrefix(`/`)\n      priority: -1\n      service: back")
for i in range(n):
    print("    r%d:\n      rule: Host(`svc%d.example.com`) && PathPrefix(`/`)\n      service: back" % (i, i))
PY
}
measure() { # routers -> RSS kB
  local n=$1
  taskset -c 1 "$BIN" --config-file "$W/$n.yaml" --entrypoint "web=127.0.0.1:$PORT" --admin-addr "127.0.0.1:$ADM" >"$W/log" 2>&1 &
  PID=$!
  local ok=
  for _ in $(seq 1 1200); do
    if curl -sf "127.0.0.1:$ADM/readyz" >/dev/null; then ok=1; break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "proxy did not start" >&2; cat "$W/log" >&2; exit 1; }
  if [ "$n" -gt 0 ]; then
    local h=svc$((n / 2)).example.com code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $h" "127.0.0.1:$PORT/")
    [ "$code" = 502 ] || { echo "Host: $h answered $code (expected 502 from the routed, closed backend)" >&2; exit 1; }
  fi
  awk '/VmRSS/ {print $2}' "/proc/$PID/status"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}
for n in 0 10000 99998; do config "$n" "$W/$n.yaml"; done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A R
for r in $(seq 1 "$REPS"); do
  for n in 0 10000 99998; do
    R[$n]="${R[$n]:-} $(measure "$n")"
  done
  echo "  round $r: idle${R[0]##* } kB, 10k${R[10000]##* } kB, 100k${R[99998]##* } kB"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "${R[0]}" "${R[10000]}" "${R[99998]}" <<'PY'
import sys, statistics as st
i, a, b = (st.median(int(x) for x in s.split()) for s in sys.argv[1:4])
mib = lambda k: "%.1f MiB" % (k / 1024)
print("switchyard-proxy RSS after start: idle (1 router) %s, 10k routers %s, 100k routers %s" % (mib(i), mib(a), mib(b)))
print("per router above idle: %.2f KB at 10k, %.2f KB at 100k" % ((a - i) * 1024 / 10000 / 1000, (b - i) * 1024 / 100000 / 1000))
PY
