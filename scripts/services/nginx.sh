#!/usr/bin/env bash
# nginx from Debian as the load balancer in front of N chatd instances, on loopback, for tests.
#   nginx.sh start  --dir DIR --port PORT --upstreams 5001,5002,5003 [--sticky cookie|ip|none]
#                   [--workers 1] [--watch-pid PID]
#       --upstreams: ports on 127.0.0.1 or host:port pairs. The config is rendered from
#       scripts/services/nginx.conf.tmpl into DIR/nginx.conf; nginx runs as the current user with
#       its prefix, pid file (DIR/nginx.pid), logs (DIR/logs) and temp dirs (DIR/tmp) under DIR.
#       Ready when GET /nginx-health answers (it needs no backend).
#   nginx.sh reload --dir DIR --upstreams ... [--sticky ...]   re-renders and reloads (HUP)
#   nginx.sh stop   --dir DIR
#   nginx.sh status --dir DIR
# Stickiness (Engine.IO long-polling needs every request of a session on the instance that made
# it; a WebSocket needs none once open):
#   cookie (default): nginx pins a client to an instance with its own cookie chatd_route=sN: a
#     request without the cookie goes to a random instance (split_clients on $request_id) and the
#     response sets the cookie; later requests carrying it go to that instance. If that instance
#     is down (502/504), the request walks the ring s1 -> s2 -> ... and the cookie is reset to
#     the instance that answered. Works for many clients from one address (all tests run on
#     127.0.0.1) and needs nothing from chatd, but clients must keep cookies (browsers do; the
#     Node socket.io-client does with withCredentials: true, one cookie jar per Engine.IO socket).
#   ip: `hash $remote_addr consistent` - no cookie needed, but every client of one address lands
#     on one instance (so on loopback: all of them).
#   none: round robin; only for clients that use the WebSocket transport alone.
set -euo pipefail
svc_name=nginx
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; shift || true
dir="" port="" upstreams="" sticky="" workers="" watch_pid=""
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --upstreams) upstreams=$2; shift 2 ;;
    --sticky) sticky=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --watch-pid) watch_pid=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$dir" ] || die "--dir is required"
command -v nginx >/dev/null || NGINX=/usr/sbin/nginx
NGINX=${NGINX:-nginx}
[ -x "$(command -v "$NGINX")" ] || die "nginx not installed: run scripts/install-services.sh"
dir=$(abs_dir "$dir")
pidfile=$dir/nginx.pid

# Generated blocks of the config, for N instances at addrs[0..N-1] (used by render).
gen_upstreams() {
  local i
  echo "  # The pool: round robin (none), or a hash of the client address (ip)."
  echo "  upstream chatd {"
  [ "$sticky" = ip ] && echo "    hash \$remote_addr consistent;"
  for i in "${!addrs[@]}"; do echo "    server ${addrs[$i]} max_fails=1 fail_timeout=3s;"; done
  echo "    keepalive 64;"
  echo "  }"
  [ "$sticky" = cookie ] || return 0
  echo
  echo "  # One upstream per instance: a pinned request keeps using keep-alive connections."
  for i in "${!addrs[@]}"; do
    echo "  upstream chatd_s$((i + 1)) {"
    echo "    server ${addrs[$i]};"
    echo "    keepalive 16;"
    echo "  }"
  done
}

