// Back-pressure against a real chatd: a WebSocket client that stops reading while messages for it
// pour in is disconnected (chat_socketio_slow_consumer_disconnects_total), the sender is not
// slowed down or failed, and chatd's memory stays bounded.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CHATD_BIN, signupUser, sleep, startChatd, stopAll } from '../lib/chatd.mjs';
import {
  closeAllClients,
  connectAs,
  emitAck,
  metricValue,
  rawSocketIo,
  realtimeArgs,
  until,
  waitEvent,
} from '../lib/sio.mjs';

const TEXT_LEN = 4000;
const MESSAGES = 6000; // ~26 MB of newMessage frames: far more than socket buffers + the 1 MiB queue
const IN_FLIGHT = 64;
const SLOW_METRIC = 'chat_socketio_slow_consumer_disconnects_total';
const RSS_METRIC = 'process_resident_memory_bytes';
// ASan keeps freed memory in quarantine: RSS says nothing about the server there.
const SANITIZED = Boolean(process.env.ASAN_OPTIONS) || /asan/i.test(CHATD_BIN);

let srv;
let alice;
let bob;
before(async () => {
  srv = await startChatd({ args: await realtimeArgs() });
  alice = await signupUser(srv.url, { full_name: 'Sender' });
  bob = await signupUser(srv.url, { full_name: 'Slow reader' });
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

test('a client that stops reading is disconnected; the sender and the server are unaffected', async (t) => {
  const sender = await connectAs(srv.url, alice.token, { opts: { transports: ['websocket'] } });
  const slow = await rawSocketIo(srv.url, bob.token);
  // a normal tab of the same user must keep receiving
  const healthy = await connectAs(srv.url, bob.token, { events: ['newMessage'], opts: { transports: ['websocket'] } });

  const slowBefore = (await metricValue(srv.url, SLOW_METRIC)) ?? 0;
  const rssBefore = await metricValue(srv.url, RSS_METRIC);
  assert.ok(rssBefore > 0, `${RSS_METRIC} missing`);

  // Stop reading: the kernel buffers fill up, then chatd's per-connection queue.
  slow.ws._socket.pause();

  let rssPeak = rssBefore;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const v = await metricValue(srv.url, RSS_METRIC).catch(() => undefined);
      if (v > rssPeak) rssPeak = v;
      await sleep(200);
    }
  })();

  const text = 'y'.repeat(TEXT_LEN);
  const failures = [];
  let next = 0;
  let okCount = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < MESSAGES) {
        const i = next++;
        const ack = await emitAck(sender.socket, 'sendMessage', { to: bob.user._id, text: `${i} ${text}`.slice(0, TEXT_LEN) }, 30000).catch((e) => ({
          status: 'timeout',
          error: e.message,
        }));
        if (ack?.status === 'ok') okCount++;
        else if (failures.length < 5) failures.push(ack);
      }
    }),
  );
  const floodMs = Date.now() - started;
  sampling = false;
  await sampler;
  t.diagnostic(`${MESSAGES} messages of ${TEXT_LEN} chars acknowledged in ${floodMs} ms`);
  assert.deepEqual(failures, [], 'sender acks failed while a receiver was slow');
  assert.equal(okCount, MESSAGES);

  // chatd disconnected the slow reader and counted it
  await until(async () => ((await metricValue(srv.url, SLOW_METRIC)) ?? 0) >= slowBefore + 1, {
    timeoutMs: 15000,
    message: () => `${SLOW_METRIC} did not increase`,
  });

  // Once it reads again, the slow client finds its connection closed, having missed messages.
  let frames = 0;
  slow.ws.on('message', () => frames++);
  slow.ws._socket.resume();
  const closed = await slow.waitClose(15000);
  assert.ok(closed, 'the slow connection is still open');
  assert.ok(frames < MESSAGES, `the slow client received all ${frames} messages: it was not cut off`);
  t.diagnostic(`slow client got ${frames} frames before the close`);

  // the healthy tab of the same user got everything
  await until(() => healthy.rec.values('newMessage').length >= MESSAGES, {
    timeoutMs: 30000,
    message: () => `healthy tab got ${healthy.rec.values('newMessage').length}/${MESSAGES}`,
  });

  // memory: bounded by what the flood could legitimately keep (history cache, recovery buffer),
  // not by the unread backlog of a dead reader
  const floodBytes = MESSAGES * TEXT_LEN;
  const growth = rssPeak - rssBefore;
  t.diagnostic(`RSS ${Math.round(rssBefore / 1048576)} MiB → peak ${Math.round(rssPeak / 1048576)} MiB`);
  if (SANITIZED) {
    t.diagnostic('sanitizer build: RSS bound not asserted');
  } else {
    assert.ok(growth < floodBytes + 64 * 1048576, `RSS grew by ${Math.round(growth / 1048576)} MiB during a ${Math.round(floodBytes / 1048576)} MB flood`);
  }

  // chatd still serves
  const r = await fetch(`${srv.url}/healthz`);
  assert.equal(r.status, 200);
  const fresh = await connectAs(srv.url, bob.token, { events: ['newMessage'], opts: { transports: ['websocket'] } });
  const after = emitAck(sender.socket, 'sendMessage', { to: bob.user._id, text: 'after the flood' });
  const [m] = await waitEvent(fresh.socket, 'newMessage', { filter: (x) => x?.text === 'after the flood', timeoutMs: 10000 });
  assert.equal((await after).message._id, m._id);
  fresh.socket.disconnect();
  healthy.socket.disconnect();
  sender.socket.disconnect();
});
