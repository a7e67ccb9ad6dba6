// Contacts list, sending messages, conversation history and its pagination, durability at scale.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  IMAGES,
  OBJECT_ID_RE,
  bearerClient,
  dataUrl,
  pool,
  randomObjectId,
  request,
  signupUser,
  startChatd,
  stopAll,
} from './lib/chatd.mjs';

after(stopAll);

async function send(from, to, body) {
  return from.client.post(`/api/messages/send/${to.user._id}`, body);
}

async function sendOk(from, to, body) {
  const r = await send(from, to, body);
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

/** Pages backwards through the whole conversation with before=; returns [oldest → newest]. */
async function readAll(client, peerId, limit) {
  const pages = [];
  let beforeId = null;
  for (let guard = 0; guard < 10000; guard++) {
    const q = new URLSearchParams();
    if (limit) q.set('limit', String(limit));
    if (beforeId) q.set('before', beforeId);
    const r = await client.get(`/api/messages/${peerId}?${q}`);
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.body.data));
    assert.equal(typeof r.body.hasMore, 'boolean');
    pages.push(r.body);
    if (!r.body.hasMore) break;
    assert.ok(r.body.data.length > 0, 'hasMore with an empty page');
    beforeId = r.body.data[0]._id;
  }
  return { pages, messages: pages.reverse().flatMap((p) => p.data) };
}

