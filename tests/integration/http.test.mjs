// HTTP-level behaviour: health endpoints, bad requests (never a 500, server stays up), body limits,
// 404/405, security headers and CORS.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { rawExchange, request, signupUser, startChatd, stopAll, uniqueEmail } from './lib/chatd.mjs';

after(stopAll);

let srv;
let u; // a signed-up user on srv
let peer;
before(async () => {
  srv = await startChatd();
  u = await signupUser(srv.url);
  peer = await signupUser(srv.url);
});

async function assertAlive(s = srv) {
  const r = await request(s.url, 'GET', '/healthz');
  assert.equal(r.status, 200, `server not healthy after bad input:\n${s.describe()}`);
}

afterEach(async () => {
  if (srv && srv.proc.exitCode === null) await assertAlive();
  assert.equal(srv.proc.exitCode, null, `chatd died:\n${srv.describe()}`);
});

/** POSTs a JSON body with fetch; returns the status, or "connection error <code>". */
async function fetchStatus(url, body, { chunked = false } = {}) {
  let payload = body;
  const extra = {};
  if (chunked) {
    const enc = new TextEncoder().encode(body);
    payload = new ReadableStream({
      start(ctrl) {
        for (let i = 0; i < enc.length; i += 256) ctrl.enqueue(enc.subarray(i, i + 256));
        ctrl.close();
      },
    });
    extra.duplex = 'half';
  }
  try {
    const res = await fetch(url, { method: 'POST', body: payload, headers: { 'content-type': 'application/json' }, ...extra });
    await res.arrayBuffer();
    return res.status;
  } catch (e) {
    return `connection error ${e.cause?.code || e.message}`;
  }
}

