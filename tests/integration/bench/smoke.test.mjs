// Smoke test of chat-bench (apps/chat-bench) against a chatd started here: a few seconds of each
// scenario, asserting what must hold whatever the machine's speed (no timed assertions):
// every acknowledged message delivered exactly once, the RESULT line is valid JSON with the
// documented fields, and a run that meets errors reports them and exits non-zero.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { runBench as bench } from '../lib/bench.mjs';
import { bearerClient, makeTempDir, startChatd, stopAll } from '../lib/chatd.mjs';

const OFF = ['--rate-limit-messages', 'off'];

let srv;
let usersFile;
before(async () => {
  srv = await startChatd({ args: OFF });
  usersFile = path.join(makeTempDir('chat-bench-'), 'users.txt');
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

function checkLatency(s, name) {
  for (const k of ['count', 'mean', 'p50', 'p90', 'p99', 'p999', 'max']) assert.equal(typeof s[k], 'number', `${name}.${k}`);
  assert.ok(s.count > 0, `${name}: no samples`);
  assert.ok(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max, `${name}: percentiles out of order ${JSON.stringify(s)}`);
}

test('dm, closed loop: 10 users, every acknowledged message delivered exactly once', async () => {
  const r = await bench(['dm', '--url', srv.url, '--users', '10', '--users-file', usersFile, '--duration', '2',
    '--warmup', '0.5', '--window', '4', '--server-pid', String(srv.proc.pid), '--label', 'chatd']);
  assert.equal(r.lines, 1, r.describe);
  assert.equal(r.code, 0, r.describe);
  const x = r.result;
  assert.equal(x.scenario, 'dm');
  assert.equal(x.label, 'chatd');
  assert.equal(x.mode, 'closed');
  assert.equal(x.connect_ok, 10);
  assert.equal(x.connect_failed, 0);
  assert.equal(x.senders_active, 10);
  assert.ok(x.acked > 0, 'nothing acknowledged');
  assert.equal(x.missing, 0);
  assert.equal(x.duplicates, 0);
  assert.equal(x.unexpected, 0);
  assert.equal(x.ack_timeouts, 0);
  assert.deepEqual(x.ack_errors, {});
  assert.equal(x.delivered, x.acked, 'each acked message reaches the peer once');
  assert.equal(x.sent, x.acked);
  assert.ok(x.acked_per_s > 0 && x.delivered_per_s > 0);
  checkLatency(x.latency_us.e2e, 'e2e');
  checkLatency(x.latency_us.ack, 'ack');
  assert.ok(x.server.rss_kb_end > 0 && x.server.cpu_pct >= 0, JSON.stringify(x.server));
  assert.equal(x.ok, true);
  assert.match(r.stdout, /send→delivery/);
});

/** Runs bench/rest_probe.py briefly; resolves {code, result, describe}. */
function restProbe(args) {
  const script = path.resolve(import.meta.dirname, '../../../bench/rest_probe.py');
  const argv = [script, '--url', srv.url, '--users-file', usersFile, '--duration', '0.5', '--interval-ms', '10', ...args];
  return new Promise((resolve, reject) => {
    const p = spawn('python3', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ code, result: line && JSON.parse(line.slice('RESULT '.length)), describe: `rest_probe.py ${args.join(' ')}\n${out}` });
    });
  });
}

