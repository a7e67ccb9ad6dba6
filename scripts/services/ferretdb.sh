#!/usr/bin/env bash
# FerretDB v1.24 with its SQLite backend: a MongoDB-wire-compatible server on loopback, for tests.
# The binary comes from scripts/install-services.sh ($CHAT_SERVICES_CACHE/bin/ferretdb).
#   ferretdb.sh start  --dir DIR --port PORT [--watch-pid PID] [--log-level warn]
#       listens on 127.0.0.1:PORT (MONGODB_URI=mongodb://127.0.0.1:PORT/<db>), one SQLite file
#       per database in DIR/data/, no authentication, telemetry off, no debug HTTP listener.
#       Ready when {ping: 1} answers ok (scripts/services/mongo_ping.py).
#       Restarting with the same DIR keeps the data (the fault tests stop it for a while).
#   ferretdb.sh stop   --dir DIR
#   ferretdb.sh status --dir DIR
# Pid file DIR/ferretdb.pid; log DIR/ferretdb.log.
set -euo pipefail
svc_name=ferretdb
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; shift || true
dir="" port="" watch_pid="" level=${CHAT_FERRETDB_LOG_LEVEL:-warn}
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --watch-pid) watch_pid=$2; shift 2 ;;
    --log-level) level=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$dir" ] || die "--dir is required"
dir=$(abs_dir "$dir")
pidfile=$dir/ferretdb.pid
bin=$CHAT_SERVICES_CACHE/bin/ferretdb

ready() {
  if command -v python3 >/dev/null; then python3 "$SERVICES_DIR/mongo_ping.py" "$port"; else port_open "$port"; fi
}

case $cmd in
  start)
    [ -x "$bin" ] || die "FerretDB not installed at $bin: run scripts/install-services.sh ferretdb"
    if [ -z "$port" ] && [ -f "$dir/ferretdb.env" ]; then . "$dir/ferretdb.env"; port=$PORT; fi
    [ -n "$port" ] || die "--port is required"
    echo "PORT=$port" >"$dir/ferretdb.env"
    if pid_alive "$pidfile"; then
      log "already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
      exit 0
    fi
    require_port_free "$port"
    mkdir -p "$dir/data" "$dir/state"
    t0=$(now_ms)
    spawn "$pidfile" "$dir/ferretdb.log" "$bin" --handler=sqlite --sqlite-url="file:$dir/data/" \
      --listen-addr="127.0.0.1:$port" --state-dir="$dir/state" --debug-addr=- \
      --telemetry=disable --log-level="$level" --log-format=text
    # (Stop waiting early if the process died.)
    ready_or_dead() { pid_alive "$pidfile" || return 0; ready; }
    wait_until 20 "FerretDB ping on 127.0.0.1:$port" ready_or_dead || true
    if ! pid_alive "$pidfile" || ! ready; then
      tail_log "$dir/ferretdb.log"
      stop_pidfile "$pidfile" 3
      die "FerretDB did not start"
    fi
    watch_parent "$watch_pid" "$pidfile" "$0" stop --dir "$dir"
    log "started on 127.0.0.1:$port (pid $(cat "$pidfile"), $(($(now_ms) - t0)) ms)"
    ;;
  stop) stop_pidfile "$pidfile" 10 ;;
  status) pid_alive "$pidfile" && { echo "running (pid $(cat "$pidfile"))"; exit 0; }; exit 1 ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
