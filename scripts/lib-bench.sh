# Shared by the benchmark scripts (source it after `cd` to the repository root).
#
# `free_ports N` prints N free loopback TCP ports (space separated). The ports are free when
# printed; a benchmark binds them right after.
free_ports() { # count
  python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
# `nginx_conf NAME BODY` writes $W/NAME/nginx.conf (W: the benchmark's work directory): one
# worker, no access log, every temp path under $W/NAME, no limit on keep-alive requests, pid in
# $W/NAME.pid, and BODY (servers, upstreams, extra directives) inside `http { }`. Start it with
# `nginx -c "$W/NAME/nginx.conf" -p "$W/NAME"`.
nginx_conf() { # name body
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
  $2
}
CONF
}
