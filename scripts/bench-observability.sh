#!/usr/bin/env bash
# Observability overhead benchmark (see BENCHMARKS.md, issue 10):
#   bash scripts/bench-observability.sh [DURATION]
# Same layout as bench-proxy.sh: a tiny nginx backend and wrk (-t1 -c64) on core 0, the proxy on
# core 1, one catch-all router. Rows: observability off; JSON access log to a file; tracing at
# 100% sampling exported over OTLP/gRPC to a counting sink (examples/otlp_sink.rs, core 0); both;
# the access log with a 16-line queue (overload: lines dropped and counted); and tracing at 100%
# with the collector down (connection refused) and black-holed (a listener that accepts and never
# reads): p99 within 5% of tracing off, spans dropped and counted.
# Then the latency rows of must-show 3 at a fixed, non-saturating rate (PACED_RATE, default 15000
# req/s; tests/src/bin/paced_load.rs, open loop, 32 connections on core 0): tracing off,
# collector down, collector black-holed, healthy collector; ROUNDS (default 3) interleaved rounds,
# medians. At saturation (the wrk rows) the p99 of every tracing row measures the CPU the spans
# cost; at a fixed rate it measures what the collector's state adds to a request.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release -p switchyard-proxy --bin switchyard-proxy --example otlp_sink >/dev/null
cargo build --release -p switchyard-e2e --bin paced_load >/dev/null
PACED=$PWD/target/release/paced_load
PACED_RATE=${PACED_RATE:-15000}
ROUNDS=${ROUNDS:-3}
P=$PWD/target/release/switchyard-proxy
SINK=$PWD/target/release/examples/otlp_sink
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f $W/b.pid ] && kill $(cat $W/b.pid) 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"' EXIT
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
BACK=${ports[0]}; SY=${ports[1]}; SYADM=${ports[2]}; OTLP=${ports[3]}; DOWN=${ports[4]}; HOLE=${ports[5]}
mkdir -p "$W/b"
cat >"$W/b/nginx.conf" <<CONF
worker_processes 1;
pid $W/b.pid;
error_log $W/b/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/b; proxy_temp_path $W/b; fastcgi_temp_path $W/b;
  uwsgi_temp_path $W/b; scgi_temp_path $W/b;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }
}
CONF
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
taskset -c 0 "$SINK" "$OTLP" 2>"$W/sink.log" &
# The black hole: accepts connections and never reads from them.
taskset -c 0 python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); held=[]
while True: held.append(s.accept()[0])' "$HOLE" &
printf 'http:\n  routers:\n    all: {rule: "PathPrefix(`/`)", service: back}\n  services:\n    back: {loadBalancer: {servers: [{url: "http://127.0.0.1:%s"}]}}\n' "$BACK" >"$W/cfg.yaml"

