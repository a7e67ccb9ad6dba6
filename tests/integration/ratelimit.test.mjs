// Per-IP rate limits: the login/signup limiter, the API limiter (and its window reset),
// X-Forwarded-For handling with and without --trust-proxy, and the default limits.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';

import { bearerClient, request, signupUser, sleep, startChatd, stopAll, uniqueEmail } from './lib/chatd.mjs';

after(stopAll);

function assertLimited(r, maxRetryAfter) {
  assert.equal(r.status, 429, `expected 429, got ${r.status} ${r.text}`);
  assert.deepEqual(r.body, { success: false, message: 'Too many requests' });
  const ra = r.headers.get('retry-after');
  assert.match(ra || '', /^\d+$/, `Retry-After should be whole seconds, got ${ra}`);
  assert.ok(Number(ra) >= 1 && Number(ra) <= maxRetryAfter, `Retry-After ${ra} not in 1..${maxRetryAfter}`);
  return Number(ra);
}

const badLogin = (url, headers = {}) =>
  request(url, 'POST', '/api/v1/auth/login', { json: { email: 'nobody@example.test', password: 'wrong-password' }, headers });

/** GET over node:http from a chosen local address (the whole 127/8 is loopback on Linux). */
function getFrom(localAddress, port, path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('auth limiter (--rate-limit-auth 3/15m)', () => {
  test('the 4th login attempt is refused with 429 + Retry-After, also via the /api/auth alias', async () => {
    const s = await startChatd({ args: ['--rate-limit-auth', '3/15m'] });
    for (let i = 0; i < 3; i++) {
      const r = await badLogin(s.url);
      assert.equal(r.status, 400, `attempt ${i + 1}: ${r.text}`);
    }
    assertLimited(await badLogin(s.url), 900);
    const alias = await request(s.url, 'POST', '/api/auth/login', { json: { email: 'nobody@example.test', password: 'x-wrong-x' } });
    assertLimited(alias, 900);
    // the rest of the server is unaffected
    assert.equal((await request(s.url, 'GET', '/healthz')).status, 200);
    assert.equal((await request(s.url, 'GET', '/api/messages/users')).status, 401);
  });

  test('signup is limited too, a refused signup creates nothing, and signed-in users carry on', async () => {
    const s = await startChatd({ args: ['--rate-limit-auth', '3/15m'] });
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await signupUser(s.url));
    const blockedEmail = uniqueEmail('blocked');
    const r = await request(s.url, 'POST', '/api/v1/auth/signup', { json: { email: blockedEmail, password: 'secret123', full_name: 'Blocked' } });
    assertLimited(r, 900);
    const c = bearerClient(s.url, users[0].token);
    assert.equal((await c.get('/api/v1/auth/check-auth')).status, 200);
    const list = await c.get('/api/messages/users');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.data.length, 2, 'only the two other successful signups exist');
    assert.ok(!list.body.data.some((u) => u.email === blockedEmail));
    const sent = await c.post(`/api/messages/send/${users[1].user._id}`, { text: 'still chatting' });
    assert.equal(sent.status, 200, sent.text);
  });

  test('the limit is per client IP', async () => {
    const s = await startChatd({ args: ['--rate-limit-auth', '2/15m'] });
    await badLogin(s.url);
    await badLogin(s.url);
    assertLimited(await badLogin(s.url), 900);
    // another loopback address is another client
    const other = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ email: 'nobody@example.test', password: 'wrong-password' });
      const req = http.request(
        { host: '127.0.0.1', port: s.port, path: '/api/v1/auth/login', method: 'POST', localAddress: '127.0.0.2', agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(other, 400, 'a different client IP must not share the bucket');
  });
});

describe('API limiter (--rate-limit-api 5/2s)', () => {
  test('the 6th request in the window → 429; the window resets after it elapses', { timeout: 30000 }, async () => {
    const s = await startChatd({ args: ['--rate-limit-api', '5/2s'] });
    const hit = () => request(s.url, 'GET', '/api/messages/users');
    for (let i = 0; i < 5; i++) {
      const r = await hit();
      assert.equal(r.status, 401, `request ${i + 1}: ${r.status} ${r.text}`);
    }
    const ra = assertLimited(await hit(), 2);
    assertLimited(await hit(), 2);
    // liveness probes are not API traffic
    assert.equal((await request(s.url, 'GET', '/healthz')).status, 200);

    await sleep(ra * 1000 + 300);
    assert.equal((await hit()).status, 401, 'allowed again once Retry-After has passed');

    // after two full idle windows the whole budget is back
    await sleep(4500);
    for (let i = 0; i < 5; i++) {
      const r = await hit();
      assert.equal(r.status, 401, `fresh window, request ${i + 1}: ${r.status}`);
    }
    assertLimited(await hit(), 2);
  });

  test('another client IP has its own API budget', async () => {
    const s = await startChatd({ args: ['--rate-limit-api', '3/30s'] });
    for (let i = 0; i < 3; i++) assert.equal((await getFrom('127.0.0.1', s.port, '/api/messages/users')).status, 401);
    assert.equal((await getFrom('127.0.0.1', s.port, '/api/messages/users')).status, 429);
    assert.equal((await getFrom('127.0.0.3', s.port, '/api/messages/users')).status, 401);
  });
});

describe('X-Forwarded-For', () => {
  test('is ignored by default: a client cannot dodge the limit by inventing addresses', async () => {
    const s = await startChatd({ args: ['--rate-limit-auth', '2/15m'] });
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.1' })).status, 400);
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.2' })).status, 400);
    assertLimited(await badLogin(s.url, { 'x-forwarded-for': '10.0.0.3' }), 900);
  });

  test('with --trust-proxy true each forwarded client is counted separately', async () => {
    const s = await startChatd({ args: ['--rate-limit-auth', '2/15m', '--trust-proxy', 'true'] });
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.1' })).status, 400);
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.1' })).status, 400);
    assertLimited(await badLogin(s.url, { 'x-forwarded-for': '10.0.0.1' }), 900);
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.2' })).status, 400, 'a different forwarded client');
    assert.equal((await badLogin(s.url, { 'x-forwarded-for': '10.0.0.2' })).status, 400);
    assertLimited(await badLogin(s.url, { 'x-forwarded-for': '10.0.0.2' }), 900);
  });
});

describe('default limits', () => {
  test('login: 10 attempts per 15 minutes', async () => {
    const s = await startChatd({ rateLimitsOff: false });
    for (let i = 0; i < 10; i++) {
      const r = await badLogin(s.url);
      assert.equal(r.status, 400, `attempt ${i + 1}: ${r.status}`);
    }
    const ra = assertLimited(await badLogin(s.url), 900);
    assert.ok(ra > 800, `Retry-After ${ra} should be close to the 15-minute window`);
  });

  test('API: 100 requests per 30 seconds', async () => {
    const s = await startChatd({ rateLimitsOff: false });
    for (let i = 0; i < 100; i++) {
      const r = await request(s.url, 'GET', '/api/messages/users');
      assert.equal(r.status, 401, `request ${i + 1}: ${r.status}`);
    }
    assertLimited(await request(s.url, 'GET', '/api/messages/users'), 30);
  });
});
