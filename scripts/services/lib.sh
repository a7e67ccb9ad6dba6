# Shared helpers for scripts/services/*.sh (sourced, not run).
# Conventions of every service script:
#   <svc>.sh start --dir DIR [options]   starts in the background, waits until usable, prints a line
#   <svc>.sh stop  --dir DIR             TERM, then KILL after a grace period; no error if not running
#   <svc>.sh status --dir DIR            exit 0 if running
# Everything a service writes (config, data, logs, pid file) stays under DIR; pid files are named
# DIR/*.pid so that stop-all.sh can find them. Starting an already running service is a no-op.
# Binaries come from Debian (redis, nginx, prometheus) or from the cache filled by
# scripts/install-services.sh (CHAT_SERVICES_CACHE, default ~/.cache/chatd).

CHAT_SERVICES_CACHE=${CHAT_SERVICES_CACHE:-$HOME/.cache/chatd}
CHAT_KAFKA_VERSION=${CHAT_KAFKA_VERSION:-3.9.2}
CHAT_FERRETDB_VERSION=${CHAT_FERRETDB_VERSION:-v1.24.2}
SERVICES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

svc_name=${svc_name:-$(basename "$0" .sh)}

log() { echo "[$svc_name] $*" >&2; }
die() { echo "[$svc_name] error: $*" >&2; exit 1; }

now_ms() { date +%s%3N; }

# abs_dir DIR: creates DIR and prints its absolute path.
abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

# proc_alive PID: exit 0 if PID runs. A zombie (an exited service whose adoptive parent has not
# reaped it yet) still answers kill -0, so it counts as dead.
proc_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]
}

# pid_alive PIDFILE: exit 0 if the file names a live process.
pid_alive() {
  local f=$1 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  proc_alive "$pid"
}

# stop_pidfile PIDFILE [GRACE_SECONDS]: TERM, wait, KILL; removes the pid file.
stop_pidfile() {
  local f=$1 grace=${2:-20} pid i
  if ! pid_alive "$f"; then rm -f "$f"; return 0; fi
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    proc_alive "$pid" || break
    sleep 0.1
  done
  if proc_alive "$pid"; then
    log "pid $pid did not stop in ${grace}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$f"
}

# port_open PORT [HOST]: exit 0 if something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# wait_until TIMEOUT_SECONDS DESCRIPTION CMD...: polls CMD every 0.1 s.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.1
  done
}

# require_port_free PORT: refuses to start on a port someone else holds.
require_port_free() {
  if port_open "$1"; then die "port $1 is already in use"; fi
}

# spawn PIDFILE LOGFILE CMD...: runs CMD detached (own session, stdin closed), writes its pid.
# The command must not fork away (run services in the foreground, exec'd).
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  echo $! >"$pidfile"
}

# watch_parent PARENT_PID PIDFILE STOP_CMD...: when PARENT_PID exits while the service of PIDFILE
# still runs, runs STOP_CMD (so a crashed test runner leaves no service behind). The watcher is
# detached and ends with the service.
watch_parent() {
  local parent=$1 pidfile=$2 svc_pid
  shift 2
  [ -n "$parent" ] || return 0
  kill -0 "$parent" 2>/dev/null || die "--watch-pid $parent: no such process"
  svc_pid=$(cat "$pidfile")
  setsid bash -c '
    parent=$1 svc=$2 pidfile=$3; shift 3
    while kill -0 "$parent" 2>/dev/null; do
      kill -0 "$svc" 2>/dev/null || exit 0
      sleep 1
    done
    # The pid file gone (the test removed its temp dir) cannot tell a reused pid apart: the
    # service is still ours if it is still alive, since the loop above just saw it.
    if [ ! -e "$pidfile" ]; then kill "$svc" 2>/dev/null; exit 0; fi
    [ "$(cat "$pidfile" 2>/dev/null)" = "$svc" ] && exec "$@"' \
    watcher "$parent" "$svc_pid" "$pidfile" "$@" </dev/null >/dev/null 2>&1 &
}

# tail_log FILE: the last lines of a log, to explain a failed start.
tail_log() { [ -f "$1" ] && tail -n "${2:-30}" "$1" | sed "s/^/[$svc_name]   /" >&2 || true; }

# free_ports N [OFFSET]: prints N distinct TCP ports on 127.0.0.1 that nothing listens on now
# (with OFFSET, port+OFFSET neither: a Redis Cluster node's bus port is port+10000), drawn at random
# below the kernel's ephemeral range: that range is where outgoing connections take their local
# port, and one could take a port from there before the service meant for it binds.
free_ports() {
  local n=$1 off=${2:-0} low p i taken=" " ports=()
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  ((low >= 12000)) || low=32768
  for ((i = 0; i < 1000 && ${#ports[@]} < n; i++)); do
    p=$((10000 + RANDOM % (low - 10000 - off)))
    [[ $taken == *" $p "* || $taken == *" $((p + off)) "* ]] && continue
    port_open "$p" && continue
    ((off == 0)) || ! port_open "$((p + off))" || continue
    taken+="$p $((p + off)) "
    ports+=("$p")
  done
  echo "${ports[*]}"
  ((${#ports[@]} == n))
}

# free_port: one of free_ports.
free_port() { free_ports 1; }
