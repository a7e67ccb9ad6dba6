// Socket.IO authentication against a real chatd, over each transport (polling only, WebSocket
// only, polling upgraded to WebSocket): the JWT from auth.token, the token cookie or
// Authorization: Bearer; refusals with connect_error "Unauthorized"; the userId query parameter.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { JWT_SECRET, randomObjectId, signJwt, signupUser, startChatd, stopAll, tokenFor } from '../lib/chatd.mjs';
import {
  TRANSPORT_MODES,
  closeAllClients,
  connectAs,
  emitAck,
  expectConnectError,
  httpRequest,
  realtimeArgs,
  waitWebSocket,
} from '../lib/sio.mjs';

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

/** The socket acts as `user`: a message it sends is stored with that senderId. */
async function assertActsAs(socket, user, peer) {
  const ack = await emitAck(socket, 'sendMessage', { to: peer.user._id, text: `hello from ${user.user.full_name}` });
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  assert.equal(ack.message.senderId, user.user._id);
  assert.equal(ack.message.receiverId, peer.user._id);
}

test('the Engine.IO handshake is served on /socket.io/', async () => {
  const r = await httpRequest(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  assert.ok(r.text.startsWith('0{"sid":"'), r.text);
  const open = JSON.parse(r.text.slice(1));
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.pingTimeout, 20000);
  assert.equal(open.maxPayload, 1000000);
});

for (const mode of TRANSPORT_MODES) {
  describe(`connect over ${mode.name}`, () => {
    const connect = (token, opts = {}) => connectAs(srv.url, token, { opts: { ...mode.opts, ...opts } });

    test('auth.token', async () => {
      const { socket } = await connect(alice.token);
      if (mode.expect === 'websocket') await waitWebSocket(socket);
      assert.equal(socket.io.engine.transport.name, mode.expect);
      await assertActsAs(socket, alice, bob);
      socket.disconnect();
    });

    test('token cookie of the handshake request', async () => {
      const { socket } = await connect(null, { extraHeaders: { cookie: `token=${bob.token}` } });
      if (mode.expect === 'websocket') await waitWebSocket(socket);
      await assertActsAs(socket, bob, alice);
      socket.disconnect();
    });

    test('Authorization: Bearer', async () => {
      const { socket } = await connect(null, { extraHeaders: { authorization: `Bearer ${alice.token}` } });
      if (mode.expect === 'websocket') await waitWebSocket(socket);
      await assertActsAs(socket, alice, bob);
      socket.disconnect();
    });

    test('auth.token comes first: a valid auth.token wins over another cookie', async () => {
      const { socket } = await connect(alice.token, { extraHeaders: { cookie: 'token=garbage' } });
      await assertActsAs(socket, alice, bob);
      socket.disconnect();
    });

    test('no token → connect_error "Unauthorized"', async () => {
      const err = await expectConnectError(srv.url, { ...mode.opts });
      assert.equal(err.message, 'Unauthorized');
    });

    test('garbage, expired, wrongly signed or alg=none tokens → "Unauthorized"', async () => {
      const now = Math.floor(Date.now() / 1000);
      const bad = [
        'garbage',
        'a.b.c',
        tokenFor(alice.user._id, { ttl: -60 }),
        tokenFor(alice.user._id, { secret: 'not-the-secret' }),
        signJwt({ userId: alice.user._id, iat: now, exp: now + 3600 }, JWT_SECRET, { alg: 'none', typ: 'JWT' }).replace(/[^.]+$/, ''),
      ];
      for (const token of bad) {
        const err = await expectConnectError(srv.url, { ...mode.opts, auth: { token } });
        assert.equal(err.message, 'Unauthorized', `token ${token}`);
      }
      const err = await expectConnectError(srv.url, { ...mode.opts, extraHeaders: { cookie: 'token=garbage' } });
      assert.equal(err.message, 'Unauthorized');
      const err2 = await expectConnectError(srv.url, { ...mode.opts, extraHeaders: { authorization: 'Bearer garbage' } });
      assert.equal(err2.message, 'Unauthorized');
    });

    test('a valid token of a user that does not exist is refused', async () => {
      const err = await expectConnectError(srv.url, { ...mode.opts, auth: { token: tokenFor(randomObjectId()) } });
      // refused by the server at CONNECT (a Socket.IO connect_error), not a transport failure
      assert.equal(err.type, undefined, `transport error: ${err.message}`);
      assert.equal(typeof err.message, 'string');
      assert.ok(err.message.length > 0, 'connect_error without a message');
    });

    test('query.userId of another user (impersonation) → "Unauthorized" with data.reason', async () => {
      const err = await expectConnectError(srv.url, {
        ...mode.opts,
        auth: { token: alice.token },
        query: { userId: bob.user._id },
      });
      assert.equal(err.message, 'Unauthorized');
      assert.ok(err.data && typeof err.data.reason === 'string' && err.data.reason.length > 0, JSON.stringify(err.data));
    });

    test('query.userId alone (no token) is never trusted', async () => {
      const err = await expectConnectError(srv.url, { ...mode.opts, query: { userId: bob.user._id } });
      assert.equal(err.message, 'Unauthorized');
    });

    test('query.userId matching the token is accepted', async () => {
      const { socket } = await connect(bob.token, { query: { userId: bob.user._id } });
      await assertActsAs(socket, bob, alice);
      socket.disconnect();
    });
  });
}

test('a refused client can connect once it has a token (the server keeps no state)', async () => {
  const err = await expectConnectError(srv.url, { transports: ['websocket'], auth: { token: 'nope' } });
  assert.equal(err.message, 'Unauthorized');
  const { socket } = await connectAs(srv.url, alice.token, { opts: { transports: ['websocket'] } });
  await assertActsAs(socket, alice, bob);
  socket.disconnect();
});
