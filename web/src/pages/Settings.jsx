import { Check } from 'lucide-react'
import { themeStore, useTheme } from '../stores/index.js'
import { THEMES } from '../stores/theme.js'

function label(theme) {
  if (theme === 'chatd') return 'chatd (default)'
  if (theme === 'chatd-dark') return 'chatd dark'
  return theme.charAt(0).toUpperCase() + theme.slice(1)
}

/** A theme swatch rendered in that theme (data-theme on the button itself). */
function ThemeOption({ theme, active }) {
  return (
    <button
      type="button"
      data-theme={theme}
      data-testid="theme-option"
      data-theme-name={theme}
      aria-pressed={active}
      onClick={() => themeStore.getState().setTheme(theme)}
      className={`group overflow-hidden rounded-box border-2 bg-base-100 text-left text-base-content transition hover:-translate-y-0.5 hover:shadow-md focus-visible:outline-2 focus-visible:outline-offset-2 ${
        active ? 'border-primary shadow-md' : 'border-base-300'
      }`}
    >
      <div className="grid grid-cols-5 gap-1 bg-base-200 p-2">
        <div className="col-span-2 space-y-1">
          <div className="h-2 w-full rounded bg-base-300" />
          <div className="h-2 w-2/3 rounded bg-base-300" />
        </div>
        <div className="col-span-3 flex flex-col items-end gap-1">
          <div className="h-3 w-4/5 rounded-full bg-primary" />
          <div className="h-3 w-3/5 self-start rounded-full bg-base-100" />
        </div>
      </div>
      <div className="flex items-center justify-between gap-2 px-3 py-2">
        <span className="truncate text-sm font-medium">{label(theme)}</span>
        <span className="flex shrink-0 items-center gap-1">
          {active ? (
            <Check className="size-4 text-primary" aria-hidden="true" />
          ) : (
            <>
              <span className="size-2.5 rounded-full bg-primary" />
              <span className="size-2.5 rounded-full bg-secondary" />
              <span className="size-2.5 rounded-full bg-accent" />
            </>
          )}
        </span>
      </div>
    </button>
  )
}

export default function Settings() {
  const theme = useTheme((s) => s.theme)
  return (
    <div className="h-full overflow-y-auto">
      <div className="mx-auto max-w-5xl p-4 sm:p-8">
        <h1 className="text-2xl font-bold">Settings</h1>
        <section className="mt-6" aria-labelledby="theme-heading">
          <div className="flex flex-wrap items-baseline justify-between gap-2">
            <h2 id="theme-heading" className="text-lg font-semibold">
              Theme
            </h2>
            <p className="text-sm text-base-content/60">
              Current: <span className="font-medium" data-testid="theme-current">{label(theme)}</span>. Saved on this
              device.
            </p>
          </div>
          <div className="mt-4 grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-4">
            {THEMES.map((t) => (
              <ThemeOption key={t} theme={t} active={t === theme} />
            ))}
          </div>
        </section>
      </div>
    </div>
  )
}
