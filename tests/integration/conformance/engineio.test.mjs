// Engine.IO v4 conformance of sio-conformance's raw echo endpoint (/engine.io/), byte for byte:
// handshake, errors, messages over long-polling and WebSocket, heartbeat, close and upgrade.
// Cases follow the public engine.io-protocol v4 test suite, plus the details of PROTOCOL.md.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { rawExchange, sleep } from '../lib/chatd.mjs';
import {
  RS,
  decodePayload,
  eioUrl,
  httpRequest,
  openRawWs,
  pollGet,
  pollPackets,
  pollPost,
  pollingHandshake,
  pollingSessionClosed,
  rawPost,
  startConformance,
  wsHandshake,
  wsRefusal,
} from '../lib/sio.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const MAX_PAYLOAD = 1000000;
const PATH = '/engine.io/';

let srv;
before(async () => {
  srv = await startConformance();
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, `sio-conformance did not exit cleanly:\n${srv.output()}`);
});

const url = (o = {}) => eioUrl(srv.url, { path: PATH, ...o });
const wsUrl = (o = {}) => eioUrl(srv.wsUrl, { path: PATH, transport: 'websocket', ...o });

function openPacket(sid, upgrades, { pingInterval = PING_INTERVAL, pingTimeout = PING_TIMEOUT, maxPayload = MAX_PAYLOAD } = {}) {
  return `0{"sid":"${sid}","upgrades":${JSON.stringify(upgrades)},"pingInterval":${pingInterval},"pingTimeout":${pingTimeout},"maxPayload":${maxPayload}}`;
}

function assertErrorResponse(r, code, message, status = 400) {
  assert.equal(r.status, status, `status for ${JSON.stringify(r.text)}`);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.deepEqual(r.json, { code, message });
}

describe('handshake', () => {
  test('HTTP long-polling: open packet with the configured values, compact JSON in order', async () => {
    const r = await httpRequest(url());
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/plain; ?charset=UTF-8$/i);
    assert.ok(r.text.startsWith('0{'), r.text);
    const open = JSON.parse(r.text.slice(1));
    assert.deepEqual(Object.keys(open), ['sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload']);
    assert.equal(typeof open.sid, 'string');
    assert.match(open.sid, /^[A-Za-z0-9_-]{16,}$/, 'sid: at least 16 URL-safe characters');
    assert.equal(r.text, openPacket(open.sid, ['websocket']));
  });

  test('every handshake gets a new sid', async () => {
    const sids = new Set();
    for (let i = 0; i < 20; i++) sids.add((await pollingHandshake(srv.url)).sid);
    assert.equal(sids.size, 20);
  });

  test('CORS: any origin is allowed', async () => {
    const r = await httpRequest(url(), { headers: { origin: 'http://example.test' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });

  test('the t= and b64= query parameters are ignored', async () => {
    const r = await httpRequest(url({ query: { t: 'Nabc123', b64: '1' } }));
    assert.equal(r.status, 200);
    assert.ok(r.text.startsWith('0{"sid":'), r.text);
  });

  test('WebSocket: the open packet is the first frame and has no upgrades', async () => {
    const { ws, text, open } = await wsHandshake(srv.wsUrl, { path: PATH });
    assert.equal(text, openPacket(open.sid, []));
    ws.close();
  });

  test('flags set the heartbeat and payload values', async () => {
    const other = await startConformance({
      args: ['--ping-interval', '1234', '--ping-timeout', '567', '--max-payload', '4321'],
    });
    try {
      const h = await pollingHandshake(other.url);
      assert.equal(h.text, openPacket(h.sid, ['websocket'], { pingInterval: 1234, pingTimeout: 567, maxPayload: 4321 }));
      // maxPayload is enforced with the configured value
      const big = await rawPost(eioUrl(other.url, { sid: h.sid }), '4' + 'x'.repeat(4400));
      assert.equal(big.status, 413, JSON.stringify(big));
    } finally {
      assert.equal(await other.stop(), 0);
    }
  });
});

describe('HTTP errors', () => {
  test('code 0 "Transport unknown"', async () => {
    assertErrorResponse(await httpRequest(url({ transport: 'abc' })), 0, 'Transport unknown');
    assertErrorResponse(await httpRequest(url({ transport: null })), 0, 'Transport unknown');
  });

  test('code 1 "Session ID unknown" (GET and POST)', async () => {
    assertErrorResponse(await httpRequest(url({ sid: 'doesnotexist' })), 1, 'Session ID unknown');
    assertErrorResponse(await httpRequest(url({ sid: 'doesnotexist' }), { method: 'POST', body: '4x' }), 1, 'Session ID unknown');
  });

  test('code 2 "Bad handshake method" (a handshake that is not a GET)', async () => {
    assertErrorResponse(await httpRequest(url(), { method: 'POST', body: '4x' }), 2, 'Bad handshake method');
    assertErrorResponse(await httpRequest(url(), { method: 'PUT', body: '4x' }), 2, 'Bad handshake method');
  });

  test('code 3 "Bad request": transport=websocket over plain HTTP', async () => {
    assertErrorResponse(await httpRequest(url({ transport: 'websocket' })), 3, 'Bad request');
    const { sid } = await pollingHandshake(srv.url);
    assertErrorResponse(await httpRequest(url({ transport: 'websocket', sid })), 3, 'Bad request');
  });

  test('code 5 "Unsupported protocol version": EIO=3, EIO=abc, no EIO', async () => {
    assertErrorResponse(await httpRequest(url({ eio: '3' })), 5, 'Unsupported protocol version');
    assertErrorResponse(await httpRequest(url({ eio: 'abc' })), 5, 'Unsupported protocol version');
    assertErrorResponse(await httpRequest(url({ eio: null })), 5, 'Unsupported protocol version');
  });

  // Code 4 "Forbidden" (403) comes from an application's allowRequest hook; sio-conformance has none.

  test('refused WebSocket upgrades answer 400: unknown transport, unknown sid', async () => {
    for (const bad of [wsUrl({ transport: 'abc' }), wsUrl({ sid: 'doesnotexist' })]) {
      const r = await wsRefusal(bad);
      assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r)}`);
    }
  });

  // PROTOCOL.md: a bad upgrade request is refused with 400. (The Node reference server completes
  // this upgrade and only then writes its 400 on the WebSocket connection.)
  test('refused WebSocket upgrades answer 400: EIO missing or not 4', async () => {
    for (const bad of [wsUrl({ eio: null }), wsUrl({ eio: '3' })]) {
      const r = await wsRefusal(bad);
      assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r)}`);
    }
  });

  test('a bad upgrade request gets "HTTP/1.1 400 Bad Request" and the connection closes', async () => {
    const req =
      `GET ${PATH}?EIO=4&transport=websocket&sid=doesnotexist HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n` +
      'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    const r = await rawExchange(srv.port, req, { timeoutMs: 3000 });
    assert.ok(r.text.startsWith('HTTP/1.1 400 Bad Request\r\n'), JSON.stringify(r.text.slice(0, 200)));
    assert.equal(r.closed, true, 'connection left open');
  });
});

