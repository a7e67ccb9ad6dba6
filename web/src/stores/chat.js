// The chat store: users (sidebar), presence, conversations, typing, sending.
//
// It is a plain zustand vanilla store built by a factory with its I/O injected, so the tests
// drive it with fakes:
//   api:       { users(), history(peerId, {before, limit}), send(peerId, payload) }  (REST)
//   transport: { isConnected(), request(event, payload, timeoutMs) -> Promise<ack>,
//                emit(event, payload), volatile(event, payload) }                       (Socket.IO)
// The app's instance lives in stores/index.js; lib/realtime.js feeds it socket events.

import { createStore } from 'zustand/vanilla'
import { compareIds, fromServer, maxId, mergeMessages, newestId, oldestId } from '../lib/messages.js'

export const HISTORY_PAGE = 50
/** A peer's "typing…" disappears this long after its last typing event. */
export const TYPING_TTL_MS = 3000
/** Bigger payloads (large images) go through REST: one Socket.IO packet is limited to ~1 MB. */
export const SOCKET_MAX_SEND = 900_000
export const SEND_TIMEOUT_MS = 15_000

function emptyConversation() {
  return {
    messages: [],
    /** 'idle' (never loaded) | 'loading' | 'ready' | 'error' */
    status: 'idle',
    /** the newest page has been loaded at least once */
    loaded: false,
    hasMore: false,
    loadingOlder: false,
    error: null,
    olderError: null,
    /** _id of the first unread message when the conversation was opened ("new messages") */
    unreadMarkerId: null,
    /** set after a reconnect without recovery: reload the newest page when opened */
    stale: false,
    /** {unread, upTo, clamped}: how the marker was placed (see placeMarker) */
    marker: null,
  }
}

/**
 * Puts the "new messages" marker before the `unread`-th newest message from the peer among those
 * up to `upTo` (the newest one when the conversation was opened). `clamped` says that fewer
 * messages than `unread` are loaded, so an older page moves the marker up.
 */
function placeMarker(conv, peerId, { unread, upTo }) {
  const fromPeer = conv.messages.filter((m) => m._id && m.senderId === peerId && compareIds(m._id, upTo) <= 0)
  if (fromPeer.length === 0) return conv
  const clamped = fromPeer.length < unread
  const first = fromPeer[Math.max(0, fromPeer.length - unread)]
  return { ...conv, unreadMarkerId: first._id, marker: { unread, upTo, clamped } }
}

function normalizeUser(u) {
  const out = { ...u }
  if (typeof out._id === 'string') out._id = out._id.toLowerCase()
  out.unreadCount = Number.isFinite(out.unreadCount) ? out.unreadCount : 0
  out.lastMessage = out.lastMessage && out.lastMessage._id ? fromServer(out.lastMessage) : null
  return out
}

function newerMessage(a, b) {
  if (!a) return b ?? null
  if (!b) return a
  return compareIds(a._id, b._id) >= 0 ? a : b
}

function initialState() {
  return {
    meId: null,
    users: [],
    /** 'idle' | 'loading' | 'ready' | 'error' */
    usersStatus: 'idle',
    usersError: null,
    /** userId -> true for every online user (from getOnlineUsers) */
    online: {},
    presenceKnown: false,
    activePeerId: null,
    /** peerId -> conversation (see emptyConversation) */
    conversations: {},
    /** peerId -> true while the peer is typing to us */
    typing: {},
    /** peerId -> id of the newest of my messages the peer has read */
    peerRead: {},
    /** 'idle' | 'connecting' | 'connected' | 'reconnecting' */
    connection: 'idle',
    /** the tab is visible: messages in the open conversation count as read */
    windowActive: true,
  }
}

