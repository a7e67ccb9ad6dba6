// Configuration (flags > env > .env > defaults, --help, invalid values) and process lifecycle
// (restart on the same data, graceful shutdown with requests in flight, connection timeouts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  JWT_SECRET,
  bearerClient,
  dataUrl,
  decodeJwt,
  freePort,
  makeTempDir,
  pngOfSize,
  pool,
  rawExchange,
  request,
  runChatd,
  signupUser,
  sleep,
  startChatd,
  stopAll,
  tokenFor,
} from './lib/chatd.mjs';

after(stopAll);

describe('command line', () => {
  test('--help lists the settings and exits 0', async () => {
    const r = await runChatd(['--help']);
    assert.equal(r.timedOut, false, '--help must not start the server');
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout + r.stderr;
    for (const flag of ['--port', '--host', '--data-dir', '--jwt-secret', '--jwt-expiration', '--cors-origins', '--json-limit',
      '--upload-limit', '--max-text', '--rate-limit-api', '--rate-limit-auth', '--trust-proxy', '--idle-timeout', '--read-timeout', '--log-level']) {
      assert.ok(text.includes(flag), `--help does not mention ${flag}`);
    }
  });

  const invalid = [
    [['--port', 'abc'], {}, /port/i],
    [['--port', '70000'], {}, /port/i],
    [['--jwt-expiration', '7x'], {}, /jwt[-_]expiration/i],
    [['--rate-limit-api', 'lots'], {}, /rate[-_]limit[-_]api/i],
    [['--rate-limit-auth', 'ten/15m'], {}, /rate[-_]limit[-_]auth/i],
    [['--json-limit', '-1'], {}, /json[-_]?(body[-_])?limit/i],
    [['--upload-limit', 'big'], {}, /upload[-_]limit/i],
    [['--max-text', 'abc'], {}, /max[-_]text/i],
    [['--trust-proxy', 'maybe'], {}, /trust[-_]proxy/i],
    [['--idle-timeout', 'soon'], {}, /idle[-_]timeout/i],
    [[], { SERVER_PORT: 'eighty' }, /port/i],
    [[], { JWT_EXPIRATION: 'forever' }, /jwt[-_]expiration/i],
  ];
  for (const [args, env, re] of invalid) {
    test(`invalid setting ${JSON.stringify(args.length ? args : env)} → non-zero exit naming it`, async () => {
      const dir = makeTempDir();
      // a --port flag would override SERVER_PORT, so it is only passed when the env is not under test
      const port = 'SERVER_PORT' in env ? [] : ['--port', '0'];
      const r = await runChatd(['--host', '127.0.0.1', ...port, '--data-dir', dir, '--jwt-secret', JWT_SECRET, ...args], { env });
      assert.equal(r.timedOut, false, `chatd started despite the invalid setting:\n${r.stdout}`);
      assert.notEqual(r.code, 0);
      assert.equal(r.signal, null, `crashed with ${r.signal}:\n${r.stderr}`);
      assert.match(r.stderr, re, `stderr should name the setting:\n${r.stderr}`);
    });
  }

  test('NODE_ENV=production without a JWT secret refuses to start', async () => {
    const dir = makeTempDir();
    const r = await runChatd(['--host', '127.0.0.1', '--port', '0', '--data-dir', dir], { env: { NODE_ENV: 'production', JWT_SECRET: undefined } });
    assert.equal(r.timedOut, false, 'chatd started in production without a secret');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /jwt[-_]secret/i, r.stderr);
  });
});

