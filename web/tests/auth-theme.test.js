import { describe, expect, it } from 'vitest'
import { createAuthStore } from '../src/stores/auth.js'
import { createThemeStore, THEME_KEY } from '../src/stores/theme.js'

function apiWith(overrides) {
  const calls = []
  const api = {}
  for (const name of ['checkAuth', 'login', 'signup', 'logout', 'updateProfile']) {
    api[name] = (...args) => {
      calls.push(name)
      const f = overrides[name]
      return f ? f(...args) : Promise.reject(new Error(`unexpected ${name}`))
    }
  }
  return { api, calls }
}

const U = { _id: 'ABCDEFABCDEFABCDEFABCDEF', email: 'a@b.c', full_name: 'A', createdAt: '2025-01-01T00:00:00Z' }

describe('auth store', () => {
  it('restores the session from check-auth (cookie), without a token', async () => {
    const { api } = apiWith({ checkAuth: async () => ({ message: 'User is authenticated', user: U }) })
    const s = createAuthStore({ api })
    await expect(s.getState().checkAuth()).resolves.toBe(true)
    expect(s.getState()).toMatchObject({ status: 'authenticated', token: null })
    expect(s.getState().user._id).toBe('abcdefabcdefabcdefabcdef')
  })

  it('is anonymous on 401 and unreachable on a network error', async () => {
    const unauthorized = Object.assign(new Error('Unauthorized'), { status: 401 })
    const a = createAuthStore({ api: apiWith({ checkAuth: () => Promise.reject(unauthorized) }).api })
    await expect(a.getState().checkAuth()).resolves.toBe(false)
    expect(a.getState().status).toBe('anonymous')

    const down = Object.assign(new Error('Cannot reach the server.'), { status: 0 })
    const b = createAuthStore({ api: apiWith({ checkAuth: () => Promise.reject(down) }).api })
    await b.getState().checkAuth()
    expect(b.getState()).toMatchObject({ status: 'unreachable', error: 'Cannot reach the server.' })
  })

  it('keeps the token of login in memory and forgets it on logout, even if logout fails', async () => {
    const { api, calls } = apiWith({
      login: async () => ({ message: 'ok', user: U, token: 'jwt' }),
      logout: () => Promise.reject(new Error('offline')),
    })
    const s = createAuthStore({ api })
    await s.getState().login('a@b.c', 'secret')
    expect(s.getState()).toMatchObject({ status: 'authenticated', token: 'jwt' })
    await s.getState().logout()
    expect(s.getState()).toMatchObject({ status: 'anonymous', token: null, user: null })
    expect(calls).toEqual(['login', 'logout'])
  })

  it('propagates login errors and stays signed out', async () => {
    const bad = Object.assign(new Error('Invalid Credentials'), { status: 400 })
    const s = createAuthStore({ api: apiWith({ login: () => Promise.reject(bad) }).api })
    await expect(s.getState().login('a@b.c', 'nope')).rejects.toThrow('Invalid Credentials')
    expect(s.getState().user).toBeNull()
  })

  it('replaces the user with the answer of update-profile', async () => {
    const s = createAuthStore({
      api: apiWith({
        signup: async () => ({ user: U, token: 't' }),
        updateProfile: async (patch) => ({ user: { ...U, ...patch }, message: 'Profile updated successfully' }),
      }).api,
    })
    await s.getState().signup({ email: 'a@b.c', password: 'secret', full_name: 'A' })
    await s.getState().updateProfile({ full_name: 'New Name' })
    expect(s.getState().user.full_name).toBe('New Name')
  })
})

describe('theme store', () => {
  function memoryStorage(initial = {}) {
    const data = { ...initial }
    return { getItem: (k) => data[k] ?? null, setItem: (k, v) => (data[k] = String(v)), data }
  }
  function fakeRoot() {
    const attrs = {}
    return { setAttribute: (k, v) => (attrs[k] = v), attrs }
  }

  it('defaults to chatd, persists the choice and applies it to <html>', () => {
    const storage = memoryStorage()
    const root = fakeRoot()
    const s = createThemeStore({ storage, root })
    expect(s.getState().theme).toBe('chatd')
    s.getState().setTheme('dracula')
    expect(storage.data[THEME_KEY]).toBe('dracula')
    expect(root.attrs['data-theme']).toBe('dracula')
    expect(createThemeStore({ storage, root }).getState().theme).toBe('dracula')
  })

  it('ignores unknown themes', () => {
    const storage = memoryStorage({ [THEME_KEY]: 'evil"><script>' })
    const s = createThemeStore({ storage, root: fakeRoot() })
    expect(s.getState().theme).toBe('chatd')
    s.getState().setTheme('nope')
    expect(s.getState().theme).toBe('chatd')
    expect(storage.data[THEME_KEY]).toBe('evil"><script>')
  })
})
