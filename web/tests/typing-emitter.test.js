import { afterEach, describe, expect, it, vi } from 'vitest'
import { createTypingEmitter } from '../src/lib/typing.js'

afterEach(() => vi.useRealTimers())

describe('createTypingEmitter', () => {
  it('sends true once when typing starts, refreshes it, and false after a pause', () => {
    vi.useFakeTimers()
    const sent = []
    let t = 0
    const e = createTypingEmitter((v) => sent.push(v), { idleMs: 2000, refreshMs: 2000, now: () => t })
    e.input()
    t = 500
    vi.advanceTimersByTime(500)
    e.input()
    t = 1000
    vi.advanceTimersByTime(500)
    e.input()
    expect(sent).toEqual([true])
    t = 2100
    vi.advanceTimersByTime(1100)
    e.input() // still typing after refreshMs: tell the peer again
    expect(sent).toEqual([true, true])
    vi.advanceTimersByTime(2000)
    expect(sent).toEqual([true, true, false])
  })

  it('sends false at once on stop, and only if it had said true', () => {
    vi.useFakeTimers()
    const sent = []
    const e = createTypingEmitter((v) => sent.push(v))
    e.stop()
    expect(sent).toEqual([])
    e.input()
    e.stop()
    expect(sent).toEqual([true, false])
    vi.advanceTimersByTime(5000)
    expect(sent).toEqual([true, false])
  })
})
