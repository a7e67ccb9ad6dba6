// The monitoring side of deploy/: Debian's Prometheus runs the SHIPPED deploy/prometheus.yml (only
// the compose addresses rewritten to loopback ports by scripts/services/prometheus.sh --map) against
// live processes of the compose topology, run natively: two cluster-mode chatd (chatd1, chatd2),
// one chat-worker (worker), Redis, Kafka and FerretDB. chatd3 is mapped to a port nobody listens
// on, so the test also sees how a dead instance shows up.
// The Grafana dashboard (deploy/grafana/dashboards/chatd.json) is checked against that Prometheus:
// every metric it names exists once traffic has flowed, every expression evaluates, and the
// message-rate and latency panels have data.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeTempDir, signupUser, sleep, stopAll } from '../lib/chatd.mjs';
import {
  freePort,
  service,
  startClusterChatd,
  startFerret,
  startKafka,
  startRedis,
  startWorker,
} from '../lib/cluster.mjs';
import { closeAllClients, connectAs, emitAck, metricValue } from '../lib/sio.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEPLOY = path.resolve(HERE, '../../../deploy');
const PROMETHEUS_YML = path.join(DEPLOY, 'prometheus.yml');
const DASHBOARD = path.join(DEPLOY, 'grafana/dashboards/chatd.json');
const DATASOURCES = path.join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yml');

const TOPIC = `chat-messages-${randomBytes(3).toString('hex')}`;
const DB = `chat_${randomBytes(3).toString('hex')}`;
const MESSAGES = 6;

// ---------------------------------------------------------------------------------------------
// The dashboard's PromQL

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));

/** Every panel, rows' nested panels included. */
function allPanels(d) {
  const out = [];
  for (const p of d.panels || []) {
    out.push(p);
    for (const inner of p.panels || []) out.push(inner);
  }
  return out;
}

