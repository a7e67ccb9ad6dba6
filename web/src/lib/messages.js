// Pure helpers for message lists: identity, ordering, merging and dedupe.
//
// A conversation's list holds confirmed messages (they have the server's `_id`, a time-ordered
// 24-hex ObjectId) sorted by `_id`, followed by the local ones not yet confirmed (status
// 'pending' or 'failed', identified by their `clientMsgId`) in the order they were written.

/** A stable React key / identity for a message. */
export function messageKey(m) {
  return m._id ? m._id : `local:${m.clientMsgId}`
}

/** Compares two ObjectId strings (equal length lower-case hex sorts by time). */
export function compareIds(a, b) {
  if (a === b) return 0
  if (a.length !== b.length) return a.length < b.length ? -1 : 1
  return a < b ? -1 : 1
}

/** The larger of two ids, treating null/undefined as "nothing". */
export function maxId(a, b) {
  if (!a) return b ?? null
  if (!b) return a
  return compareIds(a, b) >= 0 ? a : b
}

/** Normalises a server message (lower-case ids, status 'sent'). */
export function fromServer(m) {
  const out = { ...m, status: 'sent' }
  if (typeof out._id === 'string') out._id = out._id.toLowerCase()
  if (typeof out.senderId === 'string') out.senderId = out.senderId.toLowerCase()
  if (typeof out.receiverId === 'string') out.receiverId = out.receiverId.toLowerCase()
  delete out.error
  delete out.errorCode
  return out
}

/**
 * Merges `incoming` messages into `existing` and returns a new list:
 * - confirmed messages are deduplicated by `_id` (a later copy updates the earlier one) and
 *   kept sorted by `_id`;
 * - a confirmed message carrying the `clientMsgId` of a local (pending/failed) message from the
 *   same sender replaces it, so an acknowledged or replayed own message never shows twice;
 * - local messages are deduplicated by `clientMsgId` and stay after the confirmed ones.
 * Returns `existing` itself when nothing changed.
 */
export function mergeMessages(existing, incoming) {
  if (!incoming || incoming.length === 0) return existing
  const byId = new Map()
  let local = []
  for (const m of existing) {
    if (m._id) byId.set(m._id, m)
    else local.push(m)
  }
  let changed = false
  for (const raw of incoming) {
    if (!raw) continue
    if (raw._id) {
      const m = raw.status === 'sent' ? raw : fromServer(raw)
      const prev = byId.get(m._id)
      if (prev) {
        // Keep what the client knew (e.g. clientMsgId) and take the server's fields.
        const merged = { ...prev, ...m }
        if (!sameMessage(prev, merged)) {
          byId.set(m._id, merged)
          changed = true
        }
      } else {
        byId.set(m._id, m)
        changed = true
      }
      if (m.clientMsgId) {
        const before = local.length
        local = local.filter((l) => !(l.clientMsgId === m.clientMsgId && l.senderId === m.senderId))
        if (local.length !== before) changed = true
      }
    } else if (raw.clientMsgId) {
      // A local message: replace the copy with the same clientMsgId, or append it.
      if ([...byId.values()].some((c) => c.clientMsgId === raw.clientMsgId && c.senderId === raw.senderId)) {
        continue // already confirmed: the server's copy wins
      }
      const i = local.findIndex((l) => l.clientMsgId === raw.clientMsgId)
      if (i >= 0) local[i] = raw
      else local.push(raw)
      changed = true
    }
  }
  if (!changed) return existing
  const confirmed = [...byId.values()].sort((a, b) => compareIds(a._id, b._id))
  return confirmed.concat(local)
}

function sameMessage(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const k of keys) if (a[k] !== b[k]) return false
  return true
}

/** The oldest confirmed message id of a list (the `before` cursor for the previous page). */
export function oldestId(list) {
  for (const m of list) if (m._id) return m._id
  return null
}

/** The newest confirmed message id of a list. */
export function newestId(list) {
  for (let i = list.length - 1; i >= 0; i--) if (list[i]._id) return list[i]._id
  return null
}

/** A short preview of a message for the sidebar. */
export function previewText(m) {
  if (!m) return ''
  const text = typeof m.text === 'string' ? m.text.replace(/\s+/g, ' ').trim() : ''
  if (text) return text
  if (m.image) return 'Photo'
  return ''
}
