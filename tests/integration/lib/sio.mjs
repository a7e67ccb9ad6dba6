// Helpers for the real-time suites (realtime/ against chatd, conformance/ against sio-conformance):
// spawning sio-conformance, raw Engine.IO over HTTP long-polling and WebSocket (exact bytes, with
// fetch and the `ws` package), and small wrappers around socket.io-client.
//
// Everything started here (processes, sockets) is torn down when the test file's process exits.
import http from 'node:http';

import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { runChatd, sleep, spawnTracked, waitForListening } from './chatd.mjs';

export { io, WebSocket };

export const SIO_CONFORMANCE_BIN =
  process.env.SIO_CONFORMANCE_BIN || '/work/main/build/bin/sio-conformance';
const CONFORMANCE_LISTENING_RE = /sio-conformance listening on http:\/\/[^\s:]+:(\d+)/;

/** Engine.IO record separator between packets of a long-polling payload. */
export const RS = '\x1e';

const live_procs = new Set();
process.on('exit', () => {
  for (const p of live_procs) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

// ---------------------------------------------------------------------------------------------
// sio-conformance

/**
 * Spawns sio-conformance on a free port (unless `args` give one) and waits for its
 * "sio-conformance listening on http://127.0.0.1:<port>" line.
 * @returns {Promise<{url, wsUrl, port, proc, output(), stop()}>}
 */
export async function startConformance({ args = [], timeoutMs = 10000 } = {}) {
  const argv = ['--host', '127.0.0.1', '--port', '0', ...args];
  const { proc, output } = spawnTracked(SIO_CONFORMANCE_BIN, argv, { track: live_procs });
  const port = await waitForListening(proc, CONFORMANCE_LISTENING_RE, {
    name: 'sio-conformance',
    bin: SIO_CONFORMANCE_BIN,
    timeoutMs,
    text: output,
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    proc,
    output,
    /** SIGTERM, then SIGKILL after `timeout`; resolves with the exit code or "signal:<NAME>". */
    async stop(timeout = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? `signal:${proc.signalCode}`;
      const exited = new Promise((r) => proc.once('exit', (code, sig) => r(code !== null ? code : `signal:${sig}`)));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), timeout);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// chatd flags

let help_text = null;
/** `chatd --help` output (cached). */
export async function chatdHelp() {
  if (help_text === null) {
    const r = await runChatd(['--help']);
    help_text = r.stdout + r.stderr;
  }
  return help_text;
}

/** True when `chatd --help` mentions `--<flag>`. */
export async function chatdHasFlag(flag) {
  return (await chatdHelp()).includes(`--${flag}`);
}

/** Extra chatd args for the real-time suites: the message rate limit off when chatd has one. */
export async function realtimeArgs() {
  return (await chatdHasFlag('rate-limit-messages')) ? ['--rate-limit-messages', 'off'] : [];
}

// ---------------------------------------------------------------------------------------------
// Raw Engine.IO: URLs, long-polling

/** `<base><path>?EIO=4&transport=<t>[&sid=…]` plus any extra query entries. */
export function eioUrl(base, { path = '/engine.io/', transport = 'polling', sid, eio = '4', query = {} } = {}) {
  const q = new URLSearchParams();
  if (eio !== null) q.set('EIO', eio);
  if (transport !== null) q.set('transport', transport);
  if (sid) q.set('sid', sid);
  for (const [k, v] of Object.entries(query)) q.set(k, v);
  return `${base}${path}?${q}`;
}

/** Splits a long-polling payload into packets. */
export function decodePayload(text) {
  return text === '' ? [] : text.split(RS);
}

/** Plain fetch returning {status, headers, text, json}; never throws on HTTP errors. */
export async function httpRequest(url, { method = 'GET', body, headers = {}, signal } = {}) {
  const res = await fetch(url, { method, body, headers, signal, redirect: 'manual' });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Opens a long-polling session. Returns {sid, open (the parsed handshake), text (the raw body),
 * status, headers}.
 */
export async function pollingHandshake(base, { path = '/engine.io/', headers } = {}) {
  const r = await httpRequest(eioUrl(base, { path }), { headers });
  if (r.status !== 200 || !r.text.startsWith('0')) {
    throw new Error(`polling handshake failed: ${r.status} ${r.text}`);
  }
  const open = JSON.parse(r.text.slice(1));
  return { sid: open.sid, open, text: r.text, status: r.status, headers: r.headers };
}

/** GET on a session (long-poll). */
export function pollGet(base, sid, { path = '/engine.io/', signal, query } = {}) {
  return httpRequest(eioUrl(base, { path, sid, query }), { signal });
}

/** POST `body` (a payload) on a session. */
export function pollPost(base, sid, body, { path = '/engine.io/', headers = {} } = {}) {
  return httpRequest(eioUrl(base, { path, sid }), {
    method: 'POST',
    body,
    headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers },
  });
}

/**
 * Long-polls until `count` packets other than pings ("2") arrived; answers every ping with "3"
 * (so that a slow run does not time the session out). Returns {packets, raw: [bodies], pings}.
 * Throws on a non-200 answer or after `timeoutMs`.
 */
export async function pollPackets(base, sid, count, { path = '/engine.io/', timeoutMs = 5000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const packets = [];
  const raw = [];
  let pings = 0;
  while (packets.length < count) {
    if (Date.now() > deadline) {
      throw new Error(`pollPackets: got ${JSON.stringify(packets)} (raw ${JSON.stringify(raw)}), wanted ${count}`);
    }
    const r = await pollGet(base, sid, { path });
    if (r.status !== 200) throw new Error(`poll answered ${r.status} ${r.text} after ${JSON.stringify(packets)}`);
    raw.push(r.text);
    for (const p of decodePayload(r.text)) {
      if (p === '2') {
        pings++;
        const pong = await pollPost(base, sid, '3', { path });
        if (pong.status !== 200) throw new Error(`pong answered ${pong.status} ${pong.text}`);
      } else {
        packets.push(p);
      }
    }
  }
  return { packets, raw, pings };
}

/**
 * Asserts (by returning a description, or null when it holds) that a polling session is closed:
 * a GET answers 400, or 200 with a close packet "1" and then 400. Pings are answered on the way.
 */
export async function pollingSessionClosed(base, sid, { path = '/engine.io/', tries = 4 } = {}) {
  const seen = [];
  for (let i = 0; i < tries; i++) {
    const r = await pollGet(base, sid, { path });
    seen.push(`${r.status} ${JSON.stringify(r.text)}`);
    if (r.status === 400) return null;
    if (r.status !== 200) return `unexpected status: ${seen.join(' | ')}`;
    const packets = decodePayload(r.text);
    if (packets.includes('1')) {
      const again = await pollGet(base, sid, { path });
      seen.push(`${again.status} ${JSON.stringify(again.text)}`);
      return again.status === 400 ? null : `close packet, then ${seen.join(' | ')}`;
    }
    if (packets.includes('2')) await pollPost(base, sid, '3', { path });
  }
  return `session still open: ${seen.join(' | ')}`;
}

/**
 * POST through node:http so that a response sent before the whole body was read (413) is still
 * seen. Resolves {status, text} or {error} when no response arrived.
 */
export function rawPost(url, body, headers = {}) {
  return new Promise((resolve) => {
    const u = new URL(url);
    let settled = false;
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        headers: { 'content-type': 'text/plain;charset=UTF-8', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        const done = () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode, text, headers: res.headers });
        };
        res.on('end', done);
        res.on('error', done);
        res.on('close', done);
      },
    );
    req.on('error', (e) => {
      if (settled) return;
      // The response may still be parsed after a write error (EPIPE/ECONNRESET): give it a moment.
      setTimeout(() => {
        if (settled) return;
        settled = true;
        resolve({ error: e });
      }, 200);
    });
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket

/** `promise`, or `onTimeout()` after `ms`; the timer never keeps the process alive afterwards. */
function withTimeout(promise, ms, onTimeout) {
  let timer;
  const t = new Promise((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/**
 * A `ws` client with a message queue: next() returns the next message as {data, binary} (data is
 * a string for text frames and a Buffer for binary ones). With `autoPong`, Engine.IO pings ("2")
 * are answered with "3" and kept out of the queue (counted in `pings`).
 */
export class RawWs {
  constructor(url, { autoPong = true, headers, perMessageDeflate = false } = {}) {
    this.url = url;
    this.autoPong = autoPong;
    this.pings = 0;
    this.queue = [];
    this.waiters = [];
    this.closeInfo = null;
    this.unexpected = null; // {status, text} of a refused upgrade
    this.error = null;
    this.openedAt = null;
    this.ws = new WebSocket(url, { headers, perMessageDeflate });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.openedAt = Date.now();
        resolve(this);
      });
      this.ws.once('unexpected-response', (req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          this.unexpected = { status: res.statusCode, text, headers: res.headers };
          reject(Object.assign(new Error(`upgrade refused: ${res.statusCode} ${text}`), { status: res.statusCode, text }));
          req.destroy();
        });
      });
      this.ws.once('error', (e) => {
        this.error = e;
        reject(e);
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`websocket closed (${code}) while waiting for a message`));
      });
    });
    this.ws.on('error', (e) => {
      this.error = e;
    });
    this.ws.on('message', (data, isBinary) => {
      const msg = isBinary ? { data: Buffer.from(data), binary: true } : { data: data.toString('utf8'), binary: false };
      if (this.autoPong && !msg.binary && msg.data === '2') {
        this.pings++;
        this.ws.send('3');
        return;
      }
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.queue.push(msg);
    });
  }

  /** Next message ({data, binary}); rejects on close or after `timeoutMs`. */
  next(timeoutMs = 3000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) return Promise.reject(new Error(`websocket closed (${this.closeInfo.code})`));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no message within ${timeoutMs} ms on ${this.url}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Next text message's data (throws if it is binary). */
  async nextText(timeoutMs) {
    const m = await this.next(timeoutMs);
    if (m.binary) throw new Error(`expected a text frame, got binary ${m.data.toString('hex')}`);
    return m.data;
  }

  /** Messages that arrive within `ms` (for "nothing else arrives" checks). */
  async drain(ms) {
    await sleep(ms);
    return this.queue.splice(0);
  }

  send(data) {
    this.ws.send(data);
  }

  /** Resolves with {code, reason, at} once closed, or null after `timeoutMs`. */
  waitClose(timeoutMs = 3000) {
    return withTimeout(this.closed, timeoutMs, () => null);
  }

  get isClosed() {
    return this.closeInfo !== null;
  }

  close() {
    try {
      this.ws.terminate();
    } catch {
      // already closed
    }
  }
}

