// Messaging over Socket.IO against a real chatd: sendMessage acks and validation, newMessage
// fan-out to every tab, REST sends delivered live, clientMsgId idempotency, typing, markRead.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  IMAGES,
  OBJECT_ID_RE,
  dataUrl,
  randomObjectId,
  signupUser,
  sleep,
  startChatd,
  stopAll,
} from '../lib/chatd.mjs';
import { chatdHasFlag, closeAllClients, connectAs, emitAck, realtimeArgs, until } from '../lib/sio.mjs';

const EVENTS = ['newMessage', 'typing', 'messagesRead'];
const QUIET_MS = 500; // how long "nothing else arrives" is watched

let srv;
let alice;
let bob;
let carol;
// tabs: a1 (websocket), a2 (polling), b1 (websocket), b2 (polling→websocket), c1
let a1, a2, b1, b2, c1;

before(async () => {
  srv = await startChatd({ args: await realtimeArgs() });
  alice = await signupUser(srv.url, { full_name: 'Alice' });
  bob = await signupUser(srv.url, { full_name: 'Bob' });
  carol = await signupUser(srv.url, { full_name: 'Carol' });
  const ws = { transports: ['websocket'] };
  a1 = await connectAs(srv.url, alice.token, { events: EVENTS, opts: ws });
  a2 = await connectAs(srv.url, alice.token, { events: EVENTS, opts: { transports: ['polling'] } });
  b1 = await connectAs(srv.url, bob.token, { events: EVENTS, opts: ws });
  b2 = await connectAs(srv.url, bob.token, { events: EVENTS });
  c1 = await connectAs(srv.url, carol.token, { events: EVENTS, opts: ws });
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

const uniq = (tag) => `${tag} ${randomBytes(4).toString('hex')}`;
const newMessagesWith = (tab, id) => tab.rec.values('newMessage').filter((m) => m && m._id === id);

async function sendOk(tab, body) {
  const ack = await emitAck(tab.socket, 'sendMessage', body);
  assert.equal(ack?.status, 'ok', `ack ${JSON.stringify(ack)}`);
  return ack.message;
}

async function sendError(tab, body) {
  const ack = await emitAck(tab.socket, 'sendMessage', body);
  assert.equal(ack?.status, 'error', `ack ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error, 'string');
  assert.ok(ack.error.length > 0);
  return ack;
}

async function history(user, peer) {
  const r = await user.client.get(`/api/messages/${peer.user._id}?limit=200`);
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

/** Waits until each tab got message `id` once, then checks nobody got it twice / unexpectedly. */
async function assertDelivered(id, { to, notTo }) {
  for (const tab of to) {
    await until(() => newMessagesWith(tab, id).length >= 1, { message: () => `newMessage ${id} not delivered` });
  }
  await sleep(QUIET_MS);
  for (const tab of to) assert.equal(newMessagesWith(tab, id).length, 1, `newMessage ${id} delivered twice`);
  for (const tab of notTo) assert.equal(newMessagesWith(tab, id).length, 0, `newMessage ${id} delivered where it should not be`);
}

describe('sendMessage', () => {
  test('ack {status:"ok", message} once stored; the message is in the history', async () => {
    const text = uniq('hello bob');
    const m = await sendOk(a1, { to: bob.user._id, text });
    assert.match(m._id, OBJECT_ID_RE);
    assert.equal(m.senderId, alice.user._id);
    assert.equal(m.receiverId, bob.user._id);
    assert.equal(m.text, text);
    assert.ok('image' in m, 'message without an image field');
    assert.ok(!Number.isNaN(Date.parse(m.createdAt)), `createdAt ${m.createdAt}`);
    assert.ok(!Number.isNaN(Date.parse(m.updatedAt)), `updatedAt ${m.updatedAt}`);
    const stored = (await history(bob, alice)).find((x) => x._id === m._id);
    assert.ok(stored, 'acknowledged message not in GET /api/messages/:id');
    const { clientMsgId, ...shape } = m;
    const { clientMsgId: c2, ...storedShape } = stored;
    assert.deepEqual(storedShape, shape);
  });

  test('newMessage to every tab of the receiver and the sender\'s other tab, not the sending tab', async () => {
    const m = await sendOk(a1, { to: bob.user._id, text: uniq('fan-out') });
    await assertDelivered(m._id, { to: [b1, b2, a2], notTo: [a1, c1] });
    const got = newMessagesWith(b1, m._id)[0];
    assert.deepEqual(
      { ...got, clientMsgId: undefined },
      { ...m, clientMsgId: undefined },
      'newMessage payload differs from the ack',
    );
  });

  test('from a polling tab as well', async () => {
    const m = await sendOk(a2, { to: bob.user._id, text: uniq('from polling') });
    await assertDelivered(m._id, { to: [b1, b2, a1], notTo: [a2, c1] });
  });

  test('messages arrive in the order they were acknowledged', async () => {
    const sent = [];
    for (let i = 0; i < 20; i++) sent.push(await sendOk(a1, { to: bob.user._id, text: `order ${i}` }));
    const sentIds = sent.map((m) => m._id);
    await until(() => sentIds.every((id) => newMessagesWith(b1, id).length), { message: () => 'not all delivered' });
    const seen = b1.rec.values('newMessage').map((m) => m._id).filter((id) => sentIds.includes(id));
    assert.deepEqual(seen, sentIds);
  });

  test('text of exactly 4000 characters is accepted, an image data URL too', async () => {
    const m = await sendOk(a1, { to: bob.user._id, text: 'x'.repeat(4000) });
    assert.equal(m.text.length, 4000);
    const img = await sendOk(a1, { to: bob.user._id, image: dataUrl('image/png', IMAGES.png) });
    assert.ok(img.image, 'image not stored');
    await assertDelivered(img._id, { to: [b1], notTo: [a1] });
  });

  test('validation errors: empty text, text over 4000 characters, neither text nor image, bad image', async () => {
    for (const body of [
      { to: bob.user._id, text: '' },
      { to: bob.user._id, text: 'x'.repeat(4001) },
      { to: bob.user._id },
      { to: bob.user._id, image: 'not a data url' },
      { to: bob.user._id, image: dataUrl('text/plain', Buffer.from('hello')) },
      { to: bob.user._id, text: 'ok', clientMsgId: 'c'.repeat(65) },
    ]) {
      const ack = await sendError(a1, body);
      assert.equal(ack.code, 'validation', `${JSON.stringify(body).slice(0, 80)} → ${JSON.stringify(ack)}`);
    }
    await sleep(200);
  });

  test('unknown recipient → code "not_found"; nothing is delivered', async () => {
    const before = b1.rec.values('newMessage').length;
    const ack = await sendError(a1, { to: randomObjectId(), text: 'anyone?' });
    assert.equal(ack.code, 'not_found');
    const ack2 = await sendError(a1, { to: 'not-an-object-id', text: 'anyone?' });
    assert.ok(['not_found', 'validation'].includes(ack2.code), JSON.stringify(ack2));
    await sleep(200);
    assert.equal(b1.rec.values('newMessage').length, before);
  });

  test('a payload that is not an object gets an error ack and the socket stays usable', async () => {
    for (const bad of ['hello', 42, null, ['x']]) {
      const ack = await emitAck(a1.socket, 'sendMessage', bad);
      assert.equal(ack?.status, 'error', `${JSON.stringify(bad)} → ${JSON.stringify(ack)}`);
    }
    assert.equal(a1.socket.connected, true);
    await sendOk(a1, { to: bob.user._id, text: 'still fine' });
  });

  test('REST POST /api/messages/send/:id is delivered to the receiver\'s tabs and all the sender\'s tabs', async () => {
    const r = await alice.client.post(`/api/messages/send/${bob.user._id}`, { text: uniq('via REST') });
    assert.equal(r.status, 200, r.text);
    const m = r.body.data;
    await assertDelivered(m._id, { to: [b1, b2, a1, a2], notTo: [c1] });
    assert.equal(newMessagesWith(b2, m._id)[0].text, m.text);
  });
});

describe('clientMsgId idempotency', () => {
  test('the same clientMsgId twice → the same message, stored and delivered once', async () => {
    const clientMsgId = `cm-${randomBytes(8).toString('hex')}`;
    const text = uniq('idempotent');
    const first = await sendOk(a1, { to: bob.user._id, text, clientMsgId });
    assert.equal(first.clientMsgId, clientMsgId);
    const second = await sendOk(a1, { to: bob.user._id, text, clientMsgId });
    assert.equal(second._id, first._id);
    await assertDelivered(first._id, { to: [b1, b2, a2], notTo: [a1] });
    const stored = (await history(alice, bob)).filter((m) => m.text === text);
    assert.equal(stored.length, 1, 'stored twice');
  });

  test('concurrent retries with one clientMsgId create one message', async () => {
    const clientMsgId = `cm-${randomBytes(8).toString('hex')}`;
    const text = uniq('concurrent retry');
    const acks = await Promise.all(
      Array.from({ length: 5 }, (_, i) => emitAck((i % 2 ? a2 : a1).socket, 'sendMessage', { to: bob.user._id, text, clientMsgId })),
    );
    for (const a of acks) assert.equal(a?.status, 'ok', JSON.stringify(a));
    assert.equal(new Set(acks.map((a) => a.message._id)).size, 1, 'different messages for one clientMsgId');
    await sleep(QUIET_MS);
    assert.equal(newMessagesWith(b1, acks[0].message._id).length, 1);
    assert.equal((await history(bob, alice)).filter((m) => m.text === text).length, 1);
  });

  test('a socket retry of a REST send with the same clientMsgId returns the first message', async () => {
    const clientMsgId = `cm-${randomBytes(8).toString('hex')}`;
    const text = uniq('rest then socket');
    const r = await alice.client.post(`/api/messages/send/${bob.user._id}`, { text, clientMsgId });
    assert.equal(r.status, 200, r.text);
    const again = await sendOk(a1, { to: bob.user._id, text, clientMsgId });
    assert.equal(again._id, r.body.data._id);
    await sleep(QUIET_MS);
    assert.equal(newMessagesWith(b1, again._id).length, 1);
  });

  test('clientMsgId is scoped to the sender', async () => {
    const clientMsgId = `cm-${randomBytes(8).toString('hex')}`;
    const fromAlice = await sendOk(a1, { to: bob.user._id, text: 'from alice', clientMsgId });
    const fromCarol = await sendOk(c1, { to: bob.user._id, text: 'from carol', clientMsgId });
    assert.notEqual(fromAlice._id, fromCarol._id);
    assert.equal(fromCarol.senderId, carol.user._id);
  });
});

describe('typing', () => {
  test('relayed to the receiver\'s tabs as {from, isTyping}', async () => {
    b1.rec.clear();
    b2.rec.clear();
    c1.rec.clear();
    a1.socket.emit('typing', { to: bob.user._id, isTyping: true });
    const t1 = await b1.rec.waitFor('typing', (t) => t && t.isTyping === true);
    assert.deepEqual(t1, { from: alice.user._id, isTyping: true });
    assert.deepEqual(await b2.rec.waitFor('typing', (t) => t && t.isTyping === true), { from: alice.user._id, isTyping: true });
    a1.socket.emit('typing', { to: bob.user._id, isTyping: false });
    assert.deepEqual(await b1.rec.waitFor('typing', (t) => t && t.isTyping === false), { from: alice.user._id, isTyping: false });
    await sleep(200);
    assert.deepEqual(c1.rec.values('typing'), [], 'typing relayed to a third user');
  });

  test('typing is not stored and bad payloads are ignored', async () => {
    const before = (await history(alice, bob)).length;
    a1.socket.emit('typing', 'garbage');
    a1.socket.emit('typing', { to: 'nobody', isTyping: true });
    a1.socket.emit('typing', { to: bob.user._id, isTyping: true });
    await b1.rec.waitFor('typing', (t) => t && t.isTyping === true);
    assert.equal((await history(alice, bob)).length, before);
    assert.equal(a1.socket.connected, true);
  });
});

describe('markRead', () => {
  test('the peer gets messagesRead {by, upTo}; unreadCount follows the read position', async (t) => {
    // a fresh pair, so that unread counts start at zero
    const dave = await signupUser(srv.url, { full_name: 'Dave' });
    const erin = await signupUser(srv.url, { full_name: 'Erin' });
    const d1 = await connectAs(srv.url, dave.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const e1 = await connectAs(srv.url, erin.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const m = [];
    for (let i = 0; i < 3; i++) m.push(await sendOk(d1, { to: erin.user._id, text: `unread ${i}` }));

    const unreadOfDave = async () => {
      const r = await erin.client.get('/api/messages/users');
      assert.equal(r.status, 200, r.text);
      const entry = r.body.data.find((u) => u._id === dave.user._id);
      assert.ok(entry, 'dave not listed');
      return entry.unreadCount;
    };
    const initial = await unreadOfDave();
    const hasUnread = initial !== undefined;
    if (hasUnread) assert.equal(initial, 3);
    else t.diagnostic('GET /api/messages/users has no unreadCount yet: unread counts not asserted');

    const ack = await emitAck(e1.socket, 'markRead', { peerId: dave.user._id, upTo: m[1]._id });
    if (ack && typeof ack === 'object' && 'status' in ack) assert.equal(ack.status, 'ok', JSON.stringify(ack));
    assert.deepEqual(await d1.rec.waitFor('messagesRead'), { by: erin.user._id, upTo: m[1]._id });
    if (hasUnread) assert.equal(await unreadOfDave(), 1);

    // never backwards
    await emitAck(e1.socket, 'markRead', { peerId: dave.user._id, upTo: m[0]._id });
    if (hasUnread) assert.equal(await unreadOfDave(), 1, 'read position moved backwards');

    // without an ack callback
    d1.rec.clear();
    e1.socket.emit('markRead', { peerId: dave.user._id, upTo: m[2]._id });
    assert.deepEqual(await d1.rec.waitFor('messagesRead', (x) => x && x.upTo === m[2]._id), { by: erin.user._id, upTo: m[2]._id });
    if (hasUnread) await until(async () => (await unreadOfDave()) === 0, { message: () => 'unreadCount not 0' });

    // a new message counts again
    await sendOk(d1, { to: erin.user._id, text: 'one more' });
    if (hasUnread) assert.equal(await unreadOfDave(), 1);
    d1.socket.disconnect();
    e1.socket.disconnect();
  });
});

describe('markRead bursts', () => {
  // The web client sends markRead for every message it shows while the conversation is open,
  // so under load they come by the thousand. Each used to be a store write of its own on the
  // blocking pool, refused ("Server busy") once its queue (10,000) was full: silently for the
  // web client, which asks no ack, and a refused last one left the read position behind.
  test('12,000 markRead at once are all written (each ack ok), the last position wins', async () => {
    const frank = await signupUser(srv.url, { full_name: 'Frank' });
    const gina = await signupUser(srv.url, { full_name: 'Gina' });
    const ws = { transports: ['websocket'] };
    const f1 = await connectAs(srv.url, frank.token, { events: EVENTS, opts: ws });
    const g1 = await connectAs(srv.url, gina.token, { events: EVENTS, opts: ws });
    const m = [];
    for (let i = 0; i < 3; i++) m.push(await sendOk(f1, { to: gina.user._id, text: `burst ${i}` }));
    const n = 12000;
    const acks = [];
    for (let i = 0; i < n; i++) {
      const upTo = i === n - 1 ? m[2]._id : m[i % 2]._id;
      acks.push(emitAck(g1.socket, 'markRead', { peerId: frank.user._id, upTo }, 30000));
    }
    const results = await Promise.all(acks);
    const bad = results.filter((a) => a?.status !== 'ok');
    assert.equal(bad.length, 0, `${bad.length} of ${n} acks not ok, e.g. ${JSON.stringify(bad[0])}`);
    const ids = new Set(m.map((x) => x._id));
    assert.ok(results.every((a) => ids.has(a.upTo)), 'an ack with a position that is no message');
    assert.equal(results[n - 1].upTo, m[2]._id);
    assert.deepEqual(await f1.rec.waitFor('messagesRead', (x) => x && x.upTo === m[2]._id), {
      by: gina.user._id,
      upTo: m[2]._id,
    });
    const r = await gina.client.get('/api/messages/users');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.data.find((u) => u._id === frank.user._id)?.unreadCount, 0);
    f1.socket.disconnect();
    g1.socket.disconnect();
  });
});

describe('message rate limit', () => {
  test('over the limit → ack code "rate_limited"', async (t) => {
    if (!(await chatdHasFlag('rate-limit-messages'))) {
      t.skip('chatd has no --rate-limit-messages flag');
      return;
    }
    const limited = await startChatd({ args: ['--rate-limit-messages', '3/60s'] });
    try {
      const x = await signupUser(limited.url);
      const y = await signupUser(limited.url);
      const sx = await connectAs(limited.url, x.token, { opts: { transports: ['websocket'] } });
      const codes = [];
      for (let i = 0; i < 6; i++) {
        const ack = await emitAck(sx.socket, 'sendMessage', { to: y.user._id, text: `n${i}` });
        codes.push(ack.status === 'ok' ? 'ok' : ack.code);
      }
      assert.deepEqual(codes.slice(0, 3), ['ok', 'ok', 'ok']);
      assert.ok(codes.slice(3).every((c) => c === 'rate_limited'), JSON.stringify(codes));
      sx.socket.disconnect();
    } finally {
      await limited.stop();
    }
  });
});
