#!/usr/bin/env bash
# Proxy throughput benchmark (see BENCHMARKS.md "Proxy throughput"):
#   bash scripts/bench-proxy.sh [DURATION] [REPS]        (defaults: 10s, 3)
# Installs nginx, HAProxy and wrk from Debian when missing. A tiny nginx backend answers "hello";
# the load is wrk (HTTP/1.1 keep-alive, -t1 -c64) and the backend on core 0; every proxy on
# core 1, all running at once:
#   direct           wrk → backend
#   nginx            nginx proxy_pass, 1 worker, upstream keep-alive
#   haproxy          HAProxy, nbthread 1, http-reuse always (keep-alive to the backend)
#   switchyard       switchyard-proxy --config-file, 1 catch-all router
#   switchyard-10    10 host routers (requests carry Host: svc5.example.com)
#   switchyard-100k  99,998 host routers + the catch-all + the service: 100k resources, the
#                    per-document limit (Host: svc50000.example.com)
# REPS rounds, the target order rotated each round (interleaved, so slow phases of this shared
# machine hit every target). Per target: median req/s, spread (min–max), median p50/p99, and
# the proxy's CPU µs per request (/proc/PID/stat utime+stime over the run ÷ requests served;
# nginx: master + worker). Then "p99 at 50% of nginx's max rate": tests/src/bin/paced_load.rs
# sends a fixed rate (half nginx's median req/s, 32 connections) to each proxy, interleaved.
# Last, switchyard-proxy RSS idle (1 router), with 10k and with 100k routers (after start).
# PROFILE=debug uses target/debug (for checking the script, not for figures).
# BASE=/path/to/an/older/switchyard-proxy adds a target "switchyard-base" (1 router) run by that
# binary, interleaved with the others: an A/B of two builds in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
DUR=${1:-10s}
REPS=${2:-3}
PROFILE=${PROFILE:-release}
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ "$PROFILE" = release ]; then
  cargo build --release -p switchyard-proxy >/dev/null
else
  cargo build -p switchyard-proxy >/dev/null
