// REST client for chatd. Same-origin: in production chatd serves this app, in development
// Vite proxies /api, /media and /socket.io to chatd (see vite.config.js). The JWT travels in
// the httpOnly `token` cookie, so every request is sent with credentials.

/** An HTTP error from chatd, with its status and (for validation errors) the field messages. */
export class ApiError extends Error {
  constructor(status, message, fields = null, retryAfter = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    /** {field: [message, ...]} from a 400 validation error, or null. */
    this.fields = fields
    this.retryAfter = retryAfter
  }
}

/** Turns a response body into a readable message. */
function messageOf(status, body) {
  if (body && typeof body.message === 'string' && body.message) {
    if (body.message === 'Validation error' && body.errors && typeof body.errors === 'object') {
      const first = Object.values(body.errors).flat().find((m) => typeof m === 'string')
      if (first) return first
    }
    return body.message
  }
  if (status === 0) return 'Cannot reach the server. Check your connection.'
  if (status === 429) return 'Too many attempts. Please wait a moment.'
  if (status >= 500) return 'The server is having trouble. Please try again.'
  return `Request failed (${status})`
}

/**
 * Sends a JSON request and returns the parsed body; throws ApiError on any failure
 * (network errors have status 0).
 */
export async function request(method, path, body, { signal } = {}) {
  const init = {
    method,
    credentials: 'include',
    headers: { Accept: 'application/json' },
    signal,
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  try {
    res = await fetch(path, init)
  } catch (err) {
    if (err && err.name === 'AbortError') throw err
    throw new ApiError(0, messageOf(0, null))
  }
  let data = null
  const text = await res.text().catch(() => '')
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!res.ok) {
    const fields = data && data.errors && typeof data.errors === 'object' ? data.errors : null
    const retry = res.headers.get('Retry-After')
    throw new ApiError(res.status, messageOf(res.status, data), fields, retry ? Number(retry) : null)
  }
  return data ?? {}
}

/** The chatd endpoints the app uses. Every function returns a promise. */
export const api = {
  checkAuth: () => request('GET', '/api/v1/auth/check-auth'),
  login: (email, password) => request('POST', '/api/v1/auth/login', { email, password }),
  signup: (input) => request('POST', '/api/v1/auth/signup', input),
  logout: () => request('POST', '/api/v1/auth/logout'),
  updateProfile: (patch) => request('PUT', '/api/v1/auth/update-profile', patch),

  /** {data: [user + online, unreadCount, lastMessage]} */
  users: () => request('GET', '/api/messages/users'),
  /** {data: [message] oldest→newest, hasMore} */
  history: (peerId, { before, limit = 50 } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) })
    if (before) q.set('before', before)
    return request('GET', `/api/messages/${encodeURIComponent(peerId)}?${q}`)
  },
  /** {message, data: message}; used for images too large for one Socket.IO packet. */
  send: (peerId, payload) => request('POST', `/api/messages/send/${encodeURIComponent(peerId)}`, payload),
}
