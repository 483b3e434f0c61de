#!/usr/bin/env bash
# Middleware benchmarks (BENCHMARKS.md "Middlewares (issue 9)"):
#   bash scripts/bench-middlewares.sh [DURATION]
# Installs nginx-light and wrk from Debian when missing; PROXY=path uses an already built
# switchyard-proxy instead of `cargo build --release -p switchyard-proxy`; PROXY_B=path also
# runs a second build (e.g. the previous version) and alternates the two in every round (A/B,
# interleaved, same machine load).
# 1. Throughput of one proxy (pinned to core 1; wrk and the nginx backend on core 0): a router
#    without middlewares vs one with a chain of 5 (headers, stripPrefix, ipAllowList, rateLimit
#    far above the load, compress with no Accept-Encoding), alternated 3 times.
# 2. compress: a 1 MiB text body fetched with Accept-Encoding gzip / br / zstd through
#    switchyard-proxy, and gzip through nginx (its default gzip_comp_level 1, and level 6 like
#    Switchyard's gzip): uncompressed MB/s served and CPU seconds of the proxy process per MB.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
DUR=${1:-10s}
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ -z "${PROXY:-}" ]; then
  cargo build --release -p switchyard-proxy >/dev/null
  PROXY=$PWD/target/release/switchyard-proxy
fi
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; for p in $W/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$W"' EXIT
ports=($(free_ports 8))
BACK=${ports[0]}; SY=${ports[1]}; SYADM=${ports[2]}; NG1=${ports[3]}; NG6=${ports[4]}
SYB=${ports[5]}; SYBADM=${ports[6]}

mkdir -p "$W/www"
python3 - "$W/www/big.txt" <<'PY'
import random, sys
random.seed(9)
words = "the quick brown fox jumps over lazy dog proxy router service middleware header value request response body cluster region zone".split()
out, n = [], 0
while n < 1 << 20:
    line = '{"id": %d, "name": "%s", "tags": ["%s", "%s"], "score": %.3f}\n' % (
        n, " ".join(random.choice(words) for _ in range(4)), random.choice(words), random.choice(words), random.random())
    out.append(line); n += len(line)
open(sys.argv[1], "w").write("".join(out)[: 1 << 20])
PY
SIZE=$(stat -c %s "$W/www/big.txt")
chmod -R a+rX "$W"   # nginx workers run as nobody

nginx_conf b "default_type text/plain;
  server { listen 127.0.0.1:$BACK; root $W/www; location = / { return 200 'hello\n'; } location /api/ { return 200 'hello\n'; } }"
