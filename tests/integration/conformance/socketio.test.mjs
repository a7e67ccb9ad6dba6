// Socket.IO v5 conformance of sio-conformance (/socket.io/), byte for byte over raw WebSocket and
// long-polling: connect (main and custom namespace, auth, unknown namespace, timeout), events,
// acks, binary attachments, disconnect, and invalid packets closing the connection. Cases follow
// the public socket.io-protocol v5 test suite, plus the details of PROTOCOL.md.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { sleep } from '../lib/chatd.mjs';
import {
  RS,
  decodePayload,
  pollGet,
  pollPackets,
  pollPost,
  pollingHandshake,
  pollingSessionClosed,
  sioConnectWs,
  startConformance,
  wsHandshake,
} from '../lib/sio.mjs';

const PATH = '/socket.io/';
const CONNECT_TIMEOUT = 1000;

let srv;
before(async () => {
  srv = await startConformance();
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, `sio-conformance did not exit cleanly:\n${srv.output()}`);
});

const connect = (o) => sioConnectWs(srv.wsUrl, o);

/** Asserts a CONNECT reply: `40[<nsp>,]{"sid":"…"}` with only a sid; returns the sid. */
function assertConnectReply(text, nsp = '/') {
  const prefix = nsp === '/' ? '40' : `40${nsp},`;
  assert.ok(text.startsWith(prefix + '{'), `CONNECT reply ${JSON.stringify(text)}`);
  const body = JSON.parse(text.slice(prefix.length));
  assert.deepEqual(Object.keys(body), ['sid']);
  assert.equal(typeof body.sid, 'string');
  assert.ok(body.sid.length >= 8, `sid ${body.sid}`);
  assert.equal(text, `${prefix}{"sid":"${body.sid}"}`, 'compact JSON');
  return body.sid;
}

describe('connect', () => {
  test('main namespace: 40{"sid":…} (not the Engine.IO sid), then the auth event', async () => {
    const { ws, open } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('40');
    const sid = assertConnectReply(await ws.nextText());
    assert.notEqual(sid, open.sid);
    assert.equal(await ws.nextText(), '42["auth",{}]');
    ws.close();
  });

  test('main namespace with an auth payload', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('40{"token":"123"}');
    assertConnectReply(await ws.nextText());
    assert.equal(await ws.nextText(), '42["auth",{"token":"123"}]');
    ws.close();
  });

  test('auth payload keeps its structure and key order', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    const auth = '{"z":1,"a":{"list":[1,"two",null,true],"nested":{"k":"v"}},"m":"é✓"}';
    ws.send(`40${auth}`);
    assertConnectReply(await ws.nextText());
    assert.equal(await ws.nextText(), `42["auth",${auth}]`);
    ws.close();
  });

  test('custom namespace: 40/custom,{"sid":…} and 42/custom,["auth",…]', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('40/custom,');
    assertConnectReply(await ws.nextText(), '/custom');
    assert.equal(await ws.nextText(), '42/custom,["auth",{}]');
    ws.close();
  });

  test('custom namespace without the trailing comma, and with a payload', async () => {
    const a = await wsHandshake(srv.wsUrl, { path: PATH });
    a.ws.send('40/custom');
    assertConnectReply(await a.ws.nextText(), '/custom');
    assert.equal(await a.ws.nextText(), '42/custom,["auth",{}]');
    a.ws.close();

    const b = await wsHandshake(srv.wsUrl, { path: PATH });
    b.ws.send('40/custom,{"token":"abc"}');
    assertConnectReply(await b.ws.nextText(), '/custom');
    assert.equal(await b.ws.nextText(), '42/custom,["auth",{"token":"abc"}]');
    b.ws.close();
  });

  test('both namespaces on one connection get different sids', async () => {
    const { ws } = await connect();
    ws.send('40/custom,');
    const customSid = assertConnectReply(await ws.nextText(), '/custom');
    assert.equal(await ws.nextText(), '42/custom,["auth",{}]');
    ws.send('42["message","main"]');
    assert.equal(await ws.nextText(), '42["message-back","main"]');
    assert.ok(customSid);
    ws.close();
  });

  test('unknown namespace → 44/<nsp>,{"message":"Invalid namespace"}; the connection stays usable', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('40/random');
    assert.equal(await ws.nextText(), '44/random,{"message":"Invalid namespace"}');
    ws.send('40/doesnotexist-garbage,{"x":1}');
    assert.equal(await ws.nextText(), '44/doesnotexist-garbage,{"message":"Invalid namespace"}');
    ws.send('40');
    assertConnectReply(await ws.nextText());
    assert.equal(await ws.nextText(), '42["auth",{}]');
    ws.close();
  });

  test('over long-polling: CONNECT reply and auth event in the next GET', async () => {
    const { sid } = await pollingHandshake(srv.url, { path: PATH });
    assert.equal((await pollPost(srv.url, sid, '40{"token":"p"}', { path: PATH })).status, 200);
    const { packets } = await pollPackets(srv.url, sid, 2, { path: PATH });
    assertConnectReply(packets[0]);
    assert.equal(packets[1], '42["auth",{"token":"p"}]');
  });

  test('no CONNECT within connectTimeout → the Engine.IO connection is closed', async () => {
    const started = Date.now();
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH }); // answers pings
    const c = await ws.waitClose(CONNECT_TIMEOUT + 2500);
    assert.ok(c, 'still open');
    const ms = c.at - started;
    assert.ok(ms >= CONNECT_TIMEOUT - 150, `closed after ${ms} ms, before connectTimeout`);
  });

  test('a CONNECT in time keeps the connection past connectTimeout', async () => {
    const { ws } = await connect();
    await sleep(CONNECT_TIMEOUT + 400);
    assert.equal(ws.isClosed, false);
    ws.send('42["message","still"]');
    assert.equal(await ws.nextText(), '42["message-back","still"]');
    ws.close();
  });
});

