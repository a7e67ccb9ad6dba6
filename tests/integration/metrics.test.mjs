// GET /metrics: Prometheus text that a scraper can parse, request histograms labelled by route
// pattern (never raw ids or arbitrary paths), response sizes and process metrics.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { randomObjectId, request, signupUser, sleep, startChatd, stopAll } from './lib/chatd.mjs';

after(stopAll);

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;

/** Parses Prometheus text exposition; throws on a line a scraper would reject. */
function parseMetrics(text) {
  const samples = [];
  const types = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m) types.set(m[1], m[2]);
      else assert.match(line, /^# (HELP \S+ .*|HELP \S+|.*)$/);
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    assert.ok(m, `unparsable metrics line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3]) {
      LABEL_RE.lastIndex = 0;
      let consumed = 0;
      let lm;
      while ((lm = LABEL_RE.exec(m[3])) !== null) {
        labels[lm[1]] = lm[2];
        consumed = LABEL_RE.lastIndex;
      }
      assert.equal(consumed, m[3].length, `bad label set in ${JSON.stringify(line)}`);
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    assert.ok(!Number.isNaN(value) || m[4] === 'NaN', `bad value in ${JSON.stringify(line)}`);
    samples.push({ name: m[1], labels, value });
  }
  return { samples, types };
}

const leNum = (le) => (le === '+Inf' ? Infinity : Number(le));
const seriesKey = (labels) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());

let srv;
let alice;
let bob;
let carol;
before(async () => {
  srv = await startChatd();
  alice = await signupUser(srv.url);
  bob = await signupUser(srv.url);
  carol = await signupUser(srv.url);
});

async function scrape() {
  await sleep(150); // observations may be recorded just after the response is written
  const r = await request(srv.url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /^text\/plain/);
  return { text: r.text, ...parseMetrics(r.text) };
}

function routeCount(samples, route) {
  return samples
    .filter((s) => s.name === 'http_request_duration_seconds_count' && s.labels.route === route)
    .reduce((a, s) => a + s.value, 0);
}

describe('metrics', () => {
  test('request durations are labelled by route pattern, never by raw id', async () => {
    await alice.client.post(`/api/messages/send/${bob.user._id}`, { text: 'hi' });
    for (const peer of [bob, carol, bob]) {
      const r = await alice.client.get(`/api/messages/${peer.user._id}`);
      assert.equal(r.status, 200);
    }
    const m = await scrape();
    assert.equal(m.types.get('http_request_duration_seconds'), 'histogram');
    const buckets = m.samples.filter((s) => s.name === 'http_request_duration_seconds_bucket' && s.labels.route === '/api/messages/:id');
    assert.ok(buckets.length > 0, 'no http_request_duration_seconds_bucket{route="/api/messages/:id"}');
    assert.ok(m.samples.some((s) => s.name === 'http_request_duration_seconds_bucket' && s.labels.route === '/api/messages/send/:id'));
    assert.ok(routeCount(m.samples, '/api/messages/:id') >= 3);
    for (const id of [alice.user._id, bob.user._id, carol.user._id]) {
      assert.ok(!m.text.includes(id), `raw id ${id} appears in /metrics`);
    }
  });

  test('histogram buckets are exactly 0.05 0.1 0.2 0.5 1 2 5 +Inf, cumulative, +Inf = _count', async () => {
    const m = await scrape();
    const bySeries = new Map();
    for (const s of m.samples.filter((x) => x.name === 'http_request_duration_seconds_bucket')) {
      const k = seriesKey(s.labels);
      if (!bySeries.has(k)) bySeries.set(k, []);
      bySeries.get(k).push(s);
    }
    assert.ok(bySeries.size > 0);
    const counts = new Map(m.samples.filter((x) => x.name === 'http_request_duration_seconds_count').map((s) => [seriesKey(s.labels), s.value]));
    for (const [k, list] of bySeries) {
      const les = list.map((s) => leNum(s.labels.le)).sort((a, b) => a - b);
      assert.deepEqual(les, [0.05, 0.1, 0.2, 0.5, 1, 2, 5, Infinity], `buckets of ${k}`);
      const sorted = [...list].sort((a, b) => leNum(a.labels.le) - leNum(b.labels.le));
      for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].value >= sorted[i - 1].value, `buckets not cumulative in ${k}`);
      assert.equal(sorted.at(-1).value, counts.get(k), `+Inf bucket != _count for ${k}`);
    }
  });

  test('each request is counted exactly once', async () => {
    const before = routeCount((await scrape()).samples, '/api/messages/:id');
    for (let i = 0; i < 3; i++) await alice.client.get(`/api/messages/${carol.user._id}`);
    await alice.client.get(`/api/messages/${randomObjectId()}`); // unknown peer still matches the route
    const afterCount = routeCount((await scrape()).samples, '/api/messages/:id');
    assert.equal(afterCount - before, 4);
  });

  test('unknown paths do not create new label values', async () => {
    const junk = `zz-junk-${randomObjectId()}`;
    for (let i = 0; i < 3; i++) await request(srv.url, 'GET', `/${junk}/${i}`);
    await request(srv.url, 'GET', `/api/messages/${junk}`);
    const m = await scrape();
    assert.ok(!m.text.includes(junk), 'a raw request path leaked into /metrics');
  });

  test('response sizes and process metrics are exported', async () => {
    const m = await scrape();
    const sizeSum = m.samples.filter((s) => s.name === 'http_response_size_bytes_sum' || s.name === 'http_response_size_bytes').reduce((a, s) => a + s.value, 0);
    assert.ok(m.samples.some((s) => s.name.startsWith('http_response_size_bytes')), 'http_response_size_bytes missing');
    assert.ok(sizeSum > 0, 'response sizes are recorded');
    const one = (name) => {
      const s = m.samples.find((x) => x.name === name);
      assert.ok(s, `${name} missing`);
      return s.value;
    };
    assert.ok(one('process_cpu_seconds_total') >= 0);
    assert.ok(one('process_resident_memory_bytes') > 1024 * 1024, 'RSS should be at least 1 MiB');
    assert.ok(one('process_open_fds') >= 3);
  });
});
