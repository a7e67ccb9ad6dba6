// Fakes for the chat store's I/O: a scriptable REST api and Socket.IO transport.

import { createChatStore } from '../src/stores/chat.js'

export const ME = 'aaaaaaaaaaaaaaaaaaaaaaaa'
export const BOB = 'bbbbbbbbbbbbbbbbbbbbbbbb'
export const CAROL = 'cccccccccccccccccccccccc'
export const DAVE = 'dddddddddddddddddddddddd'

/** A promise with its resolve/reject exposed. */
export function deferred() {
  let resolve
  let reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** A 24-hex ObjectId-like id whose order follows `n` (time-ordered like the server's). */
export function oid(n) {
  return (0x60000000 + n).toString(16).padStart(8, '0') + '0000000000000000'
}

let clock = Date.UTC(2025, 0, 1, 12, 0, 0)

/** A server message. */
export function msg(n, from, to, extra = {}) {
  return {
    _id: oid(n),
    senderId: from,
    receiverId: to,
    text: `message ${n}`,
    image: '',
    createdAt: new Date(clock + n * 1000).toISOString(),
    updatedAt: new Date(clock + n * 1000).toISOString(),
    ...extra,
  }
}

export function user(id, name, extra = {}) {
  return {
    _id: id,
    email: `${name.toLowerCase()}@example.com`,
    full_name: name,
    profile_picture: '',
    bio: '',
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    online: false,
    unreadCount: 0,
    lastMessage: null,
    ...extra,
  }
}

/**
 * The fake transport records every emit; `request` returns a deferred the test settles with
 * `answer(i, ack)` / `timeout(i)`.
 */
export function fakeTransport() {
  const t = {
    connected: true,
    requests: [],
    emits: [],
    volatiles: [],
    isConnected: () => t.connected,
    request(event, payload, timeoutMs) {
      const d = deferred()
      t.requests.push({ event, payload, timeoutMs, ...d })
      return d.promise
    },
    emit(event, payload) {
      t.emits.push({ event, payload })
    },
    volatile(event, payload) {
      t.volatiles.push({ event, payload })
    },
  }
  return t
}

/** The fake REST api: each call records its arguments and returns the next queued answer. */
export function fakeApi() {
  const a = {
    calls: [],
    queues: { users: [], history: [], send: [] },
    /** Queues an answer (value, Error, or deferred) for the next call of `name`. */
    push(name, answer) {
      a.queues[name].push(answer)
    },
    next(name, args) {
      a.calls.push({ name, args })
      const answer = a.queues[name].shift()
      if (answer === undefined) return Promise.reject(new Error(`unexpected ${name} call`))
      if (answer instanceof Error) return Promise.reject(answer)
      if (answer && answer.promise) return answer.promise
      return Promise.resolve(answer)
    },
    users: () => a.next('users', []),
    history: (peerId, opts) => a.next('history', [peerId, opts]),
    send: (peerId, body) => a.next('send', [peerId, body]),
  }
  return a
}

/** A store wired to fakes, signed in as ME, with deterministic clientMsgIds. */
export function makeStore(options = {}) {
  const api = fakeApi()
  const transport = fakeTransport()
  let n = 0
  const store = createChatStore({
    api,
    transport,
    uuid: () => `client-${++n}`,
    now: () => Date.UTC(2025, 0, 1, 13, 0, 0),
    ...options,
  })
  store.getState().setMe(ME)
  return { store, api, transport }
}

/** Lets pending promise callbacks run. */
export const flush = () => new Promise((r) => setTimeout(r, 0))

export function conv(store, peerId) {
  return store.getState().conversations[peerId]
}

export function userOf(store, id) {
  return store.getState().users.find((u) => u._id === id)
}