describe('messages over HTTP long-polling', () => {
  test('one text packet: POST answers "ok", the next GET returns it', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const push = await pollPost(srv.url, sid, '4hello');
    assert.equal(push.status, 200);
    assert.equal(push.text, 'ok');
    const poll = await pollGet(srv.url, sid);
    assert.equal(poll.status, 200);
    assert.match(poll.headers.get('content-type') || '', /^text\/plain; ?charset=UTF-8$/i);
    assert.deepEqual(decodePayload(poll.text).filter((p) => p !== '2'), ['4hello']);
  });

  test('several packets joined with \\x1e come back joined the same way', async () => {
    const { sid } = await pollingHandshake(srv.url);
    assert.equal((await pollPost(srv.url, sid, `4test1${RS}4test2${RS}4test3`)).status, 200);
    const poll = await pollGet(srv.url, sid);
    assert.equal(poll.status, 200);
    const packets = decodePayload(poll.text).filter((p) => p !== '2');
    assert.deepEqual(packets, ['4test1', '4test2', '4test3']);
    if (!poll.text.includes(`2${RS}`) && !poll.text.endsWith(`${RS}2`)) {
      assert.equal(poll.text, `4test1${RS}4test2${RS}4test3`);
    }
  });

  test('text and binary ("b" + base64) packets', async () => {
    const { sid } = await pollingHandshake(srv.url);
    assert.equal((await pollPost(srv.url, sid, `4hello${RS}bAQIDBA==`)).status, 200);
    const { packets } = await pollPackets(srv.url, sid, 2);
    assert.deepEqual(packets, ['4hello', 'bAQIDBA==']);
  });

  test('UTF-8 text is echoed unchanged', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const text = '4héllo wörld — ✓ 😀';
    assert.equal((await pollPost(srv.url, sid, text)).status, 200);
    const { packets } = await pollPackets(srv.url, sid, 1);
    assert.deepEqual(packets, [text]);
  });

  test('a GET waits until something is queued', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const started = Date.now();
    const pending = pollGet(srv.url, sid);
    await sleep(100);
    assert.equal((await pollPost(srv.url, sid, '4late')).status, 200);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.ok(Date.now() - started >= 90, 'GET answered before anything was queued');
    assert.deepEqual(decodePayload(r.text).filter((p) => p !== '2'), ['4late']);
  });

  test('an invalid packet closes the session', async () => {
    const { sid } = await pollingHandshake(srv.url);
    // The POST itself may be answered 400, "ok" (the reference server) or dropped; the session
    // must be gone afterwards.
    const r = await pollPost(srv.url, sid, 'abc').catch(() => null);
    if (r) assert.ok(r.status === 400 || (r.status === 200 && r.text === 'ok'), `${r.status} ${r.text}`);
    assert.equal(await pollingSessionClosed(srv.url, sid), null);
  });

  test('a second concurrent GET gets 400, the first gets "1", and the session is closed', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const [first, second] = await Promise.all([
      pollGet(srv.url, sid),
      sleep(20).then(() => pollGet(srv.url, sid, { query: { t: 'burst' } })),
    ]);
    assert.equal(first.status, 200);
    assert.equal(first.text, '1');
    assert.equal(second.status, 400);
    assert.equal((await pollGet(srv.url, sid)).status, 400);
  });

  test('a GET aborted by the client closes the session', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const ac = new AbortController();
    const pending = pollGet(srv.url, sid, { signal: ac.signal }).catch(() => null);
    await sleep(30);
    ac.abort();
    await pending;
    await sleep(50);
    assert.equal((await pollGet(srv.url, sid)).status, 400);
  });

  test('POST with Content-Type application/octet-stream → 400', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const r = await pollPost(srv.url, sid, '4hello', { headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 400);
  });

  test('a POST body of exactly maxPayload bytes is accepted; one byte more → 413', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const exact = '4' + 'a'.repeat(MAX_PAYLOAD - 1);
    const ok = await rawPost(url({ sid }), exact);
    assert.equal(ok.status, 200, JSON.stringify(ok).slice(0, 300));
    const { packets } = await pollPackets(srv.url, sid, 1);
    assert.equal(packets[0].length, MAX_PAYLOAD);
    assert.equal(packets[0], exact);

    const { sid: sid2 } = await pollingHandshake(srv.url);
    const tooBig = await rawPost(url({ sid: sid2 }), exact + 'a');
    assert.equal(tooBig.status, 413, JSON.stringify(tooBig).slice(0, 300));
  });

  test('client close: POST "1" answers a pending GET with "6", later requests get 400', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const pending = pollGet(srv.url, sid);
    await sleep(30);
    const push = await pollPost(srv.url, sid, '1');
    assert.equal(push.status, 200);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.text, '6');
    assert.equal((await pollGet(srv.url, sid)).status, 400);
    assert.equal((await pollPost(srv.url, sid, '4x')).status, 400);
  });
});

