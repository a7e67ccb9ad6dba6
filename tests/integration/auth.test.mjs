// Signup, login, logout, protected-route authentication, and secrets never reaching the logs.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  Client,
  JWT_SECRET,
  OBJECT_ID_RE,
  bearerClient,
  decodeJwt,
  randomObjectId,
  request,
  signJwt,
  signupUser,
  startChatd,
  stopAll,
  tokenFor,
  uniqueEmail,
} from './lib/chatd.mjs';

let srv;
before(async () => {
  srv = await startChatd();
});
after(stopAll);

const USER_KEYS = ['_id', 'email', 'full_name', 'profile_picture', 'bio', 'createdAt', 'updatedAt'];

function assertPublicUser(user, where) {
  assert.ok(user && typeof user === 'object', `${where}: user object expected`);
  for (const k of USER_KEYS) assert.ok(k in user, `${where}: user.${k} missing in ${JSON.stringify(user)}`);
  assert.match(user._id, OBJECT_ID_RE, `${where}: _id must be 24 hex chars`);
  for (const k of Object.keys(user)) {
    assert.ok(!/pass/i.test(k), `${where}: user exposes ${k}`);
  }
  assert.ok(!Number.isNaN(Date.parse(user.createdAt)), `${where}: createdAt not a date: ${user.createdAt}`);
  assert.ok(!Number.isNaN(Date.parse(user.updatedAt)), `${where}: updatedAt not a date: ${user.updatedAt}`);
}

function tokenCookie(res) {
  const c = res.cookies.find((x) => x.name === 'token');
  assert.ok(c, `expected a Set-Cookie for token, got ${JSON.stringify(res.cookies.map((x) => x.raw))}`);
  return c;
}

function assertValidationError(res, field) {
  assert.equal(res.status, 400, res.text);
  assert.equal(res.body?.message, 'Validation error', res.text);
  assert.ok(res.body.errors && typeof res.body.errors === 'object', res.text);
  const msgs = res.body.errors[field];
  assert.ok(Array.isArray(msgs) && msgs.length > 0, `errors.${field} should list messages: ${res.text}`);
  for (const m of msgs) assert.equal(typeof m, 'string');
}

