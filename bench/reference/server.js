// Reference peer for chat-bench: a Node.js + Socket.IO 4 chat server with the old system's
// real-time semantics, kept in memory (no database, no Redis, no Kafka): the best case for Node.
//
//   node server.js [--port 5100] [--host 127.0.0.1] [--jwt-secret S] [--ping-interval 25000]
//                  [--ping-timeout 20000]
//
// REST (only what the benchmark needs, same shapes as chatd):
//   POST /api/v1/auth/signup {email, password, full_name} → 201 {message, user, token} + cookie
//   POST /api/v1/auth/login  {email, password}            → 200 {message, user, token}
//   GET  /healthz                                         → 200 {status:"ok"}
// Socket.IO on /socket.io/ (see docs/REALTIME.md of chatd):
//   auth: JWT from auth.token, the `token` cookie or `Authorization: Bearer`; "Unauthorized" otherwise
//   getOnlineUsers on connect and on every change, unless auth.presence === "none"
//   sendMessage {to, text?, image?, clientMsgId?} + ack {status:"ok", message} | {status:"error", error, code}
//   newMessage to every socket of the receiver and to the sender's other sockets
//   typing {to, isTyping} → typing {from, isTyping}
// Passwords are kept as a SHA-256 digest (no bcrypt): sign-up speed is not what is measured.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

import { Server } from 'socket.io';

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}

const PORT = Number(flag('port', process.env.SERVER_PORT || 5100));
const HOST = flag('host', '127.0.0.1');
const JWT_SECRET = flag('jwt-secret', process.env.JWT_SECRET || randomBytes(32).toString('hex'));
const JWT_TTL = 7 * 24 * 3600;
const PING_INTERVAL = Number(flag('ping-interval', 25000));
const PING_TIMEOUT = Number(flag('ping-timeout', 20000));
const MAX_TEXT = 4000;

// ---- ids and tokens -----------------------------------------------------------------------------

const processUnique = randomBytes(5);
let counter = randomBytes(3).readUIntBE(0, 3);
/** A MongoDB-style ObjectId: 4-byte seconds, 5 random bytes, 3-byte counter, as 24 hex digits. */
function objectId() {
  const b = Buffer.allocUnsafe(12);
  b.writeUInt32BE(Math.floor(Date.now() / 1000), 0);
  processUnique.copy(b, 4);
  counter = (counter + 1) & 0xffffff;
  b.writeUIntBE(counter, 9, 3);
  return b.toString('hex');
}
const OBJECT_ID = /^[0-9a-f]{24}$/;

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const JWT_HEADER = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function signJwt(userId) {
  const iat = Math.floor(Date.now() / 1000);
  const payload = b64url(JSON.stringify({ userId, iat, exp: iat + JWT_TTL }));
  const sig = createHmac('sha256', JWT_SECRET).update(`${JWT_HEADER}.${payload}`).digest('base64url');
  return `${JWT_HEADER}.${payload}.${sig}`;
}

/** The userId of a valid token, or null. */
function verifyJwt(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const expected = createHmac('sha256', JWT_SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) return null;
  try {
    const p = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof p.exp === 'number' && p.exp < Date.now() / 1000) return null;
    return typeof p.userId === 'string' ? p.userId : null;
  } catch {
    return null;
  }
}

// ---- the in-memory "database" -------------------------------------------------------------------

const usersById = new Map(); // _id → user
const usersByEmail = new Map(); // email → {user, passwordHash}
const messages = []; // every message, in order (what a store would hold)
const byClientMsgId = new Map(); // `${senderId}:${clientMsgId}` → message (idempotent retries)

const hashPassword = (pw) => createHash('sha256').update(pw).digest('hex');

function publicUser(u) {
  return { ...u };
}

// ---- REST -----------------------------------------------------------------------------------------

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readJson(req, limit = 1 << 20) {
  return new Promise((resolve) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        req.destroy();
        resolve(undefined);
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', () => resolve(undefined));
  });
}

function authCookie(token) {
  return `token=${token}; Max-Age=${JWT_TTL}; Path=/; HttpOnly; SameSite=Strict`;
}

async function signup(req, res) {
  const body = await readJson(req);
  if (!body || typeof body !== 'object') return send(res, 400, { message: 'Malformed JSON in request body' });
  const { email, password, full_name: fullName } = body;
  const errors = {};
  if (typeof email !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) errors.email = ['Invalid email'];
  if (typeof password !== 'string' || password.length < 6) errors.password = ['Password must be at least 6 characters'];
  if (typeof fullName !== 'string' || fullName.trim() === '') errors.full_name = ['Full name is required'];
  if (Object.keys(errors).length) return send(res, 400, { message: 'Validation error', errors });
  const key = email.toLowerCase();
  if (usersByEmail.has(key)) return send(res, 400, { message: 'User account already exists with this email' });
  const now = new Date().toISOString();
  const user = { _id: objectId(), email: key, full_name: fullName, profile_picture: '', bio: '', createdAt: now, updatedAt: now };
  usersById.set(user._id, user);
  usersByEmail.set(key, { user, passwordHash: hashPassword(password) });
  const token = signJwt(user._id);
  send(res, 201, { message: 'User created successfully', user: publicUser(user), token }, { 'Set-Cookie': authCookie(token) });
}

