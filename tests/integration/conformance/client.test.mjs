// The official socket.io-client (npm) against sio-conformance over each transport: polling only,
// WebSocket only, and polling upgraded to WebSocket.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { sleep } from '../lib/chatd.mjs';
import {
  Recorder,
  TRANSPORT_MODES,
  closeAllClients,
  connectClient,
  emitAck,
  expectConnectError,
  makeClient,
  startConformance,
  waitEvent,
  waitWebSocket,
} from '../lib/sio.mjs';

let srv;
before(async () => {
  srv = await startConformance();
});
after(async () => {
  closeAllClients();
  if (srv) assert.equal(await srv.stop(), 0, `sio-conformance did not exit cleanly:\n${srv.output()}`);
});

/** Connects and returns {socket, auth} (the `auth` event the server emits on connect). */
async function connectWithAuth(nsp, opts) {
  const socket = makeClient(srv.url + nsp, opts);
  const authP = waitEvent(socket, 'auth');
  await waitEvent(socket, 'connect');
  const [auth] = await authP;
  return { socket, auth };
}

for (const mode of TRANSPORT_MODES) {
  describe(`socket.io-client, ${mode.name}`, () => {
    test('connects, receives its auth object back, ends on the expected transport', async () => {
      const { socket, auth } = await connectWithAuth('/', { ...mode.opts, auth: { token: 'abc', n: 1 } });
      assert.deepEqual(auth, { token: 'abc', n: 1 });
      assert.equal(typeof socket.id, 'string');
      if (mode.expect === 'websocket') await waitWebSocket(socket);
      assert.equal(socket.io.engine.transport.name, mode.expect);
      socket.disconnect();
    });

    test('no auth → the auth event carries {}', async () => {
      const { socket, auth } = await connectWithAuth('/', mode.opts);
      assert.deepEqual(auth, {});
      socket.disconnect();
    });

    test('message → message-back with the same arguments, Buffers included', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const bin = Buffer.from([0, 1, 2, 250, 255]);
      const args = ['text', 42, { nested: { list: [1, 'a', null], flag: true } }, bin];
      const back = waitEvent(socket, 'message-back');
      socket.emit('message', ...args);
      const got = await back;
      assert.equal(got.length, 4);
      assert.deepEqual(got.slice(0, 3), args.slice(0, 3));
      assert.ok(Buffer.isBuffer(got[3]) || got[3] instanceof ArrayBuffer, `binary came back as ${typeof got[3]}`);
      assert.deepEqual([...new Uint8Array(got[3])], [...bin]);
      socket.disconnect();
    });

    test('message-with-ack is acknowledged with the same arguments', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const res = await socket.timeout(5000).emitWithAck('message-with-ack', { a: 1 }, [2, 3], 'x');
      // emitWithAck resolves with the first ack argument
      assert.deepEqual(res, { a: 1 });
      const both = await new Promise((resolve, reject) =>
        socket.timeout(5000).emit('message-with-ack', 'one', Buffer.from([7, 8]), (err, ...a) => (err ? reject(err) : resolve(a))),
      );
      assert.equal(both[0], 'one');
      assert.deepEqual([...new Uint8Array(both[1])], [7, 8]);
      socket.disconnect();
    });

    test('200 messages come back in order', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const rec = new Recorder(socket, ['message-back']);
      for (let i = 0; i < 200; i++) socket.emit('message', i);
      const got = await rec.waitCount('message-back', 200, 10000);
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
      socket.disconnect();
    });

    test('a 300 kB argument', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const big = 'x'.repeat(300000);
      const res = await emitAck(socket, 'message-with-ack', big, 10000);
      assert.equal(res, big);
      socket.disconnect();
    });

    test('custom namespace multiplexed over one connection', async () => {
      const main = await connectClient(srv.url, { ...mode.opts, forceNew: true });
      // Manager#socket() connects by itself (autoConnect)
      const custom = main.io.socket('/custom', { auth: { ns: 'custom' } });
      const authP = waitEvent(custom, 'auth');
      await waitEvent(custom, 'connect');
      assert.deepEqual((await authP)[0], { ns: 'custom' });
      assert.notEqual(custom.id, main.id);
      const back = waitEvent(main, 'message-back');
      main.emit('message', 'still there');
      assert.deepEqual(await back, ['still there']);
      custom.disconnect();
      main.disconnect();
    });

    test('unknown namespace → connect_error "Invalid namespace"', async () => {
      const err = await expectConnectError(srv.url + '/random', mode.opts);
      assert.equal(err.message, 'Invalid namespace');
    });

    test('heartbeat: the connection survives several ping intervals', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const pings = [];
      socket.io.engine.on('ping', () => pings.push(Date.now()));
      let disconnected = null;
      socket.on('disconnect', (r) => (disconnected = r));
      await sleep(1600);
      assert.equal(disconnected, null);
      assert.ok(pings.length >= 3, `${pings.length} pings`);
      assert.deepEqual(await emitAck(socket, 'message-with-ack', 'alive'), 'alive');
      socket.disconnect();
    });

    test('client disconnect', async () => {
      const socket = await connectClient(srv.url, mode.opts);
      const d = waitEvent(socket, 'disconnect');
      socket.disconnect();
      assert.equal((await d)[0], 'io client disconnect');
    });
  });
}

describe('socket.io-client, reconnection', () => {
  test('reconnects after the transport is cut', async () => {
    const socket = makeClient(srv.url, {
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
    });
    await waitEvent(socket, 'connect');
    const firstId = socket.id;
    const reason = waitEvent(socket, 'disconnect');
    socket.io.engine.transport.ws._socket.destroy();
    assert.equal((await reason)[0], 'transport close');
    await waitEvent(socket, 'connect', { timeoutMs: 5000 });
    assert.notEqual(socket.id, firstId);
    assert.ok(!socket.recovered, 'recovery is off on sio-conformance');
    assert.equal(await emitAck(socket, 'message-with-ack', 'back'), 'back');
    socket.io.opts.reconnection = false;
    socket.disconnect();
  });
});
