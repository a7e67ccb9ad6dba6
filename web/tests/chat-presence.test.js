import { afterEach, describe, expect, it, vi } from 'vitest'
import { BOB, CAROL, DAVE, ME, makeStore, msg, user } from './helpers.js'

afterEach(() => vi.useRealTimers())

describe('presence', () => {
  it('seeds presence from the users list until getOnlineUsers arrives, then follows the socket', async () => {
    const { store, api } = makeStore()
    api.push('users', { data: [user(BOB, 'Bob', { online: true }), user(CAROL, 'Carol')] })
    await store.getState().loadUsers()
    expect(store.getState().online).toEqual({ [BOB]: true })

    store.getState().setOnlineUsers([ME, CAROL.toUpperCase()])
    expect(store.getState().online).toEqual({ [ME]: true, [CAROL]: true })

    // A later users answer does not override the live presence.
    api.push('users', { data: [user(BOB, 'Bob', { online: true }), user(CAROL, 'Carol')] })
    await store.getState().loadUsers()
    expect(store.getState().online).toEqual({ [ME]: true, [CAROL]: true })

    store.getState().setOnlineUsers([])
    expect(store.getState().online).toEqual({})
    store.getState().setOnlineUsers('garbage')
    expect(store.getState().online).toEqual({})
  })

  it('forgets presence while the socket is down, until the server sends it again', () => {
    const { store } = makeStore()
    store.getState().setConnection('connected')
    store.getState().setOnlineUsers([BOB, CAROL])
    store.getState().setConnection('reconnecting')
    expect(store.getState().online).toEqual({})
    store.getState().setConnection('connected')
    store.getState().setOnlineUsers([CAROL])
    expect(store.getState().online).toEqual({ [CAROL]: true })
  })

  it('applies userOnline / userOffline deltas', () => {
    const { store } = makeStore()
    store.getState().setOnlineUsers([BOB])
    store.getState().setUserOnline(DAVE, true)
    store.getState().setUserOnline(BOB, false)
    expect(store.getState().online).toEqual({ [DAVE]: true })
  })
})

describe('typing', () => {
  it('shows typing until isTyping:false or the timeout, and clears it on a message', () => {
    vi.useFakeTimers()
    const { store } = makeStore({ typingTtlMs: 3000 })
    store.getState().onTyping({ from: BOB, isTyping: true })
    expect(store.getState().typing).toEqual({ [BOB]: true })
    vi.advanceTimersByTime(2000)
    store.getState().onTyping({ from: BOB, isTyping: true }) // refreshed
    vi.advanceTimersByTime(2000)
    expect(store.getState().typing[BOB]).toBe(true)
    vi.advanceTimersByTime(1001)
    expect(store.getState().typing[BOB]).toBeUndefined()

    store.getState().onTyping({ from: BOB, isTyping: true })
    store.getState().onTyping({ from: BOB, isTyping: false })
    expect(store.getState().typing[BOB]).toBeUndefined()

    store.getState().onTyping({ from: CAROL, isTyping: true })
    store.getState().receiveMessage(msg(1, CAROL, ME))
    expect(store.getState().typing[CAROL]).toBeUndefined()
  })

  it('emits typing as a volatile event, and not while disconnected', () => {
    const { store, transport } = makeStore()
    store.getState().sendTyping(BOB, true)
    expect(transport.volatiles).toEqual([{ event: 'typing', payload: { to: BOB, isTyping: true } }])
    transport.connected = false
    store.getState().sendTyping(BOB, false)
    expect(transport.volatiles).toHaveLength(1)
  })
})

describe('connection state and reset', () => {
  it('tracks the connection and forgets everything on reset', async () => {
    const { store, api } = makeStore()
    store.getState().setConnection('connected')
    expect(store.getState().connection).toBe('connected')
    api.push('users', { data: [user(BOB, 'Bob')] })
    await store.getState().loadUsers()
    store.getState().receiveMessage(msg(1, BOB, ME))
    store.getState().reset()
    const s = store.getState()
    expect(s).toMatchObject({ users: [], conversations: {}, online: {}, connection: 'idle', meId: null, usersStatus: 'idle' })
  })
})