const open_ws = new Set();
process.on('exit', () => {
  for (const w of open_ws) w.close();
});

/** Opens a RawWs and waits until it is open (rejects with .status if the upgrade is refused). */
export async function openRawWs(url, opts) {
  const w = new RawWs(url, opts);
  open_ws.add(w);
  w.closed.then(() => open_ws.delete(w));
  await w.opened;
  return w;
}

/** A raw Socket.IO WebSocket to chatd at `baseUrl` (http://…) that completed CONNECT with `token`. */
export async function rawSocketIo(baseUrl, token) {
  const ws = await openRawWs(`${baseUrl.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const open = await ws.nextText();
  if (!open.startsWith('0{')) throw new Error(`expected an open packet, got ${JSON.stringify(open)}`);
  ws.send(`40${JSON.stringify({ token })}`);
  for (;;) {
    const m = await ws.nextText(5000);
    if (m.startsWith('40{')) return ws;
    if (m.startsWith('44')) throw new Error(`CONNECT refused: ${m}`);
  }
}

/**
 * Tries a WebSocket upgrade that must be refused. Resolves {status, text} (status of the HTTP
 * answer) or {opened: true} / {error} when it was not refused with an HTTP status.
 */
export async function wsRefusal(url, timeoutMs = 3000) {
  const w = new RawWs(url);
  open_ws.add(w);
  try {
    await withTimeout(w.opened, timeoutMs, () => Promise.reject(new Error('timeout')));
    // Opened: the server may still close it right away (e.g. a second WebSocket for a sid).
    const c = await w.waitClose(timeoutMs);
    w.close();
    return { opened: true, closedAfterOpen: c };
  } catch (e) {
    w.close();
    if (w.unexpected) return w.unexpected;
    return { error: e };
  }
}

/** Opens a raw Engine.IO WebSocket session; returns {ws, open (parsed), text (raw open packet)}. */
export async function wsHandshake(wsBase, { path = '/engine.io/', autoPong = true, query } = {}) {
  const ws = await openRawWs(eioUrl(wsBase, { path, transport: 'websocket', query }), { autoPong });
  const text = await ws.nextText();
  if (!text.startsWith('0')) throw new Error(`expected an open packet, got ${JSON.stringify(text)}`);
  return { ws, open: JSON.parse(text.slice(1)), text };
}

/**
 * Raw Socket.IO over WebSocket on `/socket.io/`: Engine.IO handshake, then CONNECT to `nsp` with
 * `auth`. Returns {ws, engineSid, connect (the raw CONNECT reply), sid}. With `expectAuthEvent`
 * (sio-conformance emits `auth` on connect), the `auth` event is consumed too and returned as
 * `authPacket`.
 */
export async function sioConnectWs(wsBase, { nsp = '/', auth, expectAuthEvent = true } = {}) {
  const { ws, open } = await wsHandshake(wsBase, { path: '/socket.io/' });
  const prefix = nsp === '/' ? '' : `${nsp},`;
  ws.send(`40${prefix}${auth === undefined ? '' : JSON.stringify(auth)}`);
  const connect = await ws.nextText();
  const expected = `40${prefix}`;
  if (!connect.startsWith(expected + '{')) throw new Error(`expected a CONNECT reply, got ${JSON.stringify(connect)}`);
  const body = JSON.parse(connect.slice(expected.length));
  let authPacket;
  if (expectAuthEvent) authPacket = await ws.nextText();
  return { ws, engineSid: open.sid, connect, sid: body.sid, body, authPacket };
}

// ---------------------------------------------------------------------------------------------
// socket.io-client

const clients = new Set();
process.on('exit', () => {
  for (const s of clients) {
    try {
      s.io.engine?.close();
    } catch {
      // gone
    }
  }
});

/** The three ways a browser client reaches the server. */
export const TRANSPORT_MODES = [
  { name: 'polling', opts: { transports: ['polling'] }, expect: 'polling' },
  { name: 'websocket', opts: { transports: ['websocket'] }, expect: 'websocket' },
  { name: 'polling→websocket', opts: { transports: ['polling', 'websocket'] }, expect: 'websocket' },
];

/**
 * Creates a socket.io-client socket (own Manager, no automatic reconnection unless asked) and
 * waits for `connect`. Rejects with the connect_error (err.message, err.data) otherwise.
 */
export async function connectClient(url, opts = {}, { timeoutMs = 8000 } = {}) {
  const socket = makeClient(url, opts);
  await awaitConnect(socket, timeoutMs);
  return socket;
}

/** A socket.io-client socket with test defaults (not yet connected, connect is automatic). */
export function makeClient(url, opts = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: 8000, ...opts });
  clients.add(socket);
  socket.on('disconnect', () => {
    if (!socket.io.opts.reconnection) clients.delete(socket);
  });
  return socket;
}

/** Connects and expects a connect_error; returns the error (throws if it connected). */
export async function expectConnectError(url, opts = {}, timeoutMs = 8000) {
  let socket;
  try {
    socket = await connectClient(url, opts, { timeoutMs });
  } catch (err) {
    return err;
  }
  socket.disconnect();
  throw new Error(`connected (id ${socket.id}) although a connect_error was expected`);
}

/** Disconnects every socket.io-client socket created here. */
export function closeAllClients() {
  for (const s of clients) {
    try {
      s.disconnect();
    } catch {
      // gone
    }
  }
  clients.clear();
}

/** Waits for `event` on an emitter (optionally one whose args satisfy `filter`); returns its args. */
export function waitEvent(emitter, event, { timeoutMs = 5000, filter } = {}) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no "${event}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (...args) => {
      if (filter && !filter(...args)) return;
      clearTimeout(t);
      emitter.off(event, on);
      resolve(args);
    };
    emitter.on(event, on);
  });
}

/** Polls `cond` every 20 ms until it returns truthy; throws `message()` after `timeoutMs`. */
export async function until(cond, { timeoutMs = 5000, message = () => 'condition not met' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${message()} (after ${timeoutMs} ms)`);
    await sleep(20);
  }
}

