// Durability across a crash: every message chatd acknowledged is in the history after chatd is
// killed with SIGKILL and restarted on the same data directory, once, and its clientMsgId still
// makes a retry a duplicate. The kill comes right after the last ack, while most messages are
// only in the store's message journal (the main database indexes them behind, every 200 ms):
// the restart must replay them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';

import { Client, signupUser, startChatd, stopAll } from '../lib/chatd.mjs';
import { closeAllClients, connectAs, emitAck, realtimeArgs } from '../lib/sio.mjs';

after(async () => {
  closeAllClients();
  await stopAll();
});

/** Pages backwards through the conversation with `peerId`; returns the messages oldest first. */
async function history(client, peerId) {
  const pages = [];
  let before = null;
  for (let guard = 0; guard < 1000; guard++) {
    const q = new URLSearchParams({ limit: '100' });
    if (before) q.set('before', before);
    const r = await client.get(`/api/messages/${peerId}?${q}`);
    assert.equal(r.status, 200, r.text);
    pages.push(r.body.data);
    if (!r.body.hasMore) break;
    before = r.body.data[0]._id;
  }
  return pages.reverse().flat();
}

test('messages acknowledged before a SIGKILL are all there after the restart, once', async () => {
  const args = await realtimeArgs();
  const first = await startChatd({ args });
  const alice = await signupUser(first.url, { full_name: 'Alice' });
  const bob = await signupUser(first.url, { full_name: 'Bob' });
  const tab = await connectAs(first.url, alice.token, { opts: { transports: ['websocket'] } });

  const tag = randomBytes(4).toString('hex');
  const count = 300;
  const acks = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      emitAck(tab.socket, 'sendMessage', { to: bob.user._id, text: `m${i}`, clientMsgId: `${tag}-${i}` }),
    ),
  );
  first.proc.kill('SIGKILL');
  for (const a of acks) assert.equal(a?.status, 'ok', JSON.stringify(a));
  const sent = acks.map((a) => a.message._id);
  assert.equal(new Set(sent).size, count);
  await new Promise((resolve) => first.proc.once('exit', resolve));
  closeAllClients();

  const second = await startChatd({ args, dataDir: first.dataDir });
  const replayed = /replayed (\d+) journaled messages/.exec(second.output());
  assert.ok(replayed && Number(replayed[1]) > 0, `no journal replay at start:\n${second.output()}`);

  const got = await history(new Client(second.url, { bearer: alice.token, useCookies: false }), bob.user._id);
  const ids = got.map((m) => m._id);
  assert.equal(new Set(ids).size, ids.length, 'a message is stored twice');
  assert.deepEqual(ids.filter((id) => sent.includes(id)).sort(), [...sent].sort());
  assert.equal(ids.length, count);

  const again = await connectAs(second.url, alice.token, { opts: { transports: ['websocket'] } });
  const retry = await emitAck(again.socket, 'sendMessage', { to: bob.user._id, text: 'retry', clientMsgId: `${tag}-7` });
  assert.equal(retry?.status, 'ok', JSON.stringify(retry));
  assert.equal(retry.message._id, acks[7].message._id);
  assert.equal(await second.stop(), 0, second.output());
});