describe('signup', () => {
  test('creates the user, returns a token, and sets the auth cookie', async () => {
    const c = new Client(srv.url);
    const email = uniqueEmail('signup');
    const before_ms = Date.now() - 2000;
    const r = await c.post('/api/v1/auth/signup', {
      email,
      password: 'secret123',
      full_name: 'Ada Lovelace',
      bio: 'first programmer',
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(typeof r.body.message, 'string');
    assertPublicUser(r.body.user, 'signup');
    assert.equal(r.body.user.email, email);
    assert.equal(r.body.user.full_name, 'Ada Lovelace');
    assert.equal(r.body.user.bio, 'first programmer');
    assert.ok(Date.parse(r.body.user.createdAt) >= before_ms, 'createdAt should be now');

    const token = r.body.token;
    assert.equal(typeof token, 'string');
    assert.equal(token.split('.').length, 3, 'token is a JWT');
    const { header, payload } = decodeJwt(token);
    assert.equal(header.alg, 'HS256');
    assert.equal(payload.userId, r.body.user._id);
    assert.equal(payload.exp - payload.iat, 7 * 24 * 3600, 'default JWT lifetime is 7 days');
    assert.ok(payload.exp > Date.now() / 1000);

    const ck = tokenCookie(r);
    assert.equal(decodeJwt(ck.value).payload.userId, r.body.user._id);
    assert.equal(ck.attrs.path, '/');
    assert.equal(ck.attrs['max-age'], '604800');
    assert.equal(ck.attrs.httponly, true, ck.raw);
    assert.equal(String(ck.attrs.samesite).toLowerCase(), 'strict', ck.raw);
    assert.equal(ck.attrs.secure, undefined, 'no Secure cookie outside production');

    // the cookie alone authenticates
    const me = await c.get('/api/v1/auth/check-auth');
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.user._id, r.body.user._id);
  });

  test('normalises the e-mail (trim + lower-case) and keeps it unique regardless of case', async () => {
    const local = uniqueEmail('MiXeD');
    const shouted = `  ${local.toUpperCase()}  `;
    const r = await request(srv.url, 'POST', '/api/v1/auth/signup', {
      json: { email: shouted, password: 'secret123', full_name: 'Case Person' },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.user.email, local.toLowerCase());

    for (const variant of [local.toLowerCase(), local.toUpperCase(), ` ${local} `]) {
      const dup = await request(srv.url, 'POST', '/api/v1/auth/signup', {
        json: { email: variant, password: 'another123', full_name: 'Dup' },
      });
      assert.equal(dup.status, 400, `duplicate ${variant}: ${dup.text}`);
      assert.equal(dup.body.message, 'User account already exists with this email');
    }

    const login = await request(srv.url, 'POST', '/api/v1/auth/login', {
      json: { email: local.toUpperCase(), password: 'secret123' },
    });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.user._id, r.body.user._id);
  });

  test('rejects invalid input with per-field validation errors', async () => {
    const ok = { email: uniqueEmail('v'), password: 'secret123', full_name: 'Valid Name' };
    const cases = [
      [{ ...ok, email: 'not-an-email' }, 'email'],
      [{ ...ok, email: 123 }, 'email'],
      [{ password: ok.password, full_name: ok.full_name }, 'email'],
      [{ ...ok, password: '12345' }, 'password'],
      [{ ...ok, password: 123456 }, 'password'],
      [{ email: ok.email, full_name: ok.full_name }, 'password'],
      [{ ...ok, full_name: '   ' }, 'full_name'],
      [{ ...ok, full_name: '' }, 'full_name'],
      [{ ...ok, full_name: ['a'] }, 'full_name'],
      [{ email: ok.email, password: ok.password }, 'full_name'],
    ];
    for (const [body, field] of cases) {
      const r = await request(srv.url, 'POST', '/api/v1/auth/signup', { json: body });
      assertValidationError(r, field);
    }
    // none of the rejected attempts created the account
    const r = await request(srv.url, 'POST', '/api/v1/auth/signup', { json: ok });
    assert.equal(r.status, 201, r.text);
  });

  test('a 6-character password is long enough', async () => {
    const r = await request(srv.url, 'POST', '/api/v1/auth/signup', {
      json: { email: uniqueEmail('six'), password: 'abcdef', full_name: 'Six' },
    });
    assert.equal(r.status, 201, r.text);
  });

  test('the password is not stored in clear text in the data directory', async () => {
    const pw = 'Plaintext-Canary-8c1f27e9';
    await signupUser(srv.url, { password: pw });
    const hits = [];
    const walk = (d) => {
      for (const name of readdirSync(d)) {
        const p = path.join(d, name);
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.size < 64 * 1024 * 1024 && readFileSync(p).includes(pw)) hits.push(p);
      }
    };
    walk(srv.dataDir);
    assert.deepEqual(hits, [], 'password found in data files');
  });
});

describe('login', () => {
  test('returns the user and a working token + cookie', async () => {
    const u = await signupUser(srv.url);
    const c = new Client(srv.url);
    const r = await c.post('/api/v1/auth/login', { email: u.email, password: u.password });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.body.message, 'string');
    assertPublicUser(r.body.user, 'login');
    assert.equal(r.body.user._id, u.user._id);
    assert.equal(decodeJwt(r.body.token).payload.userId, u.user._id);
    const ck = tokenCookie(r);
    assert.equal(ck.attrs.httponly, true);
    assert.equal(ck.attrs['max-age'], '604800');

    const viaCookie = await c.get('/api/v1/auth/get-user');
    assert.equal(viaCookie.status, 200, viaCookie.text);
    assert.equal(viaCookie.body.user._id, u.user._id);
    const viaBearer = await bearerClient(srv.url, r.body.token).get('/api/v1/auth/get-user');
    assert.equal(viaBearer.status, 200, viaBearer.text);
    assert.equal(viaBearer.body.user._id, u.user._id);
  });

  test('wrong password and unknown e-mail give the same "Invalid Credentials" answer', async () => {
    const u = await signupUser(srv.url);
    const wrong = await request(srv.url, 'POST', '/api/v1/auth/login', {
      json: { email: u.email, password: u.password + 'x' },
    });
    const unknown = await request(srv.url, 'POST', '/api/v1/auth/login', {
      json: { email: uniqueEmail('nobody'), password: u.password },
    });
    for (const r of [wrong, unknown]) {
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body, { message: 'Invalid Credentials' });
      assert.equal(r.cookies.find((c) => c.name === 'token' && c.value), undefined, 'no auth cookie');
    }
  });

  test('malformed login input is a validation error, not a crash', async () => {
    for (const body of [{ email: 123, password: 'secret123' }, { email: 'x@y.z' }, {}]) {
      const r = await request(srv.url, 'POST', '/api/v1/auth/login', { json: body });
      assert.equal(r.status, 400, r.text);
      assert.equal(typeof r.body?.message, 'string');
    }
  });
});

