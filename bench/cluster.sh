#!/usr/bin/env bash
# Cluster-mode benchmark (issue 6: "cross-instance delivery p99 ≤ 5 ms at half of maximum rate; the
# worker's sustained rate into the MongoDB-wire store, and what bounds it"). Starts natively on
# loopback, in a temp dir, Redis, Kafka 3.9 (one KRaft node), FerretDB (SQLite backend), two chatd
# in cluster mode (A and B) and one chat-worker; then
#   1. chat-bench cluster, closed loop (senders on A, receivers on B): the maximum rate;
#   2. chat-bench cluster, open loop at half of the acked rate of 1: the latencies;
#   3. (--rates) more open-loop runs at fixed rates;
#   4. the half-rate run again with chat-worker stopped (the latency without the database's load;
#      it also leaves a backlog);
#   5. a fresh chat-worker drains the backlog: chat_worker_written_total sampled every second until
#      the consumer lag is 0, --drain-max, or 30 s without progress (stalled), with the worker's
#      write-duration and batch-size histograms and the CPU of every process; then the messages
#      collection is counted: it must hold exactly as many documents as chat-bench had acked.
# Around each run the chatd and worker /metrics are scraped (Kafka produce→ack and creation→fan-out
# histograms of chatd A, bus counters, worker histograms) and the CPU of every process (Kafka's
# per JVM thread group) is read from /proc.
# Prints the figures and one line `RESULT {json}`. Nothing is asserted: it is a measurement.
#
#   bench/cluster.sh                       # ~2-3 minutes
#   bench/cluster.sh --duration 5 --users 100
#
# Flags: --duration S (per chat-bench run, default 10), --warmup S (2), --users N (even, 200),
#        --window W (closed loop, 8), --chatd-threads N (each chatd's --threads, default 1),
#        --chatd-thread-slice D (each chatd's --thread-slice, default: chatd's own, 100us; 0: the
#        kernel's default slice, to compare),
#        --drain-max S (60),
#        --rates "R1 R2" (extra open-loop runs at these rates, after the half-rate run),
#        --batch-max N (chat-worker BATCH_MAX, default: the worker's own, 500),
#        --pin (services + worker on core 0, chatd A/B on core 1, chat-bench on core 1; default:
#        nothing pinned, everything shares both cores),
#        --db-nice N (FerretDB and chat-worker at nice N, an experiment: does a lower priority for the
#        database's catch-up keep it from delaying delivery? Here it does not, docs/PERFORMANCE.md
#        "Eleventh session"; default: all at nice 0),
#        --service-slice US (every thread of Redis and of the Kafka broker asks the scheduler for a
#        time slice of US µs once all is started, as chatd's own threads do with --thread-slice;
#        bench/sched_slice.py; an experiment, docs/PERFORMANCE.md "Sixteenth session"; needs
#        Linux >= 6.12; default: the kernel's slice, which the script gives its own shell first,
#        so that every process it starts has it),
#        --mark-read (receivers send a markRead for every message delivered, as the web client
#        does with the conversation open: chat-bench --mark-read; the report adds the markRead
#        events chatd B received, the read positions it wrote and the messagesRead events back,
#        and at the end each reader's position against its conversation's newest message),
#        --keep (keep the temp dir)
# Binaries: $CHATD_BIN, $CHAT_WORKER_BIN, $CHAT_BENCH_BIN (default build/bin/*).
# Services: scripts/services/{redis,kafka,ferretdb}.sh (scripts/install-services.sh installs them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10
WARMUP=2
USERS=200
WINDOW=8
CHATD_THREADS=1
CHATD_SLICE=""
DRAIN_MAX=60
PIN=0
DB_NICE=0
SERVICE_SLICE=""
KEEP=0
MARK_READ=0
RATES=""
BATCH_MAX=""
ARGS_GIVEN="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --users) USERS="$2"; shift ;;
    --window) WINDOW="$2"; shift ;;
    --chatd-threads) CHATD_THREADS="$2"; shift ;;
    --chatd-thread-slice) CHATD_SLICE="$2"; shift ;;
    --drain-max) DRAIN_MAX="$2"; shift ;;
    --rates) RATES="$2"; shift ;;
    --batch-max) BATCH_MAX="$2"; shift ;;
    --pin) PIN=1 ;;
    --db-nice) DB_NICE="$2"; shift ;;
    --service-slice) SERVICE_SLICE="$2"; shift ;;
    --mark-read) MARK_READ=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[cluster-bench] %s\n' "$*" >&2; }
die() { printf '[cluster-bench] error: %s\n' "$*" >&2; exit 1; }
[[ -z "$SERVICE_SLICE" || "$SERVICE_SLICE" =~ ^[0-9]+$ ]] || die "--service-slice takes microseconds (an integer)"
# Every process started below inherits this shell's scheduler time slice: make it the kernel's
# default, whatever the launching shell had (docs/PERFORMANCE.md, "Sixteenth session").
python3 "$ROOT/bench/sched_slice.py" 0 $$ >/dev/null || true

CHATD="${CHATD_BIN:-$ROOT/build/bin/chatd}"
WORKER="${CHAT_WORKER_BIN:-$ROOT/build/bin/chat-worker}"
BENCH="${CHAT_BENCH_BIN:-$ROOT/build/bin/chat-bench}"
for b in "$CHATD" "$WORKER" "$BENCH"; do [ -x "$b" ] || die "$b not built"; done
SVC="$ROOT/scripts/services"
# free_ports, port_open (the services' helpers).
# shellcheck source=../scripts/services/lib.sh
. "$SVC/lib.sh"

