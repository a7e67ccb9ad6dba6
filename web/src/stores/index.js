// The app's store instances and React hooks for them.

import { useStore } from 'zustand'
import { api } from '../lib/api.js'
import { socketTransport } from '../lib/realtime.js'
import { createAuthStore } from './auth.js'
import { createChatStore } from './chat.js'
import { createThemeStore } from './theme.js'

export const authStore = createAuthStore({ api })
export const chatStore = createChatStore({ api, transport: socketTransport })
export const themeStore = createThemeStore()

export const useAuth = (selector) => useStore(authStore, selector)
export const useChat = (selector) => useStore(chatStore, selector)
export const useTheme = (selector) => useStore(themeStore, selector)