describe('logout', () => {
  test('clears the cookie so the browser is no longer authenticated', async () => {
    const u = await signupUser(srv.url);
    assert.equal((await u.client.get('/api/v1/auth/check-auth')).status, 200);
    const r = await u.client.post('/api/v1/auth/logout', {});
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.body.message, 'string');
    const ck = tokenCookie(r);
    assert.equal(ck.attrs['max-age'], '0', ck.raw);
    assert.equal(u.client.jar.has('token'), false);
    const after = await u.client.get('/api/v1/auth/check-auth');
    assert.equal(after.status, 401, after.text);
    assert.deepEqual(after.body, { success: false, message: 'Unauthorized' });
  });
});

describe('protected routes', () => {
  let u;
  before(async () => {
    u = await signupUser(srv.url);
  });

  test('check-auth and get-user return the caller', async () => {
    const ca = await bearerClient(srv.url, u.token).get('/api/v1/auth/check-auth');
    assert.equal(ca.status, 200, ca.text);
    assert.equal(ca.body.message, 'User is authenticated');
    assertPublicUser(ca.body.user, 'check-auth');
    assert.equal(ca.body.user._id, u.user._id);
    assert.equal(ca.body.user.email, u.email);
    const gu = await bearerClient(srv.url, u.token).get('/api/v1/auth/get-user');
    assert.equal(gu.status, 200, gu.text);
    assert.deepEqual(gu.body.user, ca.body.user);
  });

  test('no token → 401 Unauthorized', async () => {
    for (const p of ['/api/v1/auth/check-auth', '/api/v1/auth/get-user', '/api/messages/users']) {
      const r = await request(srv.url, 'GET', p);
      assert.equal(r.status, 401, `${p}: ${r.text}`);
      assert.deepEqual(r.body, { success: false, message: 'Unauthorized' });
    }
  });

  test('garbage, forged, alg=none and expired tokens → 401 Invalid token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = signJwt({ userId: u.user._id, iat: now, exp: now + 3600 }, 'some-other-secret');
    const none = signJwt({ userId: u.user._id, iat: now, exp: now + 3600 }, JWT_SECRET, { alg: 'none', typ: 'JWT' })
      .split('.')
      .slice(0, 2)
      .join('.') + '.';
    const expired = tokenFor(u.user._id, { ttl: -10 });
    const [h, p, s] = u.token.split('.');
    const tampered = [h, Buffer.from(JSON.stringify({ ...decodeJwt(u.token).payload, userId: randomObjectId() })).toString('base64url'), s].join('.');
    const bad = ['garbage', 'a.b.c', forged, none, expired, tampered, `${u.token}x`];
    for (const t of bad) {
      const viaBearer = await bearerClient(srv.url, t).get('/api/v1/auth/check-auth');
      assert.equal(viaBearer.status, 401, `bearer ${t}: ${viaBearer.text}`);
      assert.deepEqual(viaBearer.body, { success: false, message: 'Invalid token' }, t);
      const viaCookie = await request(srv.url, 'GET', '/api/v1/auth/check-auth', { headers: { cookie: `token=${t}` } });
      assert.equal(viaCookie.status, 401, `cookie ${t}: ${viaCookie.text}`);
      assert.deepEqual(viaCookie.body, { success: false, message: 'Invalid token' }, t);
    }
    // a correctly signed token is accepted (the failures above are about the token, not the route)
    const ok = await bearerClient(srv.url, tokenFor(u.user._id)).get('/api/v1/auth/check-auth');
    assert.equal(ok.status, 200, ok.text);
  });

  test('a valid token for a user that does not exist → 404 User not found', async () => {
    const r = await bearerClient(srv.url, tokenFor(randomObjectId())).get('/api/v1/auth/check-auth');
    assert.equal(r.status, 404, r.text);
    assert.deepEqual(r.body, { success: false, message: 'User not found' });
    const m = await bearerClient(srv.url, tokenFor(randomObjectId())).get('/api/messages/users');
    assert.equal(m.status, 404, m.text);
    assert.deepEqual(m.body, { success: false, message: 'User not found' });
  });

  test('works with the cookie or the Authorization header', async () => {
    const cookieOnly = await request(srv.url, 'GET', '/api/v1/auth/get-user', { headers: { cookie: `token=${u.token}` } });
    assert.equal(cookieOnly.status, 200, cookieOnly.text);
    assert.equal(cookieOnly.body.user._id, u.user._id);
    const other = await request(srv.url, 'GET', '/api/v1/auth/get-user', {
      headers: { cookie: `theme=dark; token=${u.token}; lang=en` },
    });
    assert.equal(other.status, 200, other.text);
    assert.equal(other.body.user._id, u.user._id);
  });
});

