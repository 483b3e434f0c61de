#!/usr/bin/env bash
# TCP routers benchmark (see BENCHMARKS.md, "TCP (issue 13)"):
#   bash scripts/bench-tcp.sh [SECONDS]
#   BASELINE=/path/to/other/switchyard-proxy bash scripts/bench-tcp.sh [SECONDS]
#     also runs that binary (e.g. main's build) on core 1, configured alike, with its rows
#     interleaved: an A/B of two proxy builds in one run.
# Installs haproxy from Debian when missing. Builds switchyard-proxy and the load tool
# (data-plane/proxy/examples/tcp_load.rs) in release mode. Layout: the echo backends and the load
# tool on core 0; the proxy under test alone on core 1 (HAProxy: nbthread 1), both configured the
# same way:
#   passthrough  TLS routed by SNI (HostSNI(`bench.test`), tls.passthrough; HAProxy: req_ssl_sni),
#                the backend terminates TLS (rustls, ECDSA P-256)
#   plain        plain TCP (HostSNI(`*`); HAProxy: mode tcp default_backend)
# Each row also prints the CPU time the proxy under test used during it (utime+stime from
# /proc/PID/stat): CPU per MB or per connection is less sensitive to a loaded machine.
# Rows: MB/s uploaded through the proxy by 8 connections (each byte is echoed back, so the proxy
# moves it twice; the figure is one direction), and connections/s (64 workers: connect, 1-byte
# echo, close) over plain TCP and over TLS passthrough.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
SECS=${1:-10}
if ! command -v haproxy >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy
fi
cargo build --release -p switchyard-proxy --bin switchyard-proxy --example tcp_load >/dev/null
P=$PWD/target/release/switchyard-proxy
L=$PWD/target/release/examples/tcp_load
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
ports=($(free_ports 10))
BPLAIN=${ports[0]}; BTLS=${ports[1]}; SYPT=${ports[2]}; SYPL=${ports[3]}; SYADM=${ports[4]}
HAPT=${ports[5]}; HAPL=${ports[6]}; BAPT=${ports[7]}; BAPL=${ports[8]}; BAADM=${ports[9]}
BASELINE=${BASELINE:-}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$W/b.key" -out "$W/b.pem" -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test 2>/dev/null
taskset -c 0 "$L" echo "127.0.0.1:$BPLAIN" &
taskset -c 0 "$L" echo "127.0.0.1:$BTLS" "$W/b.pem" "$W/b.key" &

cat >"$W/cfg.yaml" <<YAML
tcp:
  routers:
    pt: {entryPoints: [pt], rule: "HostSNI(\`bench.test\`)", service: tls, tls: {passthrough: true}}
    plain: {entryPoints: [plain], rule: "HostSNI(\`*\`)", service: plain}
  services:
    tls: {loadBalancer: {servers: [{address: "127.0.0.1:$BTLS"}]}}
    plain: {loadBalancer: {servers: [{address: "127.0.0.1:$BPLAIN"}]}}
YAML
taskset -c 1 "$P" --config-file "$W/cfg.yaml" --entrypoint "pt=127.0.0.1:$SYPT" \
  --entrypoint "plain=127.0.0.1:$SYPL" --admin-addr "127.0.0.1:$SYADM" >"$W/proxy.log" 2>&1 &
SYPID=$!
BAPID=
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$SYADM/readyz" >/dev/null && break; sleep 0.1; done
if [ -n "$BASELINE" ]; then
  taskset -c 1 "$BASELINE" --config-file "$W/cfg.yaml" --entrypoint "pt=127.0.0.1:$BAPT" \
    --entrypoint "plain=127.0.0.1:$BAPL" --admin-addr "127.0.0.1:$BAADM" >"$W/baseline.log" 2>&1 &
  BAPID=$!
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$BAADM/readyz" >/dev/null && break; sleep 0.1; done
fi

cat >"$W/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend pt
  bind 127.0.0.1:$HAPT
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend tls if { req_ssl_sni -i bench.test }
frontend plain
  bind 127.0.0.1:$HAPL
  default_backend plain
backend tls
  server s1 127.0.0.1:$BTLS
backend plain
  server s1 127.0.0.1:$BPLAIN
CFG
taskset -c 1 haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 &
HAPID=$!
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 100); do up "$HAPL" && up "$SYPL" && break; sleep 0.1; done
up "$HAPL" || { cat "$W/haproxy.log"; echo "haproxy did not start" >&2; exit 1; }
up "$SYPL" || { cat "$W/proxy.log"; echo "switchyard-proxy did not start" >&2; exit 1; }

TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
row() { # label pid cmd...: the figure, and the CPU time the proxy under test used for it
  local before after out
  before=$(cpu "$2")
  out=$(taskset -c 0 "${@:3}")
  after=$(cpu "$2")
  printf '%-52s %-28s proxy CPU %ss\n' "$1" "$out" "$(awk -v a="$after" -v b="$before" -v t="$TCK" 'BEGIN { printf "%.2f", (a - b) / t }')"
}
# The baseline's rows (BASELINE set), right after the same row of this build.
brow() { if [ -n "$BASELINE" ]; then row "$@"; fi; }
echo "TCP routers, ${SECS}s per row, proxy on core 1, load and backends on core 0 ($(date -u +%F))"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
row "switchyard-proxy passthrough MB/s (8 conns)" "$SYPID"  "$L" bytes "127.0.0.1:$SYPT" bench.test "$SECS" 8
brow "baseline         passthrough MB/s (8 conns)" "$BAPID"  "$L" bytes "127.0.0.1:$BAPT" bench.test "$SECS" 8
row "haproxy        passthrough MB/s (8 conns)" "$HAPID"    "$L" bytes "127.0.0.1:$HAPT" bench.test "$SECS" 8
row "switchyard-proxy plain TCP MB/s (8 conns)" "$SYPID"    "$L" bytes "127.0.0.1:$SYPL" - "$SECS" 8
brow "baseline         plain TCP MB/s (8 conns)" "$BAPID"    "$L" bytes "127.0.0.1:$BAPL" - "$SECS" 8
row "haproxy        plain TCP MB/s (8 conns)" "$HAPID"      "$L" bytes "127.0.0.1:$HAPL" - "$SECS" 8
row "switchyard-proxy plain TCP connections/s (64)" "$SYPID" "$L" conns "127.0.0.1:$SYPL" - "$SECS" 64
brow "baseline         plain TCP connections/s (64)" "$BAPID" "$L" conns "127.0.0.1:$BAPL" - "$SECS" 64
row "haproxy        plain TCP connections/s (64)" "$HAPID"   "$L" conns "127.0.0.1:$HAPL" - "$SECS" 64
row "switchyard-proxy passthrough connections/s (64)" "$SYPID" "$L" conns "127.0.0.1:$SYPT" bench.test "$SECS" 64
brow "baseline         passthrough connections/s (64)" "$BAPID" "$L" conns "127.0.0.1:$BAPT" bench.test "$SECS" 64
row "haproxy        passthrough connections/s (64)" "$HAPID"   "$L" conns "127.0.0.1:$HAPT" bench.test "$SECS" 64
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
