#!/usr/bin/env bash
# Side-by-side benchmark: chatd (embedded mode, durable SQLite storage) against the Node.js +
# Socket.IO 4 reference (bench/reference, in memory), one after the other on this machine, each
# server pinned to core 0 and the load generator to core 1. Writes docs/PERFORMANCE.md (the
# machine, versions, commands, raw RESULT lines and a side-by-side table).
#
#   bench/compare.sh                  # full run: 10 s per dm scenario, 19,000 idle connections
#   bench/compare.sh --quick          # 5 s per scenario, 2,000 idle connections
#   bench/compare.sh --duration 30 --idle-connections 10000 --out /tmp/perf.md
#
# Flags: --quick, --duration S, --warmup S, --users N (dm users, even), --window W (closed loop),
#        --idle-connections N (both servers), --idle-users N, --hold S (idle hold time),
#        --server-core C, --load-core C, --chatd-threads N (chatd --threads, default 1: it has one core),
#        --fixed-rate R (one more open-loop run of each server at R msg/s, default 10000: a rate
#        both sustain on this machine, where half of chatd's max may not be; 0 skips it),
#        --skip-idle, --skip-node, --out FILE, --build (build chatd and chat-bench in build-bench first)
# Binaries: $CHATD_BIN (default build/bin/chatd), $CHAT_BENCH_BIN (default build/bin/chat-bench,
#           else build-bench/bin/chat-bench); both are built in build-bench (Release) when missing.
#           chat-fsync-bench and chat-wake-bench next to chat-bench, when there, first measure
#           the platform: a journal-sized write+fdatasync and a wake-up across the two cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10
WARMUP=2
USERS=200
WINDOW=8
IDLE_CONNECTIONS=19000
IDLE_USERS=100
HOLD=30
SERVER_CORE=0
LOAD_CORE=1
CHATD_THREADS=1
FIXED_RATE=10000
SKIP_IDLE=0
SKIP_NODE=0
BUILD=0
OUT="$ROOT/docs/PERFORMANCE.md"
ARGS_GIVEN="$*"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=5; WARMUP=1; IDLE_CONNECTIONS=2000; HOLD=10 ;;
    --duration) DURATION="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --users) USERS="$2"; shift ;;
    --window) WINDOW="$2"; shift ;;
    --idle-connections) IDLE_CONNECTIONS="$2"; shift ;;
    --idle-users) IDLE_USERS="$2"; shift ;;
    --hold) HOLD="$2"; shift ;;
    --server-core) SERVER_CORE="$2"; shift ;;
    --load-core) LOAD_CORE="$2"; shift ;;
    --chatd-threads) CHATD_THREADS="$2"; shift ;;
    --fixed-rate) FIXED_RATE="$2"; shift ;;
    --skip-idle) SKIP_IDLE=1 ;;
    --skip-node) SKIP_NODE=1 ;;
    --build) BUILD=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[compare] %s\n' "$*" >&2; }
# Every process started below inherits this shell's scheduler time slice: make it the kernel's
# default, whatever the launching shell had (docs/PERFORMANCE.md, "Sixteenth session").
python3 "$ROOT/bench/sched_slice.py" 0 $$ >/dev/null || true

# ---- binaries ------------------------------------------------------------------------------------
CHATD="${CHATD_BIN:-$ROOT/build/bin/chatd}"
BENCH="${CHAT_BENCH_BIN:-}"
if [ -z "$BENCH" ]; then
  if [ -x "$ROOT/build/bin/chat-bench" ]; then BENCH="$ROOT/build/bin/chat-bench"; else BENCH="$ROOT/build-bench/bin/chat-bench"; fi
fi
if [ "$BUILD" = 1 ] || [ ! -x "$CHATD" ] || [ ! -x "$BENCH" ]; then
  log "building chatd and chat-bench (Release) in build-bench"
  cmake -G Ninja -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$ROOT/build-bench" chatd chat-bench chat-fsync-bench chat-wake-bench
  [ -x "$CHATD" ] && [ "$BUILD" = 0 ] || CHATD="$ROOT/build-bench/bin/chatd"
  BENCH="$ROOT/build-bench/bin/chat-bench"
fi

# ---- the Node reference's dependencies (from the committed lockfile) --------------------------------
REF="$ROOT/bench/reference"
if [ "$SKIP_NODE" = 0 ]; then
  if [ ! -f "$REF/node_modules/.package-lock.json" ] || [ "$REF/package-lock.json" -nt "$REF/node_modules/.package-lock.json" ]; then
    log "npm ci in bench/reference"
    (cd "$REF" && npm ci --no-audit --no-fund >/dev/null)
  fi
fi

