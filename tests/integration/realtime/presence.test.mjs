// Presence against a real chatd: getOnlineUsers on connect and on changes (coalesced), the
// userOnline/userOffline deltas for sockets that ask for them, several tabs of one user, and the
// `online` flag of GET /api/messages/users.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { pool, signupUser, sleep, startChatd, stopAll } from '../lib/chatd.mjs';
import { closeAllClients, connectAs, realtimeArgs, until } from '../lib/sio.mjs';

let srv;
let users; // [{user, token, client}]
before(async () => {
  srv = await startChatd({ args: await realtimeArgs() });
  users = await pool(Array.from({ length: 16 }), 4, (_, i) => signupUser(srv.url, { full_name: `Presence ${i}` }));
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

const WS = { transports: ['websocket'] };
const idOf = (u) => u.user._id;
const EVENTS = ['getOnlineUsers', 'userOnline', 'userOffline'];

function connect(u, { delta = false, opts = WS } = {}) {
  return connectAs(srv.url, u.token, {
    events: EVENTS,
    opts: { ...opts, auth: delta ? { token: u.token, presence: 'delta' } : { token: u.token } },
  });
}

/** The last getOnlineUsers list a recorder saw. */
const lastOnline = (rec) => {
  const v = rec.values('getOnlineUsers');
  return v.length ? v[v.length - 1] : undefined;
};

/** Waits until the last getOnlineUsers list satisfies `pred`. */
async function waitOnline(rec, pred, what, timeoutMs = 4000) {
  await until(() => {
    const l = lastOnline(rec);
    return Array.isArray(l) && pred(new Set(l));
  }, { timeoutMs, message: () => `${what}: last getOnlineUsers ${JSON.stringify(lastOnline(rec))}` });
}

/** Disconnects sockets and waits until `observer` no longer lists their users. */
async function disconnectAll(sockets, observerRec, gone) {
  for (const s of sockets) s.disconnect();
  if (observerRec) await waitOnline(observerRec, (set) => gone.every((id) => !set.has(id)), 'users gone');
}

describe('getOnlineUsers', () => {
  test('sent on connect, an array of user ids that includes the new user', async () => {
    const [a] = users;
    const { socket, rec } = await connect(a);
    const list = await rec.waitFor('getOnlineUsers', (l) => Array.isArray(l) && l.includes(idOf(a)));
    for (const id of list) assert.equal(typeof id, 'string');
    assert.equal(new Set(list).size, list.length, 'duplicates in the list');
    socket.disconnect();
  });

  test('sent again when another user connects and when it disconnects', async () => {
    const [a, b] = users;
    const A = await connect(a);
    await waitOnline(A.rec, (s) => s.has(idOf(a)), 'self');
    const B = await connect(b);
    await waitOnline(A.rec, (s) => s.has(idOf(a)) && s.has(idOf(b)), 'b online');
    await waitOnline(B.rec, (s) => s.has(idOf(a)) && s.has(idOf(b)), 'b sees a');
    B.socket.disconnect();
    await waitOnline(A.rec, (s) => s.has(idOf(a)) && !s.has(idOf(b)), 'b offline');
    A.socket.disconnect();
  });

  test('a user with two tabs stays online until the last one closes', async () => {
    const [a, b] = users;
    const A = await connect(a);
    const b1 = await connect(b);
    const b2 = await connect(b, { opts: { transports: ['polling'] } });
    await waitOnline(A.rec, (s) => s.has(idOf(b)), 'b online');
    b1.socket.disconnect();
    await sleep(700); // more than the coalescing window
    await waitOnline(A.rec, (s) => s.has(idOf(b)), 'b still online with one tab', 500);
    b2.socket.disconnect();
    await waitOnline(A.rec, (s) => !s.has(idOf(b)), 'b offline');
    A.socket.disconnect();
  });

  test('changes are coalesced: at most ~4 lists per second during churn, the last one right', async (t) => {
    const [a, ...others] = users;
    const churners = others.slice(0, 12);
    const A = await connect(a);
    await waitOnline(A.rec, (s) => s.has(idOf(a)) && churners.every((u) => !s.has(idOf(u))), 'initial');
    A.rec.clear();
    const started = Date.now();
    // 12 users connect and 6 of them leave again, one change every ~40 ms
    const live = [];
    for (const u of churners) {
      live.push(await connect(u));
      await sleep(40);
    }
    for (const c of live.slice(0, 6)) {
      c.socket.disconnect();
      await sleep(40);
    }
    const stay = churners.slice(6).map(idOf);
    const left = churners.slice(0, 6).map(idOf);
    await waitOnline(A.rec, (s) => stay.every((id) => s.has(id)) && left.every((id) => !s.has(id)) && s.has(idOf(a)), 'final set');
    await sleep(600);
    const elapsed = (A.rec.log.at(-1)?.at ?? Date.now()) - started;
    const count = A.rec.of('getOnlineUsers').length;
    const allowed = Math.ceil(elapsed / 250) + 2;
    t.diagnostic(`${count} getOnlineUsers for 18 changes in ${elapsed} ms`);
    assert.ok(count >= 1, 'no getOnlineUsers during churn');
    assert.ok(count <= allowed, `${count} getOnlineUsers in ${elapsed} ms (18 changes): not coalesced (allowed ${allowed})`);
    const final = new Set(lastOnline(A.rec));
    assert.ok(stay.every((id) => final.has(id)) && left.every((id) => !final.has(id)));
    await disconnectAll(live.slice(6).map((c) => c.socket), A.rec, stay);
    A.socket.disconnect();
  });
});

describe('userOnline / userOffline deltas', () => {
  test('only sockets that connected with auth.presence = "delta" get them', async () => {
    const [, , c, d, e] = users;
    const C = await connect(c, { delta: true });
    const D = await connect(d);
    await sleep(300);
    C.rec.clear();
    D.rec.clear();
    const E = await connect(e);
    assert.equal(await C.rec.waitFor('userOnline', (id) => id === idOf(e)), idOf(e));
    E.socket.disconnect();
    assert.equal(await C.rec.waitFor('userOffline', (id) => id === idOf(e)), idOf(e));
    await waitOnline(D.rec, (s) => !s.has(idOf(e)), 'plain socket still gets lists');
    await sleep(300);
    assert.deepEqual(D.rec.values('userOnline'), [], 'userOnline sent to a socket without presence=delta');
    assert.deepEqual(D.rec.values('userOffline'), [], 'userOffline sent to a socket without presence=delta');
    C.socket.disconnect();
    D.socket.disconnect();
  });

  test('a second tab does not announce the user again; closing one of two tabs is not "offline"', async () => {
    const [, , c, , e] = users;
    const C = await connect(c, { delta: true });
    await sleep(200);
    C.rec.clear();
    const e1 = await connect(e);
    await C.rec.waitFor('userOnline', (id) => id === idOf(e));
    const e2 = await connect(e, { opts: { transports: ['polling'] } });
    await sleep(600);
    assert.equal(C.rec.values('userOnline').filter((id) => id === idOf(e)).length, 1, 'userOnline twice');
    e1.socket.disconnect();
    await sleep(600);
    assert.deepEqual(C.rec.values('userOffline').filter((id) => id === idOf(e)), [], 'offline with a tab left');
    e2.socket.disconnect();
    await C.rec.waitFor('userOffline', (id) => id === idOf(e));
    C.socket.disconnect();
  });
});

describe('GET /api/messages/users', () => {
  test('`online` follows the sockets', async () => {
    const [a, b] = users;
    const onlineOf = async (id) => {
      const r = await a.client.get('/api/messages/users');
      assert.equal(r.status, 200, r.text);
      const u = r.body.data.find((x) => x._id === id);
      assert.ok(u, `user ${id} not listed`);
      return u.online;
    };
    assert.equal(await onlineOf(idOf(b)), false);
    const B = await connect(b);
    await until(async () => (await onlineOf(idOf(b))) === true, { message: () => 'b not online' });
    B.socket.disconnect();
    await until(async () => (await onlineOf(idOf(b))) === false, { message: () => 'b still online' });
  });
});
