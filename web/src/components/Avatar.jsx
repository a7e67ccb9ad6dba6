import { initials } from '../lib/format.js'

const SIZES = {
  xs: 'w-8 text-xs',
  sm: 'w-10 text-sm',
  md: 'w-12 text-base',
  lg: 'w-16 text-xl',
  xl: 'w-32 text-4xl',
}

// A pleasant colour per name for initials avatars.
const TINTS = [
  'bg-primary text-primary-content',
  'bg-secondary text-secondary-content',
  'bg-accent text-accent-content',
  'bg-info text-info-content',
  'bg-success text-success-content',
  'bg-warning text-warning-content',
]

function tintOf(key) {
  let h = 0
  for (const ch of String(key)) h = (h * 31 + ch.codePointAt(0)) >>> 0
  return TINTS[h % TINTS.length]
}

/**
 * A round avatar: the user's picture, or their initials. `online` (true/false/undefined) adds a
 * presence dot (data-testid="online-dot", data-online="true|false").
 */
export function Avatar({ user, src, size = 'md', online, className = '' }) {
  const picture = src ?? user?.profile_picture
  const name = user?.full_name || user?.email || '?'
  return (
    <div className={`avatar ${picture ? '' : 'avatar-placeholder'} relative shrink-0 ${className}`}>
      <div className={`${SIZES[size]} rounded-full ${picture ? 'bg-base-300' : tintOf(user?._id ?? name)}`}>
        {picture ? (
          <img src={picture} alt="" loading="lazy" decoding="async" draggable="false" />
        ) : (
          <span aria-hidden="true" className="font-semibold">
            {initials(name)}
          </span>
        )}
      </div>
      {online !== undefined && (
        <span
          data-testid="online-dot"
          data-online={online ? 'true' : 'false'}
          title={online ? 'Online' : 'Offline'}
          className={`absolute bottom-0 right-0 block rounded-full ring-2 ring-base-100 ${
            size === 'xs' || size === 'sm' ? 'size-2.5' : 'size-3.5'
          } ${online ? 'bg-success' : 'bg-base-300'}`}
        />
      )}
    </div>
  )
}
