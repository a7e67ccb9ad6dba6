// The rendered timeline of a conversation: day separators, the "new messages" marker, and runs
// of consecutive messages from one sender (one avatar, one tail, one timestamp per run).

import { dayKey, dayLabel } from './format.js'

const RUN_GAP_MS = 5 * 60 * 1000

/** A key that survives the pending → sent transition (so the bubble is not re-mounted). */
export function renderKey(m) {
  return m.clientMsgId ? `c:${m.senderId}:${m.clientMsgId}` : m._id
}

function gap(a, b) {
  return Math.abs(new Date(b.createdAt) - new Date(a.createdAt))
}

/** Day separators, the "new messages" marker and runs of consecutive messages by one sender. */
export function buildItems(messages, meId, markerId) {
  const items = []
  let prevDay = null
  let prev = null
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    const dk = dayKey(m.createdAt)
    if (dk !== prevDay) {
      items.push({ type: 'day', key: `day:${dk}`, label: dayLabel(m.createdAt), date: m.createdAt })
      prevDay = dk
      prev = null
    }
    if (markerId && m._id === markerId) {
      items.push({ type: 'marker', key: 'marker' })
      prev = null
    }
    const next = messages[i + 1]
    const firstOfRun =
      !prev ||
      prev.senderId !== m.senderId ||
      gap(prev, m) > RUN_GAP_MS ||
      (prev.status || 'sent') !== (m.status || 'sent')
    const lastOfRun =
      !next ||
      next.senderId !== m.senderId ||
      dayKey(next.createdAt) !== dk ||
      gap(m, next) > RUN_GAP_MS ||
      (next.status || 'sent') !== (m.status || 'sent') ||
      (markerId && next._id === markerId)
    items.push({ type: 'msg', key: renderKey(m), message: m, mine: m.senderId === meId, firstOfRun, lastOfRun })
    prev = m
  }
  return items
}