describe('messages', () => {
  let srv;
  let alice;
  let bob;
  let carol;
  before(async () => {
    srv = await startChatd();
    alice = await signupUser(srv.url, { full_name: 'Alice' });
    bob = await signupUser(srv.url, { full_name: 'Bob' });
    carol = await signupUser(srv.url, { full_name: 'Carol' });
  });

  test('GET /api/messages/users lists every other user, never the caller, with online flags', async () => {
    const r = await alice.client.get('/api/messages/users');
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.body.data));
    const ids = r.body.data.map((u) => u._id);
    assert.ok(ids.includes(bob.user._id));
    assert.ok(ids.includes(carol.user._id));
    assert.ok(!ids.includes(alice.user._id), 'caller must not be listed');
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    for (const u of r.body.data) {
      assert.match(u._id, OBJECT_ID_RE);
      assert.equal(typeof u.email, 'string');
      assert.equal(typeof u.full_name, 'string');
      assert.equal(typeof u.online, 'boolean', `online flag for ${u._id}`);
      for (const k of Object.keys(u)) assert.ok(!/pass/i.test(k), `user exposes ${k}`);
    }
    const b = r.body.data.find((u) => u._id === bob.user._id);
    assert.equal(b.full_name, 'Bob');
    assert.equal(b.email, bob.email);

    const r2 = await bob.client.get('/api/messages/users');
    assert.ok(!r2.body.data.some((u) => u._id === bob.user._id));
    assert.ok(r2.body.data.some((u) => u._id === alice.user._id));
  });

  test('a sent message comes back in full and both sides see the same conversation', async () => {
    const t0 = Date.now() - 2000;
    const m1 = await sendOk(alice, bob, { text: 'hello bob' });
    const r = await send(bob, alice, { text: 'hi alice' });
    assert.equal(r.body.message, 'Message sent successfully');
    const m2 = r.body.data;
    const m3 = await sendOk(alice, bob, { text: 'how are you?' });

    for (const k of ['_id', 'senderId', 'receiverId', 'text', 'image', 'createdAt', 'updatedAt']) {
      assert.ok(k in m1, `data.${k} missing: ${JSON.stringify(m1)}`);
    }
    assert.match(m1._id, OBJECT_ID_RE);
    assert.equal(m1.senderId, alice.user._id);
    assert.equal(m1.receiverId, bob.user._id);
    assert.equal(m1.text, 'hello bob');
    assert.ok(Date.parse(m1.createdAt) >= t0);
    assert.equal(m2.senderId, bob.user._id);
    assert.equal(m2.receiverId, alice.user._id);

    const ha = await alice.client.get(`/api/messages/${bob.user._id}`);
    const hb = await bob.client.get(`/api/messages/${alice.user._id}`);
    assert.equal(ha.status, 200, ha.text);
    assert.equal(hb.status, 200, hb.text);
    assert.deepEqual(ha.body.data.map((m) => m._id), [m1._id, m2._id, m3._id], 'oldest → newest');
    assert.deepEqual(hb.body.data, ha.body.data, 'both users see the same conversation');
    assert.equal(ha.body.hasMore, false);
    assert.deepEqual(ha.body.data.map((m) => m.text), ['hello bob', 'hi alice', 'how are you?']);
    assert.equal(ha.body.data[0].senderId, alice.user._id);
  });

  test('conversations are private to their two participants', async () => {
    const secret = await sendOk(alice, carol, { text: 'just between us' });
    const ab = await alice.client.get(`/api/messages/${bob.user._id}`);
    assert.ok(!ab.body.data.some((m) => m._id === secret._id));
    const bc = await bob.client.get(`/api/messages/${carol.user._id}`);
    assert.deepEqual(bc.body.data, [], 'bob and carol never talked');
    const ca = await carol.client.get(`/api/messages/${alice.user._id}`);
    assert.deepEqual(ca.body.data.map((m) => m.text), ['just between us']);
  });

  test('text round-trips exactly (unicode, markup, quotes, newlines)', async () => {
    const text = 'Grüße 👋🏽 — 你好 <script>alert("x")</script> \'q\' "dq" \\ back\nline2\ttab';
    const m = await sendOk(carol, bob, { text });
    assert.equal(m.text, text);
    const h = await bob.client.get(`/api/messages/${carol.user._id}`);
    assert.equal(h.body.data.at(-1).text, text);
  });

  test('an image message is stored under /media and served back', async () => {
    const m = await sendOk(alice, bob, { image: dataUrl('image/jpeg', IMAGES.jpeg) });
    assert.equal(typeof m.image, 'string');
    assert.ok(m.image.startsWith('/media/'), m.image);
    const img = await bob.client.get(m.image);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get('content-type')?.split(';')[0].trim(), 'image/jpeg');
    assert.ok(img.buffer.equals(IMAGES.jpeg));
    const both = await sendOk(alice, bob, { text: 'caption', image: dataUrl('image/png', IMAGES.png) });
    assert.equal(both.text, 'caption');
    assert.ok(both.image.startsWith('/media/'));
    const h = await bob.client.get(`/api/messages/${alice.user._id}`);
    assert.equal(h.body.data.at(-1).image, both.image);
    assert.equal(h.body.data.at(-2).image, m.image);
  });

  test('send: bad ids, unknown user, self, empty and oversized messages are rejected', async () => {
    const countBefore = (await alice.client.get(`/api/messages/${bob.user._id}?limit=200`)).body.data.length;
    for (const bad of ['not-an-id', '123', 'zzzzzzzzzzzzzzzzzzzzzzzz', `${bob.user._id}0`]) {
      const r = await alice.client.post(`/api/messages/send/${bad}`, { text: 'x' });
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
    }
    const nobody = await alice.client.post(`/api/messages/send/${randomObjectId()}`, { text: 'anyone?' });
    assert.equal(nobody.status, 404, nobody.text);
    assert.equal(nobody.body.message, 'User not found');

    const self = await send(alice, alice, { text: 'note to self' });
    assert.equal(self.status, 400, self.text);

    for (const body of [{}, { text: '' }, { text: '', image: '' }, { text: null }]) {
      const r = await send(alice, bob, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.body.message, 'Validation error', r.text);
    }
    const wrongType = await send(alice, bob, { text: 12345 });
    assert.equal(wrongType.status, 400, wrongType.text);
    assert.equal(wrongType.body.message, 'Validation error');

    const tooLong = await send(alice, bob, { text: 'x'.repeat(4001) });
    assert.equal(tooLong.status, 400, tooLong.text);
    assert.equal(tooLong.body.message, 'Validation error');
    assert.ok(tooLong.body.errors && Array.isArray(tooLong.body.errors.text), tooLong.text);

    const badImage = await send(alice, bob, { image: dataUrl('image/png', Buffer.from('definitely not a png')) });
    assert.equal(badImage.status, 400, badImage.text);

    const unauth = await request(srv.url, 'POST', `/api/messages/send/${bob.user._id}`, { json: { text: 'x' } });
    assert.equal(unauth.status, 401);

    const countAfter = (await alice.client.get(`/api/messages/${bob.user._id}?limit=200`)).body.data.length;
    assert.equal(countAfter, countBefore, 'rejected sends stored nothing');

    const max = await send(alice, bob, { text: 'y'.repeat(4000) });
    assert.equal(max.status, 200, 'exactly --max-text characters is allowed');
    assert.equal(max.body.data.text.length, 4000);
    // the limit counts characters, not UTF-8 bytes
    const wide = await send(alice, bob, { text: 'é'.repeat(4000) });
    assert.equal(wide.status, 200, wide.text);
  });

  test('history: auth required and invalid ids rejected', async () => {
    const unauth = await request(srv.url, 'GET', `/api/messages/${bob.user._id}`);
    assert.equal(unauth.status, 401);
    const bad = await alice.client.get('/api/messages/not-an-id');
    assert.ok(bad.status >= 400 && bad.status < 500, `${bad.status} ${bad.text}`);
    const none = await alice.client.get(`/api/messages/${randomObjectId()}`);
    assert.ok(none.status < 500, none.text);
  });

  test('pagination: newest page first, before= walks back, hasMore reports the rest', async () => {
    const dave = await signupUser(srv.url, { full_name: 'Dave' });
    const sent = [];
    for (let i = 0; i < 7; i++) sent.push(await sendOk(i % 2 ? dave : alice, i % 2 ? alice : dave, { text: `p${i}` }));
    const ids = sent.map((m) => m._id);

    const p1 = await alice.client.get(`/api/messages/${dave.user._id}?limit=3`);
    assert.equal(p1.status, 200, p1.text);
    assert.deepEqual(p1.body.data.map((m) => m._id), ids.slice(4, 7), 'newest three, oldest first');
    assert.equal(p1.body.hasMore, true);

    const p2 = await alice.client.get(`/api/messages/${dave.user._id}?limit=3&before=${p1.body.data[0]._id}`);
    assert.deepEqual(p2.body.data.map((m) => m._id), ids.slice(1, 4));
    assert.equal(p2.body.hasMore, true);

    const p3 = await dave.client.get(`/api/messages/${alice.user._id}?limit=3&before=${p2.body.data[0]._id}`);
    assert.deepEqual(p3.body.data.map((m) => m._id), ids.slice(0, 1));
    assert.equal(p3.body.hasMore, false);

    const exact = await alice.client.get(`/api/messages/${dave.user._id}?limit=7`);
    assert.equal(exact.body.data.length, 7);
    assert.equal(exact.body.hasMore, false, 'no more when the page holds everything');

    const oldest = await alice.client.get(`/api/messages/${dave.user._id}?before=${ids[0]}`);
    assert.deepEqual(oldest.body.data, []);
    assert.equal(oldest.body.hasMore, false);

    const dflt = await alice.client.get(`/api/messages/${dave.user._id}`);
    assert.deepEqual(dflt.body.data.map((m) => m._id), ids);
    assert.equal(dflt.body.hasMore, false);
  });

  test('pagination: invalid limit / before → 400', async () => {
    for (const q of ['limit=0', 'limit=-1', 'limit=abc', 'limit=1.5e400', 'before=xyz', 'before=123', `before=${'g'.repeat(24)}`]) {
      const r = await alice.client.get(`/api/messages/${bob.user._id}?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.status} ${r.text}`);
      assert.equal(typeof r.body?.message, 'string');
    }
    const huge = await alice.client.get(`/api/messages/${bob.user._id}?limit=99999999999999999999`);
    assert.ok(huge.status === 200 || huge.status === 400, `huge limit: ${huge.status}`);
  });
});

