import { describe, expect, it } from 'vitest'
import { BOB, CAROL, DAVE, ME, conv, deferred, flush, makeStore, msg, oid, user, userOf } from './helpers.js'

async function withUsers(extra = {}) {
  const ctx = makeStore()
  ctx.api.push('users', {
    data: [user(BOB, 'Bob', extra.bob), user(CAROL, 'Carol', extra.carol)],
  })
  await ctx.store.getState().loadUsers()
  return ctx
}

describe('unread counts and read receipts', () => {
  it('counts incoming messages of conversations that are not open', async () => {
    const { store, api, transport } = await withUsers()
    api.push('history', { data: [], hasMore: false })
    await store.getState().openConversation(BOB)

    store.getState().receiveMessage(msg(1, CAROL, ME, { text: 'hey' }))
    store.getState().receiveMessage(msg(2, CAROL, ME, { text: 'you there?' }))
    expect(userOf(store, CAROL).unreadCount).toBe(2)
    expect(userOf(store, CAROL).lastMessage).toMatchObject({ _id: oid(2), text: 'you there?' })
    // Nothing marked read for Carol.
    expect(transport.emits.filter((e) => e.event === 'markRead')).toEqual([])
  })

  it('does not count messages of the open conversation and marks them read', async () => {
    const { store, api, transport } = await withUsers()
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    expect(transport.emits).toContainEqual({ event: 'markRead', payload: { peerId: BOB, upTo: oid(1) } })

    store.getState().receiveMessage(msg(2, BOB, ME))
    expect(userOf(store, BOB).unreadCount).toBe(0)
    expect(transport.emits.at(-1)).toEqual({ event: 'markRead', payload: { peerId: BOB, upTo: oid(2) } })
  })

  it('counts a message delivered twice once', async () => {
    const { store } = await withUsers()
    store.getState().receiveMessage(msg(5, BOB, ME))
    store.getState().receiveMessage(msg(5, BOB, ME))
    expect(userOf(store, BOB).unreadCount).toBe(1)
  })

  it('does not count my own messages from another tab', async () => {
    const { store } = await withUsers()
    store.getState().receiveMessage(msg(5, ME, BOB))
    expect(userOf(store, BOB).unreadCount).toBe(0)
    expect(userOf(store, BOB).lastMessage._id).toBe(oid(5))
  })

  it('counts messages of the open conversation while the tab is hidden, then marks them read', async () => {
    const { store, api, transport } = await withUsers()
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    store.getState().setWindowActive(false)
    store.getState().receiveMessage(msg(2, BOB, ME))
    store.getState().receiveMessage(msg(3, BOB, ME))
    expect(userOf(store, BOB).unreadCount).toBe(2)
    expect(conv(store, BOB).unreadMarkerId).toBe(oid(2))
    const reads = transport.emits.filter((e) => e.event === 'markRead').length

    store.getState().setWindowActive(true)
    expect(userOf(store, BOB).unreadCount).toBe(0)
    const marks = transport.emits.filter((e) => e.event === 'markRead')
    expect(marks.length).toBe(reads + 1)
    expect(marks.at(-1).payload).toEqual({ peerId: BOB, upTo: oid(3) })
  })

  it('opening a conversation puts the "new messages" marker before the first unread one', async () => {
    const { store, api, transport } = await withUsers({ carol: { unreadCount: 2 } })
    api.push('history', {
      data: [msg(1, CAROL, ME), msg(2, ME, CAROL), msg(3, CAROL, ME), msg(4, CAROL, ME)],
      hasMore: false,
    })
    await store.getState().openConversation(CAROL)
    expect(conv(store, CAROL).unreadMarkerId).toBe(oid(3))
    expect(userOf(store, CAROL).unreadCount).toBe(0)
    expect(transport.emits).toContainEqual({ event: 'markRead', payload: { peerId: CAROL, upTo: oid(4) } })

    // Opening another conversation and coming back: no marker (all read).
    api.push('history', { data: [], hasMore: false })
    await store.getState().openConversation(BOB)
    await store.getState().openConversation(CAROL)
    expect(conv(store, CAROL).unreadMarkerId).toBeNull()
  })

  it('sends markRead only when the read position moves forward', async () => {
    const { store, api, transport } = await withUsers()
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().openConversation(BOB)
    store.getState().markRead(BOB)
    store.getState().markRead(BOB)
    expect(transport.emits.filter((e) => e.event === 'markRead')).toHaveLength(1)
  })

  it('fetches the users again when a message comes from someone unknown', async () => {
    const { store, api } = await withUsers()
    api.push('users', {
      data: [user(BOB, 'Bob'), user(CAROL, 'Carol'), user(DAVE, 'Dave', { unreadCount: 1, lastMessage: msg(9, DAVE, ME) })],
    })
    store.getState().receiveMessage(msg(9, DAVE, ME))
    await flush()
    expect(api.calls.filter((c) => c.name === 'users')).toHaveLength(2)
    expect(userOf(store, DAVE)).toMatchObject({ full_name: 'Dave', unreadCount: 1 })
  })

  it('keeps a live last message newer than the one in a users answer', async () => {
    const { store, api } = await withUsers()
    const pending = deferred()
    api.push('users', pending)
    const loading = store.getState().loadUsers()
    store.getState().receiveMessage(msg(10, BOB, ME, { text: 'live' }))
    pending.resolve({ data: [user(BOB, 'Bob', { lastMessage: msg(9, BOB, ME), unreadCount: 1 }), user(CAROL, 'Carol')] })
    await loading
    expect(userOf(store, BOB).lastMessage).toMatchObject({ _id: oid(10), text: 'live' })
  })

  it('shares one users request between concurrent callers and runs once more after it', async () => {
    const { store, api } = makeStore()
    const first = deferred()
    api.push('users', first)
    api.push('users', { data: [user(BOB, 'Bob'), user(CAROL, 'Carol')] })
    const a = store.getState().loadUsers()
    const b = store.getState().loadUsers()
    const c = store.getState().loadUsers()
    first.resolve({ data: [user(BOB, 'Bob')] })
    await Promise.all([a, b, c])
    expect(api.calls.filter((x) => x.name === 'users')).toHaveLength(2)
    expect(store.getState().users.map((u) => u.full_name)).toEqual(['Bob', 'Carol'])
  })

  it('records messagesRead from the peer, never moving backwards', async () => {
    const { store } = makeStore()
    const { isReadByPeer } = await import('../src/stores/chat.js')
    store.getState().onMessagesRead({ by: BOB, upTo: oid(5) })
    store.getState().onMessagesRead({ by: BOB, upTo: oid(3) })
    const read = store.getState().peerRead
    expect(read[BOB]).toBe(oid(5))
    expect(isReadByPeer(msg(4, ME, BOB), read)).toBe(true)
    expect(isReadByPeer(msg(5, ME, BOB), read)).toBe(true)
    expect(isReadByPeer(msg(6, ME, BOB), read)).toBe(false)
    expect(isReadByPeer(msg(4, ME, CAROL), read)).toBe(false)
    expect(isReadByPeer({ clientMsgId: 'x', receiverId: BOB }, read)).toBe(false)
    store.getState().onMessagesRead(null)
    store.getState().onMessagesRead({ by: 5 })
    expect(store.getState().peerRead).toEqual({ [BOB]: oid(5) })
  })
})

describe('new-messages marker with more unread messages than one page', () => {
  it('moves the marker up as older pages load, and stops at the first unread one', async () => {
    const { store, api } = makeStore({ pageSize: 2 })
    api.push('users', { data: [user(BOB, 'Bob', { unreadCount: 3 })] })
    await store.getState().loadUsers()
    api.push('history', { data: [msg(4, BOB, ME), msg(5, BOB, ME)], hasMore: true })
    await store.getState().openConversation(BOB)
    expect(conv(store, BOB).unreadMarkerId).toBe(oid(4)) // clamped to what is loaded
    // A live message after opening does not move the marker.
    store.getState().receiveMessage(msg(6, BOB, ME))
    api.push('history', { data: [msg(2, BOB, ME), msg(3, BOB, ME)], hasMore: true })
    await store.getState().loadOlder(BOB)
    expect(conv(store, BOB).unreadMarkerId).toBe(oid(3))
    api.push('history', { data: [msg(1, BOB, ME)], hasMore: false })
    await store.getState().loadOlder(BOB)
    expect(conv(store, BOB).unreadMarkerId).toBe(oid(3))
  })
})