metric() { curl -sf "127.0.0.1:$SYADM/metrics" | awk -v n="$1" '$1==n {print $2}'; }
start_proxy() {
  taskset -c 1 "$P" --config-file "$W/cfg.yaml" --entrypoint "web=127.0.0.1:$SY" --admin-addr "127.0.0.1:$SYADM" "$@" >"$W/proxy.log" 2>&1 &
  echo $! >"$W/proxy.pid"
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$SYADM/readyz" >/dev/null && return; sleep 0.1; done
  echo "proxy did not start"; cat "$W/proxy.log"; exit 1
}
# The proxy's CPU time (user + system, clock ticks) so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$W/proxy.pid")/stat"; }
stop_proxy() { kill "$(cat "$W/proxy.pid")"; wait "$(cat "$W/proxy.pid")" 2>/dev/null || true; }
run() { # label
  taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$SY/" >/dev/null   # warm-up
  local l0 s0; l0=$(metric switchyard_proxy_accesslog_lines_total); s0=$(metric switchyard_proxy_tracing_exported_spans_total)
  local c0; c0=$(cpu_ticks)
  local out; out=$(taskset -c 0 wrk -t1 -c64 -d"$DUR" --latency "http://127.0.0.1:$SY/")
  local c1; c1=$(cpu_ticks)
  local rps p50 p99 secs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  secs=$(awk '/requests in/ {sub(/s,/, "", $4); print $4}' <<<"$out")
  local reqs cpu; reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(python3 -c "print(f'{($c1-$c0)/$(getconf CLK_TCK)/$reqs*1e6:.1f}')")
  local l1 s1 ld sd; l1=$(metric switchyard_proxy_accesslog_lines_total); s1=$(metric switchyard_proxy_tracing_exported_spans_total)
  ld=$(metric switchyard_proxy_accesslog_dropped_total); sd=$(metric switchyard_proxy_tracing_dropped_spans_total)
  local sf; sf=$(metric switchyard_proxy_tracing_failed_spans_total)
  local extra=""
  [ -n "$l1" ] && extra+=" lines/s=$(python3 -c "print(round(($l1-${l0:-0})/$secs))") lines_dropped=$ld"
  [ -n "$s1" ] && extra+=" spans/s=$(python3 -c "print(round(($s1-${s0:-0})/$secs))") spans_dropped=$sd spans_failed=$sf"
  printf '%-40s %10s %9s %9s %8s %s\n' "$1" "$rps" "$p50" "$p99" "$cpu" "$extra"
  grep -q "Non-2xx" <<<"$out" && echo "  (non-2xx responses: $(grep Non-2xx <<<"$out"))" || true
}
TR=(--tracing.otlp.grpc.endpoint "http://127.0.0.1:$OTLP" --tracing.sampleRate 1)
AL=(--accesslog.filepath "$W/access.log" --accesslog.format json)
echo "$(nproc) cores; wrk -t1 -c64 -d$DUR on core 0; proxy on core 1; backend and OTLP sink on core 0"
printf '%-40s %10s %9s %9s %8s %s\n' "switchyard-proxy" "req/s" "p50" "p99" "CPU/req" "observability counters"
start_proxy;                 run "observability off";               stop_proxy
start_proxy "${AL[@]}";      run "access log (json, file)";         stop_proxy
start_proxy "${TR[@]}";      run "tracing 100% (OTLP/gRPC)";        stop_proxy
start_proxy "${AL[@]}" "${TR[@]}"; run "access log + tracing 100%"; stop_proxy
start_proxy "${AL[@]}" --accesslog.bufferingsize 16; run "access log, 16-line queue"; stop_proxy
# Nothing listens on $DOWN (its port was only reserved by the picker above).
start_proxy --tracing.otlp.grpc.endpoint "http://127.0.0.1:$DOWN" --tracing.sampleRate 1
run "tracing 100%, collector down"; stop_proxy
start_proxy --tracing.otlp.grpc.endpoint "http://127.0.0.1:$HOLE" --tracing.sampleRate 1
run "tracing 100%, collector black-holed"; stop_proxy
start_proxy;                 run "observability off (again)";       stop_proxy

echo
echo "paced $PACED_RATE req/s for $DUR, 32 connections, $ROUNDS interleaved rounds (latency from the due time):"
PR=$W/paced.tsv; : >"$PR"
for r in $(seq 1 "$ROUNDS"); do
  for row in off down hole up; do
    case $row in
      off)  start_proxy ;;
      down) start_proxy --tracing.otlp.grpc.endpoint "http://127.0.0.1:$DOWN" --tracing.sampleRate 1 ;;
      hole) start_proxy --tracing.otlp.grpc.endpoint "http://127.0.0.1:$HOLE" --tracing.sampleRate 1 ;;
      up)   start_proxy "${TR[@]}" ;;
    esac
    taskset -c 0 "$PACED" "127.0.0.1:$SY" "$PACED_RATE" 2 32 >/dev/null   # warm-up
    line=$(taskset -c 0 "$PACED" "127.0.0.1:$SY" "$PACED_RATE" "${DUR%s}" 32)
    printf '  round %s %-5s %s\n' "$r" "$row" "$line"
    printf '%s\t%s\n' "$row" "$line" >>"$PR"
    stop_proxy
  done
done
python3 - "$PR" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    name, line = l.rstrip("\n").split("\t")
    kv = dict(p.split("=") for p in line.split())
    rows.setdefault(name, []).append(kv)
label = {"off": "tracing off", "down": "tracing 100%, collector down",
         "hole": "tracing 100%, collector black-holed", "up": "tracing 100%, collector up"}
med = lambda k, xs: statistics.median(float(x[k]) for x in xs)
base = med("p99_ms", rows["off"])
print("%-38s %9s %9s %9s %8s" % ("row (medians)", "p50 ms", "p99 ms", "p999 ms", "p99/off"))
for name in ["off", "down", "hole", "up"]:
    xs = rows[name]
    print("%-38s %9.3f %9.3f %9.3f %7.1f%%" % (label[name], med("p50_ms", xs), med("p99_ms", xs),
          med("p999_ms", xs), 100 * med("p99_ms", xs) / base))
PY
