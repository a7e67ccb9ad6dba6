import { useEffect } from 'react'
import { Link, NavLink, Outlet, useNavigate } from 'react-router'
import { LogOut, MessagesSquare, Palette, UserRound } from 'lucide-react'
import { authStore, useAuth, useChat } from '../stores/index.js'
import { Logo } from './Logo.jsx'
import { Avatar } from './Avatar.jsx'
import { ReconnectBanner } from './ReconnectBanner.jsx'

function NavItem({ to, icon: Icon, label, testId, badge, end }) {
  return (
    <NavLink
      to={to}
      end={end}
      data-testid={testId}
      aria-label={label}
      className={({ isActive }) =>
        `btn btn-ghost btn-sm gap-2 rounded-field px-2 sm:px-3 ${isActive ? 'btn-active text-primary' : ''}`
      }
    >
      <span className="indicator">
        <Icon className="size-5" aria-hidden="true" />
        {badge > 0 && (
          <span className="indicator-item badge badge-secondary badge-xs px-1" data-testid="nav-unread-total">
            {badge > 99 ? '99+' : badge}
          </span>
        )}
      </span>
      <span className="hidden sm:inline">{label}</span>
    </NavLink>
  )
}

/** The signed-in frame: navbar, connection banner, page. */
export function AppLayout() {
  const user = useAuth((s) => s.user)
  const totalUnread = useChat((s) => s.users.reduce((n, u) => n + (u.unreadCount || 0), 0))
  const navigate = useNavigate()

  useEffect(() => {
    document.title = totalUnread > 0 ? `(${totalUnread}) chatd` : 'chatd'
    return () => {
      document.title = 'chatd'
    }
  }, [totalUnread])

  const logout = async () => {
    await authStore.getState().logout()
    navigate('/user/login', { replace: true })
  }

  return (
    <div className="flex h-dvh flex-col bg-base-200">
      <header className="navbar min-h-14 shrink-0 gap-2 border-b border-base-300 bg-base-100 px-2 sm:px-4">
        <div className="flex-1">
          <Link to="/chat" className="rounded-field focus-visible:outline-2" aria-label="chatd home">
            <Logo size="sm" />
          </Link>
        </div>
        <nav className="flex items-center gap-1" aria-label="Main">
          <NavItem to="/chat" icon={MessagesSquare} label="Chats" testId="nav-chat" badge={totalUnread} />
          <NavItem to="/user/profile" end icon={UserRound} label="Profile" testId="nav-profile" />
          <NavItem to="/user/profile/settings" icon={Palette} label="Settings" testId="nav-settings" />
        </nav>
        <div className="flex items-center gap-2 border-l border-base-300 pl-2 sm:pl-3">
          <Link
            to="/user/profile"
            className="hidden items-center gap-2 rounded-field md:flex"
            aria-label="Your profile"
          >
            <Avatar user={user} size="xs" />
            <span className="max-w-40 truncate text-sm font-medium" data-testid="current-user-name">
              {user?.full_name}
            </span>
          </Link>
          <button
            type="button"
            className="btn btn-ghost btn-sm btn-square"
            onClick={logout}
            data-testid="logout-button"
            aria-label="Log out"
            title="Log out"
          >
            <LogOut className="size-5" aria-hidden="true" />
          </button>
        </div>
      </header>
      <ReconnectBanner />
      <main className="min-h-0 flex-1">
        <Outlet />
      </main>
    </div>
  )
}