for lvl in 1 6; do
  port=$([ $lvl = 1 ] && echo $NG1 || echo $NG6)
  nginx_conf "gz$lvl" "default_type text/plain;
  upstream back { server 127.0.0.1:$BACK; keepalive 128; }
  server { listen 127.0.0.1:$port; gzip on; gzip_comp_level $lvl; gzip_types text/plain; gzip_min_length 1024;
    location / { proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
done
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
taskset -c 1 nginx -c "$W/gz1/nginx.conf" -p "$W/gz1"
taskset -c 1 nginx -c "$W/gz6/nginx.conf" -p "$W/gz6"

cat >"$W/cfg.yaml" <<YAML
http:
  routers:
    plain: {rule: "PathPrefix(\`/\`)", priority: 1, service: back}
    chained: {rule: "PathPrefix(\`/chain/\`)", service: back, middlewares: [hdr, strip, allow, limit, gz]}
    big: {rule: "Path(\`/big.txt\`)", service: back, middlewares: [gz]}
  middlewares:
    hdr: {headers: {customRequestHeaders: {X-Bench: "1"}, customResponseHeaders: {X-Served: "switchyard"}}}
    strip: {stripPrefix: {prefixes: [/chain]}}
    allow: {ipAllowList: {sourceRange: [127.0.0.0/8, "::1/128"]}}
    limit: {rateLimit: {average: 100000000, burst: 100000000}}
    gz: {compress: {}}
  services:
    back: {loadBalancer: {servers: [{url: "http://127.0.0.1:$BACK"}]}}
YAML
start_proxy() { # binary port admin-port name
  taskset -c 1 "$1" --config-file "$W/cfg.yaml" --entrypoint "web=127.0.0.1:$2" --admin-addr "127.0.0.1:$3" >"$W/$4.log" 2>&1 &
  echo $! >"$W/$4.pid"
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$3/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$2/chain/api/x" -o /dev/null -D - | grep -qi "x-served: switchyard" || { echo "chain route not served"; cat "$W/$4.log"; exit 1; }
  [ "$(curl -sf "127.0.0.1:$2/big.txt" | wc -c)" = "$SIZE" ] || { echo "big.txt not served"; exit 1; }
}
start_proxy "$PROXY" "$SY" "$SYADM" proxy
[ -n "${PROXY_B:-}" ] && start_proxy "$PROXY_B" "$SYB" "$SYBADM" proxyb

cpu_of() { # pid -> CPU seconds (user+system) so far
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
wrk_rps() { # connections url [header]
  local hdr=()
  [ -n "${3:-}" ] && hdr=(-H "$3")
  taskset -c 0 wrk -t1 -c"$1" -d"$DUR" "${hdr[@]}" "$2" | awk '/Requests\/sec/ {print $2}'
}

echo "$(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg); wrk -d$DUR on core 0, proxies on core 1"
echo
echo "== 1. chain of 5 middlewares (headers, stripPrefix, ipAllowList, rateLimit, compress off) =="
echo "   req/s, and the proxy's CPU time per request (user+system, robust to a loaded machine)"
printf '%-10s %12s %12s %8s %14s %14s %8s\n' round "none req/s" "chain req/s" cost "none CPU/req" "chain CPU/req" cost
SYPID=$(cat "$W/proxy.pid")
targets=("A $SY $SYPID")
if [ -n "${PROXY_B:-}" ]; then
  targets+=("B $SYB $(cat "$W/proxyb.pid")")
  echo "   A = $PROXY, B = $PROXY_B"
fi
for t in "${targets[@]}"; do
  read -r _ port _ <<<"$t"
  taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$port/api/x" >/dev/null
done
measure() { # pid url -> "rps cpu_us_per_request"
  local b a rps
  b=$(cpu_of "$1"); rps=$(wrk_rps 64 "$2"); a=$(cpu_of "$1")
  python3 -c "print($rps, 1e6*($a-$b)/($rps*float('$DUR'.rstrip('s'))))"
}
for round in 1 2 3; do
  for t in "${targets[@]}"; do
    read -r name port pid <<<"$t"
    read -r none ncpu <<<"$(measure "$pid" "http://127.0.0.1:$port/api/x")"
    read -r chain ccpu <<<"$(measure "$pid" "http://127.0.0.1:$port/chain/api/x")"
    python3 -c "print('%-10s %12.0f %12.0f %7.1f%% %11.1f µs %11.1f µs %7.1f%%' % ('$round $name', $none, $chain, 100*(1-$chain/$none), $ncpu, $ccpu, 100*($ccpu/$ncpu-1)))"
  done
done
echo
echo "== 2. compress: 1 MiB text ($SIZE bytes), 4 connections =="
printf '%-40s %10s %12s %14s %10s\n' target "req/s" "MB/s (raw)" "CPU s per MB" ratio
comp() { # label url encoding pid
  local before after rps ratio
  ratio=$(curl -s -H "Accept-Encoding: $3" "$2" | wc -c)
  before=$(cpu_of "$4")
  rps=$(wrk_rps 4 "$2" "Accept-Encoding: $3")
  after=$(cpu_of "$4")
  python3 - "$1" "$rps" "$SIZE" "$before" "$after" "$ratio" "$DUR" <<'PY'
import sys
label, rps, size, b, a, comp, dur = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
secs = float(dur.rstrip('s'))
mb = rps * secs * size / 1e6
print("%-40s %10.1f %12.1f %14.4f %9.1f%%" % (label, rps, rps * size / 1e6, (a - b) / mb if mb else 0, 100.0 * comp / size))
PY
}
G1=$(pgrep -P "$(cat "$W/gz1.pid")" | head -1); G6=$(pgrep -P "$(cat "$W/gz6.pid")" | head -1)
comp "switchyard compress gzip (level 6)" "http://127.0.0.1:$SY/big.txt" gzip "$SYPID"
[ -n "${PROXY_B:-}" ] && comp "B: switchyard compress gzip (level 6)" "http://127.0.0.1:$SYB/big.txt" gzip "$(cat "$W/proxyb.pid")"
[ -n "${PROXY_B:-}" ] && comp "A: switchyard compress gzip (level 6)" "http://127.0.0.1:$SY/big.txt" gzip "$SYPID"
comp "switchyard compress br (quality 6)" "http://127.0.0.1:$SY/big.txt" br "$SYPID"
comp "switchyard compress zstd (level 3)" "http://127.0.0.1:$SY/big.txt" zstd "$SYPID"
comp "switchyard, no Accept-Encoding" "http://127.0.0.1:$SY/big.txt" identity "$SYPID"
comp "nginx gzip (default gzip_comp_level 1)" "http://127.0.0.1:$NG1/big.txt" gzip "$G1"
comp "nginx gzip (gzip_comp_level 6)" "http://127.0.0.1:$NG6/big.txt" gzip "$G6"
