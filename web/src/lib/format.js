// Date and time formatting for the chat.

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' })
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long' })
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', year: 'numeric' })
const shortDateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' })
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' })
const monthYearFmt = new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric' })

export function toDate(value) {
  const d = value instanceof Date ? value : new Date(value)
  return Number.isNaN(d.getTime()) ? null : d
}

/** Local calendar day key, e.g. "2025-3-7". */
export function dayKey(value) {
  const d = toDate(value)
  return d ? `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}` : 'unknown'
}

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate())
}

/** "Today", "Yesterday", a weekday within the last week, else a full date. */
export function dayLabel(value, now = new Date()) {
  const d = toDate(value)
  if (!d) return ''
  const days = Math.round((startOfDay(now) - startOfDay(d)) / 86_400_000)
  if (days === 0) return 'Today'
  if (days === 1) return 'Yesterday'
  if (days > 1 && days < 7) return weekdayFmt.format(d)
  return dateFmt.format(d)
}

export function timeLabel(value) {
  const d = toDate(value)
  return d ? timeFmt.format(d) : ''
}

export function fullLabel(value) {
  const d = toDate(value)
  return d ? fullFmt.format(d) : ''
}

/** Sidebar timestamp: a time today, "Yesterday", a weekday, or a short date. */
export function shortLabel(value, now = new Date()) {
  const d = toDate(value)
  if (!d) return ''
  const days = Math.round((startOfDay(now) - startOfDay(d)) / 86_400_000)
  if (days === 0) return timeFmt.format(d)
  if (days === 1) return 'Yesterday'
  if (days > 1 && days < 7) return weekdayFmt.format(d).slice(0, 3)
  return shortDateFmt.format(d)
}

export function monthYear(value) {
  const d = toDate(value)
  return d ? monthYearFmt.format(d) : ''
}

/** Initials for an avatar placeholder. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean)
  if (parts.length === 0) return '?'
  const first = [...parts[0]][0] ?? '?'
  const last = parts.length > 1 ? ([...parts[parts.length - 1]][0] ?? '') : ''
  return (first + last).toUpperCase()
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}
