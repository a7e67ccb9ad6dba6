import { useState } from 'react'
import { Link, useLocation, useNavigate } from 'react-router'
import { Eye, EyeOff, LogIn, Mail, KeyRound } from 'lucide-react'
import { authStore } from '../stores/index.js'
import { AuthCard } from '../components/AuthCard.jsx'

export default function Login() {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [show, setShow] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const navigate = useNavigate()
  const location = useLocation()

  const submit = async (e) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await authStore.getState().login(email.trim(), password)
      const from = location.state?.from
      navigate(typeof from === 'string' && from.startsWith('/') ? from : '/chat', { replace: true })
    } catch (err) {
      setError(err?.message || 'Could not log in')
      setBusy(false)
    }
  }

  return (
    <AuthCard
      title="Welcome back"
      subtitle="Log in to pick up your conversations."
      footer={
        <>
          New to chatd?{' '}
          <Link to="/user/signup" className="link link-primary font-medium" data-testid="go-signup">
            Create an account
          </Link>
        </>
      }
    >
      <form className="flex flex-col gap-3" onSubmit={submit} data-testid="login-form" noValidate>
        {error && (
          <div role="alert" className="alert alert-error alert-soft text-sm" data-testid="login-error">
            {error}
          </div>
        )}
        <label className="floating-label">
          <span>Email</span>
          <label className="input w-full">
            <Mail className="size-4 opacity-50" aria-hidden="true" />
            <input
              type="email"
              autoComplete="email"
              placeholder="Email"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              data-testid="login-email"
              autoFocus
            />
          </label>
        </label>
        <label className="floating-label">
          <span>Password</span>
          <label className="input w-full">
            <KeyRound className="size-4 opacity-50" aria-hidden="true" />
            <input
              type={show ? 'text' : 'password'}
              autoComplete="current-password"
              placeholder="Password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              data-testid="login-password"
            />
            <button
              type="button"
              className="btn btn-ghost btn-xs btn-circle"
              onClick={() => setShow((v) => !v)}
              aria-label={show ? 'Hide password' : 'Show password'}
            >
              {show ? <EyeOff className="size-4" /> : <Eye className="size-4" />}
            </button>
          </label>
        </label>
        <button
          type="submit"
          className="btn btn-primary mt-2"
          disabled={busy || !email || !password}
          data-testid="login-submit"
        >
          {busy ? <span className="loading loading-spinner loading-sm" /> : <LogIn className="size-4" />}
          Log in
        </button>
      </form>
    </AuthCard>
  )
}