WORK="$(mktemp -d /tmp/chat-cluster-bench-XXXXXX)"
PIDS=()        # chatd A, chatd B, worker (ours, killed by pid at exit)
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  # chatd's shutdown runs every queued blocking task; with a stuck database that takes minutes.
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && { log "pid $p still running 10 s after SIGTERM: SIGKILL"; kill -KILL "$p" 2>/dev/null; }
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${SAMPLER_PID:-}" ] && kill "$SAMPLER_PID" 2>/dev/null
  bash "$SVC/ferretdb.sh" stop --dir "$WORK/ferret" >/dev/null 2>&1
  bash "$SVC/kafka.sh" stop --dir "$WORK/kafka" >/dev/null 2>&1
  bash "$SVC/redis.sh" stop --dir "$WORK/redis" >/dev/null 2>&1
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Where each process runs (taskset prefixes).
if [ "$PIN" = 1 ]; then
  SVC_CPU=(taskset -c 0); CHATD_CPU=(taskset -c 1); BENCH_CPU=(taskset -c 1)
  LAYOUT="Redis, Kafka, FerretDB, chat-worker on core 0; chatd A, chatd B and chat-bench on core 1"
else
  SVC_CPU=(); CHATD_CPU=(); BENCH_CPU=()
  LAYOUT="nothing pinned: all 7 processes share the $(nproc) cores"
fi
# FerretDB and chat-worker: the same cores, at a lower priority with --db-nice.
DB_CPU=("${SVC_CPU[@]}")
if [ "$DB_NICE" != 0 ]; then
  DB_CPU=(nice -n "$DB_NICE" "${DB_CPU[@]}")
  LAYOUT="$LAYOUT; FerretDB and chat-worker at nice $DB_NICE"
fi

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
START_UTC="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain -- src apps CMakeLists.txt 2>/dev/null)" ]; then COMMIT="$COMMIT+local changes"; fi
log "machine: $(nproc) cores, load average $LOAD_BEFORE; commit $COMMIT; work dir $WORK"
log "layout: $LAYOUT"

# ---- services -------------------------------------------------------------------------------------
T0=$(now_ms)
read -r REDIS_PORT KAFKA_PORT KAFKA_CPORT FERRET_PORT A_PORT B_PORT W_PORT <<<"$(free_ports 7)"
mkdir -p "$WORK/redis" "$WORK/kafka" "$WORK/ferret" "$WORK/a" "$WORK/b" "$WORK/w"
"${SVC_CPU[@]}" bash "$SVC/redis.sh" start --dir "$WORK/redis" --port "$REDIS_PORT" --watch-pid $$ 2>>"$WORK/services.log" \
  || { cat "$WORK/services.log" >&2; die "redis did not start"; }
"${DB_CPU[@]}" bash "$SVC/ferretdb.sh" start --dir "$WORK/ferret" --port "$FERRET_PORT" --watch-pid $$ 2>>"$WORK/services.log" \
  || { cat "$WORK/services.log" >&2; die "ferretdb did not start"; }
"${SVC_CPU[@]}" bash "$SVC/kafka.sh" start --dir "$WORK/kafka" --port "$KAFKA_PORT" --controller-port "$KAFKA_CPORT" \
  --partitions 6 --watch-pid $$ 2>>"$WORK/services.log" \
  || { cat "$WORK/services.log" >&2; die "kafka did not start"; }
log "services up in $(($(now_ms) - T0)) ms (redis :$REDIS_PORT, kafka :$KAFKA_PORT, ferretdb :$FERRET_PORT)"
REDIS_PID=$(cat "$WORK/redis/redis-$REDIS_PORT.pid")
KAFKA_PID=$(cat "$WORK/kafka/kafka.pid")
FERRET_PID=$(cat "$WORK/ferret/ferretdb.pid")

MONGODB_URI="mongodb://127.0.0.1:$FERRET_PORT/bench"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
KAFKA_TOPIC="bench-messages"
JWT_SECRET="cluster-bench-secret-0123456789abcdef"

# wait_line LOGFILE REGEX PID NAME: until LOGFILE matches (or PID dies / 60 s).
wait_line() {
  local f=$1 re=$2 pid=$3 name=$4 i
  for i in $(seq 1 600); do
    grep -qE "$re" "$f" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -30 "$f" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  tail -30 "$f" >&2
  die "$name did not start within 60 s"
}

# start_chatd NAME PORT: chatd in cluster mode, its cwd a fresh dir (no .env picked up).
start_chatd() {
  local name=$1 port=$2 dir="$WORK/$1"
  (cd "$dir" && exec env -i PATH="$PATH" HOME="$HOME" \
    MONGODB_URI="$MONGODB_URI" REDIS_URL="$REDIS_URL" KAFKA_BROKERS="$KAFKA_BROKERS" KAFKA_TOPIC="$KAFKA_TOPIC" \
    JWT_SECRET="$JWT_SECRET" INSTANCE_ID="bench-$name" \
    "${CHATD_CPU[@]}" "$CHATD" --host 127.0.0.1 --port "$port" --data-dir "$dir/data" --threads "$CHATD_THREADS" \
    ${CHATD_SLICE:+--thread-slice "$CHATD_SLICE"} --rate-limit-auth off --rate-limit-api off --rate-limit-messages off --log-level warn \
    >"$dir/chatd.log" 2>&1) &
  PIDS+=($!)
  eval "${name^^}_PID=$!"
  echo "cd \$WORK/$name && MONGODB_URI=$MONGODB_URI REDIS_URL=$REDIS_URL KAFKA_BROKERS=$KAFKA_BROKERS KAFKA_TOPIC=$KAFKA_TOPIC JWT_SECRET=… INSTANCE_ID=bench-$name ${CHATD_CPU[*]} chatd --host 127.0.0.1 --port $port --data-dir \$WORK/$name/data --threads $CHATD_THREADS${CHATD_SLICE:+ --thread-slice $CHATD_SLICE} --rate-limit-auth off --rate-limit-api off --rate-limit-messages off --log-level warn" \
    | sed 's/^ *//' >>"$WORK/commands.txt"
}

