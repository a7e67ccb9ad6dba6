// The DaisyUI theme, persisted in localStorage ('chatd-theme') and applied as <html data-theme>.
// public/theme-init.js applies the saved one before the first paint.

import { createStore } from 'zustand/vanilla'

export const THEME_KEY = 'chatd-theme'
export const DEFAULT_THEME = 'chatd'

/** chatd's own themes first, then DaisyUI's built-in ones. */
export const THEMES = [
  'chatd',
  'chatd-dark',
  'light',
  'dark',
  'cupcake',
  'bumblebee',
  'emerald',
  'corporate',
  'synthwave',
  'retro',
  'cyberpunk',
  'valentine',
  'halloween',
  'garden',
  'forest',
  'aqua',
  'lofi',
  'pastel',
  'fantasy',
  'wireframe',
  'black',
  'luxury',
  'dracula',
  'cmyk',
  'autumn',
  'business',
  'acid',
  'lemonade',
  'night',
  'coffee',
  'winter',
  'dim',
  'nord',
  'sunset',
  'caramellatte',
  'abyss',
  'silk',
]

function readSaved(storage) {
  try {
    const t = storage?.getItem(THEME_KEY)
    return t && THEMES.includes(t) ? t : DEFAULT_THEME
  } catch {
    return DEFAULT_THEME
  }
}

export function createThemeStore({ storage = globalThis.localStorage, root = globalThis.document?.documentElement } = {}) {
  return createStore((set) => ({
    theme: readSaved(storage),
    setTheme(theme) {
      if (!THEMES.includes(theme)) return
      try {
        storage?.setItem(THEME_KEY, theme)
      } catch {
        /* private mode: the theme still applies to this page */
      }
      root?.setAttribute('data-theme', theme)
      set({ theme })
    },
  }))
}
