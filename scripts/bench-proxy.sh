#!/usr/bin/env bash
# Proxy throughput benchmark (see BENCHMARKS.md):
#   bash scripts/bench-proxy.sh [DURATION]
# Installs nginx and wrk from Debian when missing. A tiny nginx backend answers "hello"; the load is
# wrk (HTTP/1.1 keep-alive, 64 connections) pinned to core 0; each proxy is pinned to core 1:
#   direct      wrk → backend
#   switchyard  wrk → switchyard-proxy (--config-file; 1 router, then 10 and 100k routers) → backend
#   nginx       wrk → nginx proxy_pass with upstream keep-alive → backend
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release -p switchyard-proxy >/dev/null
P=$PWD/target/release/switchyard-proxy
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f $W/b.pid ] && kill $(cat $W/b.pid) 2>/dev/null; [ -f $W/n.pid ] && kill $(cat $W/n.pid) 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"' EXIT
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
BACK=${ports[0]}; SY=${ports[1]}; SYADM=${ports[2]}; NGX=${ports[3]}

nginx_conf() { # name port body
  mkdir -p "$W/$1"
  cat >"$W/$1/nginx.conf" <<CONF
worker_processes 1;
pid $W/$1.pid;
error_log $W/$1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/$1; proxy_temp_path $W/$1; fastcgi_temp_path $W/$1;
  uwsgi_temp_path $W/$1; scgi_temp_path $W/$1;
  keepalive_requests 1000000;
  $3
}
CONF
}
nginx_conf b "$BACK" "server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }"
nginx_conf n "$NGX" "upstream back { server 127.0.0.1:$BACK; keepalive 128; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
taskset -c 1 nginx -c "$W/n/nginx.conf" -p "$W/n"

config() { # routers
  python3 - "$1" "$BACK" >"$W/cfg.yaml" <<'PY'
import sys
n, back = int(sys.argv[1]), sys.argv[2]
print("http:\n  services:\n    back:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%s" % back)
print("  routers:")
print("    all:\n      rule: PathPrefix(`/`)\n      priority: -1\n      service: back")
for i in range(n):
    print("    r%d:\n      rule: Host(`svc%d.example.com`) && PathPrefix(`/`)\n      service: back" % (i, i))
PY
}
start_proxy() {
  taskset -c 1 "$P" --config-file "$W/cfg.yaml" --entrypoint "web=127.0.0.1:$SY" --admin-addr "127.0.0.1:$SYADM" >"$W/proxy.log" 2>&1 &
  echo $! >"$W/proxy.pid"
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$SYADM/readyz" >/dev/null && return; sleep 0.1; done
  echo "proxy did not start"; cat "$W/proxy.log"; exit 1
}
stop_proxy() { kill "$(cat "$W/proxy.pid")"; wait "$(cat "$W/proxy.pid")" 2>/dev/null || true; }
run() { # label url [host]
  local hdr=()
  [ -n "${3:-}" ] && hdr=(-H "Host: $3")
  taskset -c 0 wrk -t1 -c64 -d2s "${hdr[@]}" "$2" >/dev/null   # warm-up
  local out; out=$(taskset -c 0 wrk -t1 -c64 -d"$DUR" --latency "${hdr[@]}" "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-44s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"
  grep -q "Non-2xx" <<<"$out" && echo "  (non-2xx responses: $(grep Non-2xx <<<"$out"))" || true
}
echo "$(nproc) cores; wrk -t1 -c64 -d$DUR on core 0; proxies on core 1; backend nginx on core 0"
printf '%-44s %12s %10s %10s\n' "target" "req/s" "p50" "p99"
run "direct to backend" "http://127.0.0.1:$BACK/"
run "nginx 1.22 proxy_pass (1 worker)" "http://127.0.0.1:$NGX/"
config 0;      start_proxy; run "switchyard-proxy, 1 router" "http://127.0.0.1:$SY/"; stop_proxy
config 10;     start_proxy; run "switchyard-proxy, 10 host routers" "http://127.0.0.1:$SY/" svc5.example.com; stop_proxy
config 100000; start_proxy; run "switchyard-proxy, 100k host routers" "http://127.0.0.1:$SY/" svc50000.example.com
echo "switchyard-proxy RSS with 100k routers: $(grep VmRSS /proc/$(cat "$W/proxy.pid")/status | awk '{printf "%.1f MiB", $2/1024}')"
stop_proxy
config 0; start_proxy
echo "switchyard-proxy RSS idle (1 router): $(grep VmRSS /proc/$(cat "$W/proxy.pid")/status | awk '{printf "%.1f MiB", $2/1024}')"
stop_proxy
config 10000; start_proxy
echo "switchyard-proxy RSS with 10k routers: $(grep VmRSS /proc/$(cat "$W/proxy.pid")/status | awk '{printf "%.1f MiB", $2/1024}')"
stop_proxy
