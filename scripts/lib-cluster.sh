# Shared by the benchmark scripts: source it, then `start_cluster DIR` starts a 3-node release
# cluster on free loopback ports and sets S (the switchyard binary), EPS (all admin endpoints),
# LEADER (node id), api/peer/http functions, and node pids in DIR/n$i.pid. Extra server flags can
# be passed in SERVER_FLAGS.
S=$PWD/target/release/switchyard
# The recorded figures are for the plaintext transport: the servers, the CLI and the proxies all
# read SWITCHYARD_INSECURE. Unset it after sourcing to measure a secure cluster (then pass
# --ca-cert/--token as README's Security section shows).
export SWITCHYARD_INSECURE=1
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh # free_ports
start_cluster() { # workdir
  local w=$1
  CLUSTER_PORTS=($(free_ports 9))
  api() { echo "127.0.0.1:${CLUSTER_PORTS[$(( ($1-1)*3 ))]}"; }
  peer() { echo "127.0.0.1:${CLUSTER_PORTS[$(( ($1-1)*3+1 ))]}"; }
  http() { echo "127.0.0.1:${CLUSTER_PORTS[$(( ($1-1)*3+2 ))]}"; }
  local ic="1=$(peer 1),2=$(peer 2),3=$(peer 3)"
  for i in 1 2 3; do
    # shellcheck disable=SC2086
    "$S" server --node-id $i --data-dir "$w/n$i" --api-addr "$(api $i)" --peer-addr "$(peer $i)" \
      --http-addr "$(http $i)" --initial-cluster "$ic" ${SERVER_FLAGS:-} >"$w/n$i.log" 2>&1 &
    echo $! >"$w/n$i.pid"
  done
  EPS="http://$(api 1),http://$(api 2),http://$(api 3)"
  LEADER=""
  for _ in $(seq 1 100); do
    LEADER=$("$S" --endpoints "$EPS" -o json cluster status 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["leaderId"] if d["hasLeader"] else "")' || true)
    [ -n "$LEADER" ] && break
    sleep 0.1
  done
  [ -n "$LEADER" ] || { echo "no leader"; return 1; }
}
# `start_etcd DIR` starts a 3-member etcd 3.4 cluster (etcd-server and etcd-client installed from
# Debian when missing) on free
# loopback ports and sets ETCD_EPS (all client URLs, comma-separated) and ETCD_LEADER (its URL).
start_etcd() { # workdir
  local w=$1
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client
  fi
  local ports=($(free_ports 6))
  local ic="e1=http://127.0.0.1:${ports[1]},e2=http://127.0.0.1:${ports[3]},e3=http://127.0.0.1:${ports[5]}"
  for i in 1 2 3; do
    local c=${ports[$(( (i-1)*2 ))]} p=${ports[$(( (i-1)*2+1 ))]}
    etcd --name e$i --data-dir "$w/e$i" \
      --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
      --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
      --initial-cluster "$ic" --initial-cluster-state new >"$w/e$i.log" 2>&1 &
  done
  local eps="127.0.0.1:${ports[0]},127.0.0.1:${ports[2]},127.0.0.1:${ports[4]}"
  for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
  done
  ETCD_LEADER=http://$(ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint status -w json \
    | python3 -c 'import json,sys; print(next(e["Endpoint"] for e in json.load(sys.stdin) if e["Status"]["leader"]==e["Status"]["header"]["member_id"]))')
  ETCD_EPS="http://${eps//,/,http://}"
}
