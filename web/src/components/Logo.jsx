/** The chatd mark: a speech bubble with three dots on the brand gradient. */
export function LogoMark({ className = 'size-8' }) {
  return (
    <svg viewBox="0 0 64 64" className={className} aria-hidden="true">
      <defs>
        <linearGradient id="chatd-logo-g" x1="0" y1="0" x2="1" y2="1">
          <stop offset="0" stopColor="var(--color-primary)" />
          <stop offset="1" stopColor="var(--color-secondary)" />
        </linearGradient>
      </defs>
      <rect width="64" height="64" rx="16" fill="url(#chatd-logo-g)" />
      <path
        d="M18 20h28a6 6 0 0 1 6 6v12a6 6 0 0 1-6 6H32l-9 7v-7h-5a6 6 0 0 1-6-6V26a6 6 0 0 1 6-6z"
        fill="#fff"
      />
      <circle cx="25" cy="32" r="3" fill="var(--color-primary)" />
      <circle cx="32" cy="32" r="3" fill="color-mix(in oklab, var(--color-primary), var(--color-secondary))" />
      <circle cx="39" cy="32" r="3" fill="var(--color-secondary)" />
    </svg>
  )
}

/** Mark + wordmark. */
export function Logo({ size = 'md' }) {
  const mark = size === 'lg' ? 'size-12' : size === 'sm' ? 'size-7' : 'size-9'
  const text = size === 'lg' ? 'text-4xl' : size === 'sm' ? 'text-xl' : 'text-2xl'
  return (
    <span className="inline-flex items-center gap-2 select-none" data-testid="logo">
      <LogoMark className={mark} />
      <span className={`${text} font-extrabold tracking-tight brand-text`}>chatd</span>
    </span>
  )
}
