// Cluster mode end to end: 3 chatd + 2 chat-workers + Redis + Kafka + FerretDB + nginx, all
// native on loopback. Real-time events cross instances through Redis, messages go through Kafka
// into the database exactly once, and the faults of the issue (an instance, a worker, the broker,
// Redis, the database) lose no acknowledged message and duplicate none.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';

import { ObjectId } from 'mongodb';

import { Client, signupUser, sleep, stopAll } from '../lib/chatd.mjs';
import {
  freePort,
  mongoClient,
  startClusterChatd,
  startFerret,
  startKafka,
  startNginx,
  startRedis,
  startWorker,
} from '../lib/cluster.mjs';
import { closeAllClients, connectAs, emitAck, metricValue, until } from '../lib/sio.mjs';

const EVENTS = ['newMessage', 'typing', 'messagesRead', 'getOnlineUsers'];
const TOPIC = `chat-messages-${randomBytes(3).toString('hex')}`;
const DB = `chat_${randomBytes(3).toString('hex')}`;

let redis, kafka, ferret, nginx, mongo;
const ports = [];
const chatd = []; // index i ↔ ports[i]
const workers = [];
const acked = new Map(); // message id → {from, to, text}

function instanceOpts(i) {
  return {
    port: ports[i],
    instance: `chatd-${i + 1}`,
    mongoUri: ferret.uri(DB),
    redisUrl: redis.url,
    kafkaBrokers: kafka.brokers,
    topic: TOPIC,
  };
}

async function startInstance(i) {
  chatd[i] = await startClusterChatd(instanceOpts(i));
  return chatd[i];
}

async function startWorkerN() {
  const w = await startWorker({ mongoUri: ferret.uri(DB), kafkaBrokers: kafka.brokers, topic: TOPIC });
  workers.push(w);
  return w;
}

/** Sends with ack; remembers what was acknowledged (the database must end with exactly these). */
async function send(socket, from, to, text, extra = {}, timeoutMs = 40000) {
  const r = await emitAck(socket, 'sendMessage', { to: to.user._id, text, ...extra }, timeoutMs);
  if (r && r.status === 'ok') acked.set(r.message._id, { from: from.user._id, to: to.user._id, text });
  return r;
}

const users = {};
async function user(name, at = 0) {
  const u = await signupUser(chatd[at].url, { full_name: name });
  users[name] = u;
  return u;
}

/** Every message of the test's users in the database, by id (counts duplicates). */
async function stored() {
  const ids = Object.values(users).map((u) => new ObjectId(u.user._id));
  const docs = await mongo.db(DB).collection('messages').find({ senderId: { $in: ids } }).toArray();
  const count = new Map();
  for (const d of docs) count.set(String(d._id), (count.get(String(d._id)) || 0) + 1);
  return { docs, count };
}

async function expectExactlyOnceInDatabase(timeoutMs = 60000) {
  await until(
    async () => {
      const { count } = await stored();
      return [...acked.keys()].every((id) => count.has(id));
    },
    {
      timeoutMs,
      message: () => `not every acknowledged message (${acked.size}) reached the database`,
    },
  );
  const { docs, count } = await stored();
  const dups = [...count.entries()].filter(([, n]) => n > 1);
  assert.deepEqual(dups, [], 'duplicated documents');
  for (const id of acked.keys()) assert.equal(count.get(id), 1, `message ${id} stored once`);
  // The documents have the old Mongoose shape.
  const d = docs.find((x) => acked.has(String(x._id)));
  assert.ok(d.senderId instanceof ObjectId && d.receiverId instanceof ObjectId);
  assert.ok(d.createdAt instanceof Date && d.updatedAt instanceof Date);
  assert.equal(typeof d.text, 'string');
}

before(async () => {
  [redis, kafka, ferret] = await Promise.all([startRedis(), startKafka(), startFerret()]);
  for (let i = 0; i < 3; i++) ports.push(await freePort());
  for (let i = 0; i < 3; i++) await startInstance(i);
  await startWorkerN();
  await startWorkerN();
  nginx = await startNginx(ports);
  mongo = await mongoClient(ferret.uri(DB));
});

after(async () => {
  closeAllClients();
  if (mongo) await mongo.close();
  for (const w of workers) await w.kill('SIGTERM');
  await stopAll();
});

