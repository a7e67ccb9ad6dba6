// update-profile (names, bio, avatars as data URLs) and the /media files they turn into.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  IMAGES,
  bearerClient,
  dataUrl,
  pngOfSize,
  rawExchange,
  request,
  signupUser,
  startChatd,
  stopAll,
} from './lib/chatd.mjs';

after(stopAll);

const MIME = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif' };

async function fetchMedia(client, p) {
  assert.equal(typeof p, 'string');
  assert.ok(p.startsWith('/media/'), `media path should start with /media/: ${p}`);
  return client.get(p);
}

describe('update-profile', () => {
  let srv;
  let alice;
  let bob;
  before(async () => {
    srv = await startChatd();
    alice = await signupUser(srv.url, { full_name: 'Alice' });
    bob = await signupUser(srv.url, { full_name: 'Bob' });
  });

  test('PUT changes full_name and bio; get-user and other users see the change', async () => {
    const r = await alice.client.put('/api/v1/auth/update-profile', { full_name: '  Alice Liddell ', bio: 'down the rabbit hole' });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.body.message, 'string');
    assert.equal(r.body.user._id, alice.user._id);
    assert.equal(r.body.user.full_name.trim(), 'Alice Liddell');
    assert.equal(r.body.user.bio, 'down the rabbit hole');
    assert.equal(r.body.user.email, alice.email, 'email unchanged');
    for (const k of Object.keys(r.body.user)) assert.ok(!/pass/i.test(k), `user exposes ${k}`);
    assert.ok(Date.parse(r.body.user.updatedAt) >= Date.parse(r.body.user.createdAt));

    const me = await alice.client.get('/api/v1/auth/get-user');
    assert.equal(me.body.user.full_name.trim(), 'Alice Liddell');
    assert.equal(me.body.user.bio, 'down the rabbit hole');

    const list = await bob.client.get('/api/messages/users');
    assert.equal(list.status, 200, list.text);
    const seen = list.body.data.find((u) => u._id === alice.user._id);
    assert.ok(seen, 'alice listed for bob');
    assert.equal(seen.full_name.trim(), 'Alice Liddell');
  });

  test('POST is accepted too, and fields not sent are left alone', async () => {
    const r = await alice.client.post('/api/v1/auth/update-profile', { bio: 'only the bio' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.user.bio, 'only the bio');
    assert.equal(r.body.user.full_name.trim(), 'Alice Liddell');
  });

  test('requires authentication', async () => {
    const r = await request(srv.url, 'PUT', '/api/v1/auth/update-profile', { json: { bio: 'anon' } });
    assert.equal(r.status, 401, r.text);
    assert.deepEqual(r.body, { success: false, message: 'Unauthorized' });
  });

  test('invalid fields are rejected and change nothing', async () => {
    const beforeUser = (await alice.client.get('/api/v1/auth/get-user')).body.user;
    for (const body of [{ full_name: '   ' }, { full_name: 42 }, { bio: { x: 1 } }]) {
      const r = await alice.client.put('/api/v1/auth/update-profile', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.body.message, 'Validation error', r.text);
      assert.equal(typeof r.body.errors, 'object');
    }
    const afterUser = (await alice.client.get('/api/v1/auth/get-user')).body.user;
    assert.equal(afterUser.full_name, beforeUser.full_name);
    assert.equal(afterUser.bio, beforeUser.bio);
  });

  for (const kind of ['png', 'jpeg', 'webp', 'gif']) {
    test(`a ${kind} avatar is stored and served back byte-for-byte as ${MIME[kind]}`, async () => {
      const r = await alice.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl(MIME[kind], IMAGES[kind]) });
      assert.equal(r.status, 200, r.text);
      const p = r.body.user.profile_picture;
      assert.ok(!p.startsWith('data:'), 'stored as a file, not echoed as a data URL');
      // another signed-in user (who shows the avatar in their contact list) can load it
      const m = await fetchMedia(bob.client, p);
      assert.equal(m.status, 200, m.text);
      assert.equal(m.headers.get('content-type')?.split(';')[0].trim(), MIME[kind]);
      assert.ok(m.buffer.equals(IMAGES[kind]), `bytes differ for ${kind}`);
      assert.equal(m.headers.get('x-content-type-options'), 'nosniff');
      const me = await alice.client.get('/api/v1/auth/get-user');
      assert.equal(me.body.user.profile_picture, p);
    });
  }

  test('image bytes that do not match the claimed type are rejected', async () => {
    const beforePic = (await alice.client.get('/api/v1/auth/get-user')).body.user.profile_picture;
    const bad = [
      dataUrl('image/png', IMAGES.jpeg), // claims png, is jpeg
      dataUrl('image/png', Buffer.from('<html><script>alert(1)</script></html>')),
      dataUrl('image/jpeg', IMAGES.png),
      dataUrl('image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')),
      dataUrl('text/html', Buffer.from('<b>hi</b>')),
      'data:image/png;base64,@@@not base64@@@',
      'data:image/png;base64,',
      // (plain http(s) URLs are accepted on purpose: the old system stored hosted avatar links)
      'javascript:alert(1)',
      'not a data url',
    ];
    for (const pic of bad) {
      const r = await alice.client.put('/api/v1/auth/update-profile', { profile_picture: pic });
      assert.equal(r.status, 400, `${pic.slice(0, 40)}: ${r.status} ${r.text}`);
      assert.equal(typeof r.body?.message, 'string');
    }
    const afterPic = (await alice.client.get('/api/v1/auth/get-user')).body.user.profile_picture;
    assert.equal(afterPic, beforePic, 'rejected uploads must not change the avatar');
  });

  test('a new avatar replaces the old one', async () => {
    const a = await alice.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl('image/png', IMAGES.png) });
    const b = await alice.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl('image/gif', IMAGES.gif) });
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.notEqual(a.body.user.profile_picture, b.body.user.profile_picture);
    const m = await fetchMedia(alice.client, b.body.user.profile_picture);
    assert.ok(m.buffer.equals(IMAGES.gif));
  });

  test('unknown media → 404, and path tricks never escape the media directory', async () => {
    const miss = await request(srv.url, 'GET', '/media/does-not-exist.png');
    assert.equal(miss.status, 404, miss.text);
    for (const p of ['/media/..%2f..%2f..%2f..%2fetc%2fpasswd', '/media/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/media/....//....//etc/passwd']) {
      const r = await request(srv.url, 'GET', p);
      assert.ok(r.status >= 400 && r.status < 500, `${p}: ${r.status}`);
      assert.ok(!r.text.includes('root:'), `${p} leaked /etc/passwd`);
    }
    // raw request line, so no client-side normalisation of ".."
    const raw = await rawExchange(srv.port, 'GET /media/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(!raw.text.includes('root:'), 'raw ../ leaked /etc/passwd');
    assert.match(raw.text, /^HTTP\/1\.1 4\d\d/);
    assert.equal((await request(srv.url, 'GET', '/healthz')).status, 200);
  });
});

