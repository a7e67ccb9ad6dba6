import { useMemo, useState } from 'react'
import { NavLink } from 'react-router'
import { Camera, RefreshCw, Search, UsersRound, X } from 'lucide-react'
import { chatStore, useChat } from '../stores/index.js'
import { compareIds, previewText } from '../lib/messages.js'
import { shortLabel } from '../lib/format.js'
import { Avatar } from './Avatar.jsx'

/** Most recent conversation first, then people you never talked to, online ones first, by name. */
function sortUsers(users, online) {
  return users.slice().sort((a, b) => {
    const la = a.lastMessage?._id
    const lb = b.lastMessage?._id
    if (la && lb) return compareIds(lb, la)
    if (la) return -1
    if (lb) return 1
    const oa = online[a._id] ? 1 : 0
    const ob = online[b._id] ? 1 : 0
    if (oa !== ob) return ob - oa
    return String(a.full_name).localeCompare(String(b.full_name))
  })
}

function SidebarSkeleton() {
  return (
    <ul className="space-y-1 p-2" aria-hidden="true" data-testid="sidebar-skeleton">
      {Array.from({ length: 7 }, (_, i) => (
        <li key={i} className="flex items-center gap-3 rounded-box p-2">
          <div className="skeleton size-12 shrink-0 rounded-full" />
          <div className="flex-1 space-y-2">
            <div className="skeleton h-3.5 w-2/3" />
            <div className="skeleton h-3 w-5/6" />
          </div>
        </li>
      ))}
    </ul>
  )
}

function UserItem({ user, online, typing, meId, active }) {
  const last = user.lastMessage
  const mine = last && last.senderId === meId
  const preview = previewText(last)
  const unread = user.unreadCount || 0
  return (
    <li>
      <NavLink
        to={`/chat/${user._id}`}
        data-testid="user-item"
        data-user-id={user._id}
        aria-current={active ? 'page' : undefined}
        className={`flex items-center gap-3 rounded-box p-2 outline-offset-[-2px] transition-colors ${
          active ? 'bg-primary/10' : 'hover:bg-base-200'
        }`}
      >
        <Avatar user={user} online={online} />
        <div className="min-w-0 flex-1">
          <div className="flex items-baseline justify-between gap-2">
            <span
              className={`truncate ${unread ? 'font-bold' : 'font-semibold'}`}
              data-testid="user-item-name"
            >
              {user.full_name}
            </span>
            {last && (
              <time
                className={`shrink-0 text-xs ${unread ? 'font-semibold text-primary' : 'text-base-content/50'}`}
                dateTime={last.createdAt}
              >
                {shortLabel(last.createdAt)}
              </time>
            )}
          </div>
          <div className="flex items-center justify-between gap-2">
            {typing ? (
              <span className="truncate text-sm font-medium text-primary" data-testid="sidebar-typing">
                typing…
              </span>
            ) : (
              <span
                className={`truncate text-sm ${unread ? 'font-medium text-base-content' : 'text-base-content/60'}`}
                data-testid="last-message-preview"
              >
                {last ? (
                  <>
                    {mine && <span className="text-base-content/50">You: </span>}
                    {last.image && <Camera className="mr-1 inline size-3.5 align-[-2px]" aria-hidden="true" />}
                    {preview}
                  </>
                ) : (
                  <span className="italic text-base-content/40">{user.bio || 'Say hello 👋'}</span>
                )}
              </span>
            )}
            {unread > 0 && (
              <span
                className="badge badge-primary badge-sm shrink-0 font-semibold"
                data-testid="unread-badge"
                aria-label={`${unread} unread`}
              >
                {unread > 99 ? '99+' : unread}
              </span>
            )}
          </div>
        </div>
      </NavLink>
    </li>
  )
}

/** Every other user: search, "online only", presence, unread counts and last messages. */
export function Sidebar({ activeId }) {
  const users = useChat((s) => s.users)
  const status = useChat((s) => s.usersStatus)
  const error = useChat((s) => s.usersError)
  const online = useChat((s) => s.online)
  const typing = useChat((s) => s.typing)
  const meId = useChat((s) => s.meId)
  const [query, setQuery] = useState('')
  const [onlineOnly, setOnlineOnly] = useState(false)

  const onlineCount = useMemo(() => users.filter((u) => online[u._id]).length, [users, online])
  const shown = useMemo(() => {
    const q = query.trim().toLowerCase()
    const list = users.filter(
      (u) =>
        (!onlineOnly || online[u._id]) &&
        (!q ||
          String(u.full_name || '').toLowerCase().includes(q) ||
          String(u.email || '').toLowerCase().includes(q)),
    )
    return sortUsers(list, online)
  }, [users, online, query, onlineOnly])

  return (
    <div className="flex h-full min-h-0 flex-col bg-base-100" data-testid="sidebar">
      <div className="space-y-3 border-b border-base-300 p-3">
        <div className="flex items-center justify-between">
          <h2 className="text-lg font-bold">Chats</h2>
          <span className="badge badge-ghost badge-sm gap-1" data-testid="online-count">
            <span className="size-2 rounded-full bg-success" aria-hidden="true" />
            {onlineCount} online
          </span>
        </div>
        <label className="input input-sm w-full">
          <Search className="size-4 opacity-50" aria-hidden="true" />
          <input
            type="search"
            placeholder="Search people"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            aria-label="Search people"
            data-testid="sidebar-search"
          />
          {query && (
            <button
              type="button"
              className="btn btn-ghost btn-xs btn-circle"
              onClick={() => setQuery('')}
              aria-label="Clear search"
            >
              <X className="size-3" />
            </button>
          )}
        </label>
        <label className="flex cursor-pointer items-center justify-between gap-2 text-sm">
          <span className="text-base-content/70">Show online only</span>
          <input
            type="checkbox"
            className="toggle toggle-success toggle-sm"
            checked={onlineOnly}
            onChange={(e) => setOnlineOnly(e.target.checked)}
            data-testid="online-only-toggle"
          />
        </label>
      </div>

      <div className="scroll-thin min-h-0 flex-1 overflow-y-auto">
        {status === 'loading' || status === 'idle' ? (
          <SidebarSkeleton />
        ) : status === 'error' ? (
          <div className="flex flex-col items-center gap-3 p-8 text-center" data-testid="sidebar-error">
            <p className="text-sm text-error">{error}</p>
            <button className="btn btn-sm" onClick={() => chatStore.getState().loadUsers()}>
              <RefreshCw className="size-4" /> Retry
            </button>
          </div>
        ) : shown.length === 0 ? (
          <div className="flex flex-col items-center gap-2 p-8 text-center" data-testid="sidebar-empty">
            <UsersRound className="size-10 text-base-content/30" aria-hidden="true" />
            {users.length === 0 ? (
              <>
                <p className="font-medium">It’s quiet in here</p>
                <p className="text-sm text-base-content/60">
                  Nobody else has signed up yet. Invite a friend to join chatd!
                </p>
              </>
            ) : (
              <>
                <p className="font-medium">No one found</p>
                <p className="text-sm text-base-content/60">
                  {onlineOnly && !query ? 'Nobody is online right now.' : 'Try another name.'}
                </p>
              </>
            )}
          </div>
        ) : (
          <ul className="space-y-0.5 p-2" aria-label="People">
            {shown.map((u) => (
              <UserItem
                key={u._id}
                user={u}
                online={!!online[u._id]}
                typing={!!typing[u._id]}
                meId={meId}
                active={u._id === activeId}
              />
            ))}
          </ul>
        )}
      </div>
    </div>
  )
}
