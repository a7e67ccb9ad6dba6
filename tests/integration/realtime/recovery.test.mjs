// Connection state recovery against a real chatd: a receiver whose TCP connection dies comes
// back by itself, gets exactly the messages it missed, in order, once, and socket.recovered.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { signupUser, sleep, startChatd, stopAll } from '../lib/chatd.mjs';
import { closeAllClients, connectAs, emitAck, makeClient, realtimeArgs, until, waitEvent, waitWebSocket } from '../lib/sio.mjs';

let srv;
let alice;
let bob;
before(async () => {
  srv = await startChatd({ args: await realtimeArgs() });
  alice = await signupUser(srv.url, { full_name: 'Alice' });
  bob = await signupUser(srv.url, { full_name: 'Bob' });
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

async function send(sender, to, text) {
  const ack = await emitAck(sender.socket, 'sendMessage', { to: to.user._id, text });
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  return ack.message;
}

/** A receiver that reconnects by itself; records newMessage ids and connects. */
async function reconnectingReceiver(user, transportOpts) {
  const socket = makeClient(srv.url, {
    ...transportOpts,
    auth: { token: user.token },
    reconnection: true,
    reconnectionDelay: 700, // long enough for the sender to send while the receiver is away
    reconnectionDelayMax: 700,
    randomizationFactor: 0,
  });
  const received = [];
  socket.on('newMessage', (m) => received.push(m._id));
  const connects = [];
  socket.on('connect', () => connects.push({ at: Date.now(), recovered: socket.recovered }));
  await waitEvent(socket, 'connect', { timeoutMs: 8000 });
  return { socket, received, connects };
}

/** Cuts the client's TCP connection without a close handshake. */
function cutConnection(socket) {
  const t = socket.io.engine.transport;
  if (t.name === 'websocket') t.ws._socket.destroy();
  else throw new Error(`cannot cut a ${t.name} transport`);
}

for (const [name, opts] of [
  ['websocket', { transports: ['websocket'] }],
  ['polling upgraded to websocket', { transports: ['polling', 'websocket'] }],
]) {
  describe(`recovery (${name})`, () => {
    test('messages sent while the receiver was away arrive on reconnect, in order, once', async () => {
      const sender = await connectAs(srv.url, alice.token, { opts: { transports: ['websocket'] } });
      const rx = await reconnectingReceiver(bob, opts);
      await waitWebSocket(rx.socket);

      // one live message first: the receiver then has an offset
      const live = await send(sender, bob, 'before the cut');
      await until(() => rx.received.includes(live._id), { message: () => 'live message not delivered' });

      const disconnected = waitEvent(rx.socket, 'disconnect');
      cutConnection(rx.socket);
      const [reason] = await disconnected;
      assert.equal(reason, 'transport close');

      const missed = [];
      for (let i = 0; i < 5; i++) missed.push((await send(sender, bob, `while away ${i}`))._id);
      const receivedBefore = rx.received.length;

      await until(() => rx.connects.length >= 2, { timeoutMs: 8000, message: () => 'the receiver did not reconnect' });
      assert.equal(rx.socket.recovered, true, 'socket.recovered is not true after the reconnect');
      assert.equal(rx.connects[1].recovered, true);

      await until(() => missed.every((id) => rx.received.includes(id)), {
        message: () => `missed messages: got ${JSON.stringify(rx.received)}, want ${JSON.stringify(missed)}`,
      });
      await sleep(500);
      const after = rx.received.slice(receivedBefore);
      assert.deepEqual(
        rx.received.filter((id) => missed.includes(id)),
        missed,
        'missed messages not exactly once and in order',
      );
      assert.equal(rx.received.filter((id) => id === live._id).length, 1, 'the live message came twice');
      assert.deepEqual(after.filter((id) => !missed.includes(id)), [], 'unexpected messages after the reconnect');

      // the recovered socket is a normal socket again
      const next = await send(sender, bob, 'after the reconnect');
      await until(() => rx.received.includes(next._id), { message: () => 'no live delivery after recovery' });
      await sleep(200);
      assert.equal(rx.received.filter((id) => id === next._id).length, 1);

      rx.socket.io.opts.reconnection = false;
      rx.socket.disconnect();
      sender.socket.disconnect();
    });
  });
}

test('a brand-new socket is not "recovered"', async () => {
  const s = await connectAs(srv.url, bob.token, { opts: { transports: ['websocket'] } });
  assert.ok(!s.socket.recovered);
  s.socket.disconnect();
});

test('a reconnect after a clean client disconnect is a new session', async () => {
  const rx = await reconnectingReceiver(bob, { transports: ['websocket'] });
  rx.socket.disconnect();
  rx.socket.connect();
  await until(() => rx.connects.length >= 2, { message: () => 'no second connect' });
  assert.ok(!rx.socket.recovered, 'recovered after an explicit disconnect');
  rx.socket.io.opts.reconnection = false;
  rx.socket.disconnect();
});