/** Records every occurrence of the given events on a socket: {event, args, at}. */
export class Recorder {
  constructor(socket, events) {
    this.socket = socket;
    this.log = [];
    this.handlers = events.map((event) => {
      const h = (...args) => this.log.push({ event, args, at: Date.now() });
      socket.on(event, h);
      return [event, h];
    });
  }

  of(event) {
    return this.log.filter((e) => e.event === event);
  }

  /** First args of every occurrence of `event`. */
  values(event) {
    return this.of(event).map((e) => e.args[0]);
  }

  /** Waits until at least `n` occurrences of `event`; returns their first args. */
  async waitCount(event, n, timeoutMs = 5000) {
    await until(() => this.of(event).length >= n, {
      timeoutMs,
      message: () => `${this.of(event).length}/${n} "${event}" events`,
    });
    return this.values(event);
  }

  /** Waits for an occurrence of `event` whose first arg satisfies `pred`; returns that arg. */
  async waitFor(event, pred = () => true, timeoutMs = 5000) {
    let found;
    await until(
      () => {
        found = this.of(event).find((e) => pred(e.args[0]));
        return found;
      },
      { timeoutMs, message: () => `no matching "${event}" (seen ${JSON.stringify(this.values(event)).slice(0, 500)})` },
    );
    return found.args[0];
  }