/** [{panel title, expr}] of every query in the dashboard. */
function dashboardQueries(d) {
  return allPanels(d).flatMap((p) => (p.targets || []).map((t) => ({ panel: p.title, expr: t.expr })));
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or',
  'unless', 'offset', 'bool', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, label matchers,
 * ranges and `by (…)`-style label lists are removed, that are neither a function/aggregation
 * (followed by "(") nor a keyword nor part of a number/duration.
 */
function metricNames(expr) {
  const e = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set();
  for (const m of e.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    if (m.index > 0 && /[0-9.]/.test(e[m.index - 1])) continue; // 1e3, 5m
    if (/^\s*\(/.test(e.slice(m.index + m[0].length))) continue; // rate(, sum (
    if (PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

const QUERIES = dashboardQueries(dashboard);
const METRICS = [...new Set(QUERIES.flatMap((q) => metricNames(q.expr)))].sort();

// ---------------------------------------------------------------------------------------------
// Prometheus HTTP API

let promUrl;

async function promGet(p) {
  const r = await fetch(`${promUrl}${p}`);
  const body = await r.json();
  return { status: r.status, body };
}

/** Instant query; returns the API's data ({resultType, result}); throws on an API error. */
async function query(expr) {
  const { status, body } = await promGet(`/api/v1/query?query=${encodeURIComponent(expr)}`);
  if (status !== 200 || body.status !== 'success') throw new Error(`query ${expr}: ${status} ${JSON.stringify(body)}`);
  return body.data;
}

/** The single number an instant query returns (undefined when the vector is empty). */
async function scalar(expr) {
  const { result } = await query(expr);
  if (!result.length) return undefined;
  assert.equal(result.length, 1, `${expr} returned ${result.length} series`);
  return Number(result[0].value[1]);
}

/** Polls `cond` every 250 ms until truthy; throws message() after timeoutMs. */
async function eventually(cond, { timeoutMs = 20000, message = () => 'condition not met' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${message()} (after ${timeoutMs} ms)`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------

describe('the Grafana dashboard (static)', () => {
  test('is a provisionable Grafana dashboard on the provisioned Prometheus datasource', () => {
    const uid = /^\s*uid:\s*(\S+)\s*$/m.exec(readFileSync(DATASOURCES, 'utf8'))?.[1];
    assert.ok(uid, 'the datasource provisioning file names a uid');
    assert.equal(typeof dashboard.uid, 'string');
    assert.equal(typeof dashboard.title, 'string');
    assert.ok(dashboard.schemaVersion >= 36, 'Grafana 10+ schema');
    const ids = new Set();
    for (const p of allPanels(dashboard)) {
      assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `panel id ${p.id} unique`);
      ids.add(p.id);
      const g = p.gridPos;
      assert.ok(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: gridPos inside 24 columns`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, uid, `${p.title}: datasource uid`);
      assert.ok(p.targets?.length, `${p.title}: has queries`);
      const refs = new Set();
      for (const t of p.targets) {
        assert.equal(t.datasource?.uid, uid, `${p.title} ${t.refId}: datasource uid`);
        assert.ok(t.refId && !refs.has(t.refId), `${p.title}: refId ${t.refId} unique`);
        refs.add(t.refId);
        assert.ok(t.expr && t.expr.trim(), `${p.title} ${t.refId}: expr`);
      }
    }
  });

  test('covers what the issue asks for', () => {
    const titles = allPanels(dashboard).map((p) => p.title.toLowerCase());
    for (const want of ['connections', 'messages/s in', 'messages/s out', 'delivery latency', 'kafka produce latency',
      'consumer lag', 'database write latency', 'errors', 'slow-consumer disconnects']) {
      assert.ok(titles.some((t) => t.includes(want)), `a panel about "${want}"`);
    }
  });

  test('metric names are extracted from its expressions', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (le, instance) (rate(chat_message_fanout_seconds_bucket{code=~"5.."}[1m])))'),
      ['chat_message_fanout_seconds_bucket'],
    );
    assert.deepEqual(metricNames('sum(rate(a_total[5m] offset 1h)) / on (instance) group_left b'), ['a_total', 'b']);
    for (const m of ['chat_worker_written_total', 'chat_messages_received_total', 'chat_worker_consumer_lag_messages',
      'chat_kafka_produce_duration_seconds_bucket', 'chat_worker_db_write_duration_seconds_bucket']) {
      assert.ok(METRICS.includes(m), `${m} among ${METRICS.join(', ')}`);
    }
  });
});

