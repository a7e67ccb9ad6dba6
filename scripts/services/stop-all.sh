#!/usr/bin/env bash
# Stops every process started under DIR by the scripts in scripts/services/ (anything with a
# pid file DIR/**/*.pid): TERM to all at once, then KILL what is left after GRACE seconds.
#   stop-all.sh DIR [GRACE_SECONDS (default 30: Kafka's controlled shutdown)]
set -euo pipefail
svc_name=stop-all
. "$(dirname "$0")/lib.sh"
dir=${1:?usage: stop-all.sh DIR [GRACE_SECONDS]}
grace=${2:-30}
[ -d "$dir" ] || exit 0
mapfile -t files < <(find "$dir" -name '*.pid' -type f 2>/dev/null)
pids=()
for f in "${files[@]}"; do
  if pid_alive "$f"; then
    pids+=("$(cat "$f")")
    kill -TERM "${pids[-1]}" 2>/dev/null || true
  else
    rm -f "$f"
  fi
done
((${#pids[@]})) || exit 0
log "stopping ${#pids[@]} process(es) under $dir: ${pids[*]}"
alive() {
  local p
  for p in "${pids[@]}"; do proc_alive "$p" && return 0; done
  return 1
}
deadline=$(($(date +%s) + grace))
while alive && (($(date +%s) < deadline)); do sleep 0.1; done
for p in "${pids[@]}"; do
  if proc_alive "$p"; then
    log "pid $p did not stop in ${grace}s: KILL"
    kill -KILL "$p" 2>/dev/null || true
  fi
done
for f in "${files[@]}"; do rm -f "$f"; done
