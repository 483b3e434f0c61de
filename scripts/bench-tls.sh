#!/usr/bin/env bash
# TLS benchmarks (see BENCHMARKS.md):
#   bash scripts/bench-tls.sh [DURATION] [all|termination|resume|dns01]
# PROFILE=debug uses the debug binaries in target/debug instead of building release ones.
#
# termination (TLS milestone):
# Installs nginx (nginx-light) and wrk from Debian when missing. One self-signed ECDSA P-256
# certificate (openssl) is served by both proxies, TLS 1.3 only on nginx and the rustls default
# (1.3 negotiated) on switchyard-proxy. A tiny nginx backend answers "hello" over plaintext.
# The load is wrk pinned to core 0; each proxy is pinned to core 1 (nginx: 1 worker):
#   handshakes  wrk -c64 with "Connection: close": every request is a new TCP connection and a
#               full TLS 1.3 handshake (wrk creates a fresh SSL object per connection and never
#               resumes a session), so req/s = full handshakes/s (+ one proxied request each)
#   keep-alive  wrk -c64 HTTPS keep-alive: request throughput over established TLS connections
# Each row also prints the proxy's CPU µs per request (/proc/PID/stat; nginx: master + worker).
# switchyard-proxy reads its config with --config-file, whose certFile/keyFile are paths (the
# same upload path as `switchyard apply`). wrk connects to 127.0.0.1 without SNI, so both proxies
# serve the certificate as their default one.
# resume (issue 13): resumed TLS 1.3 handshakes/s on a second proxy vs full handshakes. One
# control node and two proxies attached to it (cluster session-ticket keys), one certificate,
# a plaintext nginx backend. tests/src/bin/tls_handshake_bench.rs opens new connections (one
# GET, Connection: close), alternating proxy A and B: `full` with resumption disabled, `resume`
# keeping each worker's tickets, so every handshake after a worker's first resumes with a ticket
# the other proxy issued. Load tool on core 0, both proxies on core 1.
# dns01 (issue 13): time from `apply` of a wildcard route to the certificate served by a proxy,
# via DNS-01 against pebble (no validation delays) and pebble-challtestsrv
# (tests/src/bin/dns01_bench.rs, 5 rounds; pebble and pebble-challtestsrv from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
DUR=${1:-10s}
PART=${2:-all}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then CARGO_PROFILE=(--release); else CARGO_PROFILE=(); fi
BIN=$PWD/target/$PROFILE
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ "$PART" = all ] || [ "$PART" = dns01 ]; then
  command -v pebble >/dev/null || need+=(pebble)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# Build only what the part needs (termination: the proxy alone).
if [ "$PART" = termination ]; then
  cargo build "${CARGO_PROFILE[@]}" -p switchyard-proxy >/dev/null
else
  cargo build "${CARGO_PROFILE[@]}" -p switchyard-proxy -p switchyard --bins >/dev/null
  cargo build "${CARGO_PROFILE[@]}" -p switchyard-e2e --bin tls_handshake_bench --bin dns01_bench >/dev/null
