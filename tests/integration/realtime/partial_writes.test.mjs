// A reader that is slow but within its send queue gets every byte, in order: chatd writes a
// connection's frames straight to the non-blocking socket and only waits (asynchronously) for
// what the kernel did not take. Here the reader stops reading until several MB are pending,
// far more than the kernel's socket buffers, so most writes are partial and their remainders go
// out later; every message must then arrive once, whole and in order.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { signupUser, startChatd, stopAll } from '../lib/chatd.mjs';
import { closeAllClients, connectAs, emitAck, rawSocketIo, realtimeArgs, until } from '../lib/sio.mjs';

const MESSAGES = 2000;
const TEXT_LEN = 3000; // ~6 MB of newMessage frames in all
const IN_FLIGHT = 32;

let srv;
let alice;
let bob;
before(async () => {
  // A send queue large enough for the whole backlog: this test is about partial writes, not
  // about the slow-consumer limit (slow_consumer.test.mjs).
  srv = await startChatd({ args: [...(await realtimeArgs()), '--send-queue', String(64 << 20)] });
  alice = await signupUser(srv.url, { full_name: 'Sender' });
  bob = await signupUser(srv.url, { full_name: 'Paused reader' });
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

const textOf = (i) => `${i}:`.padEnd(TEXT_LEN, String.fromCharCode(97 + (i % 26)));

test('a paused reader receives every message whole and in order once it reads again', async (t) => {
  const reader = await rawSocketIo(srv.url, bob.token);
  const received = [];
  reader.ws.on('message', (data, isBinary) => {
    const s = data.toString();
    if (!isBinary && s.startsWith('42["newMessage"')) received.push(JSON.parse(s.slice(2))[1].text);
  });
  reader.ws._socket.pause();

  const sender = await connectAs(srv.url, alice.token, { opts: { transports: ['websocket'] } });
  let next = 0;
  const acked = new Array(MESSAGES);
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      // One sender, acks awaited in order per lane: lane order is send order, so the ids the
      // acks return (ObjectIds grow) give the order the reader must see.
      while (next < MESSAGES) {
        const i = next++;
        const ack = await emitAck(sender.socket, 'sendMessage', { to: bob.user._id, text: textOf(i) }, 30000);
        assert.equal(ack?.status, 'ok', JSON.stringify(ack));
        acked[i] = ack.message;
      }
    }),
  );
  assert.equal(received.length, 0, 'the paused reader read nothing yet');

  reader.ws._socket.resume();
  await until(() => received.length >= MESSAGES, {
    timeoutMs: 30000,
    message: () => `received ${received.length}/${MESSAGES}`,
  });
  t.diagnostic(`${MESSAGES} messages of ${TEXT_LEN} chars delivered after the pause`);
  // Whole: each text is exactly one that was sent; once each; in the order chatd stored them.
  const byId = [...acked].sort((a, b) => (a._id < b._id ? -1 : 1)).map((m) => m.text);
  assert.equal(received.length, MESSAGES);
  assert.deepEqual(received, byId);
  sender.socket.disconnect();
  reader.close();
});
