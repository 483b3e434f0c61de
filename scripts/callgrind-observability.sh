#!/usr/bin/env bash
# Instructions per request of the proxy with observability off / JSON access log / tracing at
# 100% (OTLP/gRPC to examples/otlp_sink) / both, under callgrind (repeatable on a loaded machine):
#   bash scripts/callgrind-observability.sh [PROXY_BINARY] [N]
# One proxy, one catch-all router, a local nginx backend, N (default 2000) sequential keep-alive
# requests from one client after a warm-up; the counters are zeroed before the N requests and
# dumped after them (and after the access log writer and the span exporter had time to write
# and export their batches), so start-up is not counted. Every thread of the proxy is counted
# (the access log writer and the export task included).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:-$PWD/target/release/switchyard-proxy}
N=${2:-2000}
SINK=$PWD/target/release/examples/otlp_sink
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/b.pid" ] && kill "$(cat "$W/b.pid")" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
BACK=${ports[0]}; SY=${ports[1]}; SYADM=${ports[2]}; OTLP=${ports[3]}
mkdir -p "$W/b"
cat >"$W/b/nginx.conf" <<CONF
worker_processes 1;
pid $W/b.pid;
error_log $W/b/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/b; proxy_temp_path $W/b; fastcgi_temp_path $W/b;
  uwsgi_temp_path $W/b; scgi_temp_path $W/b;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }
}
CONF
nginx -c "$W/b/nginx.conf" -p "$W/b"
"$SINK" "$OTLP" 2>"$W/sink.log" &
PIDS+=($!)
printf 'http:\n  routers:\n    all: {rule: "PathPrefix(`/`)", service: back}\n  services:\n    back: {loadBalancer: {servers: [{url: "http://127.0.0.1:%s"}]}}\n' "$BACK" >"$W/cfg.yaml"

# N sequential keep-alive requests on one connection.
load() {
  python3 - "$SY" "$1" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    c.request("GET", "/some/path?q=1", headers={"User-Agent": "bench/1"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}
metric() { curl -sf "127.0.0.1:$SYADM/metrics" | awk -v n="$1" '$1==n {print $2}'; }

row() { # label, proxy flags...
  local label=$1; shift
  rm -f "$W"/cg.out*
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$P" --config-file "$W/cfg.yaml" \
    --entrypoint "web=127.0.0.1:$SY" --admin-addr "127.0.0.1:$SYADM" "$@" >"$W/proxy.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 1200); do curl -sf "127.0.0.1:$SYADM/readyz" >/dev/null && break; sleep 0.2; done
  load 200
  sleep 2
  callgrind_control -z "$pid" >/dev/null 2>&1
  load "$N"
  sleep 3   # the writer's 50 ms tick and the exporter's 200 ms batch delay, under valgrind
  callgrind_control -d "$pid" >/dev/null 2>&1
  local lines spans
  lines=$(metric switchyard_proxy_accesslog_lines_total); spans=$(metric switchyard_proxy_tracing_exported_spans_total)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local f; f=$(ls "$W"/cg.out.* | grep -v '\.0$' | head -1 || true)
  [ -n "$f" ] || f=$(ls "$W"/cg.out* | tail -1)
  local ir; ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}')
  printf '%-28s %12s instr/req  (lines=%s spans=%s)\n' "$label" "$((ir / N))" "${lines:--}" "${spans:--}"
  [ -n "${KEEP:-}" ] && cp "$f" "$KEEP.$(echo "$label" | tr -c 'a-z0-9\n' _)" || true
}
TR=(--tracing.otlp.grpc.endpoint "http://127.0.0.1:$OTLP" --tracing.sampleRate 1)
AL=(--accesslog.filepath "$W/access.log" --accesslog.format json)
echo "$P, $N requests per row, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in ${ROWS:-off al tr both}; do
  case $r in
    off)  row "observability off" ;;
    al)   row "access log (json, file)" "${AL[@]}" ;;
    tr)   row "tracing 100% (OTLP/gRPC)" "${TR[@]}" ;;
    both) row "access log + tracing 100%" "${AL[@]}" "${TR[@]}" ;;
  esac
done