describe('contacts list: unreadCount and lastMessage', () => {
  let srv;
  let alice;
  let bob;
  let carol;
  let dave;
  before(async () => {
    srv = await startChatd();
    alice = await signupUser(srv.url, { full_name: 'Alice' });
    bob = await signupUser(srv.url, { full_name: 'Bob' });
    carol = await signupUser(srv.url, { full_name: 'Carol' });
    dave = await signupUser(srv.url, { full_name: 'Dave' });
  });

  /** The caller's entry for `other` in GET /api/messages/users. */
  async function entry(viewer, other) {
    const r = await viewer.client.get('/api/messages/users');
    assert.equal(r.status, 200, r.text);
    const u = r.body.data.find((x) => x._id === other.user._id);
    assert.ok(u, `${other.user.full_name} missing from ${viewer.user.full_name}'s list`);
    return u;
  }

  test('every user starts with unreadCount 0 and lastMessage null', async () => {
    const r = await alice.client.get('/api/messages/users');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.data.length, 3);
    for (const u of r.body.data) {
      assert.equal(u.unreadCount, 0, JSON.stringify(u));
      assert.ok('lastMessage' in u, `lastMessage missing: ${JSON.stringify(u)}`);
      assert.equal(u.lastMessage, null);
      assert.equal(typeof u.online, 'boolean');
    }
  });

  test('unreadCount grows with each message from that peer, per peer, never with your own', async () => {
    for (let i = 1; i <= 3; i++) {
      await sendOk(bob, alice, { text: `bob ${i}` });
      assert.equal((await entry(alice, bob)).unreadCount, i);
    }
    await sendOk(carol, alice, { text: 'carol 1' });
    assert.equal((await entry(alice, carol)).unreadCount, 1);
    assert.equal((await entry(alice, bob)).unreadCount, 3, 'carol\'s message is not counted for bob');
    assert.equal((await entry(alice, dave)).unreadCount, 0);

    // alice's replies are unread for bob, not for alice
    await sendOk(alice, bob, { text: 'reply 1' });
    await sendOk(alice, bob, { text: 'reply 2' });
    assert.equal((await entry(alice, bob)).unreadCount, 3);
    assert.equal((await entry(bob, alice)).unreadCount, 2);
    // senders have nothing unread from the people they wrote to
    assert.equal((await entry(carol, alice)).unreadCount, 0);
    // and a conversation that does not exist has nothing unread
    assert.equal((await entry(bob, carol)).unreadCount, 0);
  });

  test('lastMessage is the newest message of the conversation, whichever side sent it', async () => {
    const mine = await sendOk(alice, bob, { text: 'newest from alice' });
    const fromAlice = await entry(alice, bob);
    const fromBob = await entry(bob, alice);
    assert.deepEqual(fromAlice.lastMessage, mine, 'same shape and content as the send response');
    assert.deepEqual(fromBob.lastMessage, mine, 'both sides see the same last message');
    for (const k of ['_id', 'senderId', 'receiverId', 'text', 'image', 'createdAt', 'updatedAt']) {
      assert.ok(k in fromAlice.lastMessage, `lastMessage.${k} missing`);
    }

    const answer = await sendOk(bob, alice, { text: 'newest from bob', image: dataUrl('image/png', IMAGES.png) });
    const after = await entry(alice, bob);
    assert.equal(after.lastMessage._id, answer._id);
    assert.equal(after.lastMessage.senderId, bob.user._id);
    assert.equal(after.lastMessage.text, 'newest from bob');
    assert.ok(after.lastMessage.image.startsWith('/media/'), after.lastMessage.image);
    assert.equal(after.unreadCount, 4);

    // other conversations keep their own last message
    assert.equal((await entry(alice, carol)).lastMessage.text, 'carol 1');
    assert.equal((await entry(alice, dave)).lastMessage, null);
    // and lastMessage agrees with the newest entry of the history
    const h = await alice.client.get(`/api/messages/${bob.user._id}`);
    assert.deepEqual(h.body.data.at(-1), after.lastMessage);
  });
});

