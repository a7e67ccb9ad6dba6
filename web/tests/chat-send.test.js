import { describe, expect, it } from 'vitest'
import { createChatStore } from '../src/stores/chat.js'
import { BOB, ME, conv, fakeApi, fakeTransport, flush, makeStore, msg, user, userOf } from './helpers.js'

describe('sending: optimistic, acknowledged, retried', () => {
  it('shows a message as pending at once and as sent after the ack', async () => {
    const { store, transport } = makeStore()
    store.getState().setOnlineUsers([BOB])
    const done = store.getState().sendMessage(BOB, { text: '  hello Bob  ' })

    // Pending before the server answered.
    let list = conv(store, BOB).messages
    expect(list).toHaveLength(1)
    expect(list[0]).toMatchObject({ status: 'pending', clientMsgId: 'client-1', text: 'hello Bob', senderId: ME })
    expect(list[0]._id).toBeUndefined()
    expect(transport.requests).toHaveLength(1)
    expect(transport.requests[0].event).toBe('sendMessage')
    expect(transport.requests[0].payload).toEqual({ to: BOB, clientMsgId: 'client-1', text: 'hello Bob' })

    const stored = msg(10, ME, BOB, { text: 'hello Bob', clientMsgId: 'client-1' })
    transport.requests[0].resolve({ status: 'ok', message: stored })
    await expect(done).resolves.toBe('client-1')

    list = conv(store, BOB).messages
    expect(list).toHaveLength(1)
    expect(list[0]).toMatchObject({ _id: stored._id, status: 'sent', clientMsgId: 'client-1' })
  })

  it('updates the sidebar preview with the acknowledged message', async () => {
    const { store, api, transport } = makeStore()
    api.push('users', { data: [user(BOB, 'Bob')] })
    await store.getState().loadUsers()
    const done = store.getState().sendMessage(BOB, { text: 'ping' })
    transport.requests[0].resolve({ status: 'ok', message: msg(3, ME, BOB, { text: 'ping', clientMsgId: 'client-1' }) })
    await done
    expect(userOf(store, BOB).lastMessage).toMatchObject({ text: 'ping', senderId: ME })
    expect(userOf(store, BOB).unreadCount).toBe(0)
  })

  it('marks a message failed on an error ack and retries it with the same clientMsgId', async () => {
    const { store, transport } = makeStore()
    const done = store.getState().sendMessage(BOB, { text: 'are you there?' })
    transport.requests[0].resolve({ status: 'error', error: 'Server busy, retry', code: 'unavailable' })
    await done

    let [m] = conv(store, BOB).messages
    expect(m).toMatchObject({ status: 'failed', error: 'Server busy, retry', errorCode: 'unavailable' })

    const retry = store.getState().retryMessage(BOB, m.clientMsgId)
    expect(conv(store, BOB).messages[0].status).toBe('pending')
    expect(transport.requests).toHaveLength(2)
    expect(transport.requests[1].payload.clientMsgId).toBe(transport.requests[0].payload.clientMsgId)
    expect(transport.requests[1].payload).toEqual(transport.requests[0].payload)

    transport.requests[1].resolve({
      status: 'ok',
      message: msg(20, ME, BOB, { text: 'are you there?', clientMsgId: m.clientMsgId }),
    })
    await retry
    const list = conv(store, BOB).messages
    expect(list).toHaveLength(1)
    ;[m] = list
    expect(m).toMatchObject({ status: 'sent', _id: msg(20, ME, BOB)._id })
    expect(m.error).toBeUndefined()
  })

  it('marks a message failed when the ack times out; the retry reuses the clientMsgId', async () => {
    const { store, transport } = makeStore({ sendTimeoutMs: 1234 })
    const done = store.getState().sendMessage(BOB, { text: 'lost ack' })
    expect(transport.requests[0].timeoutMs).toBe(1234)
    transport.requests[0].reject(new Error('The server did not answer in time'))
    await done
    expect(conv(store, BOB).messages[0]).toMatchObject({ status: 'failed', errorCode: 'network' })

    // The first attempt was in fact stored; the retry gets the same message back (server dedupe)
    // and the live copy that arrived meanwhile is not duplicated either.
    const stored = msg(7, ME, BOB, { text: 'lost ack', clientMsgId: 'client-1' })
    const retry = store.getState().retryMessage(BOB, 'client-1')
    expect(transport.requests[1].payload.clientMsgId).toBe('client-1')
    transport.requests[1].resolve({ status: 'ok', message: stored })
    await retry
    store.getState().receiveMessage(stored) // e.g. echoed from another tab
    expect(conv(store, BOB).messages).toHaveLength(1)
    expect(conv(store, BOB).messages[0].status).toBe('sent')
  })

  it('does not retry a message that is not failed', async () => {
    const { store, transport } = makeStore()
    store.getState().sendMessage(BOB, { text: 'x' })
    await store.getState().retryMessage(BOB, 'client-1')
    expect(transport.requests).toHaveLength(1)
  })

  it('keeps pending messages after confirmed ones and confirms each by its own clientMsgId', async () => {
    const { store, transport } = makeStore()
    const a = store.getState().sendMessage(BOB, { text: 'first' })
    const b = store.getState().sendMessage(BOB, { text: 'second' })
    expect(conv(store, BOB).messages.map((m) => m.text)).toEqual(['first', 'second'])
    // Acks can come back in any order.
    transport.requests[1].resolve({ status: 'ok', message: msg(2, ME, BOB, { text: 'second', clientMsgId: 'client-2' }) })
    await b
    let list = conv(store, BOB).messages
    expect(list.map((m) => [m.text, m.status])).toEqual([
      ['second', 'sent'],
      ['first', 'pending'],
    ])
    transport.requests[0].resolve({ status: 'ok', message: msg(1, ME, BOB, { text: 'first', clientMsgId: 'client-1' }) })
    await a
    list = conv(store, BOB).messages
    expect(list.map((m) => [m.text, m.status])).toEqual([
      ['first', 'sent'],
      ['second', 'sent'],
    ])
  })

  it('sends over REST with the clientMsgId while the socket is down', async () => {
    const { store, api, transport } = makeStore()
    transport.connected = false
    api.push('send', { message: 'Message sent successfully', data: msg(4, ME, BOB, { text: 'via rest', clientMsgId: 'client-1' }) })
    await store.getState().sendMessage(BOB, { text: 'via rest' })
    expect(transport.requests).toHaveLength(0)
    expect(api.calls).toEqual([{ name: 'send', args: [BOB, { clientMsgId: 'client-1', text: 'via rest' }] }])
    expect(conv(store, BOB).messages).toMatchObject([{ status: 'sent', text: 'via rest' }])
  })

  it('sends images too large for one socket packet over REST', async () => {
    const { store, api, transport } = makeStore({ socketMaxSend: 100 })
    const image = 'data:image/png;base64,' + 'A'.repeat(200)
    api.push('send', { data: msg(5, ME, BOB, { text: '', image: '/media/x.png', clientMsgId: 'client-1' }) })
    await store.getState().sendMessage(BOB, { image })
    expect(transport.requests).toHaveLength(0)
    expect(api.calls[0].args[1]).toEqual({ clientMsgId: 'client-1', image })
    expect(conv(store, BOB).messages).toMatchObject([{ status: 'sent', image: '/media/x.png' }])
  })

  it('marks a REST failure as failed, with the HTTP status in the code', async () => {
    const { store, api, transport } = makeStore()
    transport.connected = false
    api.push('send', Object.assign(new Error('Too many requests'), { status: 429 }))
    await store.getState().sendMessage(BOB, { text: 'x' })
    expect(conv(store, BOB).messages[0]).toMatchObject({ status: 'failed', error: 'Too many requests', errorCode: 'http_429' })
  })

  it('ignores empty messages', async () => {
    const { store, transport } = makeStore()
    await expect(store.getState().sendMessage(BOB, { text: '   \n ' })).resolves.toBeNull()
    expect(conv(store, BOB)).toBeUndefined()
    expect(transport.requests).toHaveLength(0)
  })

  it('discards a failed message on request', async () => {
    const { store, transport } = makeStore()
    const done = store.getState().sendMessage(BOB, { text: 'oops' })
    transport.requests[0].resolve({ status: 'error', error: 'Text must be at most 4000 characters', code: 'validation' })
    await done
    store.getState().discardMessage(BOB, 'client-1')
    expect(conv(store, BOB).messages).toHaveLength(0)
  })

  it('drops a late ack after logout (reset)', async () => {
    const { store, transport } = makeStore()
    const done = store.getState().sendMessage(BOB, { text: 'bye' })
    store.getState().reset()
    transport.requests[0].resolve({ status: 'ok', message: msg(1, ME, BOB, { clientMsgId: 'client-1' }) })
    await done
    expect(store.getState().conversations).toEqual({})
  })

  it('uses crypto.randomUUID for clientMsgIds by default', async () => {
    const transport = fakeTransport()
    const store = createChatStore({ api: fakeApi(), transport })
    store.getState().setMe(ME)
    store.getState().sendMessage(BOB, { text: 'a' })
    store.getState().sendMessage(BOB, { text: 'b' })
    const [a, b] = transport.requests.map((r) => r.payload.clientMsgId)
    expect(a).toMatch(/^[0-9a-f-]{36}$/)
    expect(b).toMatch(/^[0-9a-f-]{36}$/)
    expect(a).not.toBe(b)
    await flush()
  })
})