describe('settings sources', () => {
  test('--port uses the requested port', async () => {
    const port = await freePort();
    const s = await startChatd({ args: ['--port', String(port)] });
    assert.equal(s.port, port);
    assert.equal((await request(`http://127.0.0.1:${port}`, 'GET', '/healthz')).status, 200);
  });

  test('precedence is flags > environment > .env file > defaults (MAX_TEXT_LENGTH)', async () => {
    const cwd = makeTempDir('chatd-dotenv-');
    writeFileSync(path.join(cwd, '.env'), '# test settings\nMAX_TEXT_LENGTH=10\n');
    const textOk = async (s, n) => {
      const a = await signupUser(s.url);
      const b = await signupUser(s.url);
      const r = await a.client.post(`/api/messages/send/${b.user._id}`, { text: 'x'.repeat(n) });
      return r.status;
    };
    // .env only
    let s = await startChatd({ cwd });
    assert.equal(await textOk(s, 10), 200);
    assert.equal(await textOk(s, 11), 400, '.env MAX_TEXT_LENGTH=10 ignored');
    await s.stop();
    // environment beats .env
    s = await startChatd({ cwd, env: { MAX_TEXT_LENGTH: '20' } });
    assert.equal(await textOk(s, 20), 200, 'env MAX_TEXT_LENGTH=20 should beat .env');
    assert.equal(await textOk(s, 21), 400);
    await s.stop();
    // flag beats both
    s = await startChatd({ cwd, env: { MAX_TEXT_LENGTH: '20' }, args: ['--max-text', '30'] });
    assert.equal(await textOk(s, 30), 200, '--max-text 30 should beat env and .env');
    assert.equal(await textOk(s, 31), 400);
    await s.stop();
  });

  test('JWT_SECRET from the environment signs and verifies tokens', async () => {
    const dir = makeTempDir();
    const secret = 'env-secret-abcdefghijklmnop';
    const s = await startChatd({
      baseArgs: ['--host', '127.0.0.1', '--port', '0', '--data-dir', dir, '--rate-limit-auth', 'off', '--rate-limit-api', 'off'],
      env: { JWT_SECRET: secret },
    });
    const u = await signupUser(s.url);
    assert.equal((await bearerClient(s.url, tokenFor(u.user._id, { secret })).get('/api/v1/auth/check-auth')).status, 200);
    const wrong = await bearerClient(s.url, tokenFor(u.user._id, { secret: JWT_SECRET })).get('/api/v1/auth/check-auth');
    assert.equal(wrong.status, 401);
  });

  test('--jwt-expiration sets the token lifetime', async () => {
    const s = await startChatd({ args: ['--jwt-expiration', '1h'] });
    const u = await signupUser(s.url);
    const { payload } = decodeJwt(u.token);
    assert.equal(payload.exp - payload.iat, 3600);
  });

  test('NODE_ENV=production marks the auth cookie Secure', async () => {
    const s = await startChatd({ env: { NODE_ENV: 'production' } });
    const u = await signupUser(s.url);
    const ck = u.res.cookies.find((c) => c.name === 'token');
    assert.ok(ck, 'token cookie');
    assert.equal(ck.attrs.secure, true, ck.raw);
    assert.equal(ck.attrs.httponly, true);
  });
});