describe('a 1000-message conversation', () => {
  let srv;
  let alice;
  let bob;
  const sent = new Map(); // id → text
  before(async () => {
    srv = await startChatd();
    alice = await signupUser(srv.url, { full_name: 'Alice' });
    bob = await signupUser(srv.url, { full_name: 'Bob' });
  });

  test('1000 concurrent sends are all stored and paged back exactly once, in order', { timeout: 240000 }, async () => {
    const N = 1000;
    const results = await pool(Array.from({ length: N }, (_, i) => i), 20, async (i) => {
      const [from, to] = i % 3 === 0 ? [bob, alice] : [alice, bob];
      const r = await from.client.post(`/api/messages/send/${to.user._id}`, { text: `msg #${i}` });
      assert.equal(r.status, 200, `send ${i}: ${r.text}`);
      return r.body.data;
    });
    for (const m of results) sent.set(m._id, m.text);
    assert.equal(sent.size, N, 'every send got its own id');

    const { pages, messages } = await readAll(alice.client, bob.user._id, 100);
    assert.equal(pages.at(-1).hasMore, true, 'first (newest) page of many has more');
    assert.equal(pages[0].hasMore, false, 'the oldest page ends the walk');
    for (const p of pages.slice(0, -1)) assert.ok(p.data.length <= 100);
    assert.equal(messages.length, N);
    const ids = messages.map((m) => m._id);
    assert.equal(new Set(ids).size, N, 'no duplicates across pages');
    for (let i = 1; i < ids.length; i++) {
      assert.ok(ids[i - 1] < ids[i], `ids not strictly ascending at ${i}: ${ids[i - 1]} ${ids[i]}`);
      assert.ok(Date.parse(messages[i - 1].createdAt) <= Date.parse(messages[i].createdAt), `createdAt goes back at ${i}`);
    }
    for (const m of messages) assert.equal(sent.get(m._id), m.text, `message ${m._id} missing or altered`);

    // default page size is 50; the other side sees the same thing
    const { pages: bp, messages: bm } = await readAll(bob.client, alice.user._id);
    assert.equal(bp.length, N / 50);
    assert.ok(bp.slice(0, -1).every((p) => p.data.length === 50));
    assert.deepEqual(bm.map((m) => m._id), ids);
  });

  test('limit above 200 is clamped to 200', async () => {
    for (const limit of [201, 1000]) {
      const r = await alice.client.get(`/api/messages/${bob.user._id}?limit=${limit}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.data.length, 200);
      assert.equal(r.body.hasMore, true);
    }
  });

  test('the conversation survives a restart on the same data directory', { timeout: 120000 }, async () => {
    assert.equal(sent.size, 1000, 'depends on the previous test');
    assert.equal(await srv.stop(), 0);
    srv = await startChatd({ dataDir: srv.dataDir });
    const { messages } = await readAll(bearerClient(srv.url, alice.token), bob.user._id, 200);
    assert.equal(messages.length, 1000);
    assert.deepEqual(new Set(messages.map((m) => m._id)), new Set(sent.keys()));
  });

  test('unread counts and last message of the long conversation, after the restart', async () => {
    assert.equal(sent.size, 1000, 'depends on the previous tests');
    const a = bearerClient(srv.url, alice.token);
    const b = bearerClient(srv.url, bob.token);
    const newest = (await a.get(`/api/messages/${bob.user._id}?limit=1`)).body.data[0];
    const ra = await a.get('/api/messages/users');
    const rb = await b.get('/api/messages/users');
    assert.equal(ra.status, 200, ra.text);
    const bobForAlice = ra.body.data.find((u) => u._id === bob.user._id);
    const aliceForBob = rb.body.data.find((u) => u._id === alice.user._id);
    // i % 3 === 0 went bob → alice: 334 of the 1000
    assert.equal(bobForAlice.unreadCount, 334);
    assert.equal(aliceForBob.unreadCount, 666);
    assert.deepEqual(bobForAlice.lastMessage, newest);
    assert.deepEqual(aliceForBob.lastMessage, newest);
  });
});