// After the closed-loop run, which left the users file and messages between its first two users.
test('rest_probe.py: history reads, users lists, profile updates and read positions (markRead over a WebSocket)', async () => {
  const users = readFileSync(usersFile, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#')).map((l) => l.split(/\s+/));
  const [[, token], [peer]] = users;
  const me = bearerClient(srv.url, token);
  const unread = async () => {
    const r = await me.get('/api/messages/users');
    assert.equal(r.status, 200, r.text);
    const u = r.body.data.find((x) => x._id === peer);
    assert.ok(u, `no conversation with ${peer}: ${r.text}`);
    return u.unreadCount;
  };
  assert.ok((await unread()) > 0, 'the dm run left the first user unread messages from the second');
  for (const mode of [[], ['--users-list'], ['--write'], ['--mark-read']]) {
    const r = await restProbe(mode);
    assert.equal(r.code, 0, r.describe);
    assert.ok(r.result.requests > 0, r.describe);
    assert.ok(r.result.p50_ms > 0 && r.result.p50_ms <= r.result.max_ms, r.describe);
  }
  assert.equal(await unread(), 0, 'markRead (upTo past the newest) read the whole conversation');
  const self = await me.get('/api/v1/auth/get-user');
  assert.match(JSON.stringify(self.body), /"bio":"probe \d+"/, 'the profile updates were written');
});

test('dm, open loop over 2 processes, with read receipts: the fixed rate is sent and fully delivered', async () => {
  const r = await bench(['dm', '--url', srv.url, '--users', '10', '--users-file', usersFile, '--duration', '2',
    '--warmup', '0.5', '--rate', '400', '--procs', '2', '--source-addrs', '127.0.0.1+2', '--json-only',
    '--mark-read']);
  assert.equal(r.lines, 1, r.describe);
  assert.equal(r.code, 0, r.describe);
  const x = r.result;
  assert.equal(x.mode, 'open');
  assert.equal(x.rate_target, 400);
  assert.equal(x.procs, 2);
  assert.equal(x.connect_ok, 10);
  // 400/s for 2.5 s: the schedule is fixed, so at most 1000 (+ one per sender) are sent; fewer
  // only if this machine is too busy to keep the schedule until the end.
  assert.ok(x.sent <= 1010 && x.sent >= 500, `sent ${x.sent}`);
  assert.equal(x.missing, 0);
  assert.equal(x.duplicates, 0);
  assert.equal(x.delivered, x.acked);
  // --mark-read: a markRead per message delivered; the server writes them (several waiting for
  // one reader become one write) and tells each sender with messagesRead.
  assert.equal(x.mark_read, true);
  assert.equal(x.mark_reads, x.delivered);
  assert.ok(x.messages_read > 0 && x.messages_read <= x.mark_reads, `messagesRead ${x.messages_read}`);
  checkLatency(x.latency_us.e2e, 'e2e');
  checkLatency(x.latency_us.send_lag, 'send_lag');
  assert.equal(x.ok, true);
  assert.doesNotMatch(r.stdout, /send→delivery/, '--json-only prints only the RESULT line');
});

test('idle: connections are opened, held and the server is sampled', async () => {
  const r = await bench(['idle', '--url', srv.url, '--connections', '60', '--users', '10', '--users-file', usersFile,
    '--hold', '1', '--settle', '0.2', '--sample-interval', '0.25', '--procs', '2', '--server-pid', String(srv.proc.pid)]);
  assert.equal(r.lines, 1, r.describe);
  assert.equal(r.code, 0, r.describe);
  const x = r.result;
  assert.equal(x.scenario, 'idle');
  assert.equal(x.connect_ok, 60);
  assert.equal(x.connect_failed, 0);
  assert.equal(x.disconnects, 0);
  assert.ok(x.connect_rate > 0);
  checkLatency(x.latency_us.connect, 'connect');
  // The generator's own CPU while connecting, to tell its bound from the server's.
  assert.ok(x.client.cpu_connect_s > 0 && x.client.us_per_conn > 0, JSON.stringify(x.client));
  assert.equal(typeof x.client.cpu_connect_pct, 'number');
  assert.ok(x.server.rss_kb_end > 0);
  assert.equal(typeof x.server.rss_bytes_per_conn, 'number');
  assert.equal(typeof x.server.idle_cpu_pct, 'number');
  assert.ok(Array.isArray(x.server.samples) && x.server.samples.length >= 2, JSON.stringify(x.server.samples));
  assert.equal(x.ok, true);
});

test('errors are reported: a rate-limited server fails the run', async () => {
  const limited = await startChatd({ args: ['--rate-limit-messages', '5/10s'] });
  try {
    const r = await bench(['dm', '--url', limited.url, '--users', '2', '--duration', '1', '--warmup', '0', '--window', '2']);
    assert.equal(r.lines, 1, r.describe);
    assert.equal(r.code, 1, r.describe);
    assert.equal(r.result.ok, false);
    assert.ok(r.result.ack_errors.rate_limited > 0, JSON.stringify(r.result.ack_errors));
    assert.equal(r.result.missing, 0, 'refused messages are not counted as lost');
  } finally {
    assert.equal(await limited.stop(), 0);
  }
});

test('bad usage exits with 2 and says why', async () => {
  const r = await bench(['dm', '--users', '3']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--users must be even/);
  const h = await bench(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Scenarios:/);
});