# --log-level warn hides the "listening" line: wait for /healthz instead.
wait_http() {
  local url=$1 pid=$2 name=$3 log=$4 i
  for i in $(seq 1 600); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -30 "$log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  tail -30 "$log" >&2
  die "$name did not answer $url within 60 s"
}

start_worker() {
  (cd "$WORK/w" && exec env -i PATH="$PATH" HOME="$HOME" \
    MONGODB_URI="$MONGODB_URI" KAFKA_BROKERS="$KAFKA_BROKERS" KAFKA_TOPIC="$KAFKA_TOPIC" KAFKA_GROUP=bench-worker \
    METRICS_HOST=127.0.0.1 METRICS_PORT="$W_PORT" LOG_LEVEL=warn ${BATCH_MAX:+BATCH_MAX=$BATCH_MAX} \
    "${DB_CPU[@]}" "$WORKER" >>"$WORK/w/worker.log" 2>&1) &
  WORKER_PID=$!
  PIDS+=($WORKER_PID)
  wait_http "http://127.0.0.1:$W_PORT/metrics" "$WORKER_PID" chat-worker "$WORK/w/worker.log"
}

start_chatd a "$A_PORT"
wait_http "http://127.0.0.1:$A_PORT/healthz" "$A_PID" "chatd A" "$WORK/a/chatd.log"
start_chatd b "$B_PORT"
wait_http "http://127.0.0.1:$B_PORT/healthz" "$B_PID" "chatd B" "$WORK/b/chatd.log"
start_worker
echo "MONGODB_URI=$MONGODB_URI KAFKA_BROKERS=$KAFKA_BROKERS KAFKA_TOPIC=$KAFKA_TOPIC KAFKA_GROUP=bench-worker METRICS_PORT=$W_PORT ${BATCH_MAX:+BATCH_MAX=$BATCH_MAX }${DB_CPU[*]} chat-worker   # defaults: BATCH_MAX 500, BATCH_WAIT_MS 20" \
  | sed 's/^ *//' >>"$WORK/commands.txt"
log "chatd A :$A_PORT (pid $A_PID), chatd B :$B_PORT (pid $B_PID), chat-worker metrics :$W_PORT (pid $WORKER_PID)"

# ---- sampler: every second, the worker's counters and every process's CPU ticks ---------------------
TOOL="$WORK/tool.py"
cat >"$TOOL" <<'PY'
import json, os, re, sys, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")

def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except Exception:
        return ""

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')

def parse(text):
    """{(name, labels): value}"""
    out = {}
    for l in text.splitlines():
        if not l or l[0] == "#":
            continue
        m = LINE.match(l)
        if m:
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out

def total(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)

def hist(metrics, name):
    """(buckets [(le, cumulative count)], sum, count), labels other than le summed."""
    b = {}
    for (n, lab), v in metrics.items():
        if n == name + "_bucket":
            le = re.search(r'le="([^"]+)"', lab).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            b[le] = b.get(le, 0) + v
    return sorted(b.items()), total(metrics, name + "_sum"), total(metrics, name + "_count")

def hist_delta(m0, m1, name):
    b0, s0, c0 = hist(m0, name)
    b1, s1, c1 = hist(m1, name)
    d0 = dict(b0)
    return [(le, c - d0.get(le, 0)) for le, c in b1], s1 - s0, c1 - c0

def quantile(buckets, count, q):
    """Upper bound of the bucket holding quantile q (Prometheus buckets: an upper bound)."""
    if count <= 0:
        return None
    rank = q * count
    for le, c in buckets:
        if c >= rank:
            return le
    return float("inf")

def hist_summary(m0, m1, name, scale=1.0):
    b, s, c = hist_delta(m0, m1, name)
    if c <= 0:
        return {"count": 0}
    f = lambda x: None if x is None else (None if x == float("inf") else round(x * scale, 3))
    return {"count": int(c), "mean": round(s / c * scale, 3), "p50_le": f(quantile(b, c, .5)),
            "p90_le": f(quantile(b, c, .9)), "p99_le": f(quantile(b, c, .99)),
            "buckets": [[("+Inf" if le == float("inf") else le), int(n)] for le, n in b]}