describe('events and acks', () => {
  test('event → message-back with the same arguments, exact bytes', async () => {
    const { ws } = await connect();
    ws.send('42["message",1,"2",{"3":[true]}]');
    assert.equal(await ws.nextText(), '42["message-back",1,"2",{"3":[true]}]');
    ws.close();
  });

  test('arguments keep key order, nesting, escapes and unicode', async () => {
    const { ws } = await connect();
    const args = '{"z":1,"a":{"y":[1,2,{"b":null}],"x":"q"}},-7,"quote\\" backslash\\\\ nl\\n tab\\t nul\\u0000","é✓😀",false,[]';
    ws.send(`42["message",${args}]`);
    assert.equal(await ws.nextText(), `42["message-back",${args}]`);
    ws.close();
  });

  test('floating point arguments come back with the same value', async () => {
    const { ws } = await connect();
    const values = [0.1, -2.5, 1e-7, 123456.789, 2 ** 53 - 1];
    ws.send(`42${JSON.stringify(['message', ...values])}`);
    const back = await ws.nextText();
    assert.ok(back.startsWith('42["message-back",'), back);
    assert.deepEqual(JSON.parse(back.slice(2)), ['message-back', ...values]);
    ws.close();
  });

  test('an event name may be a number', async () => {
    const { ws } = await connect();
    ws.send('42[42,"x"]'); // no handler: ignored, the connection stays
    ws.send('42["message","after"]');
    assert.equal(await ws.nextText(), '42["message-back","after"]');
    ws.close();
  });

  test('ack: 42<id>["message-with-ack",…] → 43<id>[…]', async () => {
    const { ws } = await connect();
    ws.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await ws.nextText(), '43456[1,"2",{"3":[false]}]');
    ws.send('420["message-with-ack"]');
    assert.equal(await ws.nextText(), '430[]');
    ws.close();
  });

  test('many events are answered in order', async () => {
    const { ws } = await connect();
    for (let i = 0; i < 300; i++) ws.send(i % 2 ? `42["message",${i}]` : `42${i}["message-with-ack",${i}]`);
    for (let i = 0; i < 300; i++) {
      assert.equal(await ws.nextText(), i % 2 ? `42["message-back",${i}]` : `43${i}[${i}]`);
    }
    ws.close();
  });

  test('events over long-polling', async () => {
    const { sid } = await pollingHandshake(srv.url, { path: PATH });
    await pollPost(srv.url, sid, '40', { path: PATH });
    await pollPackets(srv.url, sid, 2, { path: PATH });
    const push = await pollPost(srv.url, sid, `42["message","a"]${RS}427["message-with-ack","b"]`, { path: PATH });
    assert.equal(push.status, 200);
    const { packets } = await pollPackets(srv.url, sid, 2, { path: PATH });
    assert.deepEqual(packets, ['42["message-back","a"]', '437["b"]']);
  });
});

