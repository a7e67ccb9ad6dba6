// 1000 concurrent socket.io-client connections (WebSocket) against a real chatd, every one sending
// messages to its peer: every acknowledged message reaches each socket it should reach exactly
// once (counted by _id) and never the socket that sent it.
//
// Users are shared by several sockets (tabs): a sign-up costs ~0.1 s of Argon2id, so 1000 distinct
// users would not fit the time budget. With USERS users × TABS tabs, a message from one tab goes
// to all TABS tabs of the peer and to the TABS-1 other tabs of the sender.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { pool, signupUser, sleep, startChatd, stopAll } from '../lib/chatd.mjs';
import { awaitConnect, closeAllClients, emitAck, makeClient, metricValue, realtimeArgs, until } from '../lib/sio.mjs';

const USERS = Number(process.env.CHAT_LOAD_USERS || 100); // even: users 2k and 2k+1 are peers
const TABS = Number(process.env.CHAT_LOAD_TABS || 10);
const PER_SOCKET = Number(process.env.CHAT_LOAD_MESSAGES || 5);
const SOCKETS = USERS * TABS;

let srv;
let users;
before(async () => {
  srv = await startChatd({ args: await realtimeArgs() });
  users = await pool(Array.from({ length: USERS }), 6, (_, i) => signupUser(srv.url, { full_name: `Load ${i}` }));
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

test(`${SOCKETS} sockets (${USERS} users × ${TABS} tabs) each send ${PER_SOCKET} messages to a peer: exactly-once delivery`, async (t) => {
  const maxFds = await metricValue(srv.url, 'process_max_fds');
  if (maxFds !== undefined) assert.ok(maxFds > SOCKETS + 100, `chatd may open only ${maxFds} files`);

  // --- connect every tab
  const tabs = []; // {i, user (index), socket, got: Map<_id, count>}
  const connectStarted = Date.now();
  await pool(Array.from({ length: SOCKETS }, (_, i) => i), 100, async (i) => {
    const u = i % USERS;
    const socket = makeClient(srv.url, { transports: ['websocket'], auth: { token: users[u].token }, timeout: 30000 });
    const tab = { i, user: u, socket, got: new Map(), disconnects: 0 };
    socket.on('newMessage', (m) => tab.got.set(m._id, (tab.got.get(m._id) || 0) + 1));
    socket.on('disconnect', () => tab.disconnects++);
    await awaitConnect(socket, 30000).catch((err) => {
      throw new Error(`tab ${i}: ${err.message}`);
    });
    tabs[i] = tab;
  });
  t.diagnostic(`${SOCKETS} sockets connected in ${Date.now() - connectStarted} ms`);

  // --- every tab sends PER_SOCKET messages to its user's peer (sequentially per tab, all tabs at once)
  const sent = []; // {id, from (tab index), fromUser, toUser}
  const failures = [];
  const sendStarted = Date.now();
  await Promise.all(
    tabs.map(async (tab) => {
      const peer = tab.user ^ 1;
      for (let k = 0; k < PER_SOCKET; k++) {
        const ack = await emitAck(tab.socket, 'sendMessage', { to: users[peer].user._id, text: `t${tab.i} m${k}` }, 60000).catch(
          (e) => ({ status: 'timeout', error: e.message }),
        );
        if (ack?.status === 'ok') sent.push({ id: ack.message._id, from: tab.i, fromUser: tab.user, toUser: peer });
        else failures.push({ tab: tab.i, ack });
      }
    }),
  );
  const sendMs = Date.now() - sendStarted;
  t.diagnostic(`${sent.length} messages acknowledged in ${sendMs} ms (${Math.round((sent.length * 1000) / sendMs)}/s)`);
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} sends failed`);
  assert.equal(sent.length, SOCKETS * PER_SOCKET);
  assert.equal(new Set(sent.map((s) => s.id)).size, sent.length, 'duplicate _id in acks');

  // --- expected deliveries per tab
  const expected = tabs.map(() => new Set());
  const byUser = Array.from({ length: USERS }, () => []);
  for (const x of tabs) byUser[x.user].push(x);
  const tabsOf = (u) => byUser[u];
  for (const s of sent) {
    for (const x of tabsOf(s.toUser)) expected[x.i].add(s.id);
    for (const x of tabsOf(s.fromUser)) if (x.i !== s.from) expected[x.i].add(s.id);
  }
  const totalExpected = expected.reduce((a, e) => a + e.size, 0);
  const totalGot = () => tabs.reduce((a, x) => a + x.got.size, 0);
  await until(() => totalGot() >= totalExpected, {
    timeoutMs: 90000,
    message: () => `${totalGot()}/${totalExpected} deliveries`,
  });
  await sleep(1000); // anything extra would show up now

  const problems = [];
  for (const tab of tabs) {
    const want = expected[tab.i];
    for (const id of want) {
      const n = tab.got.get(id) || 0;
      if (n !== 1) problems.push(`tab ${tab.i}: ${id} received ${n} times`);
    }
    for (const id of tab.got.keys()) if (!want.has(id)) problems.push(`tab ${tab.i}: unexpected ${id}`);
    if (tab.disconnects) problems.push(`tab ${tab.i}: ${tab.disconnects} disconnects`);
    if (problems.length > 20) break;
  }
  assert.deepEqual(problems, []);
  t.diagnostic(`${totalExpected} deliveries checked`);

  for (const tab of tabs) tab.socket.disconnect();
});
