import { describe, expect, it } from 'vitest'
import { mergeMessages, messageKey } from '../src/lib/messages.js'
import { BOB, CAROL, ME, conv, deferred, flush, makeStore, msg, oid, user } from './helpers.js'

const ids = (list) => list.map((m) => m._id ?? `local:${m.clientMsgId}`)

describe('mergeMessages', () => {
  it('dedupes by _id and keeps confirmed messages sorted by _id', () => {
    const a = [msg(1, BOB, ME), msg(3, BOB, ME)]
    const out = mergeMessages(a, [msg(2, ME, BOB), msg(3, BOB, ME), msg(1, BOB, ME)])
    expect(ids(out)).toEqual([oid(1), oid(2), oid(3)])
  })

  it('returns the same list when nothing changes', () => {
    const a = mergeMessages([], [msg(1, BOB, ME), msg(2, BOB, ME)])
    expect(mergeMessages(a, [msg(2, BOB, ME)])).toBe(a)
    expect(mergeMessages(a, [])).toBe(a)
  })

  it('updates a known message with the newer copy', () => {
    const a = mergeMessages([], [msg(1, BOB, ME, { text: 'old' })])
    const out = mergeMessages(a, [msg(1, BOB, ME, { text: 'new' })])
    expect(out).toHaveLength(1)
    expect(out[0].text).toBe('new')
  })

  it('replaces a pending message by the confirmed one with the same clientMsgId and sender', () => {
    const pending = { clientMsgId: 'c1', senderId: ME, receiverId: BOB, text: 'hi', status: 'pending' }
    const other = { clientMsgId: 'c2', senderId: ME, receiverId: BOB, text: 'yo', status: 'pending' }
    const a = mergeMessages([], [msg(1, BOB, ME), pending, other])
    expect(ids(a)).toEqual([oid(1), 'local:c1', 'local:c2'])
    const out = mergeMessages(a, [msg(5, ME, BOB, { text: 'hi', clientMsgId: 'c1' })])
    expect(ids(out)).toEqual([oid(1), oid(5), 'local:c2'])
    expect(out[1].status).toBe('sent')
  })

  it('does not let a peer message with the same clientMsgId replace my pending message', () => {
    const pending = { clientMsgId: 'c1', senderId: ME, receiverId: BOB, text: 'hi', status: 'pending' }
    const out = mergeMessages([pending], [msg(5, BOB, ME, { clientMsgId: 'c1' })])
    expect(ids(out)).toEqual([oid(5), 'local:c1'])
  })

  it('ignores a local copy of a message that is already confirmed', () => {
    const a = mergeMessages([], [msg(5, ME, BOB, { clientMsgId: 'c1' })])
    const out = mergeMessages(a, [{ clientMsgId: 'c1', senderId: ME, status: 'pending' }])
    expect(out).toBe(a)
  })

  it('gives messages stable keys', () => {
    expect(messageKey(msg(1, BOB, ME))).toBe(oid(1))
    expect(messageKey({ clientMsgId: 'x' })).toBe('local:x')
  })
})

