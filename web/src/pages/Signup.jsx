import { useState } from 'react'
import { Link, useNavigate } from 'react-router'
import { Eye, EyeOff, KeyRound, Mail, UserRound, UserPlus } from 'lucide-react'
import { authStore } from '../stores/index.js'
import { AuthCard, FieldError } from '../components/AuthCard.jsx'

export default function Signup() {
  const [form, setForm] = useState({ full_name: '', email: '', password: '' })
  const [show, setShow] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const [fields, setFields] = useState({})
  const navigate = useNavigate()

  const set = (k) => (e) => setForm((f) => ({ ...f, [k]: e.target.value }))
  const tooShort = form.password.length > 0 && form.password.length < 6

  const submit = async (e) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    setFields({})
    try {
      await authStore.getState().signup({
        full_name: form.full_name.trim(),
        email: form.email.trim(),
        password: form.password,
      })
      navigate('/chat', { replace: true })
    } catch (err) {
      setError(err?.message || 'Could not sign up')
      setFields(err?.fields || {})
      setBusy(false)
    }
  }

  return (
    <AuthCard
      title="Create your account"
      subtitle="It takes ten seconds. Then say hi to everyone."
      footer={
        <>
          Already have an account?{' '}
          <Link to="/user/login" className="link link-primary font-medium" data-testid="go-login">
            Log in
          </Link>
        </>
      }
    >
      <form className="flex flex-col gap-3" onSubmit={submit} data-testid="signup-form" noValidate>
        {error && (
          <div role="alert" className="alert alert-error alert-soft text-sm" data-testid="signup-error">
            {error}
          </div>
        )}
        <div>
          <label className="floating-label">
            <span>Full name</span>
            <label className={`input w-full ${fields.full_name ? 'input-error' : ''}`}>
              <UserRound className="size-4 opacity-50" aria-hidden="true" />
              <input
                type="text"
                autoComplete="name"
                placeholder="Full name"
                required
                maxLength={100}
                value={form.full_name}
                onChange={set('full_name')}
                data-testid="signup-name"
                aria-describedby="err-name"
                autoFocus
              />
            </label>
          </label>
          <FieldError id="err-name" messages={fields.full_name} />
        </div>
        <div>
          <label className="floating-label">
            <span>Email</span>
            <label className={`input w-full ${fields.email ? 'input-error' : ''}`}>
              <Mail className="size-4 opacity-50" aria-hidden="true" />
              <input
                type="email"
                autoComplete="email"
                placeholder="Email"
                required
                value={form.email}
                onChange={set('email')}
                data-testid="signup-email"
                aria-describedby="err-email"
              />
            </label>
          </label>
          <FieldError id="err-email" messages={fields.email} />
        </div>
        <div>
          <label className="floating-label">
            <span>Password</span>
            <label className={`input w-full ${fields.password || tooShort ? 'input-error' : ''}`}>
              <KeyRound className="size-4 opacity-50" aria-hidden="true" />
              <input
                type={show ? 'text' : 'password'}
                autoComplete="new-password"
                placeholder="Password (at least 6 characters)"
                required
                minLength={6}
                value={form.password}
                onChange={set('password')}
                data-testid="signup-password"
                aria-describedby="err-password"
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
          <FieldError
            id="err-password"
            messages={fields.password ?? (tooShort ? ['At least 6 characters'] : null)}
          />
        </div>
        <button
          type="submit"
          className="btn btn-primary mt-2"
          disabled={busy || !form.full_name.trim() || !form.email.trim() || form.password.length < 6}
          data-testid="signup-submit"
        >
          {busy ? <span className="loading loading-spinner loading-sm" /> : <UserPlus className="size-4" />}
          Create account
        </button>
      </form>
    </AuthCard>
  )
}
