// The WebSocket protocol itself (RFC 6455) as chatd speaks it under Engine.IO: the handshake's
// refusals, pings, the close handshake, and what happens to frames that break the protocol
// (unmasked, not UTF-8, too big). Raw TCP where a real client would never send such bytes.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startChatd, stopAll } from '../lib/chatd.mjs';
import { WebSocket, realtimeArgs } from '../lib/sio.mjs';

const MAX_PAYLOAD = 4096;
let srv;
before(async () => {
  srv = await startChatd({ args: [...(await realtimeArgs()), '--max-payload', String(MAX_PAYLOAD)] });
});
after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.describe());
  await stopAll();
});

const PATH = '/socket.io/?EIO=4&transport=websocket';

/** A masked client frame. */
function frame(opcode, payload, { fin = true, mask = true } = {}) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const n = body.length;
  const head = [((fin ? 0x80 : 0) | opcode) & 0xff];
  const maskBit = mask ? 0x80 : 0;
  if (n < 126) head.push(maskBit | n);
  else head.push(maskBit | 126, n >> 8, n & 0xff);
  const key = crypto.randomBytes(4);
  const out = Buffer.from(body);
  if (mask) for (let i = 0; i < n; i++) out[i] ^= key[i % 4];
  return Buffer.concat([Buffer.from(head), mask ? key : Buffer.alloc(0), out]);
}

/** Parses unmasked server frames from `buf`: [{opcode, payload}], and the unparsed rest. */
function serverFrames(buf) {
  const frames = [];
  let at = 0;
  while (buf.length - at >= 2) {
    let len = buf[at + 1] & 0x7f;
    let hdr = 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      hdr = 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      hdr = 10;
    }
    if (buf.length - at < hdr + len) break;
    frames.push({ opcode: buf[at] & 0x0f, fin: (buf[at] & 0x80) !== 0, payload: buf.subarray(at + hdr, at + hdr + len) });
    at += hdr + len;
  }
  return frames;
}

/**
 * Raw TCP: sends an upgrade request (plus `after` bytes right behind it), then `thenSend` once the
 * first frame arrived (all at once, or one piece every `pieceDelayMs`), and collects what the
 * server sends until it closes or `timeoutMs`. Returns {head, frames, closed}.
 */