describe('lifecycle', () => {
  test('SIGTERM on an idle server exits 0 promptly', async () => {
    const s = await startChatd();
    await request(s.url, 'GET', '/healthz');
    const t0 = Date.now();
    assert.equal(await s.stop('SIGTERM'), 0, s.describe());
    assert.ok(Date.now() - t0 < 10000, 'shutdown took too long');
  });

  test('users and messages survive a restart on the same --data-dir', async () => {
    let s = await startChatd();
    const a = await signupUser(s.url);
    const b = await signupUser(s.url);
    const m = await a.client.post(`/api/messages/send/${b.user._id}`, { text: 'remember me' });
    assert.equal(m.status, 200);
    assert.equal(await s.stop(), 0);
    s = await startChatd({ dataDir: s.dataDir });
    const login = await request(s.url, 'POST', '/api/v1/auth/login', { json: { email: a.email, password: a.password } });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.user._id, a.user._id);
    // tokens issued before the restart stay valid (same secret)
    const h = await bearerClient(s.url, b.token).get(`/api/messages/${a.user._id}`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.body.data.map((x) => x._id), [m.body.data._id]);
    assert.equal(h.body.data[0].text, 'remember me');
  });

  test('graceful shutdown: every acknowledged message is durable and the exit code is 0', { timeout: 120000 }, async () => {
    const s = await startChatd();
    const a = await signupUser(s.url);
    const b = await signupUser(s.url);
    const N = 400;
    let completed = 0;
    let signalled = false;
    let stopPromise = null;
    const pending = new Set(); // requests started and not yet answered
    let inflightAtSignal = [];
    const results = await pool(Array.from({ length: N }, (_, i) => i), 40, async (i) => {
      pending.add(i);
      try {
        const r = await a.client.post(`/api/messages/send/${b.user._id}`, { text: `inflight ${i}` });
        pending.delete(i);
        completed++;
        if (!signalled && completed >= 60) {
          signalled = true;
          inflightAtSignal = [...pending];
          stopPromise = s.stop('SIGTERM', 30000);
        }
        return { i, status: r.status, id: r.body?.data?._id, text: r.body?.data?.text, body: r.text };
      } catch (e) {
        pending.delete(i);
        return { i, status: 'error', error: e.cause?.code || e.message };
      }
    });
    assert.ok(signalled, 'SIGTERM was sent');
    assert.ok(inflightAtSignal.length > 0, 'requests were in flight when SIGTERM was sent');
    const code = await stopPromise;
    assert.equal(code, 0, `exit code after SIGTERM\n${s.describe()}`);
    const ok = results.filter((r) => r.status === 200);
    assert.ok(ok.length >= 60, `at least the requests before SIGTERM succeeded (${ok.length})`);
    for (const r of results) {
      // refused/closed connections and 503 are fine; a 500 or other error status is not
      assert.ok(r.status === 200 || r.status === 'error' || r.status === 503, `request ${r.i}: ${r.status} ${r.body || r.error}`);
    }
    if (process.env.CHATD_IT_VERBOSE) {
      const drained = inflightAtSignal.filter((i) => results[i].status === 200);
      console.log(`200: ${ok.length}, in flight at SIGTERM: ${inflightAtSignal.length}, of which answered: ${drained.length}`);
    }
    for (const r of ok) {
      assert.match(r.id || '', /^[0-9a-f]{24}$/i);
      assert.equal(r.text, `inflight ${r.i}`);
    }

    const s2 = await startChatd({ dataDir: s.dataDir });
    const c = bearerClient(s2.url, b.token);
    const stored = new Map();
    let before = null;
    for (;;) {
      const r = await c.get(`/api/messages/${a.user._id}?limit=200${before ? `&before=${before}` : ''}`);
      assert.equal(r.status, 200, r.text);
      for (const m of r.body.data) stored.set(m._id, m.text);
      if (!r.body.hasMore) break;
      before = r.body.data[0]._id;
    }
    const lost = ok.filter((r) => stored.get(r.id) !== `inflight ${r.i}`);
    assert.deepEqual(lost.map((r) => r.i), [], `${lost.length} acknowledged messages lost after SIGTERM`);
    assert.equal(await s2.stop(), 0);
  });

  test('SIGTERM lets a request that is still being uploaded finish, and refuses new connections', { timeout: 60000 }, async () => {
    const s = await startChatd();
    const a = await signupUser(s.url);
    const b = await signupUser(s.url);
    const img = pngOfSize(300 * 1024);
    const body = Buffer.from(JSON.stringify({ text: 'slow upload', image: dataUrl('image/png', img) }));
    const half = Math.floor(body.length / 2);
    let res;
    const done = new Promise((resolve) => {
      const req = http.request(
        { host: '127.0.0.1', port: s.port, method: 'POST', path: `/api/messages/send/${b.user._id}`, agent: false,
          headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${a.token}` } },
        (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (d) => (text += d));
          r.on('end', () => resolve({ status: r.statusCode, text }));
        },
      );
      req.on('error', (e) => resolve({ status: 'error', text: e.message }));
      res = req;
    });
    res.write(body.subarray(0, half));
    await sleep(300); // the server has the headers and half the body
    const exited = s.stop('SIGTERM', 30000);
    await sleep(500);
    assert.equal(s.proc.exitCode, null, 'chatd exited while a request was still being received');
    const fresh = await request(s.url, 'GET', '/healthz').then((r) => r.status, (e) => `refused (${e.cause?.code || e.message})`);
    assert.notEqual(fresh, 200, 'a new connection was still served after SIGTERM');
    res.end(body.subarray(half));
    const r = await done;
    assert.equal(r.status, 200, `in-flight upload after SIGTERM: ${r.status} ${r.text}`);
    const msg = JSON.parse(r.text).data;
    assert.equal(await exited, 0, s.describe());

    const s2 = await startChatd({ dataDir: s.dataDir });
    const h = await bearerClient(s2.url, b.token).get(`/api/messages/${a.user._id}`);
    assert.deepEqual(h.body.data.map((m) => m._id), [msg._id]);
    const m = await bearerClient(s2.url, b.token).get(msg.image);
    assert.equal(m.status, 200);
    assert.ok(m.buffer.equals(img), 'uploaded image intact');
  });

  test('--idle-timeout closes idle keep-alive connections', { timeout: 20000 }, async () => {
    const s = await startChatd({ args: ['--idle-timeout', '1s'] });
    const r = await rawExchange(s.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n', { timeoutMs: 8000 });
    assert.match(r.text, /^HTTP\/1\.1 200/);
    assert.equal(r.closed, true, 'idle connection was never closed');
    assert.ok(r.ms < 6000, `closed after ${r.ms} ms`);
  });

  test('--read-timeout drops a client that never finishes its request (slowloris)', { timeout: 20000 }, async () => {
    const s = await startChatd({ args: ['--read-timeout', '1s'] });
    const r = await rawExchange(s.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', { timeoutMs: 8000 });
    assert.equal(r.closed, true, 'half-sent request kept the connection open');
    assert.ok(r.ms < 6000, `closed after ${r.ms} ms`);
    assert.ok(!/^HTTP\/1\.1 [25]/.test(r.text), `unexpected answer: ${r.text.slice(0, 40)}`);
    assert.equal((await request(s.url, 'GET', '/healthz')).status, 200);
  });
});

describe('many connections', () => {
  test('200 concurrent clients are all served', { timeout: 60000 }, async () => {
    const s = await startChatd();
    const results = await Promise.all(Array.from({ length: 200 }, () => request(s.url, 'GET', '/healthz').then((r) => r.status, (e) => e.message)));
    assert.deepEqual(results.filter((x) => x !== 200), []);
    await sleep(10);
  });
});
