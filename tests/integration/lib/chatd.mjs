// Test harness for the chatd integration suite: spawns real chatd processes on port 0 with a fresh
// data directory, and offers small HTTP helpers (JSON requests, a cookie jar, JWT signing).
//
// Every process started here is killed when the test file's process exits, so a failing test never
// leaves a chatd behind; tests still call stop()/stopAll() in after hooks to check exit codes.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const CHATD_BIN = process.env.CHATD_BIN || '/work/main/build/bin/chatd';
export const JWT_SECRET = 'test-secret-0123456789';
const LISTENING_RE = /listening on http:\/\/[^\s:]+:(\d+)/;

const live = new Set(); // running ChildProcess objects
const temp_dirs = new Set();

process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of temp_dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});

/** A fresh temporary directory, removed when the test process exits. */
export function makeTempDir(prefix = 'chatd-it-') {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temp_dirs.add(d);
  return d;
}

/** Environment for chatd: only what a process needs, so the caller's JWT_SECRET etc. never leak in. */
function baseEnv(extra) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin', HOME: process.env.HOME || '/tmp' };
  for (const k of ['LANG', 'LC_ALL', 'TZ', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  for (const [k, v] of Object.entries(extra || {})) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/**
 * Spawns `bin` with piped output, tracked in `track` (a Set whose processes are killed when the
 * test process exits; default: this module's, which stopAll() also kills) and collecting both
 * streams. Returns {proc, stdout(), stderr(), output()} (output: both, in arrival order).
 */
export function spawnTracked(bin, argv, { env, cwd, track = live } = {}) {
  const proc = spawn(bin, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  track.add(proc);
  proc.on('exit', () => track.delete(proc));
  let out = '';
  let err = '';
  let both = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    out += d;
    both += d;
  });
  proc.stderr.on('data', (d) => {
    err += d;
    both += d;
  });
  return { proc, stdout: () => out, stderr: () => err, output: () => both };
}

function waitExit(proc, timeoutMs) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode });
      return;
    }
    let timer = null;
    const onExit = (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal });
    };
    proc.once('exit', onExit);
    if (timeoutMs) {
      timer = setTimeout(() => {
        proc.removeListener('exit', onExit);
        resolve({ code: null, signal: null, timedOut: true });
      }, timeoutMs);
    }
  });
}

/**
 * Spawns chatd with the standard test flags and waits until it logs its listening address.
 * @param {object} o
 * @param {string[]} [o.args] extra flags, appended after the defaults (later flags override)
 * @param {object} [o.env] extra environment (a value of undefined/null removes the variable)
 * @param {string} [o.dataDir] reuse a data directory (e.g. to restart on the same data)
 * @param {string} [o.cwd] working directory (where a .env file would be read); fresh by default
 * @param {string[]} [o.baseArgs] replaces the default flags entirely
 * @param {boolean} [o.rateLimitsOff] pass `--rate-limit-* off` (default true)
 * @returns {Promise<{url, port, dataDir, proc, stop(signal?, timeoutMs?) → exit code, output(), stdout(), stderr()}>}
 */
/**
 * Resolves with the port of the first match of `re` (group 1) in `text()` as `proc` writes its
 * output; rejects when `proc` cannot start, exits first, or says nothing within `timeoutMs` (then
 * it is killed). `text()` must already collect stdout/stderr (register those listeners first);
 * `describe()` goes into the error messages.
 */
export function waitForListening(proc, re, { name, bin, timeoutMs, text, describe = text }) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(v);
    };
    const check = () => {
      const m = re.exec(text());
      if (m) finish(resolve, Number(m[1]));
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    proc.on('error', (e) => finish(reject, new Error(`cannot spawn ${bin}: ${e.message}`)));
    proc.on('exit', (code, signal) =>
      finish(reject, new Error(`${name} exited (code ${code}, signal ${signal}) before listening\n${describe()}`)),
    );
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      finish(reject, new Error(`${name} did not report its listening line within ${timeoutMs} ms\n${describe()}`));
    }, timeoutMs);
  });
}