fi
P=$BIN/switchyard-proxy
S=$BIN/switchyard
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; for f in $W/*.spid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; [ -f $W/b.pid ] && kill $(cat $W/b.pid) 2>/dev/null; [ -f $W/n.pid ] && kill $(cat $W/n.pid) 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"' EXIT
ports=($(free_ports 11))
BACK=${ports[0]}; SY=${ports[1]}; SYADM=${ports[2]}; NGX=${ports[3]}
API=${ports[4]}; PEER=${ports[5]}; HTTPP=${ports[6]}; PA=${ports[7]}; PB=${ports[8]}; PADM=${ports[9]}; PBADM=${ports[10]}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$W/bench.key" -out "$W/bench.pem" -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test 2>/dev/null

nginx_conf b "server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }"
nginx_conf n "upstream back { server 127.0.0.1:$BACK; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX ssl;
    ssl_certificate $W/bench.pem; ssl_certificate_key $W/bench.key;
    ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"

termination() {
taskset -c 1 nginx -c "$W/n/nginx.conf" -p "$W/n"

cat >"$W/cfg.yaml" <<YAML
http:
  routers:
    all: {rule: "PathPrefix(\`/\`)", service: back, tls: {}}
  services:
    back: {loadBalancer: {servers: [{url: "http://127.0.0.1:$BACK"}]}}
tls:
  certificates: [{certFile: bench.pem, keyFile: bench.key}]
  stores:
    default: {defaultCertificate: {certFile: bench.pem, keyFile: bench.key}}
  options:
    default: {minVersion: VersionTLS13}
YAML
taskset -c 1 "$P" --config-file "$W/cfg.yaml" --entrypoint "websecure=127.0.0.1:$SY" --admin-addr "127.0.0.1:$SYADM" >"$W/proxy.log" 2>&1 &
echo $! >"$W/proxy.pid"
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$SYADM/readyz" >/dev/null && break; sleep 0.1; done
curl -sfk --resolve "bench.test:$SY:127.0.0.1" "https://bench.test:$SY/" >/dev/null || { echo "proxy not serving"; cat "$W/proxy.log"; exit 1; }

cpu_ticks() { # pids -> utime+stime ticks
  local t=0 p
  for p in $1; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$t"
}
run() { # label pids url [extra wrk args]
  local label=$1 pids=$2 url=$3; shift 3
  taskset -c 0 wrk -t1 -c64 -d2s "$@" "$url" >/dev/null   # warm-up
  local b a out; b=$(cpu_ticks "$pids")
  out=$(taskset -c 0 wrk -t1 -c64 -d"$DUR" --latency "$@" "$url")
  a=$(cpu_ticks "$pids")
  local rps p50 p99 reqs cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t=$((a - b)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  printf '%-52s %12s %10s %10s %12s\n' "$label" "$rps" "$p50" "$p99" "$cpu"
  grep -q "Non-2xx" <<<"$out" && echo "  (non-2xx responses: $(grep Non-2xx <<<"$out"))" || true
  grep -q "Socket errors" <<<"$out" && echo "  ($(grep 'Socket errors' <<<"$out"))" || true
}
echo "$(nproc) cores; wrk -t1 -c64 -d$DUR on core 0; proxies on core 1; backend nginx on core 0"
echo "certificate: ECDSA P-256 self-signed; TLS 1.3 (X25519, AES-128-GCM/ChaCha20 as negotiated)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %12s %10s %10s %12s\n' "target" "req/s" "p50" "p99" "CPU us/req"
H=(-H "Host: bench.test")
NPIDS="$(cat "$W/n.pid") $(pgrep -P "$(cat "$W/n.pid")" | tr '\n' ' ')"
SPID=$(cat "$W/proxy.pid")
run "nginx, full TLS 1.3 handshake per request" "$NPIDS" "https://127.0.0.1:$NGX/" "${H[@]}" -H "Connection: close"
run "switchyard-proxy, full TLS 1.3 handshake per request" "$SPID" "https://127.0.0.1:$SY/" "${H[@]}" -H "Connection: close"
run "nginx, HTTPS keep-alive" "$NPIDS" "https://127.0.0.1:$NGX/" "${H[@]}"
run "switchyard-proxy, HTTPS keep-alive" "$SPID" "https://127.0.0.1:$SY/" "${H[@]}"
echo "switchyard-proxy handshakes counted: $(curl -s 127.0.0.1:$SYADM/metrics | grep '^switchyard_proxy_tls_handshakes_total' | tr '\n' ' ')"
}

resume() {
  SWITCHYARD_INSECURE=1 "$S" server --node-id 1 --data-dir "$W/n1" --api-addr "127.0.0.1:$API" \
    --peer-addr "127.0.0.1:$PEER" --http-addr "127.0.0.1:$HTTPP" \
    --initial-cluster "1=127.0.0.1:$PEER" >"$W/n1.log" 2>&1 &
  echo $! >"$W/n1.spid"
  local ep="http://127.0.0.1:$API"
  for _ in $(seq 1 300); do "$S" --insecure --endpoints "$ep" cluster status >/dev/null 2>&1 && break; sleep 0.1; done
  cat >"$W/resume.yaml" <<YAML
http:
  routers:
    all: {rule: "Host(\`bench.test\`)", service: back, tls: {}}
  services:
    back: {loadBalancer: {servers: [{url: "http://127.0.0.1:$BACK"}]}}
tls:
  certificates: [{certFile: $W/bench.pem, keyFile: $W/bench.key}]
  options:
    default: {minVersion: VersionTLS13}
YAML
  "$S" --insecure --endpoints "$ep" apply -f "$W/resume.yaml" >/dev/null
  local a=0
  for id in pa pb; do
    local port=$PA adm=$PADM
    [ $id = pb ] && port=$PB && adm=$PBADM
    taskset -c 1 "$P" --insecure --control "$ep" --proxy-id $id --entrypoint "websecure=127.0.0.1:$port" \
      --admin-addr "127.0.0.1:$adm" >"$W/$id.log" 2>&1 &
    echo $! >"$W/$id.spid"
  done
  # Ready when a ticket from A resumes on B (both hold the cluster's keys and the config).
  for _ in $(seq 1 600); do
    if "$BIN/tls_handshake_bench" "127.0.0.1:$PA" "127.0.0.1:$PB" bench.test 1 resume 1 2>/dev/null |
       awk '{exit !($8>0 && $10==0)}'; then a=1; break; fi
    sleep 0.1
  done
  [ $a = 1 ] || { echo "proxies not resuming across each other"; tail -5 "$W"/pa.log "$W"/pb.log "$W"/n1.log; exit 1; }
  local secs=${DUR%s}
  echo "$(nproc) cores; tls_handshake_bench (16 workers) on core 0; both proxies on core 1; $PROFILE build"
  echo "each connection: TLS 1.3 handshake + one proxied GET (Connection: close), alternating proxy A and B"
  taskset -c 0 "$BIN/tls_handshake_bench" "127.0.0.1:$PA" "127.0.0.1:$PB" bench.test "$secs" full 16
  taskset -c 0 "$BIN/tls_handshake_bench" "127.0.0.1:$PA" "127.0.0.1:$PB" bench.test "$secs" resume 16
  taskset -c 0 "$BIN/tls_handshake_bench" "127.0.0.1:$PA" "127.0.0.1:$PB" bench.test "$secs" full 16
  taskset -c 0 "$BIN/tls_handshake_bench" "127.0.0.1:$PA" "127.0.0.1:$PB" bench.test "$secs" resume 16
}

dns01() {
  echo "apply of a wildcard route → certificate served (DNS-01, pebble with PEBBLE_VA_NOSLEEP=1, $PROFILE build)"
  SWITCHYARD_BIN_DIR=$BIN "$BIN/dns01_bench" 5
}

case $PART in
  all) termination; resume; dns01 ;;
  termination) termination ;;
  resume) resume ;;
  dns01) dns01 ;;
  *) echo "unknown part $PART (all, termination, resume, dns01)"; exit 2 ;;
esac