export function createChatStore({
  api,
  transport,
  uuid = () => globalThis.crypto.randomUUID(),
  now = () => Date.now(),
  sendTimeoutMs = SEND_TIMEOUT_MS,
  typingTtlMs = TYPING_TTL_MS,
  pageSize = HISTORY_PAGE,
  socketMaxSend = SOCKET_MAX_SEND,
}) {
  const typingTimers = new Map()
  /** Bumped by reset(): answers to requests of a previous session are dropped. */
  let generation = 0
  let usersInFlight = null
  let usersAgain = false
  /** peerId -> the last upTo sent with markRead */
  const readSent = new Map()

  return createStore((set, get) => {
    const updateConversation = (peerId, fn) =>
      set((s) => {
        const c = s.conversations[peerId] ?? emptyConversation()
        const next = fn(c)
        if (next === c && s.conversations[peerId]) return s
        return { conversations: { ...s.conversations, [peerId]: next } }
      })

    const updateUser = (id, fn) =>
      set((s) => {
        const i = s.users.findIndex((u) => u._id === id)
        if (i < 0) return s
        const next = fn(s.users[i])
        if (next === s.users[i]) return s
        const users = s.users.slice()
        users[i] = next
        return { users }
      })

    const viewing = (peerId) => {
      const s = get()
      return s.activePeerId === peerId && s.windowActive
    }

    const clearTyping = (peerId) => {
      clearTimeout(typingTimers.get(peerId))
      typingTimers.delete(peerId)
      if (get().typing[peerId]) {
        set((s) => {
          const typing = { ...s.typing }
          delete typing[peerId]
          return { typing }
        })
      }
    }

    const findLocal = (peerId, clientMsgId) =>
      get().conversations[peerId]?.messages.find((m) => !m._id && m.clientMsgId === clientMsgId)

    const confirm = (peerId, clientMsgId, serverMessage) => {
      const msg = fromServer({ ...serverMessage, clientMsgId: serverMessage.clientMsgId || clientMsgId })
      updateConversation(peerId, (c) => {
        // mergeMessages drops the local copy (same clientMsgId) and dedupes by _id.
        const messages = mergeMessages(c.messages, [msg])
        return messages === c.messages ? c : { ...c, messages }
      })
      updateUser(peerId, (u) => {
        const lastMessage = newerMessage(u.lastMessage, msg)
        return lastMessage === u.lastMessage ? u : { ...u, lastMessage }
      })
    }

    const fail = (peerId, clientMsgId, error, code) => {
      updateConversation(peerId, (c) => {
        const i = c.messages.findIndex((m) => !m._id && m.clientMsgId === clientMsgId)
        if (i < 0) return c
        const messages = c.messages.slice()
        messages[i] = { ...messages[i], status: 'failed', error, errorCode: code ?? null }
        return { ...c, messages }
      })
    }

    /** Sends (or re-sends) the local message `clientMsgId`; resolves when it is settled. */
    const dispatch = async (peerId, clientMsgId) => {
      const gen = generation
      const m = findLocal(peerId, clientMsgId)
      if (!m) return
      const payload = { to: peerId, clientMsgId }
      if (m.text) payload.text = m.text
      if (m.image) payload.image = m.image
      const size = (m.text?.length ?? 0) + (m.image?.length ?? 0)
      let result
      try {
        if (transport.isConnected() && size <= socketMaxSend) {
          const ack = await transport.request('sendMessage', payload, sendTimeoutMs)
          if (ack && ack.status === 'ok' && ack.message && ack.message._id) {
            result = { ok: true, message: ack.message }
          } else {
            result = { ok: false, error: ack?.error || 'Message not sent', code: ack?.code ?? 'error' }
          }
        } else {
          // Large images, or the socket is down: the REST route takes the same clientMsgId.
          const body = { clientMsgId }
          if (m.text) body.text = m.text
          if (m.image) body.image = m.image
          const res = await api.send(peerId, body)
          if (res && res.data && res.data._id) result = { ok: true, message: res.data }
          else result = { ok: false, error: 'Message not sent', code: 'error' }
        }
      } catch (err) {
        result = {
          ok: false,
          error: err?.message || 'Message not sent',
          code: err?.status ? `http_${err.status}` : 'network',
        }
      }
      if (gen !== generation) return
      if (result.ok) confirm(peerId, clientMsgId, result.message)
      else fail(peerId, clientMsgId, result.error, result.code)
    }

    return {
      ...initialState(),

      /** Sets the signed-in user's id (messages are "mine" when senderId is this). */
      setMe(userId) {
        set({ meId: userId ? String(userId).toLowerCase() : null })
      },

      /** Forgets everything (logout); late answers of earlier requests are ignored. */
      reset() {
        generation++
        for (const t of typingTimers.values()) clearTimeout(t)
        typingTimers.clear()
        readSent.clear()
        usersInFlight = null
        usersAgain = false
        set(initialState())
      },

      setConnection(connection) {
        if (get().connection === connection) return
        // While the socket is down nobody's presence is known: show no one online rather than a
        // stale list. The server sends getOnlineUsers again on (re)connect.
        if (connection !== 'connected') set({ connection, online: {}, presenceKnown: false })
        else set({ connection })
      },

      /** The tab became visible/hidden. Becoming visible marks the open conversation read. */
      setWindowActive(active) {
        if (get().windowActive === active) return
        set({ windowActive: active })
        const peer = get().activePeerId
        if (active && peer) get().markRead(peer)
      },

      /** Fetches every other user (sidebar). Concurrent calls share one request plus one re-run. */
      async loadUsers() {
        if (usersInFlight) {
          usersAgain = true
          return usersInFlight
        }
        const gen = generation
        const run = async () => {
          if (get().users.length === 0) set({ usersStatus: 'loading', usersError: null })
          try {
            const res = await api.users()
            if (gen !== generation) return
            const list = (Array.isArray(res?.data) ? res.data : []).filter((u) => u && u._id).map(normalizeUser)
            set((s) => {
              const previous = new Map(s.users.map((u) => [u._id, u]))
              const users = list.map((u) => {
                const old = previous.get(u._id)
                // A live message may have arrived after the server answered.
                const lastMessage = newerMessage(u.lastMessage, old?.lastMessage ?? null)
                const unreadCount = s.activePeerId === u._id && s.windowActive ? 0 : u.unreadCount
                return { ...u, lastMessage, unreadCount }
              })
              const out = { users, usersStatus: 'ready', usersError: null }
              if (!s.presenceKnown) {
                out.online = Object.fromEntries(list.filter((u) => u.online).map((u) => [u._id, true]))
              }
              return out
            })
          } catch (err) {
            if (gen !== generation) return
            set((s) => ({
              usersStatus: s.users.length ? 'ready' : 'error',
              usersError: err?.message || 'Could not load users',
            }))
          }
        }
        usersInFlight = (async () => {
          do {
            usersAgain = false
            await run()
          } while (usersAgain && gen === generation)
        })()
        try {
          await usersInFlight
        } finally {
          if (gen === generation) usersInFlight = null
        }
      },

      /** getOnlineUsers: the full list of online user ids. */
      setOnlineUsers(ids) {
        const online = {}
        if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') online[id.toLowerCase()] = true
        set({ online, presenceKnown: true })
      },

      /** userOnline / userOffline deltas (not used by default; kept for completeness). */
      setUserOnline(id, isOnline) {
        if (typeof id !== 'string') return
        const key = id.toLowerCase()
        set((s) => {
          if (!!s.online[key] === isOnline) return s
          const online = { ...s.online }
          if (isOnline) online[key] = true
          else delete online[key]
          return { online }
        })
      },

      /** Opens the conversation with `peerId`: loads its newest page if needed, marks it read. */
      async openConversation(peerId) {
        peerId = String(peerId).toLowerCase()
        const s = get()
        const unread = s.users.find((u) => u._id === peerId)?.unreadCount ?? 0
        set({ activePeerId: peerId })
        updateConversation(peerId, (c) => (c.unreadMarkerId || c.marker ? { ...c, unreadMarkerId: null, marker: null } : c))
        const c = get().conversations[peerId]
        if (!c.loaded || c.stale || c.status === 'error') await get().loadLatest(peerId)
        if (get().activePeerId !== peerId) return
        if (unread > 0) {
          updateConversation(peerId, (conv) => {
            const fromPeer = conv.messages.filter((m) => m._id && m.senderId === peerId)
            if (fromPeer.length === 0) return conv
            return placeMarker(conv, peerId, { unread, upTo: fromPeer[fromPeer.length - 1]._id })
          })
        }
        if (viewing(peerId)) get().markRead(peerId)
      },

      /** No conversation is shown (e.g. the sidebar on a phone). */
      closeConversation() {
        if (get().activePeerId !== null) set({ activePeerId: null })
      },

      /** Loads (or refreshes) the newest history page of a conversation. */
      async loadLatest(peerId) {
        const gen = generation
        updateConversation(peerId, (c) => ({
          ...c,
          status: c.loaded && c.messages.length ? c.status : 'loading',
          error: null,
        }))
        try {
          const res = await api.history(peerId, { limit: pageSize })
          if (gen !== generation) return
          const page = (Array.isArray(res?.data) ? res.data : []).filter((m) => m && m._id).map(fromServer)
          const more = !!res?.hasMore
          updateConversation(peerId, (c) => {
            let messages
            let hasMore
            const known = newestId(c.messages)
            if (!c.loaded) {
              // First load: live messages that came in meanwhile are merged in.
              messages = mergeMessages(c.messages, page)
              hasMore = more
            } else if (more && page.length && known && compareIds(page[0]._id, known) > 0) {
              // Refresh after a long disconnection: the new page does not reach what we had,
              // so there may be a gap: start again from the newest page (keep unsent ones).
              messages = mergeMessages(
                c.messages.filter((m) => !m._id),
                page,
              )
              hasMore = true
            } else {
              messages = mergeMessages(c.messages, page)
              hasMore = c.hasMore
            }
            return { ...c, messages, hasMore, loaded: true, stale: false, status: 'ready', error: null }
          })
          // Forward-compatible: a server that reports the peer's read position gets read ticks
          // right after a reload (otherwise they come with the next messagesRead event).
          if (typeof res?.peerReadUpTo === 'string') get().onMessagesRead({ by: peerId, upTo: res.peerReadUpTo })
          // A refresh may bring messages that were unread while we looked at the conversation.
          if (viewing(peerId)) get().markRead(peerId)
        } catch (err) {
          if (gen !== generation) return
          updateConversation(peerId, (c) => ({
            ...c,
            status: c.loaded && c.messages.length ? 'ready' : 'error',
            error: err?.message || 'Could not load messages',
          }))
        }
      },

      /** Loads the page before the oldest loaded message (infinite scroll upwards). */
      async loadOlder(peerId) {
        const c = get().conversations[peerId]
        if (!c || !c.loaded || !c.hasMore || c.loadingOlder) return
        const before = oldestId(c.messages)
        if (!before) return
        const gen = generation
        updateConversation(peerId, (conv) => ({ ...conv, loadingOlder: true, olderError: null }))
        try {
          const res = await api.history(peerId, { before, limit: pageSize })
          if (gen !== generation) return
          const page = (Array.isArray(res?.data) ? res.data : []).filter((m) => m && m._id).map(fromServer)
          updateConversation(peerId, (conv) => {
            const next = {
              ...conv,
              messages: mergeMessages(conv.messages, page),
              hasMore: !!res?.hasMore,
              loadingOlder: false,
            }
            // More unread messages than were loaded: the marker moves up with the older page.
            return conv.marker?.clamped ? placeMarker(next, peerId, conv.marker) : next
          })
        } catch (err) {
          if (gen !== generation) return
          updateConversation(peerId, (conv) => ({
            ...conv,
            loadingOlder: false,
            olderError: err?.message || 'Could not load older messages',
          }))
        }
      },

      /** newMessage from the socket (a message to me, or mine from another tab). */
      receiveMessage(raw) {
        if (!raw || typeof raw !== 'object' || !raw._id || !raw.senderId || !raw.receiverId) return
        const m = fromServer(raw)
        const me = get().meId
        const mine = m.senderId === me
        if (!mine && m.receiverId !== me) return
        const peerId = mine ? m.receiverId : m.senderId
        const before = get().conversations[peerId]
        const known = before?.messages.some((x) => x._id === m._id) ?? false
        updateConversation(peerId, (c) => {
          const messages = mergeMessages(c.messages, [m])
          return messages === c.messages ? c : { ...c, messages }
        })
        const user = get().users.find((u) => u._id === peerId)
        if (!user) {
          // Someone new (just signed up, or not in our list yet): fetch the list again.
          get().loadUsers()
        } else {
          const fresh = !known && (!user.lastMessage || compareIds(m._id, user.lastMessage._id) > 0)
          updateUser(peerId, (u) => {
            const lastMessage = newerMessage(u.lastMessage, m)
            const unreadCount = !mine && fresh && !viewing(peerId) ? u.unreadCount + 1 : u.unreadCount
            if (lastMessage === u.lastMessage && unreadCount === u.unreadCount) return u
            return { ...u, lastMessage, unreadCount }
          })
          if (!mine && fresh && get().activePeerId === peerId && !get().windowActive) {
            updateConversation(peerId, (c) => (c.unreadMarkerId ? c : { ...c, unreadMarkerId: m._id }))
          }
        }
        if (!mine) {
          clearTyping(peerId)
          if (viewing(peerId)) get().markRead(peerId)
        }
      },

      /** Tells the server (and so the peer) that we have read the conversation up to its newest message. */
      markRead(peerId) {
        const c = get().conversations[peerId]
        let upTo = null
        if (c) {
          for (let i = c.messages.length - 1; i >= 0; i--) {
            const m = c.messages[i]
            if (m._id && m.senderId === peerId) {
              upTo = m._id
              break
            }
          }
        }
        updateUser(peerId, (u) => (u.unreadCount ? { ...u, unreadCount: 0 } : u))
        if (!upTo) return
        const sent = readSent.get(peerId)
        if (sent && compareIds(sent, upTo) >= 0) return
        readSent.set(peerId, upTo)
        transport.emit('markRead', { peerId, upTo })
      },

      /** messagesRead {by, upTo}: the peer read my messages up to `upTo`. */
      onMessagesRead(payload) {
        if (!payload || typeof payload.by !== 'string' || typeof payload.upTo !== 'string') return
        const by = payload.by.toLowerCase()
        const upTo = payload.upTo.toLowerCase()
        set((s) => {
          const next = maxId(s.peerRead[by], upTo)
          if (next === s.peerRead[by]) return s
          return { peerRead: { ...s.peerRead, [by]: next } }
        })
      },

      /** typing {from, isTyping}; the indicator clears itself after typingTtlMs without news. */
      onTyping(payload) {
        if (!payload || typeof payload.from !== 'string') return
        const from = payload.from.toLowerCase()
        if (!payload.isTyping) return clearTyping(from)
        clearTimeout(typingTimers.get(from))
        typingTimers.set(
          from,
          setTimeout(() => clearTyping(from), typingTtlMs),
        )
        if (!get().typing[from]) set((s) => ({ typing: { ...s.typing, [from]: true } }))
      },

      /** Emits typing {to, isTyping} (dropped while disconnected). */
      sendTyping(peerId, isTyping) {
        if (!transport.isConnected()) return
        transport.volatile('typing', { to: peerId, isTyping: !!isTyping })
      },

      /**
       * Sends a message optimistically: it shows at once as 'pending' (keyed by a new
       * clientMsgId), becomes 'sent' with the server's copy on the ack, or 'failed'.
       * Resolves to the clientMsgId once settled (null if there was nothing to send).
       */
      async sendMessage(peerId, { text = '', image = '' } = {}) {
        const body = typeof text === 'string' ? text.trim() : ''
        if (!body && !image) return null
        const clientMsgId = uuid()
        const local = {
          clientMsgId,
          senderId: get().meId,
          receiverId: peerId,
          text: body,
          image: image || '',
          createdAt: new Date(now()).toISOString(),
          status: 'pending',
        }
        updateConversation(peerId, (c) => ({ ...c, messages: mergeMessages(c.messages, [local]) }))
        await dispatch(peerId, clientMsgId)
        return clientMsgId
      },

      /** Sends a failed message again with the same clientMsgId (the server dedupes). */
      async retryMessage(peerId, clientMsgId) {
        const m = findLocal(peerId, clientMsgId)
        if (!m || m.status !== 'failed') return
        updateConversation(peerId, (c) => ({
          ...c,
          messages: c.messages.map((x) =>
            !x._id && x.clientMsgId === clientMsgId ? { ...x, status: 'pending', error: null, errorCode: null } : x,
          ),
        }))
        await dispatch(peerId, clientMsgId)
      },

      /** Removes a failed message that the user gives up on. */
      discardMessage(peerId, clientMsgId) {
        updateConversation(peerId, (c) => {
          const messages = c.messages.filter((x) => x._id || x.clientMsgId !== clientMsgId || x.status !== 'failed')
          return messages.length === c.messages.length ? c : { ...c, messages }
        })
      },

      /**
       * The socket connected again. With Socket.IO state recovery the missed events were
       * replayed; without it, refetch the sidebar and the open conversation's newest page and
       * mark the other conversations stale so they reload when opened.
       */
      onReconnected(recovered) {
        if (recovered) return
        const s = get()
        if (s.usersStatus !== 'idle') get().loadUsers()
        const active = s.activePeerId
        set((st) => {
          const conversations = {}
          for (const [id, c] of Object.entries(st.conversations)) {
            conversations[id] = id !== active && c.loaded ? { ...c, stale: true } : c
          }
          return { conversations }
        })
        if (active && get().conversations[active]?.loaded) get().loadLatest(active)
      },
    }
  })
}

/** Is `message` (mine) read by its receiver, given the store's peerRead map? */
export function isReadByPeer(message, peerRead) {
  if (!message._id) return false
  const upTo = peerRead[message.receiverId]
  return !!upTo && compareIds(message._id, upTo) <= 0
}