WORK="$(mktemp -d /tmp/chat-compare-XXXXXX)"
RESULTS="$WORK/results.jsonl"
COMMANDS="$WORK/commands.txt"
: >"$RESULTS"
: >"$COMMANDS"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# Starts a server pinned to SERVER_CORE; sets SERVER_PID and SERVER_URL. $1 = name, rest = argv.
start_server() {
  local name="$1"; shift
  local logf="$WORK/$name.log"
  taskset -c "$SERVER_CORE" "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  local port=""
  for _ in $(seq 1 200); do
    port="$(grep -oE 'listening on http://[^ :]+:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)"
    [ -n "$port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logf" >&2; echo "compare.sh: $name did not start" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$port" ] || { echo "compare.sh: $name did not print its port" >&2; exit 1; }
  SERVER_URL="http://127.0.0.1:$port"
  echo "# $name: taskset -c $SERVER_CORE $*" | sed "s|$WORK|\$WORK|g" >>"$COMMANDS"
  log "$name pid $SERVER_PID on $SERVER_URL"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Runs chat-bench pinned to LOAD_CORE; appends its RESULT line (tagged with the case) to RESULTS.
# $1 = case name, rest = chat-bench arguments. Echoes the RESULT json.
run_bench() {
  local case_name="$1"; shift
  local out="$WORK/$case_name.out"
  echo "taskset -c $LOAD_CORE chat-bench $* --threads 1" | sed "s|$WORK|\$WORK|g" >>"$COMMANDS"
  log "$case_name: chat-bench $*"
  set +e
  taskset -c "$LOAD_CORE" "$BENCH" "$@" --threads 1 >"$out" 2>"$WORK/$case_name.err"
  local rc=$?
  set -e
  grep -v '^RESULT ' "$out" >&2 || true
  local line
  line="$(grep '^RESULT ' "$out" | head -1 | cut -c8-)"
  if [ -z "$line" ]; then
    cat "$WORK/$case_name.err" >&2
    echo "compare.sh: $case_name produced no RESULT line (exit $rc)" >&2
    line='{"ok":false,"error":"no result"}'
  fi
  printf '{"case":"%s","exit":%d,"result":%s}\n' "$case_name" "$rc" "$line" >>"$RESULTS"
  printf '%s\n' "$line"
}

json_field() { node -e 'const v=JSON.parse(process.argv[1]); const k=process.argv[2].split("."); let x=v; for (const p of k) x=x?.[p]; console.log(x ?? "")' "$1" "$2"; }

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average before: $LOAD_BEFORE (results from a busy machine are worse)"

# ---- the platform ---------------------------------------------------------------------------------------
# What a durable commit and a cross-core wake-up cost here: both are in every chatd figure below
# (and wake-ups in Node's), and in a virtual machine both can cost ten times what they do on bare
# metal. Tagged like a case; report.mjs shows them under the machine.
run_probe() {
  local case_name="$1" bin="$2"; shift 2
  if [ ! -x "$bin" ]; then log "$case_name: $bin not built, skipped"; return 0; fi
  echo "$*" | sed "s|$WORK|\$WORK|g" >>"$COMMANDS"
  log "$case_name: $*"
  local line
  line="$("$@" 2>"$WORK/$case_name.err" | grep '^RESULT ' | head -1 | cut -c8-)" || true
  [ -n "$line" ] || { log "$case_name: no RESULT line"; return 0; }
  printf '{"case":"%s","exit":0,"result":%s}\n' "$case_name" "$line" >>"$RESULTS"
}
PROBE_DIR="$(dirname "$BENCH")"
run_probe platform_fsync "$PROBE_DIR/chat-fsync-bench" taskset -c "$SERVER_CORE" "$PROBE_DIR/chat-fsync-bench" \
  --writes 2000 --bytes 2500 --interval-us 500 --dir "$WORK/fsync"
run_probe platform_wake "$PROBE_DIR/chat-wake-bench" "$PROBE_DIR/chat-wake-bench" --cores "$SERVER_CORE,$LOAD_CORE"

DM_ARGS=(--users "$USERS" --duration "$DURATION" --warmup "$WARMUP" --signup-concurrency 8)
IDLE_ARGS=(--connections "$IDLE_CONNECTIONS" --users "$IDLE_USERS" --hold "$HOLD" --procs 2 --source-addrs 127.0.0.1+4
           --connect-concurrency 128)

# ---- chatd --------------------------------------------------------------------------------------------
start_server chatd "$CHATD" --host 127.0.0.1 --port 0 --data-dir "$WORK/chatd-data" --threads "$CHATD_THREADS" \
  --rate-limit-auth off --rate-limit-api off --rate-limit-messages off --log-level info
CHATD_USERS="$WORK/chatd-users.txt"
r="$(run_bench chatd_dm_max dm --url "$SERVER_URL" --label chatd --users-file "$CHATD_USERS" --server-pid "$SERVER_PID" \
  "${DM_ARGS[@]}" --window "$WINDOW")"
CHATD_MAX="$(json_field "$r" acked_per_s)"
HALF="$(node -e 'console.log(Math.max(1, Math.round(Number(process.argv[1]) / 2)))' "${CHATD_MAX:-0}")"
log "chatd max $CHATD_MAX msg/s: open loop at $HALF msg/s"
run_bench chatd_dm_half dm --url "$SERVER_URL" --label chatd --users-file "$CHATD_USERS" --server-pid "$SERVER_PID" \
  "${DM_ARGS[@]}" --rate "$HALF" >/dev/null
if [ "$FIXED_RATE" != 0 ]; then
  run_bench chatd_dm_fixed dm --url "$SERVER_URL" --label chatd --users-file "$CHATD_USERS" --server-pid "$SERVER_PID" \
    "${DM_ARGS[@]}" --rate "$FIXED_RATE" >/dev/null
fi
stop_server
if [ "$SKIP_IDLE" = 0 ]; then
  # A fresh process, so the RSS per connection is not mixed with the dm runs' caches; and
  # without the web client: loading (and compressing) it frees ~15 MB at start that stays
  # resident, which the connections would then reuse unseen (one binary, fifth session: 3.87
  # KiB per connection with the web client loaded, 4.4-4.9 KiB without).
  start_server chatd "$CHATD" --host 127.0.0.1 --port 0 --data-dir "$WORK/chatd-data" --threads "$CHATD_THREADS" \
    --rate-limit-auth off --rate-limit-api off --rate-limit-messages off --log-level info \
    --web-dir "$WORK/no-web-client"
  run_bench chatd_idle idle --url "$SERVER_URL" --label chatd --users-file "$CHATD_USERS" --server-pid "$SERVER_PID" \
    "${IDLE_ARGS[@]}" >/dev/null
  stop_server
fi

# ---- the Node reference -----------------------------------------------------------------------------
if [ "$SKIP_NODE" = 0 ]; then
  start_server node node "$REF/server.js" --host 127.0.0.1 --port 0
  NODE_USERS="$WORK/node-users.txt"
  r="$(run_bench node_dm_max dm --url "$SERVER_URL" --label node --users-file "$NODE_USERS" --server-pid "$SERVER_PID" \
    "${DM_ARGS[@]}" --window "$WINDOW")"
  NODE_MAX="$(json_field "$r" acked_per_s)"
  run_bench node_dm_half dm --url "$SERVER_URL" --label node --users-file "$NODE_USERS" --server-pid "$SERVER_PID" \
    "${DM_ARGS[@]}" --rate "$HALF" >/dev/null
  NODE_HALF="$(node -e 'console.log(Math.max(1, Math.round(Number(process.argv[1]) / 2)))' "${NODE_MAX:-0}")"
  run_bench node_dm_half_own dm --url "$SERVER_URL" --label node --users-file "$NODE_USERS" --server-pid "$SERVER_PID" \
    "${DM_ARGS[@]}" --rate "$NODE_HALF" >/dev/null
  if [ "$FIXED_RATE" != 0 ]; then
    run_bench node_dm_fixed dm --url "$SERVER_URL" --label node --users-file "$NODE_USERS" --server-pid "$SERVER_PID" \
      "${DM_ARGS[@]}" --rate "$FIXED_RATE" >/dev/null
  fi
  stop_server
  if [ "$SKIP_IDLE" = 0 ]; then
    start_server node node "$REF/server.js" --host 127.0.0.1 --port 0
    # The reference keeps users in memory: sign them up again in the fresh process.
    rm -f "$NODE_USERS"
    run_bench node_idle idle --url "$SERVER_URL" --label node --users-file "$NODE_USERS" --server-pid "$SERVER_PID" \
      "${IDLE_ARGS[@]}" >/dev/null
    stop_server
  fi
fi

# ---- the report -----------------------------------------------------------------------------------------
CHATD_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain -- src apps/chatd CMakeLists.txt 2>/dev/null)" ]; then CHATD_COMMIT="$CHATD_COMMIT+local changes"; fi
node "$ROOT/bench/report.mjs" \
  --results "$RESULTS" --commands "$COMMANDS" --out "$OUT" \
  --chatd-bin "$CHATD" --bench-bin "$BENCH" --commit "$CHATD_COMMIT" --load-before "$LOAD_BEFORE" \
  --args "${ARGS_GIVEN:-(none)}" --reference "$REF" --server-core "$SERVER_CORE" --load-core "$LOAD_CORE" \
  --chatd-threads "$CHATD_THREADS"
rm -rf "$WORK/chatd-data"
log "wrote $OUT (raw results and logs in $WORK)"