async function statuses(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

describe('health', () => {
  test('GET /healthz and /readyz', async () => {
    const h = await request(srv.url, 'GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: 'ok' });
    assert.match(h.headers.get('content-type'), /application\/json/);
    const r = await request(srv.url, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
  });
});

describe('bad requests', () => {
  test('malformed JSON → 400 with a message', async () => {
    const bodies = ['{', '{"email": "a@b.c",}', 'nul', '{"email": "a@b.c" "password": "x"}', '\u0000', '{"a":"\\uZZZZ"}'];
    for (const body of bodies) {
      for (const p of ['/api/v1/auth/signup', '/api/v1/auth/login']) {
        const r = await request(srv.url, 'POST', p, { body, headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 400, `${p} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
        assert.equal(typeof r.body?.message, 'string', r.text);
      }
      const s = await u.client.request('POST', `/api/messages/send/${peer.user._id}`, {
        body,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(s.status, 400, `send ${JSON.stringify(body)}: ${s.text}`);
    }
  });

  test('JSON of the wrong shape (array, string, null, number) → 400, never 500', async () => {
    for (const body of ['[]', '"str"', 'null', '42', 'true', '[{"email":"a@b.c"}]']) {
      for (const [client, method, p] of [
        [null, 'POST', '/api/v1/auth/signup'],
        [null, 'POST', '/api/v1/auth/login'],
        [u.client, 'PUT', '/api/v1/auth/update-profile'],
        [u.client, 'POST', `/api/messages/send/${peer.user._id}`],
      ]) {
        const opts = { body, headers: { 'content-type': 'application/json' } };
        const r = client ? await client.request(method, p, opts) : await request(srv.url, method, p, opts);
        assert.equal(r.status, 400, `${method} ${p} ${body}: ${r.status} ${r.text}`);
      }
    }
  });

  test('invalid UTF-8 and absurd nesting are rejected without crashing', async () => {
    const badUtf8 = Buffer.concat([Buffer.from('{"email":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('@x.io","password":"secret123","full_name":"x"}')]);
    const r1 = await request(srv.url, 'POST', '/api/v1/auth/signup', { body: badUtf8, headers: { 'content-type': 'application/json' } });
    assert.equal(r1.status, 400, r1.text);
    const deep = '['.repeat(100000) + ']'.repeat(100000);
    const r2 = await request(srv.url, 'POST', '/api/v1/auth/login', { body: deep, headers: { 'content-type': 'application/json' } });
    assert.ok(r2.status === 400 || r2.status === 413, `deep nesting: ${r2.status}`);
    const deepObj = '{"a":'.repeat(50000) + '1' + '}'.repeat(50000);
    const r3 = await request(srv.url, 'POST', '/api/v1/auth/login', { body: deepObj, headers: { 'content-type': 'application/json' } });
    assert.ok(r3.status === 400 || r3.status === 413, `deep object: ${r3.status}`);
  });

  test('a non-JSON Content-Type on a JSON route → 415', async () => {
    const json = JSON.stringify({ email: uniqueEmail('ct'), password: 'secret123', full_name: 'CT' });
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      const r = await request(srv.url, 'POST', '/api/v1/auth/signup', { body: json, headers: { 'content-type': ct } });
      assert.equal(r.status, 415, `${ct}: ${r.status} ${r.text}`);
      assert.equal(typeof r.body?.message, 'string', r.text);
    }
    const s = await u.client.request('POST', `/api/messages/send/${peer.user._id}`, { body: '{"text":"x"}', headers: { 'content-type': 'text/plain' } });
    assert.equal(s.status, 415, s.text);
    // the account was not created by any of them, and a charset parameter is fine
    const ok = await request(srv.url, 'POST', '/api/v1/auth/signup', { body: json, headers: { 'content-type': 'application/json; charset=utf-8' } });
    assert.equal(ok.status, 201, ok.text);
  });

  // Routes that carry images (signup, update-profile, send) allow room for a base64 picture of
  // --upload-limit on top of the JSON limit; the plain JSON limit is checked on login.
  // Repeated: the client must *receive* the 413 every time (a server that closes the socket right
  // after an early 413 makes the client see a connection reset instead, some of the time).
  test('a body over the default 1 MiB JSON limit → 413', async () => {
    const body = JSON.stringify({ email: uniqueEmail('big'), password: 'x'.repeat(1100 * 1024) });
    assert.deepEqual(await statuses(3, () => fetchStatus(`${srv.url}/api/v1/auth/login`, body)), [413, 413, 413], 'login 1.1 MiB');
    const signup = JSON.stringify({ email: uniqueEmail('big'), password: 'secret123', full_name: 'Big', bio: 'x'.repeat(9 * 1024 * 1024) });
    assert.deepEqual(await statuses(2, () => fetchStatus(`${srv.url}/api/v1/auth/signup`, signup)), [413, 413], 'signup 9 MiB');
  });

  test('raw protocol garbage and oversized headers get 4xx or a closed connection', async () => {
    const cases = [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n{}',
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(200 * 1024)}\r\n\r\n`,
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', // a TLS ClientHello on the plain port
    ];
    for (const c of cases) {
      const r = await rawExchange(srv.port, c, { timeoutMs: 4000 });
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(r.text);
      // 4xx, or 505 for an unsupported HTTP version; never a 500
      if (status) assert.ok(/^(4\d\d|505)$/.test(status[1]), `${JSON.stringify(c.slice(0, 60))} → ${status[1]}`);
      await assertAlive();
    }
  });
});

describe('unknown routes and methods', () => {
  test('unknown route → 404 JSON {success:false}', async () => {
    for (const [m, p] of [['GET', '/does-not-exist'], ['POST', '/api/v1/auth/nope'], ['GET', '/api/v2/whatever/deeper'], ['DELETE', '/nope']]) {
      const r = await request(srv.url, m, p);
      assert.equal(r.status, 404, `${m} ${p}: ${r.status}`);
      assert.match(r.headers.get('content-type') || '', /application\/json/);
      assert.equal(r.body?.success, false, r.text);
      assert.equal(typeof r.body.message, 'string');
    }
  });

  test('wrong method on a known path → 405 JSON with Allow', async () => {
    const cases = [
      ['GET', '/api/v1/auth/login', ['POST']],
      ['GET', '/api/auth/signup', ['POST']],
      ['DELETE', '/api/v1/auth/check-auth', ['GET']],
      ['PATCH', '/api/v1/auth/update-profile', ['PUT', 'POST']],
      ['GET', `/api/messages/send/${peer.user._id}`, ['POST']],
      ['POST', '/healthz', ['GET']],
    ];
    for (const [m, p, allowed] of cases) {
      const r = await u.client.request(m, p);
      assert.equal(r.status, 405, `${m} ${p}: ${r.status} ${r.text}`);
      const allow = (r.headers.get('allow') || '').toUpperCase().split(',').map((s) => s.trim());
      for (const a of allowed) assert.ok(allow.includes(a), `${m} ${p}: Allow "${r.headers.get('allow')}" lacks ${a}`);
      assert.ok(!allow.includes(m), `${m} ${p}: Allow lists the rejected method`);
      assert.equal(typeof r.body?.message, 'string', r.text);
    }
  });
});

describe('security headers', () => {
  test('helmet-style headers on JSON, error and health responses', async () => {
    const responses = {
      healthz: await request(srv.url, 'GET', '/healthz'),
      api: await u.client.get('/api/v1/auth/check-auth'),
      unauthorized: await request(srv.url, 'GET', '/api/messages/users'),
      notFound: await request(srv.url, 'GET', '/nope'),
    };
    for (const [name, r] of Object.entries(responses)) {
      const h = r.headers;
      assert.equal(h.get('x-content-type-options'), 'nosniff', name);
      assert.equal(h.get('x-frame-options'), 'SAMEORIGIN', name);
      assert.equal(h.get('referrer-policy'), 'no-referrer', name);
      assert.ok(h.get('content-security-policy'), `${name}: Content-Security-Policy missing`);
      assert.equal(h.get('cross-origin-opener-policy'), 'same-origin', name);
      assert.equal(h.get('x-dns-prefetch-control'), 'off', name);
      assert.match(h.get('strict-transport-security') || '', /max-age=\d+/, name);
      assert.equal(h.get('x-powered-by'), null, `${name}: X-Powered-By leaks the stack`);
    }
  });
});

describe('CORS', () => {
  const ALLOWED = 'http://localhost:5173';

  test('an allowed origin is echoed with credentials', async () => {
    const r = await u.client.get('/api/v1/auth/check-auth', { headers: { origin: ALLOWED } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    assert.match(r.headers.get('vary') || '', /origin/i);
    // also on errors, so the browser can read them
    const e = await request(srv.url, 'POST', '/api/v1/auth/login', { json: { email: 'x@y.zz', password: 'nopenope' }, headers: { origin: ALLOWED } });
    assert.equal(e.status, 400);
    assert.equal(e.headers.get('access-control-allow-origin'), ALLOWED);
  });

  test('preflight → 204 with the allowed methods and the requested headers', async () => {
    const r = await request(srv.url, 'OPTIONS', '/api/v1/auth/update-profile', {
      headers: { origin: ALLOWED, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,authorization,x-custom' },
    });
    assert.equal(r.status, 204, r.text);
    assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    const methods = (r.headers.get('access-control-allow-methods') || '').toUpperCase();
    for (const m of ['GET', 'POST', 'PUT']) assert.ok(methods.includes(m), `Allow-Methods "${methods}" lacks ${m}`);
    const hdrs = (r.headers.get('access-control-allow-headers') || '').toLowerCase();
    for (const h of ['content-type', 'authorization', 'x-custom']) assert.ok(hdrs.includes(h), `Allow-Headers "${hdrs}" lacks ${h}`);
    assert.equal(r.text, '', '204 has no body');
  });

  test('an origin not on the list gets no Access-Control-Allow-Origin', async () => {
    for (const origin of ['http://evil.example', 'http://localhost:5174', 'https://localhost:5173', 'http://localhost:5173.evil.example', 'null']) {
      const r = await u.client.get('/api/v1/auth/check-auth', { headers: { origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), null, `${origin} was allowed`);
      const pre = await request(srv.url, 'OPTIONS', '/api/v1/auth/login', {
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.ok(pre.status < 500);
      assert.equal(pre.headers.get('access-control-allow-origin'), null, `${origin} preflight was allowed`);
      assert.notEqual(pre.headers.get('access-control-allow-origin'), '*');
    }
  });

  test('--cors-origins replaces the default list', async () => {
    const s = await startChatd({ args: ['--cors-origins', 'http://a.test,https://b.test:8443'] });
    try {
      for (const origin of ['http://a.test', 'https://b.test:8443']) {
        const r = await request(s.url, 'GET', '/healthz', { headers: { origin } });
        assert.equal(r.headers.get('access-control-allow-origin'), origin);
        const pre = await request(s.url, 'OPTIONS', '/api/v1/auth/login', { headers: { origin, 'access-control-request-method': 'POST' } });
        assert.equal(pre.status, 204);
        assert.equal(pre.headers.get('access-control-allow-origin'), origin);
      }
      const def = await request(s.url, 'GET', '/healthz', { headers: { origin: ALLOWED } });
      assert.equal(def.headers.get('access-control-allow-origin'), null, 'default origin no longer allowed');
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
});

describe('--json-limit', () => {
  test('applies to Content-Length and to chunked bodies', async () => {
    const s = await startChatd({ args: ['--json-limit', '1024'] });
    try {
      const email = uniqueEmail('jl');
      assert.equal((await request(s.url, 'POST', '/api/v1/auth/signup', { json: { email, password: 'secret123', full_name: 'JL' } })).status, 201);
      const small = JSON.stringify({ email, password: 'secret123', pad: 'x'.repeat(800) });
      const ok = await request(s.url, 'POST', '/api/v1/auth/login', { body: small, headers: { 'content-type': 'application/json' } });
      assert.equal(ok.status, 200, `a body under the limit: ${ok.text}`);

      const big = JSON.stringify({ email, password: 'secret123', pad: 'x'.repeat(2000) });
      const r = await request(s.url, 'POST', '/api/v1/auth/login', { body: big, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 413, r.text);
      assert.equal(typeof r.body?.message, 'string');
      assert.deepEqual(await statuses(3, () => fetchStatus(`${s.url}/api/v1/auth/login`, big)), [413, 413, 413], 'with Content-Length');
      // no Content-Length: the limit must be enforced while reading
      assert.deepEqual(await statuses(3, () => fetchStatus(`${s.url}/api/v1/auth/login`, big, { chunked: true })), [413, 413, 413], 'chunked');
      const h = await request(s.url, 'GET', '/healthz');
      assert.equal(h.status, 200);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
});
