// chat-bench's `cluster` scenario (issue 6: "`dm` with senders and receivers on different
// instances") against the cluster topology, run natively: two cluster-mode chatd (A and B), one
// chat-worker, Redis, Kafka and FerretDB. A few seconds closed loop, then open loop; asserted is
// what must hold whatever this machine's speed (no timed assertions): every acknowledged message
// delivered exactly once on the other instance (A → Redis → B), and stored exactly once by the
// worker (A → Kafka → chat-worker → the database). bench/cluster.sh measures the same at length.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { runBench } from '../lib/bench.mjs';
import { makeTempDir, stopAll } from '../lib/chatd.mjs';
import {
  freePort,
  mongoClient,
  startClusterChatd,
  startFerret,
  startKafka,
  startRedis,
  startWorker,
} from '../lib/cluster.mjs';
import { metricValue, until } from '../lib/sio.mjs';

const TOPIC = `chat-messages-${randomBytes(3).toString('hex')}`;
const DB = `chat_${randomBytes(3).toString('hex')}`;
// chat-bench signs its users up and sends as fast as the window allows.
const OFF = ['--rate-limit-auth', 'off', '--rate-limit-api', 'off', '--rate-limit-messages', 'off'];

let redis, kafka, ferret, mongo, a, b, worker, usersFile;
let ackedTotal = 0;

before(async () => {
  [redis, kafka, ferret] = await Promise.all([startRedis(), startKafka(), startFerret()]);
  const opts = async (instance) => ({
    port: await freePort(),
    instance,
    mongoUri: ferret.uri(DB),
    redisUrl: redis.url,
    kafkaBrokers: kafka.brokers,
    topic: TOPIC,
    args: OFF,
  });
  a = await startClusterChatd(await opts('bench-a'));
  b = await startClusterChatd(await opts('bench-b'));
  worker = await startWorker({ mongoUri: ferret.uri(DB), kafkaBrokers: kafka.brokers, topic: TOPIC });
  mongo = await mongoClient(ferret.uri(DB));
  usersFile = path.join(makeTempDir('chat-bench-cluster-'), 'users.txt');
});

after(async () => {
  if (mongo) await mongo.close();
  if (worker) await worker.kill('SIGTERM');
  await stopAll();
});

/** One chat-bench cluster run; checks what every run must show and returns its RESULT. */
async function clusterRun(extra) {
  const received0 = (await metricValue(b.url, 'chat_bus_received_total')) || 0;
  const r = await runBench(['cluster', '--url-a', a.url, '--url-b', b.url, '--users', '20', '--users-file', usersFile,
    '--duration', '2', '--warmup', '0.5', '--label', 'chatd-cluster', '--json-only', ...extra], 180000);
  assert.equal(r.lines, 1, r.describe);
  assert.equal(r.code, 0, r.describe);
  const x = r.result;
  assert.equal(x.scenario, 'cluster');
  assert.equal(x.url_a, a.url);
  assert.equal(x.url_b, b.url);
  assert.equal(x.connect_ok, 20);
  assert.equal(x.connect_failed, 0);
  assert.equal(x.direction, 'one');
  assert.ok(x.acked > 0, 'nothing acknowledged');
  assert.equal(x.sent, x.acked);
  assert.deepEqual(x.ack_errors, {});
  assert.equal(x.ack_timeouts, 0);
  assert.equal(x.missing, 0);
  assert.equal(x.duplicates, 0);
  assert.equal(x.unexpected, 0);
  assert.equal(x.delivered, x.acked, 'each acked message reaches the receiver on B once');
  assert.equal(x.ok, true);
  // The deliveries came to B over the bus (senders are connected to A only).
  const received = (await metricValue(b.url, 'chat_bus_received_total')) - received0;
  assert.ok(received >= x.delivered, `B received ${received} bus events for ${x.delivered} deliveries`);
  ackedTotal += x.acked;
  return x;
}

test('closed loop: senders on A, receivers on B, every acked message delivered once', async () => {
  const x = await clusterRun(['--window', '4']);
  assert.equal(x.mode, 'closed');
  assert.equal(x.senders_active, 10);
});

test('open loop at a fixed rate: the schedule is sent and fully delivered', async () => {
  const x = await clusterRun(['--rate', '300']);
  assert.equal(x.mode, 'open');
  assert.equal(x.rate_target, 300);
  // 300/s for 2.5 s: at most 750 (+ one per sender) are due; fewer only on a machine too busy
  // to keep the schedule.
  assert.ok(x.sent <= 760 && x.sent >= 300, `sent ${x.sent}`);
});

test('the worker stores every acknowledged message exactly once', async () => {
  assert.ok(ackedTotal > 0);
  const messages = mongo.db(DB).collection('messages');
  // FerretDB's SQLite backend scans the collection for a count: fine at these sizes.
  const n = await until(async () => {
    const c = await messages.countDocuments();
    return c >= ackedTotal ? c : 0;
  }, { timeoutMs: 120000, message: () => `the worker stored fewer than ${ackedTotal} messages` });
  assert.equal(n, ackedTotal, 'no message stored twice (a duplicate _id is refused) and none extra');
  const ids = await messages.distinct('_id');
  assert.equal(ids.length, ackedTotal);
});
