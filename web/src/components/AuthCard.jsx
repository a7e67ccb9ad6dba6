import { Link } from 'react-router'
import { Logo } from './Logo.jsx'

/** The frame of the login and signup pages. */
export function AuthCard({ title, subtitle, children, footer }) {
  return (
    <div className="relative flex min-h-dvh items-center justify-center overflow-hidden bg-base-200 p-4">
      <div className="pointer-events-none absolute -left-32 -top-32 size-96 rounded-full bg-primary/20 blur-3xl" />
      <div className="pointer-events-none absolute -bottom-32 -right-32 size-96 rounded-full bg-secondary/20 blur-3xl" />
      <div className="relative w-full max-w-md">
        <div className="mb-6 flex justify-center">
          <Link to="/" aria-label="chatd home">
            <Logo size="lg" />
          </Link>
        </div>
        <div className="card border border-base-300 bg-base-100 shadow-xl">
          <div className="card-body gap-4">
            <div>
              <h1 className="text-2xl font-bold">{title}</h1>
              {subtitle && <p className="mt-1 text-sm text-base-content/60">{subtitle}</p>}
            </div>
            {children}
          </div>
        </div>
        {footer && <p className="mt-6 text-center text-sm text-base-content/70">{footer}</p>}
      </div>
    </div>
  )
}

/** Field-level error text under an input. */
export function FieldError({ id, messages }) {
  if (!messages || messages.length === 0) return null
  return (
    <p id={id} className="mt-1 text-xs text-error" role="alert">
      {messages.join(' ')}
    </p>
  )
}