describe('Prometheus with the shipped deploy/prometheus.yml, scraping live processes', () => {
  let redis, kafka, ferret, worker, promDir, deadPort;
  const chatd = [];
  const addr = {}; // compose name → 127.0.0.1:port

  before(async () => {
    [redis, kafka, ferret] = await Promise.all([startRedis(), startKafka(), startFerret()]);
    for (const i of [1, 2]) {
      const port = await freePort();
      chatd.push(await startClusterChatd({
        port,
        instance: `chatd${i}`,
        mongoUri: ferret.uri(DB),
        redisUrl: redis.url,
        kafkaBrokers: kafka.brokers,
        topic: TOPIC,
      }));
      addr[`chatd${i}`] = `127.0.0.1:${port}`;
    }
    worker = await startWorker({ mongoUri: ferret.uri(DB), kafkaBrokers: kafka.brokers, topic: TOPIC });
    addr.worker = `127.0.0.1:${worker.port}`;
    deadPort = await freePort();
    addr.chatd3 = `127.0.0.1:${deadPort}`;

    promDir = makeTempDir('chat-prometheus-');
    const port = await freePort();
    const map = [`chatd1:5000=${addr.chatd1}`, `chatd2:5000=${addr.chatd2}`, `chatd3:5000=${addr.chatd3}`,
      `worker:9400=${addr.worker}`].join(',');
    await service('prometheus.sh', ['start', '--dir', promDir, '--port', String(port), '--config', PROMETHEUS_YML,
      '--map', map, '--watch-pid', String(process.pid)]);
    promUrl = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    closeAllClients();
    if (promDir) await service('prometheus.sh', ['stop', '--dir', promDir]).catch(() => {});
    if (worker) await worker.kill('SIGTERM');
    await stopAll();
    // Stopped here rather than left to --watch-pid: lib/chatd.mjs removes the temporary
    // directories (pid files included) at exit, before the watchers would stop the services.
    await Promise.all([redis, ferret, kafka].filter(Boolean).map((s) => s.stop().catch(() => {})));
  });

  test('runs the shipped config: its jobs, with only the addresses rewritten', async () => {
    const targets = async () => {
      const { body } = await promGet('/api/v1/targets');
      return body.data.activeTargets.map((t) => `${t.labels.job} ${t.scrapeUrl}`).sort();
    };
    // Discovery of static targets takes a moment after /-/ready.
    await eventually(async () => (await targets()).length === 4, { timeoutMs: 10000, message: () => 'targets not loaded' });
    assert.deepEqual(await targets(), [
      `chat-worker http://${addr.worker}/metrics`,
      `chatd http://${addr.chatd1}/metrics`,
      `chatd http://${addr.chatd2}/metrics`,
      `chatd http://${addr.chatd3}/metrics`,
    ].sort());
    // Everything else in the running config is the shipped file's.
    let shipped = readFileSync(PROMETHEUS_YML, 'utf8');
    for (const [from, to] of [['chatd1:5000', addr.chatd1], ['chatd2:5000', addr.chatd2], ['chatd3:5000', addr.chatd3],
      ['worker:9400', addr.worker]]) shipped = shipped.replaceAll(from, to);
    assert.equal(readFileSync(path.join(promDir, 'prometheus.yml'), 'utf8'), shipped);
  });

  test('every live chatd and the worker are up; the missing chatd3 is down', async () => {
    const health = async () => {
      const { body } = await promGet('/api/v1/targets');
      return Object.fromEntries(body.data.activeTargets.map((t) => [t.labels.instance, t]));
    };
    await eventually(async () => {
      const h = await health();
      return ['chatd1', 'chatd2', 'worker'].every((n) => h[addr[n]]?.health === 'up') && h[addr.chatd3]?.health === 'down';
    }, { message: () => 'targets not scraped as expected' }).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await health())}`);
    });
    const h = await health();
    assert.match(h[addr.chatd3].lastError, /refused|connect/i);
    // The same through PromQL, as the dashboard's "Scrape targets" panel sees it.
    assert.equal(await scalar(`up{job="chatd",instance="${addr.chatd1}"}`), 1);
    assert.equal(await scalar(`up{job="chatd",instance="${addr.chatd2}"}`), 1);
    assert.equal(await scalar(`up{job="chatd",instance="${addr.chatd3}"}`), 0);
    assert.equal(await scalar(`up{job="chat-worker",instance="${addr.worker}"}`), 1);
  });

  test('messages sent through chatd show up in Prometheus: received, published, produced, stored', async () => {
    // Scraped at least once before the traffic, so rate() over the traffic has a baseline.
    await eventually(async () => (await scalar(`sum(chat_worker_written_total{instance="${addr.worker}"})`)) !== undefined,
      { message: () => 'chat_worker_written_total never scraped' });
    await eventually(async () => (await scalar(`sum(chat_messages_received_total{instance="${addr.chatd1}"})`)) !== undefined,
      { message: () => 'chat_messages_received_total never scraped' });
    const base = {
      received: await scalar(`sum(chat_messages_received_total{instance="${addr.chatd1}"})`),
      written: await scalar(`sum(chat_worker_written_total{instance="${addr.worker}"})`),
      produced: (await scalar(`sum(chat_kafka_produce_duration_seconds_count{instance="${addr.chatd1}"})`)) ?? 0,
    };

    const alice = await signupUser(chatd[0].url, { full_name: 'Alice' });
    const bob = await signupUser(chatd[1].url, { full_name: 'Bob' });
    const a = await connectAs(chatd[0].url, alice.token, { opts: { transports: ['websocket'] } });
    const b = await connectAs(chatd[1].url, bob.token, { events: ['newMessage'], opts: { transports: ['websocket'] } });
    const ids = [];
    for (let i = 0; i < MESSAGES; i++) {
      const r = await emitAck(a.socket, 'sendMessage', { to: bob.user._id, text: `metrics ${i}` }, 30000);
      assert.equal(r?.status, 'ok', JSON.stringify(r));
      ids.push(r.message._id);
    }
    // Bob is on the other instance: delivery crossed the Redis bus.
    await eventually(() => ids.every((id) => b.rec.values('newMessage').some((m) => m._id === id)),
      { timeoutMs: 15000, message: () => 'bob did not get every message on chatd2' });

    // Prometheus ends up with exactly what the processes report.
    const direct = await metricValue(chatd[0].url, 'chat_messages_received_total');
    assert.ok(direct >= base.received + MESSAGES, `chatd1 counted ${direct} received, baseline ${base.received}`);
    await eventually(async () => (await scalar(`sum(chat_messages_received_total{instance="${addr.chatd1}"})`)) === direct,
      { message: () => `Prometheus never saw chat_messages_received_total = ${direct} on chatd1` });
    await eventually(async () => (await scalar(`sum(chat_worker_written_total{instance="${addr.worker}"})`)) >= base.written + MESSAGES,
      { timeoutMs: 30000, message: () => 'chat_worker_written_total did not grow by the messages sent' });
    assert.ok((await scalar(`sum(chat_kafka_produce_duration_seconds_count{instance="${addr.chatd1}"})`)) >= base.produced + MESSAGES,
      'every message was produced to Kafka (chat_kafka_produce_duration_seconds_count)');
    assert.ok((await scalar(`sum(chat_bus_published_total{instance="${addr.chatd1}"})`)) > 0, 'chatd1 published to the bus');
    await eventually(async () => (await scalar(`sum(chat_bus_received_total{instance="${addr.chatd2}"})`)) > 0,
      { message: () => 'chatd2 received nothing from the bus' });
    assert.equal(await scalar(`sum(chat_socketio_sockets{instance="${addr.chatd2}"})`), 1, 'bob\'s socket on chatd2');
  });

  test('every metric the dashboard names exists in Prometheus', async () => {
    const { body } = await promGet('/api/v1/label/__name__/values');
    const known = new Set(body.data);
    const missing = METRICS.filter((m) => !known.has(m));
    assert.deepEqual(missing, [], `dashboard metrics that Prometheus never scraped (of ${METRICS.length})`);
  });

  test('every dashboard expression evaluates, and the traffic panels have data', async () => {
    const errors = [];
    const results = new Map();
    for (const { panel, expr } of QUERIES) {
      try {
        results.set(expr, await query(expr));
      } catch (e) {
        errors.push(`${panel}: ${e.message}`);
      }
    }
    assert.deepEqual(errors, []);
    // The 1-minute windows cover the messages of the previous test.
    const finite = (expr) => {
      const r = results.get(expr);
      assert.ok(r, `dashboard query ${expr}`);
      return r.result.filter((s) => Number.isFinite(Number(s.value[1])) && Number(s.value[1]) > 0);
    };
    const exprOf = (fragment, quantile = '') => {
      const q = QUERIES.find((x) => x.expr.includes(fragment) && x.expr.includes(quantile));
      assert.ok(q, `a dashboard query with ${fragment} ${quantile}`);
      return q.expr;
    };
    for (const [fragment, instance] of [
      ['rate(chat_messages_received_total', addr.chatd1],
      ['rate(chat_worker_written_total', addr.worker],
      ['rate(chat_bus_published_total', addr.chatd1],
      ['histogram_quantile(0.99, sum by (le, instance) (rate(chat_message_fanout_seconds_bucket', addr.chatd1],
      ['histogram_quantile(0.99, sum by (le, instance) (rate(chat_kafka_produce_duration_seconds_bucket', addr.chatd1],
      ['histogram_quantile(0.99, sum by (le, instance) (rate(chat_worker_db_write_duration_seconds_bucket', addr.worker],
    ]) {
      const series = finite(exprOf(fragment));
      assert.ok(series.some((s) => s.metric.instance === instance),
        `${fragment}…: a positive value for ${instance}, got ${JSON.stringify(results.get(exprOf(fragment)).result)}`);
    }
  });
});
