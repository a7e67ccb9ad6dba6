import { describe, expect, it } from 'vitest'
import { buildItems, renderKey } from '../src/lib/timeline.js'
import { dayLabel, initials } from '../src/lib/format.js'
import { previewText } from '../src/lib/messages.js'
import { BOB, ME, oid } from './helpers.js'

// Local times, so day boundaries do not depend on the machine's time zone.
const at = (day, h, m = 0) => new Date(2025, 0, day, h, m).toISOString()
const m = (n, from, createdAt, extra = {}) => ({ _id: oid(n), senderId: from, receiverId: from === ME ? BOB : ME, text: `t${n}`, createdAt, status: 'sent', ...extra })

describe('timeline', () => {
  it('separates days, groups runs by sender and time, and places the new-messages marker', () => {
    const list = [
      m(1, BOB, at(1, 10, 0)),
      m(2, BOB, at(1, 10, 1)),
      m(3, ME, at(1, 10, 2)),
      m(4, ME, at(1, 10, 30)), // more than 5 minutes later: a new run
      m(5, BOB, at(2, 9, 0)), // next day
      m(6, BOB, at(2, 9, 1)), // first unread
      m(7, BOB, at(2, 9, 2)),
    ]
    const items = buildItems(list, ME, oid(6))
    const shape = items.map((it) =>
      it.type === 'msg' ? `${it.message.text}:${it.mine ? 'me' : 'peer'}:${it.firstOfRun ? 'F' : '-'}${it.lastOfRun ? 'L' : '-'}` : it.type,
    )
    expect(shape).toEqual([
      'day',
      't1:peer:F-',
      't2:peer:-L',
      't3:me:FL',
      't4:me:FL',
      'day',
      't5:peer:FL',
      'marker',
      't6:peer:F-',
      't7:peer:-L',
    ])
    const keys = items.map((it) => it.key)
    expect(new Set(keys).size).toBe(keys.length)
  })

  it('ends a run where the delivery status changes (so sent ticks stay visible before a failure)', () => {
    const list = [m(1, ME, at(3, 8)), { clientMsgId: 'x', senderId: ME, text: 'f', createdAt: at(3, 8, 1), status: 'failed' }]
    const msgs = buildItems(list, ME, null).filter((it) => it.type === 'msg')
    expect(msgs.map((it) => [it.firstOfRun, it.lastOfRun])).toEqual([
      [true, true],
      [true, true],
    ])
  })

  it('keeps the render key of my message from pending to sent', () => {
    const pending = { clientMsgId: 'abc', senderId: ME, status: 'pending' }
    const sent = { ...pending, _id: oid(9), status: 'sent' }
    expect(renderKey(pending)).toBe(renderKey(sent))
    expect(renderKey(m(9, BOB, at(1, 1)))).toBe(oid(9))
  })

  it('labels days and builds previews and initials', () => {
    const now = new Date(2025, 0, 10, 12)
    expect(dayLabel(new Date(2025, 0, 10, 1), now)).toBe('Today')
    expect(dayLabel(new Date(2025, 0, 9, 23), now)).toBe('Yesterday')
    expect(previewText({ text: '  hi\n\nthere ' })).toBe('hi there')
    expect(previewText({ text: '', image: '/media/x.png' })).toBe('Photo')
    expect(initials('Ada  Lovelace')).toBe('AL')
    expect(initials('')).toBe('?')
  })
})