def cpu_ticks(pid):
    """utime+stime of pid and all its threads, in ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except Exception:
        return None

def sample(pids, worker_url):
    m = parse(scrape(worker_url))
    wb, ws, wc = hist(m, "chat_worker_db_write_duration_seconds")
    bb, bs, bc = hist(m, "chat_worker_batch_size")
    return {"t": time.time(),
            "written": total(m, "chat_worker_written_total"),
            "consumed": total(m, "chat_worker_consumed_total"),
            "lag": total(m, "chat_worker_consumer_lag_messages"),
            "db_errors": total(m, "chat_worker_db_errors_total"),
            "write_s_sum": ws, "write_count": wc, "batch_sum": bs, "batch_count": bc,
            "cpu": {k: cpu_ticks(p) for k, p in pids.items()}}

def thread_groups(pid):
    """utime+stime per thread name with digits dropped (a JVM's C2 compilers, GC, request handlers...)."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    raw = f.read()
                name = re.sub(r"[0-9]+", "#", raw[raw.index("(") + 1:raw.rindex(")")]).strip()
                parts = raw.rsplit(")", 1)[1].split()
                out[name] = out.get(name, 0) + int(parts[11]) + int(parts[12])
            except Exception:
                pass
    except Exception:
        pass
    return out

def cmd_sampler(out, worker_url, *pidspec):
    pids = dict(s.split("=") for s in pidspec)
    with open(out, "a", buffering=1) as f:
        while True:
            f.write(json.dumps(sample(pids, worker_url)) + "\n")
            time.sleep(1.0 - (time.time() % 1.0))

def cmd_snap(out, *urls):
    """Saves name=url scrapes and the CPU ticks of name=pid into one JSON file."""
    snap = {"t": time.time(), "metrics": {}, "cpu": {}}
    for spec in urls:
        k, v = spec.split("=", 1)
        if v.startswith("http"):
            snap["metrics"][k] = scrape(v)
        else:
            snap["cpu"][k] = cpu_ticks(v)
            if k == "kafka":
                snap["kafka_threads"] = thread_groups(v)
    with open(out, "w") as f:
        json.dump(snap, f)

def cmd_field(js, path):
    v = json.loads(js)
    for p in path.split("."):
        v = v.get(p) if isinstance(v, dict) else None
    print("" if v is None else v)

def cmd_count(svc_dir, port, db, coll):
    """Documents in db.coll (the wire protocol's `count` command): prints n."""
    sys.path.insert(0, svc_dir)
    import mongo_ping as wire
    vals = wire.command(int(port), wire.bson_string("count", coll) + wire.bson_string("$db", db), timeout=300)
    if vals.get("ok") != 1 or "n" not in vals:
        sys.exit(f"count: {vals}")
    print(int(vals["n"]))

def cmd_read_positions(svc_dir, port, db):
    """Each receiver's read position (the reads collection) against its conversation's newest
    message: prints one JSON line {receivers, read_positions, at_newest, behind}. One scan of
    the messages' ids (FerretDB 1.24's $group has no $max or $first, and a sorted find per
    receiver scans the collection each time)."""
    sys.path.insert(0, svc_dir)
    import socket
    import mongo_ping as wire
    conn = socket.create_connection(("127.0.0.1", int(port)), timeout=600)  # the cursor's
    def run(elements):
        r = wire.exchange(conn, elements + wire.bson_string("$db", db), whole=True)
        if r.get("ok") != 1:
            sys.exit(f"read positions: {r.get('errmsg')}")
        return r["cursor"]
    newest = {}  # (receiver, sender) → newest message id
    def take(batch):
        for m in batch:
            k = (m.get("receiverId"), m.get("senderId"))
            if m["_id"] > newest.get(k, ""):
                newest[k] = m["_id"]
    proj = wire.bson_document("projection", wire.bson_int32("senderId", 1) + wire.bson_int32("receiverId", 1))
    cur = run(wire.bson_string("find", "messages") + proj + wire.bson_int32("batchSize", 50000))
    take(cur["firstBatch"])
    while cur.get("id"):
        cur = run(wire.bson_int64("getMore", cur["id"]) + wire.bson_string("collection", "messages") +
                  wire.bson_int32("batchSize", 50000))
        take(cur["nextBatch"])
    reads = run(wire.bson_string("find", "reads") + wire.bson_int32("batchSize", 1000000))["firstBatch"]
    position = {d["_id"]: d.get("lastReadId", "") for d in reads}
    out = {"receivers": len(newest), "read_positions": len(reads), "at_newest": 0, "behind": 0}
    for (r, s_), m in newest.items():
        a, b = sorted((r, s_))
        if position.get(f"d:{a}:{b}|{r}", "") >= m:
            out["at_newest"] += 1
        else:
            out["behind"] += 1
    print(json.dumps(out))

def cmd_lag(worker_url):
    m = parse(scrape(worker_url))
    print(int(total(m, "chat_worker_consumer_lag_messages")), int(total(m, "chat_worker_written_total")))

def cpu_pct(s0, s1, names):
    dt = s1["t"] - s0["t"]
    out = {}
    for k in names:
        a, b = s0["cpu"].get(k), s1["cpu"].get(k)
        out[k] = None if a is None or b is None or dt <= 0 else round(100.0 * (b - a) / TICK / dt, 1)
    return out

def phase_stats(work, phase):
    s0 = json.load(open(f"{work}/snap-{phase}-0.json"))
    s1 = json.load(open(f"{work}/snap-{phase}-1.json"))
    m0 = {k: parse(v) for k, v in s0["metrics"].items()}
    m1 = {k: parse(v) for k, v in s1["metrics"].items()}
    ms = 1000.0
    dt = s1["t"] - s0["t"]
    kt0, kt1 = s0.get("kafka_threads", {}), s1.get("kafka_threads", {})
    kth = sorted(((round(100.0 * (v - kt0.get(k, 0)) / TICK / dt, 1), k) for k, v in kt1.items()), reverse=True)
    st = {"seconds": round(dt, 1),
          "cpu_pct": cpu_pct(s0, s1, s0["cpu"].keys()),
          "kafka_threads_cpu_pct": {k: v for v, k in kth[:6] if v > 0},
          "a_kafka_produce_ms": hist_summary(m0["a"], m1["a"], "chat_kafka_produce_duration_seconds", ms),
          "a_fanout_ms": hist_summary(m0["a"], m1["a"], "chat_message_fanout_seconds", ms),
          "a_claim_ms": hist_summary(m0["a"], m1["a"], "chat_bus_claim_duration_seconds", ms),
          "worker_db_write_ms": hist_summary(m0["w"], m1["w"], "chat_worker_db_write_duration_seconds", ms),
          "worker_batch": hist_summary(m0["w"], m1["w"], "chat_worker_batch_size"),
          "worker_written": int(total(m1["w"], "chat_worker_written_total") - total(m0["w"], "chat_worker_written_total")),
          "worker_lag_end": int(total(m1["w"], "chat_worker_consumer_lag_messages")),
          "a_bus_published": int(total(m1["a"], "chat_bus_published_total") - total(m0["a"], "chat_bus_published_total")),
          "b_bus_received": int(total(m1["b"], "chat_bus_received_total") - total(m0["b"], "chat_bus_received_total")),
          "bus_dropped": int(total(m1["a"], "chat_bus_dropped_total") + total(m1["b"], "chat_bus_dropped_total")),
          "kafka_errors": int(total(m1["a"], "chat_kafka_produce_errors_total")),
          "a_unstored_end": int(total(m1["a"], "chat_cluster_unstored_messages")),
          "b_read_marks_received": int(total(m1["b"], "chat_read_marks_received_total") - total(m0["b"], "chat_read_marks_received_total")),
          "b_read_positions_written": int(total(m1["b"], "chat_read_positions_written_total") - total(m0["b"], "chat_read_positions_written_total"))}
    for k in ("a_kafka_produce_ms", "a_fanout_ms", "a_claim_ms", "worker_db_write_ms"):
        st[k].pop("buckets", None)
    if not s0["metrics"].get("w") or not s1["metrics"].get("w"):  # the worker was stopped
        for k in ("worker_db_write_ms", "worker_batch", "worker_written", "worker_lag_end"):
            st[k] = None
    return st

def drain_stats(samples, t0, t1):
    """The worker's rate over [t0, t1] and over the seconds it had a backlog the whole time."""
    s = [x for x in samples if t0 - 1.01 <= x["t"] <= t1 + 1.01]
    if len(s) < 2:
        return {}
    busy_written = busy_time = busy_wcount = busy_wsum = busy_bsum = busy_bcount = 0.0
    series = []
    # The lag gauge trails the writes by a second or two (it is refreshed every second against
    # the broker), so the backlog counts as gone after the last sample that saw a write.
    last_write_t = max((b["t"] for a, b in zip(s, s[1:]) if b["written"] > a["written"]), default=s[-1]["t"])
    for a, b in zip(s, s[1:]):
        dt = b["t"] - a["t"]
        dw = b["written"] - a["written"]
        series.append([round(b["t"] - s[0]["t"], 1), int(b["written"]), int(b["lag"]), round(dw / dt) if dt > 0 else 0])
        if a["lag"] > 0 and b["lag"] > 0 and b["t"] <= last_write_t:  # backlog at both ends: never idle
            busy_written += dw; busy_time += dt
            busy_wsum += b["write_s_sum"] - a["write_s_sum"]; busy_wcount += b["write_count"] - a["write_count"]
            busy_bsum += b["batch_sum"] - a["batch_sum"]; busy_bcount += b["batch_count"] - a["batch_count"]
    rates = [x[3] for x in series if x[2] > 0 and x[0] <= last_write_t - s[0]["t"] + 0.05]
    first_third = rates[: max(1, len(rates) // 3)]
    last_third = rates[-max(1, len(rates) // 3):]
    out = {"backlog_seconds": round(busy_time, 1),
           "sustained_msgs_per_s": round(busy_written / busy_time) if busy_time > 0 else None,
           "rate_first_third_per_s": round(sum(first_third) / len(first_third)) if rates else None,
           "rate_last_third_per_s": round(sum(last_third) / len(last_third)) if rates else None,
           "db_write_ms_mean": round(1000 * busy_wsum / busy_wcount, 2) if busy_wcount else None,
           "batch_mean": round(busy_bsum / busy_bcount, 1) if busy_bcount else None,
           "writes_per_s": round(busy_wcount / busy_time, 1) if busy_time > 0 else None,
           "db_busy_pct": round(100 * busy_wsum / busy_time, 1) if busy_time > 0 else None,
           "series": series}
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for k in s[0]["cpu"]:
        a, b = s[0]["cpu"][k], s[-1]["cpu"][k]
        if a is not None and b is not None:
            cpu[k] = round(100.0 * (b - a) / ticks / (s[-1]["t"] - s[0]["t"]), 1)
    out["cpu_pct"] = cpu
    return out

def fmt_lat(l):
    return " ".join(f"{l.get(k, 0) / 1000:8.2f}" for k in ("p50", "p90", "p99", "p999", "max", "mean"))

def cmd_report(work, meta_json):
    meta = json.load(open(meta_json))
    runs = {}
    for l in open(f"{work}/results.jsonl"):
        r = json.loads(l)
        runs[r["case"]] = r
    samples = [json.loads(l) for l in open(f"{work}/samples.jsonl")]
    phases = {}
    for l in open(f"{work}/phases.txt"):
        name, t0, t1 = l.split()
        phases[name] = (float(t0), float(t1))
    res = {"bench": "cluster", **meta, "runs": {}}
    print()
    print(f"cluster benchmark — {meta['date']}, commit {meta['commit']}, {meta['nproc']} cores, "
          f"load average at start {meta['loadavg_at_start']}")
    print(f"  layout: {meta['layout']}")
    print()
    print("  run                      acked/s  ok   latency (ms)          p50      p90      p99    p99.9      max     mean")
    for case in runs:
        r = runs[case]["result"]
        st = phase_stats(work, case)
        lat = r.get("latency_us", {})
        res["runs"][case] = {"chat_bench": r, "exit": runs[case]["exit"], "server_side": st}
        label = {"max": "closed loop (max)", "half": "open loop (half max)", "half_noworker": "half max, no worker"}.get(
            case, f"open loop ({case[4:]}/s)")
        rate = r.get("acked_per_s", 0)
        print(f"  {label:24s} {rate:9.0f}  {'yes' if r.get('ok') else 'NO ':4s} send→delivery(B) {fmt_lat(lat.get('e2e', {}))}")
        print(f"  {'':24s} {'':9s}  {'':4s} send→ack(A)      {fmt_lat(lat.get('ack', {}))}")
        if "send_lag" in lat:
            print(f"  {'':24s} {'':9s}  {'':4s} generator lag    {fmt_lat(lat['send_lag'])}")
        kp, fo, cl = st["a_kafka_produce_ms"], st["a_fanout_ms"], st["a_claim_ms"]
        print(f"      chatd A: Redis claim mean {cl.get('mean')} ms (p99 ≤ {cl.get('p99_le')}); "
              f"Kafka produce→ack mean {kp.get('mean')} ms (p50 ≤ {kp.get('p50_le')}, p99 ≤ {kp.get('p99_le')}); "
              f"creation→fan-out mean {fo.get('mean')} ms (p99 ≤ {fo.get('p99_le')}); bus published {st['a_bus_published']}, "
              f"B received {st['b_bus_received']}, dropped {st['bus_dropped']}")
        if r.get("mark_read"):
            print(f"      markRead: sent {r.get('mark_reads', 0)}, chatd B received {st['b_read_marks_received']} and wrote "
                  f"{st['b_read_positions_written']} positions, messagesRead back to the senders {r.get('messages_read', 0)}")
        if st["worker_written"] is None:
            print("      worker: stopped")
        else:
            print(f"      worker: wrote {st['worker_written']} ({st['worker_written'] / st['seconds']:.0f}/s over the phase), "
                  f"lag at end {st['worker_lag_end']}")
        print("      CPU % of a core: " + ", ".join(f"{k} {v}" for k, v in st["cpu_pct"].items()))
        print("      Kafka's busiest JVM threads (% of a core): " +
              ", ".join(f"{k} {v}" for k, v in st["kafka_threads_cpu_pct"].items()))
    if "drain" in phases:
        d = drain_stats(samples, *phases["drain"])
        res["worker_drain"] = d
        print()
        print(f"  worker drain ({meta.get('drain_note', '')}):")
        print(f"      sustained {d.get('sustained_msgs_per_s')} msg/s over {d.get('backlog_seconds')} s with a backlog "
              f"(first third {d.get('rate_first_third_per_s')}/s, last third {d.get('rate_last_third_per_s')}/s); "
              f"{d.get('writes_per_s')} bulk writes/s, batch mean {d.get('batch_mean')}, write mean {d.get('db_write_ms_mean')} ms, "
              f"in the database {d.get('db_busy_pct')} % of the time")
        print("      CPU % of a core during the drain: " + ", ".join(f"{k} {v}" for k, v in d.get("cpu_pct", {}).items()))
        print("      t s, written total, lag, written/s: " +
              "  ".join(f"{t}:{w}:{l}:{r}" for t, w, l, r in d.get("series", [])[:90]))
    elif meta.get("drain_note"):
        print()
        print(f"  worker drain: {meta['drain_note']}")
    acked = sum(int(runs[c]["result"].get("acked", 0)) for c in runs)
    res["acked_total"] = acked
    if meta.get("stored_documents") is not None:
        stored = meta["stored_documents"]
        res["stored_exactly_once"] = stored == acked
        print(f"  stored: {stored} documents in the database for {acked} messages acknowledged over all the runs: "
              + ("exactly once" if stored == acked else "MISMATCH"))
    if meta.get("read_positions"):
        rp = meta["read_positions"]
        res["read_positions"] = rp
        print(f"  read positions at the end: {rp['read_positions']} positions for {rp['receivers']} (receiver, sender) pairs, "
              f"{rp['at_newest']} at the pair's newest message, {rp['behind']} behind")
    if meta.get("ferretdb_unresponsive_at_end"):
        print("  the store (FerretDB) did not answer a read within 5 s at the end")
    res["total_written"] = int(samples[-1]["written"]) if samples else 0
    print()
    print("RESULT " + json.dumps(res, separators=(",", ":")))

if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PY

if [ -n "$SERVICE_SLICE" ]; then
  log "Redis and Kafka: $(python3 "$ROOT/bench/sched_slice.py" "$SERVICE_SLICE" "$REDIS_PID" "$KAFKA_PID")"
  LAYOUT="$LAYOUT; Redis and Kafka threads with a ${SERVICE_SLICE} µs scheduler slice"
fi

W_URL="http://127.0.0.1:$W_PORT/metrics"
python3 "$TOOL" sampler "$WORK/samples.jsonl" "$W_URL" \
  chatd_a="$A_PID" chatd_b="$B_PID" worker="$WORKER_PID" kafka="$KAFKA_PID" ferretdb="$FERRET_PID" redis="$REDIS_PID" &
SAMPLER_PID=$!

now_s() { date +%s.%N; }
snap() { # snap PHASE 0|1
  python3 "$TOOL" snap "$WORK/snap-$1-$2.json" a="http://127.0.0.1:$A_PORT/metrics" b="http://127.0.0.1:$B_PORT/metrics" \
    w="$W_URL" chatd_a="$A_PID" chatd_b="$B_PID" worker="$WORKER_PID" kafka="$KAFKA_PID" ferretdb="$FERRET_PID" \
    redis="$REDIS_PID"
}

: >"$WORK/results.jsonl"
: >"$WORK/phases.txt"
# run_bench CASE ARGS...: chat-bench cluster; its RESULT line tagged with CASE into results.jsonl.
run_bench() {
  local case_name=$1; shift
  local out="$WORK/$case_name.out" rc t0
  echo "${BENCH_CPU[*]} chat-bench cluster $*" | sed "s|$WORK|\$WORK|g; s/^ *//" >>"$WORK/commands.txt"
  log "$case_name: chat-bench cluster $*"
  snap "$case_name" 0
  t0=$(now_s)
  set +e
  "${BENCH_CPU[@]}" "$BENCH" cluster "$@" >"$out" 2>"$WORK/$case_name.err"
  rc=$?
  set -e
  echo "$case_name $t0 $(now_s)" >>"$WORK/phases.txt"
  snap "$case_name" 1
  grep -v '^RESULT ' "$out" >&2 || true
  local line
  line="$(grep '^RESULT ' "$out" | head -1 | cut -c8-)"
  if [ -z "$line" ]; then
    cat "$WORK/$case_name.err" >&2
    line='{"ok":false,"error":"no result"}'
  fi
  printf '{"case":"%s","exit":%d,"result":%s}\n' "$case_name" "$rc" "$line" >>"$WORK/results.jsonl"
  LAST_RESULT="$line"
}

USERS_FILE="$WORK/users.txt"
COMMON=(--url-a "http://127.0.0.1:$A_PORT" --url-b "http://127.0.0.1:$B_PORT" --users "$USERS" --users-file "$USERS_FILE"
        --warmup "$WARMUP" --signup-concurrency 8 --label chatd-cluster)
[ "$MARK_READ" = 1 ] && COMMON+=(--mark-read)

# ---- 1. maximum, 2. half ---------------------------------------------------------------------------
run_bench max "${COMMON[@]}" --duration "$DURATION" --window "$WINDOW" --server-pid "$A_PID"
MAX="$(python3 "$TOOL" field "$LAST_RESULT" acked_per_s)"
HALF="$(python3 -c 'import sys; print(max(1, round(float(sys.argv[1] or 0) / 2)))' "$MAX")"
log "max acked $MAX msg/s: open loop at $HALF msg/s"
run_bench half "${COMMON[@]}" --duration "$DURATION" --rate "$HALF" --server-pid "$A_PID"
for r in $RATES; do
  run_bench "rate$r" "${COMMON[@]}" --duration "$DURATION" --rate "$r" --server-pid "$A_PID"
done

# ---- 3. the worker's drain ---------------------------------------------------------------------------
# drain LIMIT_S: samples until the lag is 0 or LIMIT_S passed; records the phase.
drain() {
  local limit=$1 t0 lag written i zeros=0 last=-1 still=0
  t0=$(now_s)
  STALLED=0
  DRAINED=0
  for i in $(seq 1 $((limit * 2))); do
    read -r lag written < <(python3 "$TOOL" lag "$W_URL")
    # The lag is refreshed every second and is 0 before the partitions are assigned: done after
    # three zero readings once the worker has written something.
    if [ "$lag" = 0 ] && [ "$written" -gt 0 ]; then zeros=$((zeros + 1)); else zeros=0; fi
    if [ "$zeros" -ge 3 ]; then DRAINED=1; break; fi
    # No progress for 30 s with a backlog: the worker is stuck (e.g. retrying a write that times out).
    if [ "$written" = "$last" ] && [ "$lag" != 0 ]; then still=$((still + 1)); else still=0; last=$written; fi
    if [ "$still" -ge 60 ]; then STALLED=1; break; fi
    # Nothing ever written (e.g. the worker cannot reach the database): stalled too.
    if [ "$written" = 0 ] && [ "$i" -ge 60 ]; then STALLED=1; break; fi
    sleep 0.5
  done
  sleep 1.2 # one more sampler tick after the end
  echo "drain $t0 $(now_s)" >>"$WORK/phases.txt"
  log "drain: lag $lag, written $written after $(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),1))" "$t0") s"
}

# ---- 4. half again without the worker, 5. drain by a fresh worker -------------------------------------
# FerretDB answering {ping: 1} within 2 s (chatd needs it too: sign-ups, socket auth, history).
# {ping: 1} alone is not enough: FerretDB was seen answering it while every find hung. So also a
# REST call of chatd A that reads the store, within 5 s: check-auth, a find of one user by _id in
# the small users collection. Not /api/messages/users: its conversation summaries start with two
# `distinct` over messages, which FerretDB's SQLite backend answers by scanning (and decoding) the
# whole collection, seconds each at 160,000 documents, and a check abandoned after 5 s keeps
# running there: repeated checks piled up 20 such scans and made the store look hung (eighth and
# ninth sessions, goroutine dump of FerretDB: every busy request in MsgDistinct).
ferret_ok() {
  python3 "$SVC/mongo_ping.py" "$FERRET_PORT" >/dev/null 2>&1 || return 1
  local token; token=$(grep -v '^#' "$USERS_FILE" | head -1 | cut -d' ' -f2)
  curl -fsS -m 5 -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$A_PORT/api/v1/auth/check-auth"
}
FERRET_HUNG=0
read -r LAG WRITTEN < <(python3 "$TOOL" lag "$W_URL")
log "worker: $WRITTEN written, lag $LAG; stopping it (SIGTERM)"
T_STOP=$(now_ms)
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" 2>/dev/null || true
log "worker stopped in $(($(now_ms) - T_STOP)) ms"
for _ in 1 2 3 4 5; do ferret_ok && break; sleep 1; done
if ! ferret_ok; then
  FERRET_HUNG=1
  log "the store does not answer (FerretDB CPU: $(ps -o %cpu= -p "$FERRET_PID")%): skipping the run without the worker and the drain"
else
  run_bench half_noworker "${COMMON[@]}" --duration "$DURATION" --rate "$HALF" --server-pid "$A_PID"
fi
if [ "$FERRET_HUNG" = 0 ]; then
  start_worker
  kill "$SAMPLER_PID" 2>/dev/null || true
  python3 "$TOOL" sampler "$WORK/samples.jsonl" "$W_URL" \
    chatd_a="$A_PID" chatd_b="$B_PID" worker="$WORKER_PID" kafka="$KAFKA_PID" ferretdb="$FERRET_PID" redis="$REDIS_PID" &
  SAMPLER_PID=$!
  sleep 1.5
  read -r LAG WRITTEN2 < <(python3 "$TOOL" lag "$W_URL")
  DRAIN_NOTE="a fresh chat-worker after the runs, $WRITTEN records already in the database, backlog about $LAG"
  log "draining (lag $LAG, at most $DRAIN_MAX s)"
  drain "$DRAIN_MAX"
  [ "$STALLED" = 1 ] && DRAIN_NOTE="$DRAIN_NOTE; STALLED: nothing written for 30 s (see the worker log below)"
  ferret_ok || FERRET_HUNG=1
  # Stored exactly once: with the backlog drained, the messages collection (fresh for this run)
  # must hold exactly as many documents as chat-bench had acknowledged over all the runs.
  if [ "$DRAINED" = 0 ]; then
    log "the backlog was not drained within $DRAIN_MAX s (--drain-max): the database is not counted"
  elif [ "$FERRET_HUNG" = 0 ]; then
    T_COUNT=$(now_ms)
    STORED=$(python3 "$TOOL" count "$SVC" "$FERRET_PORT" bench messages 2>>"$WORK/services.log" || true)
    log "messages in the database: ${STORED:-?} (count took $(($(now_ms) - T_COUNT)) ms)"
    if [ "$MARK_READ" = 1 ]; then
      # Every receiver marked every message it got: once the database has them all, each read
      # position must be at its conversation's newest message (the drain gave chatd B time to
      # write the last marks).
      T_COUNT=$(now_ms)
      READS=$(python3 "$TOOL" read_positions "$SVC" "$FERRET_PORT" bench 2>>"$WORK/services.log" || true)
      log "read positions: ${READS:-?} (took $(($(now_ms) - T_COUNT)) ms)"
    fi
  fi
else
  DRAIN_NOTE="not run: FerretDB stopped answering after $WRITTEN records were written (see the worker log below)"
fi

# ---- report -------------------------------------------------------------------------------------------
python3 - "$WORK/meta.json" <<PY
import json, sys
json.dump({"date": "$START_UTC", "commit": "$COMMIT", "nproc": $(nproc), "loadavg_at_start": "$LOAD_BEFORE",
           "loadavg_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)", "layout": "$LAYOUT", "args": "${ARGS_GIVEN:-(none)}",
           "chatd_threads": $CHATD_THREADS, "users": $USERS, "window": $WINDOW, "duration_s": $DURATION,
           "half_rate": $HALF, "drain_note": "$DRAIN_NOTE", "ferretdb_unresponsive_at_end": bool($FERRET_HUNG),
           "worker_batch_max": "${BATCH_MAX:-500 (default)}", "stored_documents": ${STORED:-None}, "read_positions": ${READS:-None},
           "versions": {"redis": "$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -c3-)",
                        "kafka": "${CHAT_KAFKA_VERSION}", "java": "$(java -version 2>&1 | head -1 | cut -d'"' -f2)",
                        "ferretdb": "$("$CHAT_SERVICES_CACHE/bin/ferretdb" --version 2>/dev/null | head -1 | awk '{print $2}')",
                        "librdkafka": "$(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || echo '?')",
                        "libmongoc": "$(dpkg-query -W -f='${Version}' libmongoc-1.0-0 2>/dev/null || echo '?')",
                        "build": "$(grep -m1 CMAKE_BUILD_TYPE "$(dirname "$(dirname "$CHATD")")/CMakeCache.txt" 2>/dev/null | cut -d= -f2)"}},
          open(sys.argv[1], "w"))
PY
echo
echo "commands (\$WORK = a fresh temp dir; services by scripts/services/{redis,kafka,ferretdb}.sh --watch-pid):"
sed 's/^/  /' "$WORK/commands.txt"
if grep -q . "$WORK/w/worker.log" 2>/dev/null; then
  echo
  echo "chat-worker log (warnings, last 6 lines):"
  tail -n 6 "$WORK/w/worker.log" | cut -c1-240 | sed 's/^/  /'
fi
python3 "$TOOL" report "$WORK" "$WORK/meta.json"