describe('messages over WebSocket', () => {
  test('a text frame is echoed', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('4hello');
    assert.deepEqual(await ws.next(), { data: '4hello', binary: false });
    ws.close();
  });

  test('a binary frame is echoed as a binary frame with the same bytes', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send(Buffer.from([1, 2, 3, 4]));
    const m = await ws.next();
    assert.equal(m.binary, true);
    assert.deepEqual([...m.data], [1, 2, 3, 4]);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    ws.send(all);
    const m2 = await ws.next();
    assert.equal(m2.binary, true);
    assert.ok(m2.data.equals(all));
    ws.close();
  });

  test('one packet per frame, order preserved', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    for (let i = 0; i < 200; i++) ws.send(`4m${i}`);
    for (let i = 0; i < 200; i++) assert.equal(await ws.nextText(), `4m${i}`);
    ws.close();
  });

  test('an invalid packet closes the connection', async () => {
    for (const bad of ['abc', '9', '']) {
      const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
      ws.send(bad);
      assert.ok(await ws.waitClose(1500), `still open after ${JSON.stringify(bad)}`);
    }
  });

  test('a ping from the client (v3 heartbeat direction) is an error', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('2');
    assert.ok(await ws.waitClose(1500), 'still open after a client ping');
  });

  test('a message larger than maxPayload closes the connection', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    ws.send('4' + 'a'.repeat(MAX_PAYLOAD + 10));
    assert.ok(await ws.waitClose(3000), 'still open after an oversized message');
  });

});