fi
# The paced load tool shares core 0 with the backend: its own CPU per request decides whether it
# holds the rate, so it is always a release build (tests/src/bin/paced_load.rs).
cargo build --release -p switchyard-e2e --bin paced_load >/dev/null
P=$PWD/target/$PROFILE/switchyard-proxy
PACED=$PWD/target/release/paced_load
W=$(mktemp -d)
cleanup() {
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ports=($(free_ports 13))
BACK=${ports[0]}; NGX=${ports[1]}; HAP=${ports[2]}
SY1=${ports[3]}; SY1ADM=${ports[4]}; SY10=${ports[5]}; SY10ADM=${ports[6]}
SYK=${ports[7]}; SYKADM=${ports[8]}; SYX=${ports[9]}; SYXADM=${ports[10]}; SYB=${ports[11]}

nginx_conf b "server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }"
nginx_conf n "upstream back { server 127.0.0.1:$BACK; keepalive 128; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
taskset -c 1 nginx -c "$W/n/nginx.conf" -p "$W/n"

cat >"$W/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:$HAP
  default_backend back
backend back
  server s1 127.0.0.1:$BACK
CONF
taskset -c 1 haproxy -db -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
echo $! >"$W/haproxy.pid"

config() { # routers file
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
start_proxy() { # name routers port admin-port [binary]
  config "$2" "$W/$1.yaml"
  taskset -c 1 "${5:-$P}" --config-file "$W/$1.yaml" --entrypoint "web=127.0.0.1:$3" --admin-addr "127.0.0.1:$4" >"$W/$1.log" 2>&1 &
  echo $! >"$W/$1.pid"
  for _ in $(seq 1 1200); do
    curl -sf "127.0.0.1:$4/readyz" >/dev/null && return
    kill -0 "$(cat "$W/$1.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "proxy $1 did not start"; cat "$W/$1.log"; exit 1
}
stop_proxy() { # name
  kill "$(cat "$W/$1.pid")"; wait "$(cat "$W/$1.pid")" 2>/dev/null || true; rm -f "$W/$1.pid"
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$(cat "$W/$1.pid")/status"; }   # kB
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k/1024}'; }

start_proxy sy1 0 "$SY1" "$SY1ADM"
RSS_IDLE=$(rss sy1)
start_proxy sy10 10 "$SY10" "$SY10ADM"
# 100k resources (the per-document limit): the catch-all, its service and 99,998 host routers.
start_proxy sy100k 99998 "$SYK" "$SYKADM"
RSS_100K=$(rss sy100k)
start_proxy sy10k 10000 "$SYX" "$SYXADM"
RSS_10K=$(rss sy10k)
stop_proxy sy10k

# target → "url host pids"
declare -A URL HOSTH PIDS
URL[direct]="http://127.0.0.1:$BACK/";      PIDS[direct]=""
URL[nginx]="http://127.0.0.1:$NGX/";        PIDS[nginx]="$(cat "$W/n.pid") $(pgrep -P "$(cat "$W/n.pid")" | tr '\n' ' ')"
URL[haproxy]="http://127.0.0.1:$HAP/";      PIDS[haproxy]="$(cat "$W/haproxy.pid")"
URL[switchyard]="http://127.0.0.1:$SY1/";   PIDS[switchyard]="$(cat "$W/sy1.pid")"
URL[switchyard-10]="http://127.0.0.1:$SY10/";   HOSTH[switchyard-10]=svc5.example.com;     PIDS[switchyard-10]="$(cat "$W/sy10.pid")"
URL[switchyard-100k]="http://127.0.0.1:$SYK/";  HOSTH[switchyard-100k]=svc50000.example.com; PIDS[switchyard-100k]="$(cat "$W/sy100k.pid")"
TARGETS=(direct nginx haproxy switchyard switchyard-10 switchyard-100k)
if [ -n "${BASE:-}" ]; then
  start_proxy sybase 0 "$SYB" "${ports[12]}" "$BASE"
  URL[switchyard-base]="http://127.0.0.1:$SYB/"; PIDS[switchyard-base]="$(cat "$W/sybase.pid")"
  TARGETS+=(switchyard-base)
fi
for t in "${TARGETS[@]}"; do  # every target answers 200 before anything is measured
  h=(); [ -n "${HOSTH[$t]:-}" ] && h=(-H "Host: ${HOSTH[$t]}")
  code=$(curl -s -o /dev/null -w '%{http_code}' "${h[@]}" "${URL[$t]}" || true)
  [ "$code" = 200 ] || { echo "$t answered $code"; cat "$W/haproxy.log"; exit 1; }
done

cpu_ticks() { # pids -> utime+stime ticks
  local s=0 p
  for p in $1; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$s"
}
HZ=$(getconf CLK_TCK)
RES=$W/results.tsv
run() { # target round
  local t=$1 hdr=()
  [ -n "${HOSTH[$t]:-}" ] && hdr=(-H "Host: ${HOSTH[$t]}")
  taskset -c 0 wrk -t1 -c64 -d1s "${hdr[@]}" "${URL[$t]}" >/dev/null   # warm-up
  local b a out
  b=$(cpu_ticks "${PIDS[$t]}")
  out=$(taskset -c 0 wrk -t1 -c64 -d"$DUR" --latency "${hdr[@]}" "${URL[$t]}")
  a=$(cpu_ticks "${PIDS[$t]}")
  local reqs rps p50 p99 non2xx
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$2" "$rps" "$reqs" "$p50" "$p99" "$((a - b))" "${non2xx:-0}" >>"$RES"
  printf '  round %s %-16s %10s req/s  p50 %-8s p99 %-8s\n' "$2" "$t" "$rps" "$p50" "$p99"
}
echo "$(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t1 -c64 -d$DUR and the backend on core 0; every proxy on core 1; $REPS rounds, order rotated"
n=${#TARGETS[@]}
for r in $(seq 1 "$REPS"); do
  for i in $(seq 0 $((n - 1))); do
    run "${TARGETS[$(( (i + r - 1) % n ))]}" "$r"
  done
done

# p99 at 50% of nginx's max rate (paced, interleaved).
NGX_RPS=$(awk -F'\t' '$1=="nginx" {print $3}' "$RES" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
RATE=$(python3 -c "print(int(float('$NGX_RPS')/2))")
PACED_RES=$W/paced.tsv
PT=(nginx haproxy switchyard)
for r in $(seq 1 "$REPS"); do
  for i in 0 1 2; do
    t=${PT[$(( (i + r - 1) % 3 ))]}
    addr=${URL[$t]#http://}; addr=${addr%/}
    line=$(taskset -c 0 "$PACED" "$addr" "$RATE" "${DUR%s}" 32)
    printf '%s\t%s\n' "$t" "$line" >>"$PACED_RES"
    printf '  paced round %s %-12s %s\n' "$r" "$t" "$line"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RES" "$PACED_RES" "$HZ" "$RATE" <<'PY'
import sys, statistics as st
res, paced, hz, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def ms(v):
    v = v.strip()
    for suf, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(suf):
            return float(v[: -len(suf)]) * f
    return float("nan")
rows = {}
order = []
for line in open(res):
    t, r, rps, reqs, p50, p99, ticks, non2xx = line.rstrip("\n").split("\t")
    if t not in rows:
        rows[t] = []
        order.append(t)
    cpu = (int(ticks) / hz * 1e6 / int(reqs)) if t != "direct" else None
    rows[t].append((float(rps), ms(p50), ms(p99), cpu, int(non2xx)))
med = {}
print()
print("%-16s %10s %19s %9s %9s %12s" % ("target", "req/s", "spread (min-max)", "p50 ms", "p99 ms", "CPU us/req"))
for t in order:
    xs = rows[t]
    rps = st.median(x[0] for x in xs)
    cpu = st.median(x[3] for x in xs) if xs[0][3] is not None else None
    med[t] = (rps, cpu)
    print("%-16s %10.0f %9.0f-%-9.0f %9.3f %9.3f %12s%s" % (
        t, rps, min(x[0] for x in xs), max(x[0] for x in xs),
        st.median(x[1] for x in xs), st.median(x[2] for x in xs),
        "-" if cpu is None else "%.2f" % cpu,
        "  (non-2xx!)" if any(x[4] for x in xs) else ""))
sy = med["switchyard"]
print()
for peer in ("nginx", "haproxy"):
    p = med[peer]
    print("switchyard/%-8s req/s %.2fx   CPU per request %.2fx" % (peer, sy[0] / p[0], sy[1] / p[1]))
if "switchyard-base" in med:
    b = med["switchyard-base"]
    print("switchyard/base     req/s %.2fx   CPU per request %.2fx" % (sy[0] / b[0], sy[1] / b[1]))
print("switchyard 100k/10 routers: req/s %.2fx   CPU per request %.2fx" % (
    med["switchyard-100k"][0] / med["switchyard-10"][0], med["switchyard-100k"][1] / med["switchyard-10"][1]))
print()
print("paced %s req/s (50%% of nginx's median), 32 connections, latency from the due time:" % rate)
pr = {}
for line in open(paced):
    t, kv = line.rstrip("\n").split("\t")
    d = dict(x.split("=") for x in kv.split())
    pr.setdefault(t, []).append(d)
print("%-16s %9s %9s %9s %9s %8s" % ("target", "rps", "p50 ms", "p99 ms", "p99.9 ms", "errors"))
for t, ds in pr.items():
    m = lambda k: st.median(float(d[k]) for d in ds)
    print("%-16s %9.0f %9.3f %9.3f %9.3f %8.0f" % (t, m("rps"), m("p50_ms"), m("p99_ms"), m("p999_ms"), sum(float(d["errors"]) for d in ds)))
PY
echo
echo "switchyard-proxy RSS after start: idle (1 router) $(mib "$RSS_IDLE"), 10k routers $(mib "$RSS_10K"), 100k routers $(mib "$RSS_100K")"
awk -v i="$RSS_IDLE" -v a="$RSS_10K" -v b="$RSS_100K" 'BEGIN {printf "per router above idle: %.2f KB at 10k, %.2f KB at 100k\n", (a-i)*1024/10000/1000, (b-i)*1024/100000/1000}'
echo "switchyard-proxy RSS with 100k routers after the load: $(mib "$(rss sy100k)")"