export async function startChatd({
  args = [],
  env = {},
  dataDir,
  cwd,
  baseArgs,
  rateLimitsOff = true,
  timeoutMs = 10000,
} = {}) {
  const dir = dataDir || makeTempDir('chatd-data-');
  const workdir = cwd || makeTempDir('chatd-cwd-');
  const defaults = baseArgs || [
    '--host', '127.0.0.1',
    '--port', '0',
    '--data-dir', dir,
    '--jwt-secret', JWT_SECRET,
    ...(rateLimitsOff ? ['--rate-limit-api', 'off', '--rate-limit-auth', 'off'] : []),
    '--log-level', 'info',
  ];
  const argv = [...defaults, ...args];
  const { proc, stdout, stderr } = spawnTracked(CHATD_BIN, argv, { cwd: workdir, env: baseEnv(env) });
  const describe = () =>
    `chatd ${argv.join(' ')}\n--- stdout ---\n${stdout().slice(-4000)}\n--- stderr ---\n${stderr().slice(-4000)}`;
  const port = await waitForListening(proc, LISTENING_RE, {
    name: 'chatd',
    bin: CHATD_BIN,
    timeoutMs,
    text: () => stdout() + stderr(),
    describe,
  });

  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    dataDir: dir,
    cwd: workdir,
    proc,
    output: () => stdout() + stderr(),
    stdout,
    stderr,
    describe,
    /** Sends `signal` and waits for exit; returns the exit code (or "signal:<NAME>" if killed). */
    async stop(signal = 'SIGTERM', timeout = 15000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      let r = await waitExit(proc, timeout);
      if (r.timedOut) {
        proc.kill('SIGKILL');
        r = await waitExit(proc, 5000);
        return `timeout: chatd did not exit within ${timeout} ms after ${signal}`;
      }
      return r.code !== null ? r.code : `signal:${r.signal}`;
    },
  };
}

/** Kills every chatd still running in this test process (use in after/afterEach hooks). */
export async function stopAll() {
  const procs = [...live];
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => waitExit(p, 5000)));
}

/**
 * Runs chatd to completion (for --help and invalid-config checks) with raw argv.
 * @returns {Promise<{code, signal, stdout, stderr, timedOut}>}
 */
export async function runChatd(argv, { env = {}, cwd, timeoutMs = 8000 } = {}) {
  const { proc, stdout, stderr } = spawnTracked(CHATD_BIN, argv, {
    cwd: cwd || makeTempDir('chatd-cwd-'),
    env: baseEnv(env),
  });
  const spawnError = new Promise((resolve) => proc.on('error', resolve));
  const r = await Promise.race([waitExit(proc, timeoutMs), spawnError.then((e) => ({ error: e }))]);
  if (r.error) throw new Error(`cannot spawn ${CHATD_BIN}: ${r.error.message}`);
  if (r.timedOut) {
    proc.kill('SIGKILL');
    await waitExit(proc, 5000);
  }
  // let the pipes drain
  await new Promise((res) => setImmediate(res));
  return { code: r.code, signal: r.signal, stdout: stdout(), stderr: stderr(), timedOut: !!r.timedOut };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/** Parses `Set-Cookie` values into [{name, value, attrs: {lowercased name: value|true}, raw}]. */
export function parseSetCookies(headers) {
  const list = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [];
  return list.map((raw) => {
    const [pair, ...rest] = raw.split(';');
    const eq = pair.indexOf('=');
    const attrs = {};
    for (const a of rest) {
      const t = a.trim();
      if (!t) continue;
      const i = t.indexOf('=');
      if (i < 0) attrs[t.toLowerCase()] = true;
      else attrs[t.slice(0, i).trim().toLowerCase()] = t.slice(i + 1).trim();
    }
    return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attrs, raw };
  });
}

