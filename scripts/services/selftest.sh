#!/usr/bin/env bash
# Proves that each service of scripts/services/ starts, does real work and stops:
#   redis       single instance SET/GET; 3-master cluster: cluster_state:ok, keys on every shard,
#               a node restarted
#   kafka       KRaft broker with PLAINTEXT + SASL_PLAINTEXT: create a topic, produce through
#               PLAINTEXT, consume through SASL (admin/admin-secret), a wrong password refused,
#               kill -9 + restart keeps the record
#   ferretdb    the MongoDB operations the store needs (selftest/mongo_check.mjs, Node driver
#               mongodb@6 installed in $CHAT_SERVICES_CACHE/node-tools), data kept across a restart
#   nginx       two backends (selftest/ws_check.py): cookie pinning, failover to the next
#               instance when the pinned one dies, a request body re-sent, WebSocket upgrade + echo
#   prometheus  deploy/prometheus.yml with its targets mapped to a local stand-in, scraped (up=1)
#   deploy      deploy/nginx.conf through nginx -t, prometheus.yml through promtool, and
#               docker-compose.yml checked against the native setup (no Docker engine here)
# Usage: scripts/services/selftest.sh [redis] [kafka] [ferretdb] [nginx] [prometheus] [deploy]
#        (default: all)
# Prints each step's time and ends with "N passed, N failed"; exits non-zero on a failure.
# Everything runs under a temporary directory, removed at the end (CHAT_SELFTEST_KEEP=1 keeps it).
set -uo pipefail
svc_name=selftest
. "$(dirname "$0")/lib.sh"
S=$SERVICES_DIR
steps=("$@")
((${#steps[@]})) || steps=(redis kafka ferretdb nginx prometheus deploy)
work=$(mktemp -d /tmp/chatd-services-selftest.XXXXXX)
passed=0 failed=0
timings=()

cleanup() {
  "$S/stop-all.sh" "$work" 30 >/dev/null 2>&1
  [ "${CHAT_SELFTEST_KEEP:-0}" = 1 ] && log "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "  ok   $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL $*"; failed=$((failed + 1)); }
# expect DESCRIPTION EXPECTED ACTUAL
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi; }
# timed NAME CMD...: runs CMD, records its wall time under NAME; returns CMD's status.
timed() {
  local name=$1 t0 rc
  shift
  t0=$(now_ms)
  "$@"
  rc=$?
  timings+=("$(printf '%-50s %7d ms' "$name" $(($(now_ms) - t0)))")
  if ((rc == 0)); then ok "$name"; else bad "$name (exit $rc)"; fi
  return $rc
}

test_redis() {
  echo "== redis ($(redis-server --version | cut -d' ' -f3))"
  local p d=$work/redis
  p=$(free_port)
  timed "redis: start single" "$S/redis.sh" start --dir "$d/single" --port "$p" || return
  expect "redis: SET" OK "$(redis-cli -p "$p" set greeting hello)"
  expect "redis: GET" hello "$(redis-cli -p "$p" get greeting)"
  timed "redis: stop single" "$S/redis.sh" stop --dir "$d/single"
  local p1 p2 p3
  read -r p1 p2 p3 <<<"$(free_ports 3 10000)"
  timed "redis: start 3-master cluster" "$S/redis.sh" start-cluster --dir "$d/cluster" --ports "$p1,$p2,$p3" || return
  expect "redis cluster: cluster_known_nodes" 3 \
    "$(redis-cli -p "$p1" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')"
  local k n=0
  for k in a b c d e f g h; do
    [ "$(redis-cli -c -p "$p2" set "key:$k" "v$k")" = OK ] && n=$((n + 1))
  done
  expect "redis cluster: 8 keys set through redirects" 8 "$n"
  local per_node="" total=0 c
  for p in "$p1" "$p2" "$p3"; do
    c=$(redis-cli -p "$p" dbsize)
    per_node+="$c "
    total=$((total + c))
  done
  expect "redis cluster: keys spread over the 3 masters ($per_node)" "8 yes" \
    "$total $([[ $per_node != *"0 "* ]] && echo yes || echo no)"
  expect "redis cluster: SPUBLISH (sharded Pub/Sub) answers" 0 "$(redis-cli -c -p "$p1" spublish room:1 hi)"
  "$S/redis.sh" stop --dir "$d/cluster" --port "$p3"
  timed "redis cluster: restart a stopped node" "$S/redis.sh" start-cluster --dir "$d/cluster" --ports "$p1,$p2,$p3"
  expect "redis cluster: cluster_state after the restart" ok \
    "$(redis-cli -p "$p3" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p')"
  timed "redis: stop cluster" "$S/redis.sh" stop --dir "$d/cluster"
}

test_kafka() {
  echo "== kafka ($CHAT_KAFKA_VERSION, $(java -version 2>&1 | head -n1))"
  local p s cp d=$work/kafka
  read -r p s cp <<<"$(free_ports 3)"
  timed "kafka: format + start (KRaft, PLAINTEXT+SASL)" "$S/kafka.sh" start --dir "$d" --port "$p" \
    --controller-port "$cp" --sasl-port "$s" --partitions 3 || { tail -n 30 "$d/kafka.log"; return; }
  timed "kafka: create topic chat-messages (3 partitions)" "$S/kafka.sh" create-topic --dir "$d" \
    --topic chat-messages --partitions 3 >/dev/null
  local msg="hello-$RANDOM"
  timed "kafka: produce 1 record (acks=all, idempotent)" bash -c \
    'echo "conv-1:$0" | "$1" run --dir "$2" kafka.tools.ConsoleProducer --bootstrap-server "127.0.0.1:$3" \
       --topic chat-messages --property parse.key=true --property key.separator=: \
       --producer-property acks=all --producer-property enable.idempotence=true' "$msg" "$S/kafka.sh" "$d" "$p"
  local got
  consume() {
    "$S/kafka.sh" run --dir "$d" org.apache.kafka.tools.consumer.ConsoleConsumer \
      --bootstrap-server "127.0.0.1:$s" --consumer.config "$d/client-sasl.properties" \
      --topic chat-messages --from-beginning --max-messages 1 --timeout-ms 30000 \
      --property print.key=true --property key.separator=: 2>/dev/null
  }
  local t0; t0=$(now_ms)
  got=$(consume)
  timings+=("$(printf '%-50s %7d ms' "kafka: consume 1 record over SASL_PLAINTEXT" $(($(now_ms) - t0)))")
  expect "kafka: the record read back over SASL (key:value)" "conv-1:$msg" "$got"
  sed 's/password="[^"]*"/password="wrong"/' "$d/client-sasl.properties" >"$work/bad-sasl.properties"
  local out
  out=$("$S/kafka.sh" run --dir "$d" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$s" \
    --command-config "$work/bad-sasl.properties" --list 2>&1)
  expect "kafka: a wrong SASL password is refused" yes "$([[ $out == *"Authentication failed"* ]] && echo yes || echo no)"
  out=$(echo "x" | "$S/kafka.sh" run --dir "$d" kafka.tools.ConsoleProducer --bootstrap-server "127.0.0.1:$p" \
    --topic no-such-topic --producer-property max.block.ms=3000 2>&1)
  expect "kafka: no auto-created topics" "" "$("$S/kafka.sh" run --dir "$d" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$p" --list 2>/dev/null | grep -x no-such-topic)"
  kill -9 "$(cat "$d/kafka.pid")"
  sleep 0.5
  timed "kafka: restart after kill -9" "$S/kafka.sh" start --dir "$d" || { tail -n 30 "$d/kafka.log"; return; }
  got=$(consume)
  expect "kafka: the record survives the kill -9" "conv-1:$msg" "$got"
  timed "kafka: stop (controlled shutdown)" "$S/kafka.sh" stop --dir "$d"
}

test_ferretdb() {
  echo "== ferretdb ($("$CHAT_SERVICES_CACHE/bin/ferretdb" --version 2>/dev/null | sed -n 's/^version: //p'))"
  local p d=$work/ferretdb tools=$CHAT_SERVICES_CACHE/node-tools
  if [ ! -d "$tools/node_modules/mongodb" ]; then
    mkdir -p "$tools"
    [ -f "$tools/package.json" ] || echo '{"name":"chatd-service-selftest","private":true}' >"$tools/package.json"
    timed "ferretdb: npm install mongodb@6.22.0 (once)" npm --prefix "$tools" install --no-audit --no-fund \
      --silent mongodb@6.22.0 || return
  fi
  cp "$S/selftest/mongo_check.mjs" "$tools/"
  p=$(free_port)
  timed "ferretdb: start (SQLite backend)" "$S/ferretdb.sh" start --dir "$d" --port "$p" || return
  timed "ferretdb: store operations (mongo_check.mjs)" node "$tools/mongo_check.mjs" "mongodb://127.0.0.1:$p/"
  (cd "$tools" && node -e '
    const { MongoClient } = require("mongodb");
    (async () => { const c = await MongoClient.connect(process.argv[1]);
      await c.db("chat").collection("kept").insertOne({ _id: "k1", v: 42 }); await c.close(); })()
      .catch((e) => { console.error(e); process.exit(1); });' "mongodb://127.0.0.1:$p/")
  "$S/ferretdb.sh" stop --dir "$d"
  timed "ferretdb: restart on the same data" "$S/ferretdb.sh" start --dir "$d" || return
  expect "ferretdb: a document survives the restart" 42 "$(cd "$tools" && node -e '
    const { MongoClient } = require("mongodb");
    (async () => { const c = await MongoClient.connect(process.argv[1]);
      const d = await c.db("chat").collection("kept").findOne({ _id: "k1" }); console.log(d?.v); await c.close(); })()
      .catch((e) => { console.error(e); process.exit(1); });' "mongodb://127.0.0.1:$p/")"
  timed "ferretdb: stop" "$S/ferretdb.sh" stop --dir "$d"
}

test_nginx() {
  echo "== nginx ($(nginx -v 2>&1 | cut -d/ -f2))"
  local p b1 b2 d=$work/nginx
  read -r p b1 b2 <<<"$(free_ports 3)"
  mkdir -p "$d/backends"
  for b in "$b1" "$b2"; do
    spawn "$d/backends/backend-$b.pid" "$d/backends/backend-$b.log" python3 "$S/selftest/ws_check.py" serve "$b"
    wait_until 10 "backend $b" port_open "$b" || { bad "backend $b did not start"; return; }
  done
  timed "nginx: start (2 upstreams, cookie stickiness)" "$S/nginx.sh" start --dir "$d/lb" --port "$p" \
    --upstreams "$b1,$b2" || return
  local seen="" i out cookie
  for i in $(seq 1 20); do
    out=$(curl -s -i "http://127.0.0.1:$p/socket.io/?EIO=4&transport=polling" | tr -d '\r')
    seen+=$(sed -n 's/^backend \([0-9]*\).*/\1/p' <<<"$out")" "
  done
  expect "nginx: new clients spread over both instances" yes \
    "$([[ $seen == *"$b1 "* && $seen == *"$b2 "* ]] && echo yes || echo no)"
  out=$(curl -s -i "http://127.0.0.1:$p/" | tr -d '\r')
  cookie=$(sed -n 's/^Set-Cookie: \(chatd_route=s[0-9]*\);.*/\1/p' <<<"$out")
  local first; first=$(sed -n 's/^backend \([0-9]*\).*/\1/p' <<<"$out")
  seen=""
  for i in $(seq 1 10); do
    seen+=$(curl -s -b "$cookie" "http://127.0.0.1:$p/" | sed -n 's/^backend \([0-9]*\).*/\1/p')" "
  done
  expect "nginx: the cookie ($cookie) pins 10 requests to one instance" "$(printf "$first %.0s" $(seq 1 10))" "$seen"
  expect "nginx: WebSocket upgrade + echo" yes \
    "$(python3 "$S/selftest/ws_check.py" client "$p" >/dev/null && echo yes || echo no)"
  stop_pidfile "$d/backends/backend-$first.pid" 3
  local other=$b1; [ "$first" = "$b1" ] && other=$b2
  out=$(curl -s -i -X POST --data 'body-after-failover' -b "$cookie" "http://127.0.0.1:$p/socket.io/" | tr -d '\r')
  expect "nginx: pinned instance down -> next instance, body re-sent" "backend $other body=body-after-failover" \
    "$(grep '^backend' <<<"$out")"
  expect "nginx: ... and the cookie moves to it" yes \
    "$([[ $out == *"Set-Cookie: chatd_route=s"* && $out != *"Set-Cookie: $cookie;"* ]] && echo yes || echo no)"
  expect "nginx: WebSocket through the remaining instance" "websocket ok via backend $other" \
    "$(python3 "$S/selftest/ws_check.py" client "$p")"
  timed "nginx: stop" "$S/nginx.sh" stop --dir "$d/lb"
}

test_prometheus() {
  echo "== prometheus ($(prometheus --version 2>&1 | head -n1 | cut -d' ' -f3))"
  local p d=$work/prometheus cfg=$SERVICES_DIR/../../deploy/prometheus.yml
  [ -f "$cfg" ] || { bad "no deploy/prometheus.yml"; return; }
  p=$(free_port)
  # Prometheus itself stands in for chatd1: the shipped config, its first target mapped to it.
  local target
  target=$(sed -n "s/.*targets: *\[ *'\{0,1\}\"\{0,1\}\([a-z0-9-]*:[0-9]*\).*/\1/p" "$cfg" | head -n1)
  timed "prometheus: start with deploy/prometheus.yml" "$S/prometheus.sh" start --dir "$d" --port "$p" \
    --config "$cfg" --map "$target=127.0.0.1:$p" || return
  local up=""
  for _ in $(seq 1 100); do
    up=$(curl -s "http://127.0.0.1:$p/api/v1/query" --data-urlencode "query=up{instance=\"127.0.0.1:$p\"}" |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")')
    [ "$up" = 1 ] && break
    sleep 0.2
  done
  expect "prometheus: the mapped target $target is scraped (up=1)" 1 "$up"
  timed "prometheus: stop" "$S/prometheus.sh" stop --dir "$d"
}

# The compose files can't run here (no Docker engine): check what can be checked natively.
test_deploy() {
  echo "== deploy/ (static checks)"
  local dep=$SERVICES_DIR/../../deploy d=$work/deploy-nginx
  mkdir -p "$d/logs"
  sed -e 's/^user nginx;/# (user nginx)/' -e "s#/var/run/nginx.pid#$d/nginx.pid#" \
    -e 's/chatd\([0-9]\):5000/127.0.0.1:1500\1/' -e 's/listen 80;/listen 127.0.0.1:1;/' \
    -e "s#/dev/stdout#$d/logs/access.log#" -e "s#/dev/stderr#$d/logs/error.log#" \
    "$dep/nginx.conf" >"$d/nginx.conf"
  timed "deploy: nginx.conf passes nginx -t (hosts mapped)" \
    nginx -t -q -p "$d/" -c "$d/nginx.conf" -e "$d/logs/error.log"
  timed "deploy: prometheus.yml passes promtool" promtool check config "$dep/prometheus.yml" >/dev/null
  timed "deploy: docker-compose.yml matches the native setup" python3 - "$dep" "$CHAT_KAFKA_VERSION" <<'PY'
import sys, yaml
dep, kafka_version = sys.argv[1:]
c = yaml.safe_load(open(f"{dep}/docker-compose.yml"))
p = yaml.safe_load(open(f"{dep}/prometheus.yml"))
svc = c["services"]
problems = []
for s in ("redis", "kafka", "mongodb", "chatd1", "chatd2", "chatd3", "worker", "nginx", "prometheus", "grafana"):
    if s not in svc:
        problems.append(f"service {s} missing")
for s in ("chatd1", "chatd2", "chatd3", "worker"):
    env = svc.get(s, {}).get("environment", {})
    for k in ("REDIS_URL", "KAFKA_BROKERS", "KAFKA_TOPIC", "MONGODB_URI", "JWT_SECRET", "NODE_ENV"):
        if k not in env:
            problems.append(f"{s}: {k} missing")
if not svc["kafka"]["image"].endswith(":" + kafka_version):
    problems.append(f"kafka image {svc['kafka']['image']} is not {kafka_version} (native tests)")
if svc["kafka"]["environment"].get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false":
    problems.append("kafka auto-creates topics")
targets = {t for job in p["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
for s in ("chatd1:5000", "chatd2:5000", "chatd3:5000"):
    if s not in targets:
        problems.append(f"prometheus does not scrape {s}")
if not any(t.startswith("worker:") for t in targets):
    problems.append("prometheus does not scrape the worker")
if svc["worker"].get("command") != ["chat-worker"]:
    problems.append("worker does not run chat-worker")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
}

for s in "${steps[@]}"; do
  case $s in
    redis | kafka | ferretdb | nginx | prometheus | deploy) "test_$s" ;;
    *) die "unknown step $s" ;;
  esac
done
"$S/stop-all.sh" "$work" 30
left=$(find "$work" -name '*.pid' | wc -l)
expect "stop-all: no pid file left" 0 "$left"
echo "== timings"
printf '  %s\n' "${timings[@]}"
echo "selftest: $passed passed, $failed failed"
((failed == 0))