describe('three instances behind nginx', () => {
  let alice, bob, carol;
  let a1, a3, b2, c3;

  before(async () => {
    alice = await user('Alice', 0);
    bob = await user('Bob', 1);
    carol = await user('Carol', 2);
    const ws = { transports: ['websocket'] };
    a1 = await connectAs(chatd[0].url, alice.token, { events: EVENTS, opts: ws });
    a3 = await connectAs(chatd[2].url, alice.token, { events: EVENTS, opts: ws });
    b2 = await connectAs(chatd[1].url, bob.token, { events: EVENTS, opts: ws });
    c3 = await connectAs(chatd[2].url, carol.token, { events: EVENTS, opts: { transports: ['polling'] } });
  });

  test('every instance is ready: Redis, Kafka and the database reachable', async () => {
    for (const c of chatd) {
      const r = await fetch(`${c.url}/readyz`);
      assert.equal(r.status, 200, `${c.url}/readyz: ${await r.text()}`);
    }
  });

  test('a message reaches its receiver and the sender\'s other tab on other instances, once', async () => {
    const r = await send(a1.socket, alice, bob, 'hello across instances');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const id = r.message._id;
    await until(() => b2.rec.values('newMessage').some((m) => m._id === id), { message: () => 'bob (instance 2) got nothing' });
    await until(() => a3.rec.values('newMessage').some((m) => m._id === id), { message: () => "alice's tab on instance 3 got nothing" });
    await sleep(300);
    assert.equal(b2.rec.values('newMessage').filter((m) => m._id === id).length, 1);
    assert.equal(a3.rec.values('newMessage').filter((m) => m._id === id).length, 1);
    assert.equal(a1.rec.values('newMessage').filter((m) => m._id === id).length, 0, 'the sending socket gets the ack, not an echo');
    assert.equal(c3.rec.values('newMessage').length, 0, 'carol is not part of it');
  });

  test('an instance without the receiver gets none of its events (per-user routing)', async () => {
    // Bob's only socket is on instance 2; instance 1 has Alice only.
    const before1 = (await metricValue(chatd[0].url, 'chat_bus_received_total')) || 0;
    const before2 = (await metricValue(chatd[1].url, 'chat_bus_received_total')) || 0;
    for (let i = 0; i < 5; i++) assert.equal((await send(c3.socket, carol, bob, `c→b ${i}`)).status, 'ok');
    await until(() => b2.rec.values('newMessage').filter((m) => m.text.startsWith('c→b')).length === 5);
    const after1 = (await metricValue(chatd[0].url, 'chat_bus_received_total')) || 0;
    const after2 = (await metricValue(chatd[1].url, 'chat_bus_received_total')) || 0;
    assert.ok(after2 - before2 >= 5, `instance 2 received ${after2 - before2} bus events`);
    assert.equal(after1 - before1, 0, 'instance 1 has no socket of Bob or Carol and must receive nothing');
  });

  test('presence is the same on every instance, REST included', async () => {
    const expectOnline = [alice.user._id, bob.user._id, carol.user._id].sort();
    for (const c of [a1, b2, c3]) {
      await until(() => {
        const lists = c.rec.values('getOnlineUsers');
        const last = lists[lists.length - 1] || [];
        return expectOnline.every((id) => last.includes(id));
      }, { message: () => `getOnlineUsers: ${JSON.stringify(c.rec.values('getOnlineUsers').at(-1))}` });
    }
    // Bob is on instance 2; instance 1's REST view says he is online.
    const r = await alice.client.get('/api/messages/users');
    assert.equal(r.status, 200);
    assert.equal(r.body.data.find((u) => u._id === bob.user._id).online, true);
    // Carol leaves instance 3: offline on instance 1 too.
    c3.socket.disconnect();
    await until(() => {
      const last = a1.rec.values('getOnlineUsers').at(-1) || [];
      return !last.includes(carol.user._id);
    }, { message: () => 'carol still online on instance 1' });
    c3 = await connectAs(chatd[2].url, carol.token, { events: EVENTS, opts: { transports: ['polling'] } });
  });

  test('typing and read receipts cross instances', async () => {
    a1.socket.emit('typing', { to: bob.user._id, isTyping: true });
    await until(() => b2.rec.values('typing').some((t) => t.from === alice.user._id && t.isTyping));
    const r = await send(a1.socket, alice, bob, 'read me');
    const up = await emitAck(b2.socket, 'markRead', { peerId: alice.user._id, upTo: r.message._id });
    assert.equal(up.status, 'ok', JSON.stringify(up));
    assert.equal(up.upTo, r.message._id, 'a message acknowledged but maybe not stored yet can be marked read');
    await until(() => a3.rec.values('messagesRead').some((x) => x.by === bob.user._id && x.upTo === r.message._id));
  });

  test('read receipts in bursts from readers on every instance: each newest position is written', async () => {
    // Two readers per instance, each with a read position already stored, mark every message
    // of a burst (no ack, as the web client does), then the newest with an ack: chatd writes
    // each instance's waiting readers together, one bulk of updates per batch, and the newest
    // position of each reaches the database, its ack and the sender.
    const ws = { transports: ['websocket'] };
    const pairs = [];
    for (let i = 0; i < 6; i++) {
      const reader = await user(`Reader ${i}`, i % 3);
      const sender = await user(`Sender ${i}`, (i + 1) % 3);
      pairs.push({
        reader,
        sender,
        rc: await connectAs(chatd[i % 3].url, reader.token, { events: EVENTS, opts: ws }),
        sc: await connectAs(chatd[(i + 1) % 3].url, sender.token, { events: EVENTS, opts: ws }),
      });
    }
    const ids = await Promise.all(pairs.map(async (p) => {
      const out = [];
      for (let k = 0; k < 15; k++) {
        const r = await send(p.sc.socket, p.sender, p.reader, `receipt ${k}`);
        assert.equal(r?.status, 'ok', JSON.stringify(r));
        out.push(r.message._id);
      }
      return out;
    }));
    const first = await Promise.all(pairs.map((p, i) =>
      emitAck(p.rc.socket, 'markRead', { peerId: p.sender.user._id, upTo: ids[i][0] }, 30000)));
    assert.ok(first.every((a) => a?.status === 'ok'), JSON.stringify(first));
    const acks = [];
    for (const [i, p] of pairs.entries()) {
      for (const id of ids[i].slice(1, -1)) p.rc.socket.emit('markRead', { peerId: p.sender.user._id, upTo: id });
      acks.push(emitAck(p.rc.socket, 'markRead', { peerId: p.sender.user._id, upTo: ids[i].at(-1) }, 30000));
    }
    const last = await Promise.all(acks);
    const reads = mongo.db(DB).collection('reads');
    for (const [i, p] of pairs.entries()) {
      assert.equal(last[i]?.status, 'ok', JSON.stringify(last[i]));
      assert.equal(last[i].upTo, ids[i].at(-1));
      const conv = `d:${[p.reader.user._id, p.sender.user._id].sort().join(':')}`;
      const doc = await reads.findOne({ _id: `${conv}|${p.reader.user._id}` });
      assert.equal(doc?.lastReadId, ids[i].at(-1), `reader ${i}: ${JSON.stringify(doc)}`);
      await until(() => p.sc.rec.values('messagesRead').some((x) => x.by === p.reader.user._id && x.upTo === ids[i].at(-1)));
      p.rc.socket.disconnect();
      p.sc.socket.disconnect();
    }
  });

  test('history on another instance has the sender\'s messages at once, and pages', async () => {
    const r = await send(a1.socket, alice, bob, 'in history right away');
    const h = await alice.client.get(`/api/messages/${bob.user._id}?limit=2`);
    assert.equal(h.status, 200);
    const list = h.body.data;
    assert.ok(list.some((m) => m._id === r.message._id), 'own message missing from history');
    assert.equal(list.length, 2);
    assert.equal(h.body.hasMore, true, JSON.stringify(h.body));
    const older = await alice.client.get(`/api/messages/${bob.user._id}?limit=2&before=${list[0]._id}`);
    assert.equal(older.status, 200);
    assert.ok(older.body.data.every((m) => m._id < list[0]._id), 'the next page is older');
  });

  test('many users on all instances: every message delivered exactly once', async () => {
    const n = 12;
    const people = [];
    for (let i = 0; i < n; i++) {
      const u = await user(`Load ${i}`, i % 3);
      const c = await connectAs(chatd[i % 3].url, u.token, { events: ['newMessage'], opts: { transports: ['websocket'] } });
      people.push({ u, c });
    }
    const sent = [];
    await Promise.all(people.map(async (p, i) => {
      const peer = people[(i + 1) % n]; // always on another instance
      for (let k = 0; k < 10; k++) {
        const r = await send(p.c.socket, p.u, peer.u, `load ${i}.${k}`);
        assert.equal(r.status, 'ok', JSON.stringify(r));
        sent.push({ id: r.message._id, to: (i + 1) % n });
      }
    }));
    await until(() => sent.every((s) => people[s.to].c.rec.values('newMessage').some((m) => m._id === s.id)), {
      timeoutMs: 15000,
      message: () => 'some messages were not delivered',
    });
    await sleep(300);
    for (const p of people) {
      const ids = p.c.rec.values('newMessage').map((m) => m._id);
      assert.equal(new Set(ids).size, ids.length, 'a duplicate delivery');
    }
  });

  test('the database ends with every acknowledged message exactly once', async () => {
    await expectExactlyOnceInDatabase();
  });
});