/**
 * A client bound to one server, with a cookie jar and an optional bearer token.
 * request() never throws on HTTP errors; it returns {status, headers, body, text, cookies}.
 */
export class Client {
  constructor(baseUrl, { bearer, useCookies = true } = {}) {
    this.base = baseUrl;
    this.jar = new Map();
    this.bearer = bearer || null;
    this.useCookies = useCookies;
  }

  cookieHeader() {
    return [...this.jar.entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  absorb(headers) {
    const cookies = parseSetCookies(headers);
    for (const c of cookies) {
      const maxAge = c.attrs['max-age'];
      const expires = c.attrs.expires ? Date.parse(c.attrs.expires) : NaN;
      if ((maxAge !== undefined && Number(maxAge) <= 0) || (!Number.isNaN(expires) && expires <= Date.now()) || c.value === '') {
        this.jar.delete(c.name);
      } else {
        this.jar.set(c.name, c.value);
      }
    }
    return cookies;
  }

  /**
   * @param {string} method
   * @param {string} p path (may include a query)
   * @param {object} [o]
   * @param {*} [o.json] serialised as the JSON body with Content-Type application/json
   * @param {string|Buffer} [o.body] raw body (give Content-Type in headers yourself)
   * @param {object} [o.headers]
   * @param {boolean} [o.auth] send cookies/bearer (default true)
   */
  async request(method, p, { json, body, headers = {}, auth = true, signal } = {}) {
    const h = { ...headers };
    let b = body;
    if (json !== undefined) {
      b = JSON.stringify(json);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    if (auth && this.useCookies && this.jar.size && !('cookie' in h)) h.cookie = this.cookieHeader();
    if (auth && this.bearer && !('authorization' in h)) h.authorization = `Bearer ${this.bearer}`;
    const res = await fetch(this.base + p, { method, headers: h, body: b, redirect: 'manual', signal });
    const buf = Buffer.from(await res.arrayBuffer());
    const text = buf.toString('utf8');
    let parsed;
    const ct = res.headers.get('content-type') || '';
    if (ct.includes('json') || /^\s*[[{]/.test(text)) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    const cookies = this.absorb(res.headers);
    return { status: res.status, headers: res.headers, body: parsed, text, buffer: buf, cookies };
  }

  get(p, o) {
    return this.request('GET', p, o);
  }
  post(p, json, o = {}) {
    return this.request('POST', p, { ...o, json });
  }
  put(p, json, o = {}) {
    return this.request('PUT', p, { ...o, json });
  }
}

/** One-off JSON request without a jar. */
export function request(baseUrl, method, p, o) {
  return new Client(baseUrl, { useCookies: false }).request(method, p, o);
}

let seq = 0;
/** A unique, valid e-mail address. */
export function uniqueEmail(tag = 'user') {
  seq += 1;
  return `${tag}.${process.pid}.${seq}.${randomBytes(3).toString('hex')}@example.test`;
}

/**
 * Signs up a fresh user and returns a Client logged in with the cookie, plus the user/token.
 * Throws (with the response) if signup does not return 201.
 */
export async function signupUser(baseUrl, overrides = {}) {
  const client = new Client(baseUrl);
  const body = {
    email: uniqueEmail(),
    password: 'pw-' + randomBytes(6).toString('hex'),
    full_name: 'Test User ' + (seq + 1),
    ...overrides,
  };
  const r = await client.post('/api/v1/auth/signup', body);
  if (r.status !== 201 || !r.body || !r.body.user || !r.body.token) {
    throw new Error(`signup failed: ${r.status} ${r.text}`);
  }
  return { client, user: r.body.user, token: r.body.token, email: body.email, password: body.password, res: r };
}

/** Client that authenticates only with `Authorization: Bearer`. */
export function bearerClient(baseUrl, token) {
  return new Client(baseUrl, { bearer: token, useCookies: false });
}

// ---------------------------------------------------------------------------------------------
// JWT

const b64url = (buf) => Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

/** HS256 JWT like chatd's: header {"alg":"HS256","typ":"JWT"}, payload {userId, iat, exp}. */
export function signJwt(payload, secret = JWT_SECRET, header = { alg: 'HS256', typ: 'JWT' }) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(payload));
  const sig = b64url(createHmac('sha256', secret).update(`${h}.${p}`).digest());
  return `${h}.${p}.${sig}`;
}

/** Token for userId valid for `ttl` seconds from now (negative ttl → already expired). */
export function tokenFor(userId, { ttl = 3600, secret = JWT_SECRET, iat } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const issued = iat !== undefined ? iat : ttl < 0 ? now + ttl - 60 : now;
  return signJwt({ userId, iat: issued, exp: now + ttl }, secret);
}

/** Decodes (without verifying) a JWT's header and payload. */
export function decodeJwt(token) {
  const [h, p] = token.split('.');
  const dec = (s) => JSON.parse(Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  return { header: dec(h), payload: dec(p) };
}

// ---------------------------------------------------------------------------------------------
// Misc

/** A syntactically valid 24-hex id that no user/message has. */
export function randomObjectId() {
  return randomBytes(12).toString('hex');
}

export const OBJECT_ID_RE = /^[0-9a-f]{24}$/i;

/** Runs fn over items with at most `limit` in flight; returns results in input order. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True when a server can listen on 127.0.0.1:port now. */
function canListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralLow() {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low >= 12000) return low;
  } catch {}
  return 32768;
}

const portsGiven = new Set();

/**
 * A port nobody listens on now, drawn at random below the kernel's ephemeral range: a port from
 * listen(0) lies in that range, where every outgoing connection of the tests running in parallel
 * takes its local port, and one of them could take it before the server it is meant for binds
 * ("Address already in use"). With `alsoFreeAt`, port + alsoFreeAt is free and below the range
 * too (a Redis Cluster node's bus port is port + 10000). Never the same port twice per process.
 */
export async function freePort({ alsoFreeAt = 0 } = {}) {
  const span = ephemeralLow() - 10000 - alsoFreeAt;
  for (;;) {
    const p = 10000 + Math.floor(Math.random() * span);
    if (portsGiven.has(p) || (alsoFreeAt && portsGiven.has(p + alsoFreeAt))) continue;
    if (!(await canListen(p)) || (alsoFreeAt && !(await canListen(p + alsoFreeAt)))) continue;
    portsGiven.add(p);
    if (alsoFreeAt) portsGiven.add(p + alsoFreeAt);
    return p;
  }
}

/**
 * Raw TCP exchange: writes `data`, collects everything the server sends until it closes the
 * connection or `timeoutMs` passes. Returns {text, closed, ms}.
 */
export function rawExchange(port, data, { timeoutMs = 5000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect(port, host);
    let text = '';
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('connect', () => {
      if (data !== null && data !== undefined && data !== '') sock.write(data);
    });
    sock.on('data', (d) => (text += d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

// Small, valid images (magic bytes are what chatd checks).
export const IMAGES = {
  // 1x1 transparent PNG
  png: Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    'base64',
  ),
  // 1x1 GIF
  gif: Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64'),
  // JPEG: SOI + APP0/JFIF header + EOI (enough for magic-byte sniffing)
  jpeg: Buffer.concat([
    Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]),
    Buffer.from('JFIF\0', 'latin1'),
    Buffer.from([0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xd9]),
  ]),
  // WebP: RIFF <size> WEBP VP8L + tiny lossless payload
  webp: Buffer.from('UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==', 'base64'),
};

/** `data:<mime>;base64,<bytes>` */
export function dataUrl(mime, buf) {
  return `data:${mime};base64,${Buffer.from(buf).toString('base64')}`;
}

/** A PNG of roughly `size` bytes: the real PNG signature + header followed by filler. */
export function pngOfSize(size) {
  const head = IMAGES.png;
  if (size <= head.length) return head.subarray(0, size);
  return Buffer.concat([head, randomBytes(size - head.length)]);
}
