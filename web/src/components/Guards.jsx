import { Navigate, Outlet, useLocation } from 'react-router'
import { RefreshCw, ServerCrash } from 'lucide-react'
import { useAuth, authStore } from '../stores/index.js'
import { LogoMark } from './Logo.jsx'

/** Full-page placeholder while the session is checked. */
export function Splash() {
  return (
    <div className="grid h-dvh place-items-center bg-base-200" data-testid="splash">
      <div className="flex flex-col items-center gap-4">
        <LogoMark className="size-14 animate-pulse" />
        <span className="loading loading-dots loading-md text-primary" aria-label="Loading" />
      </div>
    </div>
  )
}

function Unreachable() {
  const error = useAuth((s) => s.error)
  return (
    <div className="grid h-dvh place-items-center bg-base-200 p-6">
      <div className="card w-full max-w-md bg-base-100 shadow-xl">
        <div className="card-body items-center text-center">
          <ServerCrash className="size-12 text-error" aria-hidden="true" />
          <h1 className="card-title">Can’t reach chatd</h1>
          <p className="text-base-content/70">{error || 'The server did not answer.'}</p>
          <button className="btn btn-primary mt-2" onClick={() => authStore.getState().checkAuth()}>
            <RefreshCw className="size-4" /> Try again
          </button>
        </div>
      </div>
    </div>
  )
}

/** Routes for signed-in users: others go to the login page (and come back afterwards). */
export function RequireAuth() {
  const status = useAuth((s) => s.status)
  const location = useLocation()
  if (status === 'unknown' || status === 'checking') return <Splash />
  if (status === 'unreachable') return <Unreachable />
  if (status !== 'authenticated') {
    return <Navigate to="/user/login" replace state={{ from: location.pathname + location.search }} />
  }
  return <Outlet />
}

/** Login and signup: signed-in users go straight to the chat. */
export function GuestOnly() {
  const status = useAuth((s) => s.status)
  const location = useLocation()
  if (status === 'unknown' || status === 'checking') return <Splash />
  if (status === 'authenticated') {
    const from = location.state?.from
    return <Navigate to={typeof from === 'string' && from.startsWith('/') ? from : '/chat'} replace />
  }
  return <Outlet />
}
