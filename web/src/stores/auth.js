// The auth store: who is signed in. The JWT lives in chatd's httpOnly `token` cookie; the copy
// in the login/signup answer is kept in memory only (for the Socket.IO handshake), never in
// storage. A reload asks check-auth, which the cookie answers.

import { createStore } from 'zustand/vanilla'

function normalizeUser(u) {
  if (!u || typeof u !== 'object') return null
  const out = { ...u }
  if (typeof out._id === 'string') out._id = out._id.toLowerCase()
  return out
}

export function createAuthStore({ api }) {
  return createStore((set, get) => ({
    user: null,
    /** JWT from the last login/signup of this page (null after a reload: the cookie is used). */
    token: null,
    /** 'unknown' (not checked yet) | 'checking' | 'authenticated' | 'anonymous' | 'unreachable' */
    status: 'unknown',
    error: null,

    /** Restores the session from the cookie (GET check-auth). */
    async checkAuth() {
      if (get().status === 'unknown' || get().status === 'unreachable') set({ status: 'checking', error: null })
      try {
        const res = await api.checkAuth()
        const user = normalizeUser(res?.user)
        if (!user) throw Object.assign(new Error('No user'), { status: 401 })
        set({ user, status: 'authenticated', error: null })
        return true
      } catch (err) {
        if (err?.status === 0 || err?.status >= 500) {
          // The server cannot be reached: say so instead of pretending we are signed out.
          if (get().user) return true
          set({ status: 'unreachable', error: err.message })
          return false
        }
        set({ user: null, token: null, status: 'anonymous', error: null })
        return false
      }
    },

    async login(email, password) {
      const res = await api.login(email, password)
      const user = normalizeUser(res?.user)
      set({ user, token: res?.token ?? null, status: 'authenticated', error: null })
      return user
    },

    async signup(input) {
      const res = await api.signup(input)
      const user = normalizeUser(res?.user)
      set({ user, token: res?.token ?? null, status: 'authenticated', error: null })
      return user
    },

    /** Logs out on the server (clears the cookie) and forgets the user whatever it answers. */
    async logout() {
      try {
        await api.logout()
      } catch {
        /* signed out locally anyway */
      }
      set({ user: null, token: null, status: 'anonymous', error: null })
    },

    /** The session is no longer valid (e.g. the socket was refused): back to the login page. */
    expire() {
      set({ user: null, token: null, status: 'anonymous', error: null })
    },

    /** PUT update-profile with {full_name?, bio?, profile_picture? (data URL)}. */
    async updateProfile(patch) {
      const res = await api.updateProfile(patch)
      const user = normalizeUser(res?.user)
      if (user) set({ user })
      return user
    },
  }))
}