describe('binary', () => {
  test('event with two attachments → message-back with the same attachments', async () => {
    const { ws } = await connect();
    ws.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    ws.send(Buffer.from([1, 2, 3]));
    ws.send(Buffer.from([4, 5, 6]));
    assert.equal(
      await ws.nextText(),
      '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
    );
    const a = await ws.next();
    const b = await ws.next();
    assert.equal(a.binary, true);
    assert.equal(b.binary, true);
    assert.deepEqual([...a.data], [1, 2, 3]);
    assert.deepEqual([...b.data], [4, 5, 6]);
    ws.close();
  });

  test('binary ack → 46<n>-<id>[…] with the attachments', async () => {
    const { ws } = await connect();
    ws.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    ws.send(Buffer.from([1, 2, 3]));
    ws.send(Buffer.from([4, 5, 6]));
    assert.equal(await ws.nextText(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual([...(await ws.next()).data], [1, 2, 3]);
    assert.deepEqual([...(await ws.next()).data], [4, 5, 6]);
    ws.close();
  });

  test('attachments nested in objects and mixed with JSON', async () => {
    const { ws } = await connect();
    const payload = '["message",{"file":{"_placeholder":true,"num":0},"name":"a.bin"},"text",[{"_placeholder":true,"num":1}]]';
    ws.send(`452-${payload}`);
    const big = Buffer.alloc(70000, 0xab);
    ws.send(Buffer.from([0, 255]));
    ws.send(big);
    const head = await ws.nextText();
    assert.equal(
      head,
      '452-["message-back",{"file":{"_placeholder":true,"num":0},"name":"a.bin"},"text",[{"_placeholder":true,"num":1}]]',
    );
    assert.deepEqual([...(await ws.next()).data], [0, 255]);
    assert.ok((await ws.next()).data.equals(big));
    ws.close();
  });

  test('binary over long-polling: attachments as "b" + base64', async () => {
    const { sid } = await pollingHandshake(srv.url, { path: PATH });
    await pollPost(srv.url, sid, '40', { path: PATH });
    await pollPackets(srv.url, sid, 2, { path: PATH });
    const push = await pollPost(srv.url, sid, `451-["message",{"_placeholder":true,"num":0}]${RS}bAQID`, { path: PATH });
    assert.equal(push.status, 200);
    const { packets } = await pollPackets(srv.url, sid, 2, { path: PATH });
    assert.deepEqual(packets, ['451-["message-back",{"_placeholder":true,"num":0}]', 'bAQID']);
  });
});

describe('disconnect', () => {
  test('41 leaves the namespace; the Engine.IO connection stays and can connect again', async () => {
    const { ws, sid } = await connect();
    ws.send('41');
    const quiet = await ws.drain(300);
    assert.deepEqual(quiet.map((m) => m.data), [], 'no reply to a DISCONNECT');
    assert.equal(ws.isClosed, false);
    ws.send('40');
    const sid2 = assertConnectReply(await ws.nextText());
    assert.notEqual(sid2, sid);
    assert.equal(await ws.nextText(), '42["auth",{}]');
    ws.send('42["message","again"]');
    assert.equal(await ws.nextText(), '42["message-back","again"]');
    ws.close();
  });

  test('leaving /custom keeps the main namespace working', async () => {
    const { ws } = await connect();
    ws.send('40/custom');
    assertConnectReply(await ws.nextText(), '/custom');
    assert.equal(await ws.nextText(), '42/custom,["auth",{}]');
    ws.send('41/custom');
    ws.send('42["message","message to main namespace"]');
    assert.equal(await ws.nextText(), '42["message-back","message to main namespace"]');
    ws.close();
  });
});

describe('invalid packets close the connection', () => {
  // Each is sent (as one WebSocket text frame) after a successful CONNECT to "/".
  const cases = [
    ['4abc', 'unknown Socket.IO packet type'],
    ['47', 'packet type out of range'],
    ['42{}', 'EVENT payload not an array'],
    ['42abc["message-with-ack",1,"2",{"3":[false]}]', 'invalid ack id'],
    ['42[]', 'EVENT without a name'],
    ['42[{"a":1}]', 'EVENT name not a string or number'],
    ['42["disconnect"]', 'reserved event name'],
    ['42["message"', 'truncated JSON'],
    ['42["message"]garbage', 'trailing garbage after JSON'],
    ['40', 'repeated CONNECT'],
    ['40"str"', 'CONNECT payload not an object'],
    ['41{}', 'DISCONNECT with a payload'],
    ['42/custom,["message"]', 'EVENT for a namespace not joined'],
    ['45["message"]', 'BINARY_EVENT without an attachment count'],
    ['4/', 'namespace without a packet type'],
  ];
  for (const [packet, why] of cases) {
    test(`${why}: ${JSON.stringify(packet)}`, async () => {
      const { ws } = await connect();
      ws.send(packet);
      const c = await ws.waitClose(1500);
      assert.ok(c, `connection still open after ${JSON.stringify(packet)}; got ${JSON.stringify(ws.queue.map((m) => m.data))}`);
    });
  }

  test('first packet not a CONNECT', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('42["message","x"]');
    assert.ok(await ws.waitClose(900), 'still open (or closed only by connectTimeout)');
  });

  test('a text packet where a binary attachment is expected', async () => {
    const { ws } = await connect();
    ws.send('451-["message",{"_placeholder":true,"num":0}]');
    ws.send('42["message","x"]');
    assert.ok(await ws.waitClose(1500));
  });

  test('a binary frame with no binary packet pending', async () => {
    const { ws } = await connect();
    ws.send(Buffer.from([1, 2, 3]));
    assert.ok(await ws.waitClose(1500));
  });

  test('over long-polling: the session is closed', async () => {
    const { sid } = await pollingHandshake(srv.url, { path: PATH });
    await pollPost(srv.url, sid, '40', { path: PATH });
    await pollPackets(srv.url, sid, 2, { path: PATH });
    await pollPost(srv.url, sid, '42{}', { path: PATH }).catch(() => null);
    assert.equal(await pollingSessionClosed(srv.url, sid, { path: PATH }), null);
  });

  test('a valid connection is not closed (control case)', async () => {
    const { ws } = await connect();
    ws.send('42["message",[]]');
    assert.equal(await ws.nextText(), '42["message-back",[]]');
    assert.equal(await ws.waitClose(700), null);
    ws.close();
  });
});

describe('the reply frames', () => {
  test('over long-polling, server packets of one GET are joined with \\x1e', async () => {
    const { sid } = await pollingHandshake(srv.url, { path: PATH });
    await pollPost(srv.url, sid, '40', { path: PATH });
    // connect reply + auth event are queued together
    const r = await pollGet(srv.url, sid, { path: PATH });
    assert.equal(r.status, 200);
    const packets = decodePayload(r.text).filter((p) => p !== '2');
    if (packets.length === 2) {
      assert.match(r.text, /^40\{"sid":"[^"]+"\}\x1e42\["auth",\{\}\]$/);
    } else {
      // the reply may have been flushed alone: the auth event is then in the next GET
      assert.equal(packets.length, 1, r.text);
      const { packets: more } = await pollPackets(srv.url, sid, 1, { path: PATH });
      assert.deepEqual(more, ['42["auth",{}]']);
    }
  });
});
