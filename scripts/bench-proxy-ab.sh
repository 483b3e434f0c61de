#!/usr/bin/env bash
# A/B of switchyard-proxy builds by CPU per request (see BENCHMARKS.md "Proxy throughput"):
#   bash scripts/bench-proxy-ab.sh ROUNDS DURATION BINARY BINARY...
# e.g. bash scripts/bench-proxy-ab.sh 8 4s /tmp/main-proxy target/release/switchyard-proxy
# All builds run at once on core 1 with one catch-all router in front of a tiny nginx backend;
# wrk -t1 -c64 and the backend on core 0. Each round measures every build (order rotated, 1 s
# warm-up each); per build: the median and minimum CPU µs per request over the rounds
# (/proc/PID/stat utime+stime ÷ requests) and every round's figure.
set -euo pipefail
cd "$(dirname "$0")/.."
R=$1; D=$2; shift 2
BINS=("$@")
n=${#BINS[@]}
W=$(mktemp -d)
cleanup() {
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ports=($(python3 -c "import socket
s=[socket.socket() for _ in range(1 + 2 * $n)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))"))
BACK=${ports[0]}
mkdir -p "$W/b"
cat >"$W/b/nginx.conf" <<CONF
worker_processes 1;
pid $W/b.pid;
error_log $W/b/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path $W/b; proxy_temp_path $W/b; fastcgi_temp_path $W/b; uwsgi_temp_path $W/b; scgi_temp_path $W/b;
  server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }
}
CONF
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
printf 'http:\n  services:\n    back:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%s\n  routers:\n    all:\n      rule: PathPrefix(`/`)\n      service: back\n' "$BACK" >"$W/cfg.yaml"
for i in $(seq 0 $((n - 1))); do
  port=${ports[$((1 + 2 * i))]}; adm=${ports[$((2 + 2 * i))]}
  taskset -c 1 "${BINS[$i]}" --config-file "$W/cfg.yaml" --entrypoint "web=127.0.0.1:$port" --admin-addr "127.0.0.1:$adm" >"$W/p$i.log" 2>&1 &
  echo $! >"$W/p$i.pid"
  ok=
  for _ in $(seq 1 300); do curl -sf "127.0.0.1:$adm/readyz" >/dev/null && { ok=1; break; }; sleep 0.1; done
  [ -n "$ok" ] || { echo "${BINS[$i]} did not start"; cat "$W/p$i.log"; exit 1; }
done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$R"); do
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + r) % n )); url="http://127.0.0.1:${ports[$((1 + 2 * i))]}/"; pid=$(cat "$W/p$i.pid")
    taskset -c 0 wrk -t1 -c64 -d1s "$url" >/dev/null
    b=$(awk '{print $14+$15}' "/proc/$pid/stat")
    out=$(taskset -c 0 wrk -t1 -c64 -d"$D" "$url")
    a=$(awk '{print $14+$15}' "/proc/$pid/stat")
    echo "$i $((a - b)) $(awk '/requests in/ {print $1}' <<<"$out")" >>"$W/res"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$W/res" "$(getconf CLK_TCK)" "${BINS[@]}" <<'PY'
import sys, statistics as st
res, hz, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for line in open(res):
    i, ticks, reqs = line.split()
    rows.setdefault(int(i), []).append(int(ticks) / hz * 1e6 / int(reqs))
first = st.median(rows[0])
for i, b in enumerate(bins):
    xs = rows[i]
    print("%-50s CPU us/request median %6.2f  min %6.2f  (%.2fx the first)  rounds: %s" % (
        b, st.median(xs), min(xs), st.median(xs) / first, " ".join("%.1f" % x for x in xs)))
PY