describe('upload limit and persistence', () => {
  let srv;
  let u;
  before(async () => {
    srv = await startChatd({ args: ['--upload-limit', '2048'] });
    u = await signupUser(srv.url);
  });

  test('an avatar over --upload-limit → 413, one under it is accepted', async () => {
    const big = await u.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl('image/png', pngOfSize(4096)) });
    assert.equal(big.status, 413, big.text);
    const small = pngOfSize(1000);
    const ok = await u.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl('image/png', small) });
    assert.equal(ok.status, 200, ok.text);
    const m = await fetchMedia(u.client, ok.body.user.profile_picture);
    assert.ok(m.buffer.equals(small));
  });

  test('a message image over --upload-limit → 413', async () => {
    const peer = await signupUser(srv.url);
    const r = await u.client.post(`/api/messages/send/${peer.user._id}`, { image: dataUrl('image/png', pngOfSize(4096)) });
    assert.equal(r.status, 413, r.text);
    const h = await peer.client.get(`/api/messages/${u.user._id}`);
    assert.deepEqual(h.body.data, [], 'nothing stored');
  });

  test('avatars survive a restart on the same data directory', async () => {
    const pic = pngOfSize(1500);
    const up = await u.client.put('/api/v1/auth/update-profile', { profile_picture: dataUrl('image/png', pic), bio: 'persistent' });
    assert.equal(up.status, 200, up.text);
    const p = up.body.user.profile_picture;
    assert.equal(await srv.stop(), 0);
    srv = await startChatd({ dataDir: srv.dataDir, args: ['--upload-limit', '2048'] });
    const c = bearerClient(srv.url, u.token);
    const me = await c.get('/api/v1/auth/get-user');
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.user.profile_picture, p);
    assert.equal(me.body.user.bio, 'persistent');
    const m = await fetchMedia(c, p);
    assert.equal(m.status, 200);
    assert.ok(m.buffer.equals(pic));
  });
});
