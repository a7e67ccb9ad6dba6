#!/usr/bin/env bash
# Redis from Debian (redis-server 7.x) on loopback, for tests.
#   redis.sh start         --dir DIR --port PORT [--watch-pid PID] [--persist]
#   redis.sh start-cluster --dir DIR --ports P1,P2,P3 [--node-timeout MS] [--watch-pid PID]
#       a Redis Cluster of 3 masters (no replicas), slots split by `redis-cli --cluster create`;
#       waits until every node reports cluster_state:ok. Re-running it restarts the nodes that are
#       down (their nodes.conf keeps the cluster) and creates nothing twice.
#   redis.sh stop          --dir DIR [--port PORT]   every node under DIR, or just one
#   redis.sh status        --dir DIR
# Pid files: DIR/redis-PORT.pid. Logs: DIR/redis-PORT.log (a cluster node's data: DIR/PORT/).
# Default: no persistence (tests restart Redis to simulate a failure, losing its data like a
# crashed cache would); --persist turns on the append-only file.
set -euo pipefail
svc_name=redis
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; shift || true
dir="" port="" ports="" watch_pid="" persist=no node_timeout=${CHAT_REDIS_NODE_TIMEOUT_MS:-2000}
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --node-timeout) node_timeout=$2; shift 2 ;;
    --watch-pid) watch_pid=$2; shift 2 ;;
    --persist) persist=yes; shift ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$dir" ] || die "--dir is required"
command -v redis-server >/dev/null || die "redis-server not installed: run scripts/install-services.sh"
dir=$(abs_dir "$dir")

ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

# start_node PORT DATADIR EXTRA_ARGS...
start_node() {
  local p=$1 data=$2
  shift 2
  local pidfile=$dir/redis-$p.pid logfile=$dir/redis-$p.log
  if pid_alive "$pidfile"; then
    log "already running on 127.0.0.1:$p (pid $(cat "$pidfile"))"
    return 0
  fi
  require_port_free "$p"
  mkdir -p "$data"
  local t0; t0=$(now_ms)
  spawn "$pidfile" "$logfile" redis-server --port "$p" --bind 127.0.0.1 --dir "$data" \
    --daemonize no --save "" --appendonly "$persist" --logfile "" --protected-mode yes \
    --maxclients 10000 "$@"
  # (Stop waiting early if it died: a bind lost to someone else is reported at once.)
  ping_or_dead() { pid_alive "$pidfile" || return 0; ping "$p"; }
  wait_until 15 "redis on port $p" ping_or_dead || true
  if ! pid_alive "$pidfile" || ! ping "$p"; then
    tail_log "$logfile"
    stop_pidfile "$pidfile" 2
    die "redis on port $p did not start"
  fi
  # Whoever answered must be the server just spawned: another one that took the port between
  # require_port_free and the bind (a concurrent test) would answer the ping too.
  local owner
  owner=$(redis-cli -h 127.0.0.1 -p "$p" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
  if [ "$owner" != "$(cat "$pidfile")" ]; then
    stop_pidfile "$pidfile" 2
    die "port $p was taken by another redis (pid ${owner:-?}) while this one started"
  fi
  watch_parent "$watch_pid" "$pidfile" "$0" stop --dir "$dir" --port "$p"
  log "started on 127.0.0.1:$p (pid $(cat "$pidfile"), $(($(now_ms) - t0)) ms)"
}

cluster_ok() {
  local p
  for p in "$@"; do
    [[ $(redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null) == *cluster_state:ok* ]] || return 1
  done
}

known_nodes() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p'
}

case $cmd in
  start)
    [ -n "$port" ] || die "--port is required"
    start_node "$port" "$dir"
    ;;
  start-cluster)
    [ -n "$ports" ] || die "--ports P1,P2,P3 is required"
    IFS=, read -r -a plist <<<"$ports"
    ((${#plist[@]} >= 3)) || die "a cluster needs at least 3 masters"
    t0=$(now_ms)
    for p in "${plist[@]}"; do
      start_node "$p" "$dir/$p" --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$node_timeout" --cluster-require-full-coverage yes
    done
    if [ "$(known_nodes "${plist[0]}")" = 1 ]; then
      addrs=()
      for p in "${plist[@]}"; do addrs+=("127.0.0.1:$p"); done
      log "creating the cluster on ${addrs[*]}"
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/cluster-create.log" 2>&1 ||
        { tail_log "$dir/cluster-create.log"; die "redis-cli --cluster create failed"; }
    fi
    wait_until 30 "cluster_state:ok on ${plist[*]}" cluster_ok "${plist[@]}" ||
      die "the cluster did not reach cluster_state:ok"
    log "cluster ok on ports ${plist[*]} ($(($(now_ms) - t0)) ms)"
    ;;
  stop)
    if [ -n "$port" ]; then
      stop_pidfile "$dir/redis-$port.pid" 10
    else
      shopt -s nullglob
      for f in "$dir"/redis-*.pid; do stop_pidfile "$f" 10; done
    fi
    ;;
  status)
    shopt -s nullglob
    any=1
    for f in "$dir"/redis-*.pid; do
      pid_alive "$f" && { echo "running: $f (pid $(cat "$f"))"; any=0; }
    done
    exit $any
    ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