  clear() {
    this.log.length = 0;
  }

  stop() {
    for (const [e, h] of this.handlers) this.socket.off(e, h);
  }
}

/** emitWithAck with a timeout; resolves with the ack's first argument. */
export function emitAck(socket, event, payload, timeoutMs = 8000) {
  return socket.timeout(timeoutMs).emitWithAck(event, payload);
}

/** Resolves once the client's engine runs over WebSocket (after an upgrade, or right away). */
export async function waitWebSocket(socket, timeoutMs = 5000) {
  const engine = socket.io.engine;
  if (engine.transport.name === 'websocket') return;
  await waitEvent(engine, 'upgrade', { timeoutMs });
}

// ---------------------------------------------------------------------------------------------
// Metrics

/** Parses Prometheus text into [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].slice(1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of every sample of `name` on chatd's /metrics (undefined if absent). */
export async function metricValue(baseUrl, name) {
  const r = await fetch(`${baseUrl}/metrics`);
  const samples = parseMetrics(await r.text()).filter((s) => s.name === name);
  if (!samples.length) return undefined;
  return samples.reduce((a, s) => a + s.value, 0);
}

// ---------------------------------------------------------------------------------------------
// chatd users and sockets

/**
 * Connects a socket.io-client socket to chatd as the user of `token` (auth.token unless `opts`
 * say otherwise), recording `events` from the very start. Returns {socket, rec}; rejects with
 * the connect_error.
 */
export async function connectAs(url, token, { events = [], opts = {}, timeoutMs = 8000 } = {}) {
  const socket = makeClient(url, { auth: token === null ? undefined : { token }, ...opts });
  const rec = new Recorder(socket, events);
  await awaitConnect(socket, timeoutMs);
  return { socket, rec };
}

/** Waits for a socket's `connect`; rejects with its connect_error or after `timeoutMs`. */
export function awaitConnect(socket, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      socket.disconnect();
      reject(new Error(`no connect within ${timeoutMs} ms`));
    }, timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (err) => {
      cleanup();
      socket.disconnect();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(t);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}