async function login(req, res) {
  const body = await readJson(req);
  if (!body || typeof body !== 'object') return send(res, 400, { message: 'Malformed JSON in request body' });
  const entry = typeof body.email === 'string' ? usersByEmail.get(body.email.toLowerCase()) : undefined;
  if (!entry || typeof body.password !== 'string' || entry.passwordHash !== hashPassword(body.password))
    return send(res, 400, { message: 'Invalid Credentials' });
  const token = signJwt(entry.user._id);
  send(res, 200, { message: 'Logged in successfully', user: publicUser(entry.user), token }, { 'Set-Cookie': authCookie(token) });
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  if (req.method === 'POST' && (path === '/api/v1/auth/signup' || path === '/api/auth/signup')) return void signup(req, res);
  if (req.method === 'POST' && (path === '/api/v1/auth/login' || path === '/api/auth/login')) return void login(req, res);
  if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
  if (path.startsWith('/socket.io/')) return; // handled by Socket.IO's own listener
  send(res, 404, { success: false, message: `Route ${path} not found` });
});

// ---- Socket.IO ----------------------------------------------------------------------------------

const io = new Server(server, {
  pingInterval: PING_INTERVAL,
  pingTimeout: PING_TIMEOUT,
  serveClient: false,
  cors: { origin: ['http://localhost:5173'], credentials: true },
});

const onlineSockets = new Map(); // userId → number of connected sockets

function tokenOf(socket) {
  const auth = socket.handshake.auth || {};
  if (typeof auth.token === 'string' && auth.token) return auth.token;
  const cookie = socket.handshake.headers.cookie || '';
  const m = /(?:^|;\s*)token=([^;]+)/.exec(cookie);
  if (m) return m[1];
  const h = socket.handshake.headers.authorization || '';
  if (/^bearer /i.test(h)) return h.slice(7).trim();
  return null;
}

io.use((socket, next) => {
  const userId = verifyJwt(tokenOf(socket));
  if (!userId || !usersById.has(userId)) return next(new Error('Unauthorized'));
  socket.data.userId = userId;
  next();
});

function broadcastOnline() {
  io.to('presence:full').emit('getOnlineUsers', [...onlineSockets.keys()]);
}

function ackError(ack, error, code) {
  if (typeof ack === 'function') ack({ status: 'error', error, code });
}

io.on('connection', (socket) => {
  const userId = socket.data.userId;
  const presence = (socket.handshake.auth || {}).presence;
  socket.join(userId);
  const wasOnline = onlineSockets.has(userId);
  onlineSockets.set(userId, (onlineSockets.get(userId) || 0) + 1);
  if (presence !== 'none') {
    socket.join('presence:full');
    if (wasOnline) socket.emit('getOnlineUsers', [...onlineSockets.keys()]);
  }
  if (!wasOnline) broadcastOnline();

  socket.on('sendMessage', (payload, ack) => {
    if (!payload || typeof payload !== 'object') return ackError(ack, 'sendMessage expects an object {to, text?, image?, clientMsgId?}', 'validation');
    const { to, text = '', image = '', clientMsgId } = payload;
    if (typeof to !== 'string' || typeof text !== 'string' || typeof image !== 'string' || (clientMsgId !== undefined && typeof clientMsgId !== 'string'))
      return ackError(ack, 'to, text, image and clientMsgId must be strings', 'validation');
    if (!text && !image) return ackError(ack, 'Message must contain text or image', 'validation');
    if (text.length > MAX_TEXT) return ackError(ack, `Text must be at most ${MAX_TEXT} characters`, 'validation');
    const receiverId = to.toLowerCase();
    if (!OBJECT_ID.test(receiverId) || !usersById.has(receiverId)) return ackError(ack, 'User not found', 'not_found');
    if (clientMsgId) {
      const prev = byClientMsgId.get(`${userId}:${clientMsgId}`);
      if (prev) {
        if (typeof ack === 'function') ack({ status: 'ok', message: prev });
        return;
      }
    }
    const now = new Date().toISOString();
    const message = { _id: objectId(), senderId: userId, receiverId, text, image, createdAt: now, updatedAt: now };
    if (clientMsgId) {
      message.clientMsgId = clientMsgId;
      byClientMsgId.set(`${userId}:${clientMsgId}`, message);
    }
    messages.push(message);
    io.to(receiverId).emit('newMessage', message);
    socket.to(userId).emit('newMessage', message); // the sender's other tabs
    if (typeof ack === 'function') ack({ status: 'ok', message });
  });

  socket.on('typing', (payload) => {
    if (!payload || typeof payload.to !== 'string' || payload.to === userId) return;
    io.to(payload.to.toLowerCase()).emit('typing', { from: userId, isTyping: payload.isTyping === true });
  });

  socket.on('disconnect', () => {
    const n = (onlineSockets.get(userId) || 1) - 1;
    if (n > 0) onlineSockets.set(userId, n);
    else {
      onlineSockets.delete(userId);
      broadcastOnline();
    }
  });
});

server.listen(PORT, HOST, () => {
  const { address, port } = server.address();
  console.log(`reference server (Node ${process.version}, socket.io 4) listening on http://${address}:${port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    io.close();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
