#!/usr/bin/env bash
# Instructions per request of a switchyard-proxy build (valgrind callgrind; repeatable on a
# loaded machine, unlike wall-clock benchmarks):
#   bash scripts/callgrind-proxy.sh BINARY [REQUESTS=5000] [OUT=/tmp/callgrind.proxy.out]
# The proxy runs under callgrind, pinned to core 1 (so it takes its one-CPU layout), with one
# catch-all router in front of a tiny nginx backend (`return 200 "hello\n"`); a client sends
# REQUESTS sequential keep-alive GETs on one connection. Instrumentation is on only for those
# requests (after 200 warm-up requests), so startup and shutdown are not counted. Prints the
# instructions per request; `callgrind_annotate OUT` shows where they go.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; N=${2:-5000}; OUT=${3:-/tmp/callgrind.proxy.out}
W=$(mktemp -d)
cleanup() {
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
read -r BACK PORT ADM < <(python3 -c "import socket
s=[socket.socket() for _ in range(3)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))")
mkdir -p "$W/b"
cat >"$W/b/nginx.conf" <<CONF
worker_processes 1;
pid $W/b.pid;
error_log $W/b/error.log;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path $W/b; proxy_temp_path $W/b; fastcgi_temp_path $W/b; uwsgi_temp_path $W/b; scgi_temp_path $W/b;
  server { listen 127.0.0.1:$BACK; location / { return 200 'hello\n'; } }
}
CONF
taskset -c 0 nginx -c "$W/b/nginx.conf" -p "$W/b"
printf 'http:\n  services:\n    back:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%s\n  routers:\n    all:\n      rule: PathPrefix(`/`)\n      service: back\n' "$BACK" >"$W/cfg.yaml"
rm -f "$OUT" "$OUT".*
taskset -c 1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
  "$BIN" --config-file "$W/cfg.yaml" --entrypoint "web=127.0.0.1:$PORT" --admin-addr "127.0.0.1:$ADM" \
  >"$W/p.log" 2>&1 &
echo $! >"$W/p.pid"
ok=
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$ADM/readyz" >/dev/null && { ok=1; break; }; sleep 0.2; done
[ -n "$ok" ] || { echo "$BIN did not start"; cat "$W/p.log"; exit 1; }
cat >"$W/seq.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: seq\r\nAccept: */*\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        j = buf.find(b"\r\n\r\n")
        if j >= 0:
            head = buf[:j].decode()
            cl = 0
            for line in head.split("\r\n")[1:]:
                k, v = line.split(":", 1)
                if k.lower() == "content-length":
                    cl = int(v)
            if len(buf) >= j + 4 + cl:
                assert head.startswith("HTTP/1.1 200"), head
                buf = buf[j + 4 + cl:]
                break
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed")
        buf += d
PY
# Warm-up (first connections, lazily built route stats), then the measured requests on a
# second connection.
taskset -c 0 python3 "$W/seq.py" "$PORT" 200
callgrind_control -i on "$(cat "$W/p.pid")" >/dev/null
taskset -c 0 python3 "$W/seq.py" "$PORT" "$N"
callgrind_control -d "$(cat "$W/p.pid")" >/dev/null
kill "$(cat "$W/p.pid")"; wait "$(cat "$W/p.pid")" 2>/dev/null || true
rm -f "$W/p.pid"
f=$OUT.1
[ -f "$f" ] || f=$OUT
total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$BIN: $total instructions over $N requests = $((total / N)) per request (profile: $f)"