describe('heartbeat', () => {
  test('long-polling: "2" every pingInterval, answered with "3"', async () => {
    const { sid } = await pollingHandshake(srv.url);
    let last = Date.now();
    for (let i = 0; i < 3; i++) {
      const r = await pollGet(srv.url, sid);
      assert.equal(r.status, 200);
      assert.equal(r.text, '2');
      const now = Date.now();
      assert.ok(now - last >= PING_INTERVAL - 60, `ping after ${now - last} ms`);
      assert.ok(now - last <= PING_INTERVAL + 1000, `ping after ${now - last} ms`);
      last = now;
      const push = await pollPost(srv.url, sid, '3');
      assert.equal(push.status, 200);
    }
  });

  test('long-polling: no pong → the session is closed, even with no GET pending', async () => {
    const { sid } = await pollingHandshake(srv.url);
    await sleep(PING_INTERVAL + PING_TIMEOUT + 150);
    assert.equal((await pollGet(srv.url, sid)).status, 400);
  });

  test('WebSocket: "2" every pingInterval, answered with "3"', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH, autoPong: false });
    let last = Date.now();
    for (let i = 0; i < 3; i++) {
      assert.equal(await ws.nextText(2000), '2');
      const now = Date.now();
      assert.ok(now - last >= PING_INTERVAL - 60, `ping after ${now - last} ms`);
      last = now;
      ws.send('3');
    }
    assert.equal(ws.isClosed, false);
    ws.close();
  });

  test('WebSocket: no pong → closed after pingInterval + pingTimeout', async () => {
    const started = Date.now();
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH, autoPong: false });
    assert.equal(await ws.nextText(2000), '2');
    const c = await ws.waitClose(3000);
    assert.ok(c, 'not closed');
    const ms = c.at - started;
    assert.ok(ms >= PING_INTERVAL + PING_TIMEOUT - 100, `closed after ${ms} ms`);
  });

  test('answering pings keeps a session alive', async () => {
    const { ws } = await wsHandshake(srv.wsUrl, { path: PATH });
    await sleep(3 * (PING_INTERVAL + PING_TIMEOUT));
    assert.equal(ws.isClosed, false);
    assert.ok(ws.pings >= 3, `${ws.pings} pings`);
    ws.send('4still here');
    assert.equal(await ws.nextText(), '4still here');
    ws.close();
  });
});

describe('upgrade from long-polling to WebSocket', () => {
  test('probe, noop for the pending GET, upgrade, then messages flow over WebSocket only', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const pending = pollGet(srv.url, sid);
    await sleep(20);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('2probe');
    assert.equal(await ws.nextText(), '3probe');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.text, '6');
    ws.send('5');
    ws.send('4hello');
    assert.equal(await ws.nextText(), '4hello');
    const after = await pollGet(srv.url, sid);
    assert.equal(after.status, 400);
    ws.send(Buffer.from([9, 8, 7]));
    const m = await ws.next();
    assert.equal(m.binary, true);
    assert.deepEqual([...m.data], [9, 8, 7]);
    ws.close();
  });

  test('a GET sent after the probe is answered "6" (the client\'s paused poll completes)', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('2probe');
    assert.equal(await ws.nextText(), '3probe');
    const started = Date.now();
    const r = await pollGet(srv.url, sid);
    assert.equal(r.status, 200);
    assert.equal(r.text, '6');
    assert.ok(Date.now() - started < 1500, 'noop took too long');
    ws.send('5');
    ws.send('4x');
    assert.equal(await ws.nextText(), '4x');
    ws.close();
  });

  test('what was queued for polling is flushed over the WebSocket after "5"', async () => {
    const { sid } = await pollingHandshake(srv.url);
    // no GET pending: the echo stays queued in the session
    assert.equal((await pollPost(srv.url, sid, `4queued1${RS}4queued2`)).status, 200);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('2probe');
    assert.equal(await ws.nextText(), '3probe');
    ws.send('5');
    assert.equal(await ws.nextText(), '4queued1');
    assert.equal(await ws.nextText(), '4queued2');
    ws.close();
  });

  test('HTTP requests with the sid are refused after the upgrade', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('2probe');
    assert.equal(await ws.nextText(), '3probe');
    ws.send('5');
    ws.send('4ping');
    assert.equal(await ws.nextText(), '4ping'); // the upgrade is complete
    assert.equal((await pollGet(srv.url, sid)).status, 400);
    assert.equal((await pollPost(srv.url, sid, '4x')).status, 400);
    ws.send('4still');
    assert.equal(await ws.nextText(), '4still');
    ws.close();
  });

  test('a second WebSocket with the sid is closed after the upgrade', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('2probe');
    assert.equal(await ws.nextText(), '3probe');
    ws.send('5');
    ws.send('4one');
    assert.equal(await ws.nextText(), '4one');
    const r = await wsRefusal(wsUrl({ sid }));
    assert.ok(r.status === 400 || (r.opened && r.closedAfterOpen), `second WebSocket accepted: ${JSON.stringify(r)}`);
    ws.send('4two');
    assert.equal(await ws.nextText(), '4two');
    ws.close();
  });

  test('anything but "2probe"/"5" during the upgrade closes the candidate WebSocket, polling goes on', async () => {
    const { sid } = await pollingHandshake(srv.url);
    const ws = await openRawWs(wsUrl({ sid }));
    ws.send('4not-a-probe');
    assert.ok(await ws.waitClose(1500), 'candidate WebSocket still open');
    assert.equal((await pollPost(srv.url, sid, '4after')).status, 200);
    const { packets } = await pollPackets(srv.url, sid, 1);
    assert.deepEqual(packets, ['4after']);
  });
});