gen_routing() {
  local i n=${#addrs[@]} share
  [ "$sticky" = cookie ] || return 0
  share=$((10000 / n))
  echo "  # A client without a (valid) chatd_route cookie is pinned to a random instance."
  echo "  split_clients \"\$request_id\" \$chatd_pick {"
  for ((i = 1; i < n; i++)); do printf '    %d.%02d%% s%d;\n' $((share / 100)) $((share % 100)) "$i"; done
  echo "    * s$n;"
  echo "  }"
  echo "  map \$cookie_chatd_route \$chatd_route {"
  echo "    default \$chatd_pick;"
  for ((i = 1; i <= n; i++)); do echo "    s$i s$i;"; done
  echo "  }"
  echo "  # Set the cookie when it is missing or names no instance."
  echo "  map \$cookie_chatd_route \$chatd_set_cookie {"
  echo "    default \"chatd_route=\$chatd_route; Path=/; HttpOnly; SameSite=Lax\";"
  for ((i = 1; i <= n; i++)); do echo "    s$i '';"; done
  echo "  }"
}

gen_locations() {
  local i n=${#addrs[@]} next
  if [ "$sticky" != cookie ]; then
    echo "    location / {"
    echo "      proxy_pass http://chatd;"
    echo "    }"
    return 0
  fi
  echo "    location / {"
  echo "      proxy_pass http://chatd_\$chatd_route;"
  echo "      add_header Set-Cookie \$chatd_set_cookie always;"
  echo "      # The pinned instance is down: try the next one in the ring, and pin the client there."
  echo "      error_page 502 504 = @chatd_after_\$chatd_route;"
  echo "    }"
  for ((i = 1; i <= n; i++)); do
    next=$((i % n + 1))
    echo
    echo "    location @chatd_after_s$i {"
    echo "      proxy_pass http://chatd_s$next;"
    echo "      add_header Set-Cookie \"chatd_route=s$next; Path=/; HttpOnly; SameSite=Lax\" always;"
    # With every instance down the walk ends at nginx's cap of 10 internal redirects (500).
    echo "      error_page 502 504 = @chatd_after_s$next;"
    echo "    }"
  done
}

render() {
  [ -n "$port" ] || die "--port is required"
  [ -n "$upstreams" ] || die "--upstreams is required"
  sticky=${sticky:-cookie}
  workers=${workers:-1}
  case $sticky in cookie | ip | none) ;; *) die "--sticky must be cookie, ip or none" ;; esac
  addrs=()
  local u
  IFS=, read -r -a ups <<<"$upstreams"
  for u in "${ups[@]}"; do
    [[ $u == *:* ]] && addrs+=("$u") || addrs+=("127.0.0.1:$u")
  done
  local user_line="# (not root: nginx runs as the current user)"
  [ "$(id -u)" -ne 0 ] || user_line="user $(id -un) $(id -gn);"
  local t
  t=$(<"$SERVICES_DIR/nginx.conf.tmpl")
  t=${t//@USER_LINE@/$user_line}
  t=${t//@WORKERS@/$workers}
  t=${t//@PORT@/$port}
  t=${t//@UPSTREAMS@/$(gen_upstreams)}
  t=${t//@ROUTING@/$(gen_routing)}
  t=${t//@LOCATIONS@/$(gen_locations)}
  t=${t//@DIR@/$dir}
  mkdir -p "$dir/logs" "$dir/tmp"
  printf '%s\n' "$t" >"$dir/nginx.conf.new"
  "$NGINX" -t -q -p "$dir/" -c "$dir/nginx.conf.new" -e "$dir/logs/error.log" 2>"$dir/nginx-t.log" ||
    { tail_log "$dir/nginx-t.log"; die "nginx -t rejected the rendered config ($dir/nginx.conf.new)"; }
  mv "$dir/nginx.conf.new" "$dir/nginx.conf"
  cat >"$dir/nginx.env" <<ENV
PORT=$port
UPSTREAMS=$upstreams
STICKY=$sticky
WORKERS=$workers
ENV
}

load_env() {
  [ -f "$dir/nginx.env" ] || return 0
  . "$dir/nginx.env"
  port=${port:-$PORT}; upstreams=${upstreams:-$UPSTREAMS}; sticky=${sticky:-$STICKY}
  workers=${workers:-$WORKERS}
}

healthy() { [ "$(curl -fsS --max-time 1 "http://127.0.0.1:$port/nginx-health")" = ok ]; }

case $cmd in
  start)
    load_env
    if pid_alive "$pidfile"; then
      log "already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
      exit 0
    fi
    require_port_free "${port:?--port is required}"
    render
    t0=$(now_ms)
    spawn "$pidfile.spawn" "$dir/nginx.out" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
    # nginx writes DIR/nginx.pid itself (the same pid: it runs in the foreground); keep ours
    # until then so a failed start can be cleaned up.
    mv "$pidfile.spawn" "$pidfile"
    if ! wait_until 15 "GET http://127.0.0.1:$port/nginx-health" healthy; then
      tail_log "$dir/logs/error.log"
      stop_pidfile "$pidfile" 3
      die "nginx did not start"
    fi
    watch_parent "$watch_pid" "$pidfile" "$0" stop --dir "$dir"
    log "started on 127.0.0.1:$port -> $upstreams (sticky: $sticky; pid $(cat "$pidfile"), $(($(now_ms) - t0)) ms)"
    ;;
  reload)
    load_env
    pid_alive "$pidfile" || die "not running"
    render
    kill -HUP "$(cat "$pidfile")"
    log "reloaded: 127.0.0.1:$port -> $upstreams (sticky: $sticky)"
    ;;
  stop) stop_pidfile "$pidfile" 10 ;;
  status) pid_alive "$pidfile" && { echo "running (pid $(cat "$pidfile"))"; exit 0; }; exit 1 ;;
  *) sed -n '2,27p' "$0" >&2; exit 2 ;;
esac