describe('faults', () => {
  let dave, erin;
  let d, e;
  let daveAt; // index of the instance nginx gave dave's socket to

  // Instances killed by a test are restarted by it, or by the next test if it failed midway.
  const restartLater = new Set();
  async function restartKilled() {
    for (const i of restartLater) {
      if (chatd[i].proc.exitCode === null && chatd[i].proc.signalCode === null) continue;
      chatd[i] = await startClusterChatd(instanceOpts(i));
    }
    restartLater.clear();
  }
  beforeEach(restartKilled);

  const sockets = () => Promise.all(chatd.map(async (c) => (await metricValue(c.url, 'chat_socketio_sockets')) || 0));

  before(async () => {
    dave = await user('Dave', 0);
    erin = await user('Erin', 1);
    // Through nginx, WebSocket, reconnecting like a browser.
    const opts = { transports: ['websocket'], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 };
    const was = await sockets();
    d = await connectAs(nginx.url, dave.token, { events: EVENTS, opts });
    // The gauge moves when the server's connection handler has run, which may be just after
    // the client saw its CONNECT reply.
    await until(async () => {
      const now = await sockets();
      daveAt = now.findIndex((n, i) => n > was[i]);
      return daveAt >= 0;
    }, { timeoutMs: 5000, message: () => "no instance counted dave's socket" });
    e = await connectAs(nginx.url, erin.token, { events: EVENTS, opts });
  });

  /** Sends a steady flow from dave to erin until `stop()`; returns the promises' outcome counts. */
  function flow(tag) {
    let running = true;
    const outcomes = { ok: 0, error: 0 };
    const done = (async () => {
      let k = 0;
      while (running) {
        try {
          const r = await send(d.socket, dave, erin, `${tag} ${k++}`, { clientMsgId: `${tag}-${k}` }, 15000);
          outcomes[r && r.status === 'ok' ? 'ok' : 'error']++;
        } catch {
          outcomes.error++; // timeout or disconnect: not acknowledged, so not counted as sent
          await sleep(100);
        }
        await sleep(20);
      }
    })();
    return { outcomes, stop: async () => { running = false; await done; } };
  }

  test('kill -9 an instance: its clients come back through nginx, go offline and online, and miss nothing', async () => {
    const idx = daveAt;
    restartLater.add(idx);
    const watcher = await connectAs(chatd[(idx + 1) % 3].url, erin.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const f = flow('kill');
    await sleep(500);
    const disconnected = new Promise((resolve) => d.socket.once('disconnect', resolve));
    chatd[idx].proc.kill('SIGKILL');
    await disconnected;
    // Dave is offline for the others (his instance's TTL, or his reconnect's handover)...
    await until(() => d.socket.connected, { timeoutMs: 15000, message: () => 'dave did not reconnect through nginx' });
    // ...and online again from another instance.
    await until(() => (watcher.rec.values('getOnlineUsers').at(-1) || []).includes(dave.user._id), {
      timeoutMs: 10000, message: () => 'dave not online again',
    });
    await sleep(1000);
    await f.stop();
    await until(() => e.socket.connected, { timeoutMs: 15000, message: () => 'erin did not reconnect' });
    // Nothing acknowledged is missing from erin's history, even what was sent while she was
    // away and acknowledged by the instance that died (it is in Kafka: the workers store it).
    const mine = [...acked].filter(([, m]) => m.to === erin.user._id && m.text.startsWith('kill')).map(([id]) => id);
    assert.ok(mine.length > 0, 'no message was acknowledged during the test');
    let missing = [];
    await until(async () => {
      // through nginx, as erin's browser would (the instance she signed up on may be the dead one)
      const h = await new Client(nginx.url, { bearer: erin.token }).get(`/api/messages/${dave.user._id}?limit=500`);
      const ids = new Set(h.body.data.map((m) => m._id));
      missing = mine.filter((id) => !ids.has(id));
      return missing.length === 0;
    }, { timeoutMs: 20000, message: () => `acknowledged but missing from history: ${missing.join(', ')}` });
    watcher.socket.disconnect();
    await restartKilled();
  });

  test('a dead instance\'s users go offline everywhere within the presence TTL', async () => {
    const frank = await user('Frank', 2);
    const f = await connectAs(chatd[2].url, frank.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const watcher = await connectAs(chatd[0].url, dave.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    await until(() => (watcher.rec.values('getOnlineUsers').at(-1) || []).includes(frank.user._id));
    restartLater.add(2);
    chatd[2].proc.kill('SIGKILL');
    const t0 = Date.now();
    await until(() => !(watcher.rec.values('getOnlineUsers').at(-1) || []).includes(frank.user._id), {
      timeoutMs: 10000,
      message: () => 'frank still online after his instance died',
    });
    const took = Date.now() - t0;
    assert.ok(took < 6000, `offline after ${took} ms (PRESENCE_TTL is 3s)`);
    f.socket.disconnect();
    watcher.socket.disconnect();
    await restartKilled();
  });

  test('kill -9 a worker mid-batch and restart it', async () => {
    const f = flow('worker');
    await sleep(800);
    await workers[0].kill('SIGKILL');
    await sleep(1500);
    workers[0] = await startWorker({ mongoUri: ferret.uri(DB), kafkaBrokers: kafka.brokers, topic: TOPIC });
    await sleep(500);
    await f.stop();
    assert.ok(f.outcomes.ok > 0);
    await expectExactlyOnceInDatabase();
  });

  test('restart the Kafka broker while messages flow', async () => {
    const f = flow('kafka');
    await sleep(500);
    await kafka.stop();
    await sleep(1000);
    await kafka.start();
    await sleep(1500);
    await f.stop();
    assert.ok(f.outcomes.ok > 0);
    await expectExactlyOnceInDatabase(90000);
  });

  test('restart Redis: not ready meanwhile, then delivery across instances again', async () => {
    // Two users on one instance keep talking while Redis is away.
    const ivy = await user('Ivy', 0);
    const jay = await user('Jay', 0);
    const is = await connectAs(chatd[0].url, ivy.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const js = await connectAs(chatd[0].url, jay.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    await redis.stop();
    await until(async () => (await fetch(`${chatd[0].url}/readyz`)).status === 503, {
      timeoutMs: 10000,
      message: () => 'readyz still 200 with Redis down',
    });
    const local = await send(is.socket, ivy, jay, 'while redis is down');
    assert.equal(local.status, 'ok', JSON.stringify(local));
    await until(() => js.rec.values('newMessage').some((m) => m._id === local.message._id), {
      message: () => 'no local delivery while Redis is down',
    });
    await redis.start();
    for (const c of chatd)
      await until(async () => (await fetch(`${c.url}/readyz`)).status === 200, { timeoutMs: 20000, message: () => `${c.url} not ready again` });
    const g = await user('Gina', 0);
    const h = await user('Hank', 1);
    const gs = await connectAs(chatd[0].url, g.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const hs = await connectAs(chatd[1].url, h.token, { events: EVENTS, opts: { transports: ['websocket'] } });
    const r = await send(gs.socket, g, h, 'after the redis restart');
    assert.equal(r.status, 'ok');
    await until(() => hs.rec.values('newMessage').some((m) => m._id === r.message._id), { message: () => 'no delivery after the redis restart' });
  });

  test('stop the database for 10 s: sends still acknowledged, everything stored once afterwards', async () => {
    await ferret.stop();
    const f = flow('db');
    await sleep(10000);
    await ferret.start();
    await f.stop();
    assert.ok(f.outcomes.ok > 0, 'Kafka keeps accepting messages while the database is down');
    await expectExactlyOnceInDatabase(90000);
  });
});
