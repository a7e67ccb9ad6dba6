#!/usr/bin/env bash
# Prometheus from Debian (2.42) on loopback, for the test that scrapes live chatd/chat-worker
# processes with the shipped deploy/prometheus.yml.
#   prometheus.sh start --dir DIR --port PORT [--config deploy/prometheus.yml]
#                       [--map chatd1:5000=127.0.0.1:5001,worker1:9100=127.0.0.1:9101,...]
#                       [--watch-pid PID]
#       copies the config to DIR/prometheus.yml, replacing each compose address FROM by the local
#       TO of --map (plain text replacement), checks it with promtool, and starts Prometheus with
#       its TSDB in DIR/data and --web.enable-lifecycle. Ready when GET /-/ready answers 200.
#   prometheus.sh stop   --dir DIR
#   prometheus.sh status --dir DIR
#   Query: curl -s 'http://127.0.0.1:PORT/api/v1/query?query=up'
# Pid file DIR/prometheus.pid; log DIR/prometheus.log.
set -euo pipefail
svc_name=prometheus
. "$(dirname "$0")/lib.sh"

cmd=${1:-}; shift || true
dir="" port="" config="" map="" watch_pid=""
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --map) map=$2; shift 2 ;;
    --watch-pid) watch_pid=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$dir" ] || die "--dir is required"
dir=$(abs_dir "$dir")
pidfile=$dir/prometheus.pid
config=${config:-$SERVICES_DIR/../../deploy/prometheus.yml}

ready() { curl -fsS --max-time 1 "http://127.0.0.1:$port/-/ready" >/dev/null; }

case $cmd in
  start)
    command -v prometheus >/dev/null || die "prometheus not installed: run scripts/install-services.sh"
    [ -n "$port" ] || die "--port is required"
    if pid_alive "$pidfile"; then
      log "already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
      exit 0
    fi
    require_port_free "$port"
    [ -f "$config" ] || die "no config $config"
    cp "$config" "$dir/prometheus.yml"
    if [ -n "$map" ]; then
      IFS=, read -r -a pairs <<<"$map"
      for pair in "${pairs[@]}"; do
        from=${pair%%=*} to=${pair#*=}
        [ -n "$from" ] && [ -n "$to" ] && [ "$from" != "$pair" ] || die "--map wants FROM=TO pairs"
        grep -qF -- "$from" "$dir/prometheus.yml" || die "--map: $from is not in $config"
        python3 - "$dir/prometheus.yml" "$from" "$to" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read().replace(old, new)
open(path, "w").write(text)
PY
      done
    fi
    promtool check config "$dir/prometheus.yml" >"$dir/promtool.log" 2>&1 ||
      { tail_log "$dir/promtool.log"; die "promtool rejected $dir/prometheus.yml"; }
    mkdir -p "$dir/data"
    t0=$(now_ms)
    spawn "$pidfile" "$dir/prometheus.log" prometheus --config.file="$dir/prometheus.yml" \
      --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$port" \
      --web.enable-lifecycle --storage.tsdb.retention.time=1d
    ready_or_dead() { pid_alive "$pidfile" || return 0; ready; }
    wait_until 30 "GET /-/ready on 127.0.0.1:$port" ready_or_dead || true
    if ! pid_alive "$pidfile" || ! ready; then
      tail_log "$dir/prometheus.log"
      stop_pidfile "$pidfile" 3
      die "Prometheus did not start"
    fi
    watch_parent "$watch_pid" "$pidfile" "$0" stop --dir "$dir"
    log "started on 127.0.0.1:$port (pid $(cat "$pidfile"), $(($(now_ms) - t0)) ms)"
    ;;
  stop) stop_pidfile "$pidfile" 10 ;;
  status) pid_alive "$pidfile" && { echo "running (pid $(cat "$pidfile"))"; exit 0; }; exit 1 ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
