import { Link } from 'react-router'
import { Logo } from '../components/Logo.jsx'

export default function NotFound() {
  return (
    <div className="flex min-h-dvh flex-col items-center justify-center gap-6 bg-base-200 p-6 text-center" data-testid="not-found">
      <Logo size="lg" />
      <div>
        <p className="text-6xl font-black text-base-content/20">404</p>
        <h1 className="mt-2 text-xl font-semibold">This page doesn’t exist</h1>
      </div>
      <Link to="/" className="btn btn-primary">
        Back home
      </Link>
    </div>
  )
}
