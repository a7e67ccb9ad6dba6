// The Socket.IO connection: opened while someone is signed in, closed on logout, its events fed
// to the chat store.
//
// Authentication: the handshake carries the httpOnly `token` cookie (withCredentials) and, when
// this page got the JWT from login/signup, also `auth: {token}`. After a reload only the cookie
// is there, which is enough for a same-origin connection.

import { io } from 'socket.io-client'

let socket = null

/** The chat store's transport (see stores/chat.js) backed by the current socket. */
export const socketTransport = {
  isConnected: () => !!socket?.connected,
  request(event, payload, timeoutMs) {
    return new Promise((resolve, reject) => {
      if (!socket) return reject(new Error('Not connected'))
      socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        if (err) reject(new Error('The server did not answer in time'))
        else resolve(ack)
      })
    })
  },
  emit(event, payload) {
    socket?.emit(event, payload)
  },
  volatile(event, payload) {
    socket?.volatile.emit(event, payload)
  },
}

/** For tests and debugging. */
export function currentSocket() {
  return socket
}

function open(authStore, chatStore) {
  close(chatStore)
  const chat = chatStore.getState()
  chat.setMe(authStore.getState().user._id)
  chat.setConnection('connecting')
  const s = io({
    path: '/socket.io',
    withCredentials: true,
    auth: (cb) => {
      const token = authStore.getState().token
      cb(token ? { token } : {})
    },
    reconnectionDelay: 500,
    reconnectionDelayMax: 4000,
    timeout: 10000,
  })
  socket = s
  let retryTimer = null
  let refusals = 0 // consecutive refused handshakes: back off from 2 s up to 30 s

  s.on('connect', () => {
    if (socket !== s) return
    refusals = 0
    chatStore.getState().setConnection('connected')
    // Recovery replays what was missed; otherwise refetch what is on screen.
    chatStore.getState().onReconnected(s.recovered)
  })
  s.on('disconnect', (reason) => {
    if (socket !== s) return
    chatStore.getState().setConnection('reconnecting')
    // The server closed the session: Socket.IO does not reconnect by itself then.
    if (reason === 'io server disconnect') {
      clearTimeout(retryTimer)
      retryTimer = setTimeout(() => socket === s && s.connect(), 1000)
    }
  })
  s.on('connect_error', (err) => {
    if (socket !== s) return
    chatStore.getState().setConnection('reconnecting')
    if (!s.active) {
      // Refused by the server (e.g. "Unauthorized"): is the session still valid?
      authStore
        .getState()
        .checkAuth()
        .then((ok) => {
          if (socket !== s) return
          if (!ok && authStore.getState().status === 'anonymous') return // logged out: closes via subscribe
          clearTimeout(retryTimer)
          const delay = Math.min(30_000, 2000 * 2 ** refusals++)
          retryTimer = setTimeout(() => socket === s && s.connect(), delay)
        })
    }
    if (import.meta.env?.DEV) console.debug('socket connect_error', err?.message)
  })
  s.on('getOnlineUsers', (ids) => chatStore.getState().setOnlineUsers(ids))
  s.on('userOnline', (id) => chatStore.getState().setUserOnline(id, true))
  s.on('userOffline', (id) => chatStore.getState().setUserOnline(id, false))
  s.on('newMessage', (m) => chatStore.getState().receiveMessage(m))
  s.on('typing', (p) => chatStore.getState().onTyping(p))
  s.on('messagesRead', (p) => chatStore.getState().onMessagesRead(p))
  s.__chatdCleanup = () => clearTimeout(retryTimer)
}

function close(chatStore) {
  if (!socket) return
  const s = socket
  socket = null
  s.__chatdCleanup?.()
  s.removeAllListeners()
  s.disconnect()
  chatStore.getState().setConnection('idle')
}

/**
 * Connects while a user is signed in and follows login/logout. Also tells the chat store when
 * the tab is visible (only then do messages in the open conversation count as read).
 */
export function startRealtime(authStore, chatStore) {
  let currentUser = authStore.getState().user?._id ?? null
  if (currentUser) open(authStore, chatStore)
  authStore.subscribe((state) => {
    const id = state.user?._id ?? null
    if (id === currentUser) return
    currentUser = id
    if (id) {
      chatStore.getState().reset()
      open(authStore, chatStore)
    } else {
      close(chatStore)
      chatStore.getState().reset()
    }
  })
  if (typeof document !== 'undefined') {
    const update = () => chatStore.getState().setWindowActive(document.visibilityState === 'visible')
    document.addEventListener('visibilitychange', update)
    update()
  }
}
