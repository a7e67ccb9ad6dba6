import { WifiOff } from 'lucide-react'
import { useChat } from '../stores/index.js'

/** Shown while the socket is down (after it had connected or failed to). */
export function ReconnectBanner() {
  const connection = useChat((s) => s.connection)
  if (connection !== 'reconnecting') return null
  return (
    <div
      role="status"
      aria-live="polite"
      data-testid="reconnect-banner"
      className="flex items-center justify-center gap-2 bg-warning px-4 py-1.5 text-sm font-medium text-warning-content"
    >
      <WifiOff className="size-4" aria-hidden="true" />
      <span>Connection lost. Reconnecting…</span>
      <span className="loading loading-dots loading-xs" aria-hidden="true" />
    </div>
  )
}