describe('/api/auth alias', () => {
  test('every auth route is also served under /api/auth', async () => {
    const c = new Client(srv.url);
    const email = uniqueEmail('alias');
    const s = await c.post('/api/auth/signup', { email, password: 'secret123', full_name: 'Alias' });
    assert.equal(s.status, 201, s.text);
    const l = await c.post('/api/auth/login', { email, password: 'secret123' });
    assert.equal(l.status, 200, l.text);
    const ca = await c.get('/api/auth/check-auth');
    assert.equal(ca.status, 200, ca.text);
    assert.equal(ca.body.user.email, email);
    const gu = await c.get('/api/auth/get-user');
    assert.equal(gu.status, 200, gu.text);
    const up = await c.put('/api/auth/update-profile', { bio: 'via alias' });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.body.user.bio, 'via alias');
    const lo = await c.post('/api/auth/logout', {});
    assert.equal(lo.status, 200, lo.text);
    assert.equal((await c.get('/api/v1/auth/check-auth')).status, 401);
    // an account made via one prefix is the same account under the other
    const dup = await request(srv.url, 'POST', '/api/v1/auth/signup', { json: { email, password: 'secret123', full_name: 'x' } });
    assert.equal(dup.status, 400, dup.text);
  });
});

describe('logs', () => {
  test('passwords and tokens never appear in chatd output', async () => {
    const pw = 'Zebra-Canary-Password-7f3a91';
    const email = uniqueEmail('logs');
    const c = new Client(srv.url);
    const s = await c.post('/api/v1/auth/signup', { email, password: pw, full_name: 'Log Watcher' });
    assert.equal(s.status, 201, s.text);
    const l = await c.post('/api/v1/auth/login', { email, password: pw });
    assert.equal(l.status, 200, l.text);
    const bad = await request(srv.url, 'POST', '/api/v1/auth/login', { json: { email, password: pw + '-wrong' } });
    assert.equal(bad.status, 400);
    const badShort = await request(srv.url, 'POST', '/api/v1/auth/signup', {
      json: { email: 'broken', password: 'Short-Canary', full_name: 'x' },
    });
    assert.equal(badShort.status, 400);
    await c.get('/api/v1/auth/check-auth');
    await bearerClient(srv.url, l.body.token).get('/api/v1/auth/get-user');
    await bearerClient(srv.url, 'Garbage-Token-Canary.abc.def').get('/api/v1/auth/get-user');
    await new Promise((r) => setTimeout(r, 300)); // let log lines flush
    const out = srv.output();
    assert.ok(out.length > 0, 'chatd should log something (listening line at least)');
    for (const secret of [pw, 'Short-Canary', s.body.token, l.body.token, 'Garbage-Token-Canary']) {
      assert.ok(!out.includes(secret), `secret ${secret.slice(0, 20)}… found in chatd output`);
    }
    // signatures alone must not leak either
    for (const t of [s.body.token, l.body.token]) {
      assert.ok(!out.includes(t.split('.')[2]), 'JWT signature found in chatd output');
    }
  });
});