function rawSession({ headers = {}, after = [], thenSend = [], pieceDelayMs = 0, timeoutMs = 4000 } = {}) {
  return new Promise((resolve) => {
    const key = headers['Sec-WebSocket-Key'] ?? crypto.randomBytes(16).toString('base64');
    const hdrs = {
      Host: `127.0.0.1:${srv.port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Version': '13',
      ...headers,
      'Sec-WebSocket-Key': key,
    };
    const req = `GET ${PATH} HTTP/1.1\r\n` + Object.entries(hdrs).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    const sock = net.connect(srv.port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    let sentLater = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const end = data.indexOf('\r\n\r\n');
      const head = end < 0 ? data.toString('latin1') : data.subarray(0, end).toString('latin1');
      const rest = end < 0 ? Buffer.alloc(0) : data.subarray(end + 4);
      resolve({ head, frames: serverFrames(rest), closed, key });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat([Buffer.from(req, 'latin1'), ...after])));
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
      // Bytes sent only once the server's first frame (the Engine.IO open packet) is here.
      if (!sentLater && thenSend.length && data.includes(Buffer.from('\r\n\r\n'))) {
        const rest = data.subarray(data.indexOf('\r\n\r\n') + 4);
        if (serverFrames(rest).length > 0) {
          sentLater = true;
          if (!pieceDelayMs) sock.write(Buffer.concat(thenSend));
          else {
            // One write per piece, apart in time, so that they arrive as separate reads.
            thenSend.forEach((piece, i) => setTimeout(() => !done && sock.write(piece), i * pieceDelayMs));
          }
        }
      }
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

const closeCode = (f) => (f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null);

describe('handshake', () => {
  test('101 with the RFC 6455 accept key, and the Engine.IO open packet as the first frame', async () => {
    const r = await rawSession({ timeoutMs: 800 });
    assert.match(r.head, /^HTTP\/1\.1 101 /);
    const accept = crypto.createHash('sha1').update(r.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.match(r.head, new RegExp(`\\r\\nSec-WebSocket-Accept: ${accept.replace(/[+/=]/g, '\\$&')}(\\r\\n|$)`, 'i'));
    assert.ok(r.frames.length >= 1, 'a frame after the 101');
    assert.equal(r.frames[0].opcode, 1);
    assert.match(r.frames[0].payload.toString(), /^0\{"sid":/);
  });

  test('an unsupported version is refused with 426 and the version chatd speaks', async () => {
    const r = await rawSession({ headers: { 'Sec-WebSocket-Version': '8' } });
    assert.match(r.head, /^HTTP\/1\.1 426 /);
    assert.match(r.head, /\r\nSec-WebSocket-Version: 13/i);
    assert.equal(r.closed, true);
  });

  test('a key that is not 16 bytes of base64 is a bad request', async () => {
    const r = await rawSession({ headers: { 'Sec-WebSocket-Key': 'c2hvcnQ=' } });
    assert.match(r.head, /^HTTP\/1\.1 400 /);
    assert.equal(r.closed, true);
  });
});

describe('frames', () => {
  test('frames sent in the same write as the upgrade request, fragmented, are reassembled', async () => {
    // "40" (Socket.IO CONNECT to "/") in two fragments with a ping between them; without a
    // token the answer is CONNECT_ERROR — which proves the server read "40".
    const r = await rawSession({
      after: [frame(0x1, '4', { fin: false }), frame(0x9, 'between'), frame(0x0, '0')],
    });
    const pong = r.frames.find((f) => f.opcode === 0xa);
    assert.ok(pong, 'the ping between fragments is answered');
    assert.equal(pong.payload.toString(), 'between');
    const texts = r.frames.filter((f) => f.opcode === 0x1).map((f) => f.payload.toString());
    assert.ok(texts.some((t) => t.startsWith('44{"message":"Unauthorized"')), texts.join(' | '));
  });

  test('a large message arriving in many small TCP pieces is reassembled', async () => {
    // A Socket.IO CONNECT with a 3,000-byte (invalid) token, written 100 bytes at a time after
    // the open packet: the answer, CONNECT_ERROR, proves the server parsed the whole frame.
    const big = frame(0x1, `40{"token":"${'x'.repeat(3000)}"}`);
    const pieces = [];
    for (let i = 0; i < big.length; i += 100) pieces.push(big.subarray(i, i + 100));
    const r = await rawSession({ thenSend: pieces, pieceDelayMs: 2 });
    const texts = r.frames.filter((f) => f.opcode === 0x1).map((f) => f.payload.toString());
    assert.ok(texts.some((t) => t.startsWith('44{"message":"Unauthorized"')), texts.join(' | '));
  });

  test('a ping is answered with a pong carrying the same payload', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${PATH}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('are you there'));
    assert.equal((await pong).toString(), 'are you there');
    ws.terminate();
  });

  test('a client close is echoed with its code and ends the connection', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${PATH}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(4001, 'bye');
    assert.equal(await closed, 4001);
  });

  const violations = [
    ['an unmasked client frame', () => frame(0x1, '40', { mask: false }), 1002],
    ['a reserved opcode', () => frame(0x3, 'x'), 1002],
    ['a text frame that is not UTF-8', () => frame(0x1, Buffer.from([0x34, 0xc0, 0xaf])), 1007],
    ['a message over --max-payload', () => frame(0x1, 'x'.repeat(MAX_PAYLOAD + 1)), 1009],
    ['a continuation without a message', () => frame(0x0, 'x'), 1002],
  ];
  for (const [what, bytes, code] of violations) {
    test(`${what}: close frame ${code}, then the connection ends`, async () => {
      const r = await rawSession({ thenSend: [bytes()] });
      const close = r.frames.find((f) => f.opcode === 0x8);
      assert.ok(close, `a close frame (got opcodes ${r.frames.map((f) => f.opcode)})`);
      assert.equal(closeCode(close), code);
      assert.equal(r.closed, true, 'the server closes the TCP connection');
    });
  }
});
