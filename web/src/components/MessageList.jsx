import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react'
import { ArrowDown, RefreshCw } from 'lucide-react'
import { chatStore } from '../stores/index.js'
import { isReadByPeer } from '../stores/chat.js'
import { buildItems, renderKey } from '../lib/timeline.js'
import { MessageBubble } from './MessageBubble.jsx'
import { Avatar } from './Avatar.jsx'

function ListSkeleton() {
  const rows = [
    ['start', 'w-48'],
    ['start', 'w-64'],
    ['end', 'w-40'],
    ['start', 'w-56'],
    ['end', 'w-72'],
    ['end', 'w-32'],
  ]
  return (
    <div className="space-y-4 p-4" aria-hidden="true" data-testid="messages-skeleton">
      {rows.map(([side, w], i) => (
        <div key={i} className={`flex ${side === 'end' ? 'justify-end' : 'justify-start'} gap-2`}>
          {side === 'start' && <div className="skeleton size-8 shrink-0 rounded-full" />}
          <div className={`skeleton h-10 ${w} rounded-box`} />
        </div>
      ))}
    </div>
  )
}

/** The scrolling message history of one conversation. */
export function MessageList({ peerId, peer, conv, meId, peerRead, typing, onOpenImage }) {
  const ref = useRef(null)
  const atBottom = useRef(true)
  const initialDone = useRef(false)
  const prev = useRef({ firstKey: null, lastKey: null, height: 0, top: 0 })
  const [newBelow, setNewBelow] = useState(0)
  const messages = conv.messages
  const markerId = conv.unreadMarkerId
  const items = useMemo(() => buildItems(messages, meId, markerId), [messages, meId, markerId])
  const ready = conv.loaded && conv.status !== 'loading'

  const scrollToBottom = useCallback((smooth) => {
    const el = ref.current
    if (!el) return
    el.scrollTo({ top: el.scrollHeight, behavior: smooth ? 'smooth' : 'auto' })
    atBottom.current = true
    setNewBelow(0)
  }, [])

  useLayoutEffect(() => {
    const el = ref.current
    if (!el) return
    const firstKey = messages.length ? renderKey(messages[0]) : null
    const lastKey = messages.length ? renderKey(messages[messages.length - 1]) : null
    const p = prev.current
    if (!initialDone.current) {
      if (ready) {
        const marker = el.querySelector('[data-testid="new-messages-marker"]')
        // Start at the first unread message if there is one (the browser clamps at the bottom).
        el.scrollTop = marker ? marker.offsetTop - 24 : el.scrollHeight
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80
        initialDone.current = true
      }
    } else if (
      p.firstKey &&
      firstKey !== p.firstKey &&
      lastKey === p.lastKey &&
      messages.some((m) => renderKey(m) === p.firstKey)
    ) {
      // An older page was prepended: keep the same messages in view (unless the browser's
      // scroll anchoring already did).
      const delta = el.scrollHeight - p.height
      if (Math.abs(el.scrollTop - p.top) < 2) el.scrollTop = p.top + delta
    } else if (lastKey !== p.lastKey && messages.length) {
      const last = messages[messages.length - 1]
      const mineLast = last.senderId === meId
      if (atBottom.current || mineLast) {
        el.scrollTop = el.scrollHeight
        atBottom.current = true
        setNewBelow(0)
      } else {
        setNewBelow((n) => n + 1)
      }
    }
    prev.current = { firstKey, lastKey, height: el.scrollHeight, top: el.scrollTop }
  }, [messages, ready, meId])

  // The "new messages" marker is placed once the conversation is opened (possibly just after
  // the first render): bring it into view unless the user already scrolled themselves.
  const userScrolled = useRef(false)
  useLayoutEffect(() => {
    const el = ref.current
    if (!el || !markerId || !initialDone.current || userScrolled.current) return
    const marker = el.querySelector('[data-testid="new-messages-marker"]')
    if (!marker) return
    el.scrollTop = marker.offsetTop - 24
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80
    prev.current.top = el.scrollTop
  }, [markerId])
  const onUserScroll = () => {
    userScrolled.current = true
  }

  // Keep the bottom in view when the typing bubble appears.
  useLayoutEffect(() => {
    const el = ref.current
    if (el && typing && atBottom.current) el.scrollTop = el.scrollHeight
  }, [typing])

  // A first page that does not fill the screen: fetch more right away.
  useEffect(() => {
    const el = ref.current
    if (!el || !ready || !conv.hasMore || conv.loadingOlder || conv.olderError) return
    if (el.scrollHeight <= el.clientHeight + 40) chatStore.getState().loadOlder(peerId)
  }, [ready, conv.hasMore, conv.loadingOlder, conv.olderError, messages, peerId])

  const onScroll = () => {
    const el = ref.current
    if (!el) return
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80
    if (atBottom.current && newBelow) setNewBelow(0)
    prev.current.top = el.scrollTop
    prev.current.height = el.scrollHeight
    if (el.scrollTop < 300 && conv.hasMore && !conv.loadingOlder && !conv.olderError) {
      chatStore.getState().loadOlder(peerId)
    }
  }

  const onMediaLoad = useCallback(() => {
    const el = ref.current
    if (el && atBottom.current) el.scrollTop = el.scrollHeight
  }, [])
  const onRetry = useCallback((id) => chatStore.getState().retryMessage(peerId, id), [peerId])
  const onDiscard = useCallback((id) => chatStore.getState().discardMessage(peerId, id), [peerId])

  return (
    <div className="relative min-h-0 flex-1">
      <div
        ref={ref}
        onScroll={onScroll}
        onWheel={onUserScroll}
        onTouchMove={onUserScroll}
        onKeyDown={onUserScroll}
        className="scroll-thin absolute inset-0 overflow-y-auto overscroll-contain px-2 pb-3 sm:px-4"
        role="log"
        aria-label={`Messages with ${peer?.full_name ?? 'this user'}`}
        tabIndex={0}
        data-testid="message-list"
      >
        {!ready ? (
          conv.status === 'error' ? (
            <div className="flex h-full flex-col items-center justify-center gap-3 text-center" data-testid="messages-error">
              <p className="text-error">{conv.error}</p>
              <button className="btn btn-sm" onClick={() => chatStore.getState().loadLatest(peerId)}>
                <RefreshCw className="size-4" /> Retry
              </button>
            </div>
          ) : (
            <ListSkeleton />
          )
        ) : messages.length === 0 ? (
          <div className="flex h-full flex-col items-center justify-center gap-3 p-6 text-center" data-testid="conversation-empty">
            <Avatar user={peer} size="lg" />
            <div>
              <p className="text-lg font-semibold">Say hi to {peer?.full_name ?? 'them'}!</p>
              <p className="text-sm text-base-content/60">This is the very beginning of your conversation.</p>
            </div>
            <button
              type="button"
              className="btn btn-soft btn-primary btn-sm"
              onClick={() => chatStore.getState().sendMessage(peerId, { text: '👋' })}
              data-testid="wave-button"
            >
              👋 Wave
            </button>
          </div>
        ) : (
          <>
            <div className="flex justify-center py-3">
              {conv.loadingOlder ? (
                <span className="loading loading-spinner loading-sm text-primary" data-testid="load-older-spinner" />
              ) : conv.olderError ? (
                <button className="btn btn-ghost btn-xs" onClick={() => chatStore.getState().loadOlder(peerId)}>
                  <RefreshCw className="size-3" /> Couldn’t load older messages. Retry
                </button>
              ) : !conv.hasMore ? (
                <div className="flex flex-col items-center gap-1 py-4 text-center text-xs text-base-content/50" data-testid="history-start">
                  <Avatar user={peer} size="md" />
                  <span>This is the beginning of your conversation with {peer?.full_name ?? 'this user'}.</span>
                </div>
              ) : (
                <span className="h-4" />
              )}
            </div>
            {items.map((it) =>
              it.type === 'day' ? (
                <div key={it.key} className="divider my-3 text-xs font-medium text-base-content/50" data-testid="day-separator">
                  <time dateTime={it.date}>{it.label}</time>
                </div>
              ) : it.type === 'marker' ? (
                <div
                  key={it.key}
                  className="divider divider-secondary my-2 text-xs font-semibold text-secondary"
                  data-testid="new-messages-marker"
                >
                  New messages
                </div>
              ) : (
                <MessageBubble
                  key={it.key}
                  message={it.message}
                  mine={it.mine}
                  read={it.mine && isReadByPeer(it.message, peerRead)}
                  peer={peer}
                  firstOfRun={it.firstOfRun}
                  lastOfRun={it.lastOfRun}
                  onOpenImage={onOpenImage}
                  onRetry={onRetry}
                  onDiscard={onDiscard}
                  onMediaLoad={onMediaLoad}
                />
              ),
            )}
            {typing && (
              <div className="chat chat-start mt-2" data-testid="typing-bubble" aria-hidden="true">
                <div className="chat-image">
                  <Avatar user={peer} size="xs" />
                </div>
                <div className="chat-bubble flex items-center gap-1 bg-base-100 shadow-sm">
                  <span className="typing-dot size-1.5 rounded-full bg-base-content/60" />
                  <span className="typing-dot size-1.5 rounded-full bg-base-content/60" />
                  <span className="typing-dot size-1.5 rounded-full bg-base-content/60" />
                </div>
              </div>
            )}
          </>
        )}
      </div>
      {newBelow > 0 && (
        <button
          type="button"
          className="btn btn-primary btn-sm absolute bottom-3 left-1/2 -translate-x-1/2 rounded-full shadow-lg"
          onClick={() => scrollToBottom(true)}
          data-testid="jump-to-bottom"
        >
          <ArrowDown className="size-4" /> {newBelow} new {newBelow === 1 ? 'message' : 'messages'}
        </button>
      )}
    </div>
  )
}