describe('history pages and live messages', () => {
  it('loads the newest page, then older pages with before=<oldest id>, without duplicates', async () => {
    const { store, api } = makeStore({ pageSize: 3 })
    api.push('users', { data: [user(BOB, 'Bob')] })
    await store.getState().loadUsers()
    api.push('history', { data: [msg(4, BOB, ME), msg(5, ME, BOB), msg(6, BOB, ME)], hasMore: true })
    await store.getState().openConversation(BOB)
    expect(api.calls.at(-1)).toEqual({ name: 'history', args: [BOB, { limit: 3 }] })
    expect(conv(store, BOB)).toMatchObject({ status: 'ready', loaded: true, hasMore: true })
    expect(ids(conv(store, BOB).messages)).toEqual([oid(4), oid(5), oid(6)])

    // The older page overlaps by one message (e.g. the server's page boundary moved).
    api.push('history', { data: [msg(2, BOB, ME), msg(3, ME, BOB), msg(4, BOB, ME)], hasMore: false })
    await store.getState().loadOlder(BOB)
    expect(api.calls.at(-1)).toEqual({ name: 'history', args: [BOB, { before: oid(4), limit: 3 }] })
    expect(ids(conv(store, BOB).messages)).toEqual([oid(2), oid(3), oid(4), oid(5), oid(6)])
    expect(conv(store, BOB).hasMore).toBe(false)

    // No more pages: loadOlder does nothing.
    const calls = api.calls.length
    await store.getState().loadOlder(BOB)
    expect(api.calls.length).toBe(calls)
  })

  it('merges live messages that arrive while the first page loads', async () => {
    const { store, api } = makeStore()
    const page = deferred()
    api.push('history', page)
    const opening = store.getState().openConversation(BOB)
    expect(conv(store, BOB).status).toBe('loading')
    // Two live messages: one is also in the page, one is newer.
    store.getState().receiveMessage(msg(8, BOB, ME))
    store.getState().receiveMessage(msg(9, BOB, ME))
    page.resolve({ data: [msg(7, ME, BOB), msg(8, BOB, ME)], hasMore: true })
    await opening
    expect(ids(conv(store, BOB).messages)).toEqual([oid(7), oid(8), oid(9)])
    expect(conv(store, BOB).hasMore).toBe(true)
  })

  it('shows a message delivered twice (e.g. replayed after reconnect) once', async () => {
    const { store, api } = makeStore()
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    store.getState().receiveMessage(msg(2, BOB, ME))
    store.getState().receiveMessage(msg(2, BOB, ME))
    store.getState().receiveMessage({ ...msg(2, BOB, ME), _id: oid(2).toUpperCase() })
    expect(ids(conv(store, BOB).messages)).toEqual([oid(1), oid(2)])
  })

  it('does not mix conversations', async () => {
    const { store } = makeStore()
    store.getState().receiveMessage(msg(1, BOB, ME))
    store.getState().receiveMessage(msg(2, CAROL, ME))
    store.getState().receiveMessage(msg(3, ME, CAROL)) // mine, from another tab
    store.getState().receiveMessage(msg(4, BOB, CAROL)) // not for me: ignored
    expect(ids(conv(store, BOB).messages)).toEqual([oid(1)])
    expect(ids(conv(store, CAROL).messages)).toEqual([oid(2), oid(3)])
  })

  it('replaces my pending message when a refreshed page already contains it', async () => {
    const { store, api, transport } = makeStore()
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    const sending = store.getState().sendMessage(BOB, { text: 'hi' })
    // The connection drops before the ack; after reconnect the refetch contains the message.
    api.push('history', { data: [msg(1, BOB, ME), msg(2, ME, BOB, { text: 'hi', clientMsgId: 'client-1' })], hasMore: false })
    await store.getState().loadLatest(BOB)
    expect(ids(conv(store, BOB).messages)).toEqual([oid(1), oid(2)])
    // The late ack changes nothing.
    transport.requests[0].resolve({ status: 'ok', message: msg(2, ME, BOB, { text: 'hi', clientMsgId: 'client-1' }) })
    await sending
    expect(ids(conv(store, BOB).messages)).toEqual([oid(1), oid(2)])
  })

  it('restarts from the newest page when a refresh leaves a gap, keeping unsent messages', async () => {
    const { store, api, transport } = makeStore({ pageSize: 2 })
    api.push('history', { data: [msg(1, BOB, ME), msg(2, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    const sending = store.getState().sendMessage(BOB, { text: 'unsent' })
    transport.requests[0].resolve({ status: 'error', error: 'x', code: 'unavailable' })
    await sending
    api.push('history', { data: [msg(10, BOB, ME), msg(11, BOB, ME)], hasMore: true })
    await store.getState().loadLatest(BOB)
    const c = conv(store, BOB)
    expect(ids(c.messages)).toEqual([oid(10), oid(11), 'local:client-1'])
    expect(c.hasMore).toBe(true)
  })

  it('after a reconnect without recovery refetches the users and the open conversation', async () => {
    const { store, api } = makeStore()
    api.push('users', { data: [user(BOB, 'Bob'), user(CAROL, 'Carol')] })
    await store.getState().loadUsers()
    api.push('history', { data: [msg(1, CAROL, ME)], hasMore: false })
    await store.getState().openConversation(CAROL)
    api.push('history', { data: [msg(2, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)

    // Recovered: the missed events were replayed, nothing to fetch.
    const before = api.calls.length
    store.getState().onReconnected(true)
    expect(api.calls.length).toBe(before)

    api.push('users', { data: [user(BOB, 'Bob', { unreadCount: 0 }), user(CAROL, 'Carol', { unreadCount: 1 })] })
    api.push('history', { data: [msg(2, BOB, ME), msg(3, BOB, ME)], hasMore: false })
    store.getState().onReconnected(false)
    await flush()
    await flush()
    expect(api.calls.slice(before).map((c) => c.name).sort()).toEqual(['history', 'users'])
    expect(ids(conv(store, BOB).messages)).toEqual([oid(2), oid(3)])
    // The other conversation reloads when opened again.
    expect(conv(store, CAROL).stale).toBe(true)
    api.push('history', { data: [msg(1, CAROL, ME), msg(4, CAROL, ME)], hasMore: false })
    await store.getState().openConversation(CAROL)
    expect(ids(conv(store, CAROL).messages)).toEqual([oid(1), oid(4)])
    expect(conv(store, CAROL).stale).toBe(false)
  })

  it('shows an error state when the first page fails, and retries', async () => {
    const { store, api } = makeStore()
    api.push('history', new Error('Cannot reach the server'))
    await store.getState().openConversation(BOB)
    expect(conv(store, BOB)).toMatchObject({ status: 'error', error: 'Cannot reach the server' })
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    expect(conv(store, BOB)).toMatchObject({ status: 'ready', error: null })
  })
})
