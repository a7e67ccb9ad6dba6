// chatd on a Redis Cluster (3 masters): users' channels hash to different masters, and events,
// presence and rate limits still reach every instance. MongoDB (FerretDB) without Kafka: chatd
// writes messages to the database itself, the other supported cluster configuration.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { signupUser, sleep, stopAll } from '../lib/chatd.mjs';
import { freePort, mongoClient, startClusterChatd, startFerret, startRedis } from '../lib/cluster.mjs';
import { closeAllClients, connectAs, emitAck, metricValue, until } from '../lib/sio.mjs';

const DB = `chat_${randomBytes(3).toString('hex')}`;
let redis, ferret, mongo;
const chatd = [];

before(async () => {
  [redis, ferret] = await Promise.all([startRedis({ cluster: true }), startFerret()]);
  for (let i = 0; i < 2; i++) {
    chatd.push(await startClusterChatd({
      port: await freePort(),
      instance: `rc-${i + 1}`,
      mongoUri: ferret.uri(DB),
      redisUrl: redis.url,
      kafkaBrokers: undefined,
      topic: undefined,
      // shared limit of 30 messages per minute per user, counted in Redis
      args: ['--rate-limit-messages', '30/1m'],
    }));
  }
  mongo = await mongoClient(ferret.uri(DB));
});

after(async () => {
  closeAllClients();
  if (mongo) await mongo.close();
  await stopAll();
});

test('both instances are ready on the Redis Cluster', async () => {
  for (const c of chatd) assert.equal((await fetch(`${c.url}/readyz`)).status, 200);
  assert.equal(await metricValue(chatd[0].url, 'chat_bus_up'), 1);
});

test('users spread over the masters: messages and presence cross instances', async () => {
  const n = 8;
  const people = [];
  for (let i = 0; i < n; i++) {
    const u = await signupUser(chatd[i % 2].url, { full_name: `RC ${i}` });
    const c = await connectAs(chatd[i % 2].url, u.token, {
      events: ['newMessage', 'getOnlineUsers'],
      opts: { transports: ['websocket'] },
    });
    people.push({ u, c });
  }
  const ids = people.map((p) => p.u.user._id);
  // presence: everyone sees everyone, on both instances
  for (const p of people) {
    await until(() => {
      const last = p.c.rec.values('getOnlineUsers').at(-1) || [];
      return ids.every((id) => last.includes(id));
    }, { message: () => `presence incomplete for ${p.u.user._id}` });
  }
  // i → i+1 is always across instances
  const sent = [];
  for (let i = 0; i < n; i++) {
    const peer = people[(i + 1) % n];
    const r = await emitAck(people[i].c.socket, 'sendMessage', { to: peer.u.user._id, text: `rc ${i}` });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    sent.push({ id: r.message._id, to: (i + 1) % n });
  }
  await until(() => sent.every((s) => people[s.to].c.rec.values('newMessage').some((m) => m._id === s.id)), {
    message: () => 'a message did not cross instances',
  });
  await sleep(200);
  for (const p of people) {
    const got = p.c.rec.values('newMessage').map((m) => m._id);
    assert.equal(new Set(got).size, got.length, 'duplicate delivery');
  }
  // stored once by the instance itself (no Kafka configured)
  const count = await mongo.db(DB).collection('messages').countDocuments({ text: /^rc / });
  assert.equal(count, n);
});

test('the message rate limit is shared by the instances through the cluster', async () => {
  const a = await signupUser(chatd[0].url, { full_name: 'Limited' });
  const b = await signupUser(chatd[1].url, { full_name: 'Peer' });
  const s0 = (await connectAs(chatd[0].url, a.token, { opts: { transports: ['websocket'] } })).socket;
  const s1 = (await connectAs(chatd[1].url, a.token, { opts: { transports: ['websocket'] } })).socket;
  // Windows are aligned to whole minutes: keep the 40 sends inside one.
  const intoMinute = Date.now() % 60000;
  if (intoMinute > 50000) await sleep(60000 - intoMinute + 100);
  let ok = 0;
  let limited = 0;
  for (let i = 0; i < 40; i++) {
    const r = await emitAck(i % 2 ? s1 : s0, 'sendMessage', { to: b.user._id, text: `lim ${i}` });
    if (r.status === 'ok') ok++;
    else if (r.code === 'rate_limited') limited++;
    await sleep(15); // let each instance learn the other's counts (synchronised every few ms)
  }
  // 30 per minute for the user in total, not 30 per instance (60)
  assert.ok(ok >= 30 && ok <= 33, `${ok} accepted, ${limited} limited`);
  assert.equal(ok + limited, 40);
});
