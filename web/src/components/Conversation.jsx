import { useCallback, useState } from 'react'
import { Link } from 'react-router'
import { ArrowLeft, MessagesSquare, UserX } from 'lucide-react'
import { useChat } from '../stores/index.js'
import { Avatar } from './Avatar.jsx'
import { MessageList } from './MessageList.jsx'
import { Composer } from './Composer.jsx'
import { ImageModal } from './ImageModal.jsx'

const EMPTY_CONVERSATION = {
  messages: [],
  status: 'idle',
  loaded: false,
  hasMore: false,
  loadingOlder: false,
  unreadMarkerId: null,
}

/** Shown on wide screens when no conversation is open. */
export function NoConversation() {
  return (
    <div className="flex h-full flex-col items-center justify-center gap-4 p-8 text-center" data-testid="no-conversation">
      <div className="grid size-20 place-items-center rounded-full bg-primary/10">
        <MessagesSquare className="size-10 text-primary" aria-hidden="true" />
      </div>
      <div>
        <h2 className="text-xl font-bold">Welcome to chatd</h2>
        <p className="mt-1 max-w-sm text-base-content/60">
          Pick someone on the left to start chatting. Messages arrive instantly and are never lost.
        </p>
      </div>
    </div>
  )
}

function BackButton() {
  return (
    <Link to="/chat" className="btn btn-ghost btn-sm btn-square md:hidden" aria-label="Back to chats" data-testid="back-button">
      <ArrowLeft className="size-5" />
    </Link>
  )
}

/** Header + history + composer for the conversation with `peerId`. */
export function Conversation({ peerId }) {
  const conv = useChat((s) => s.conversations[peerId]) ?? EMPTY_CONVERSATION
  const peer = useChat((s) => s.users.find((u) => u._id === peerId))
  const usersStatus = useChat((s) => s.usersStatus)
  const online = useChat((s) => !!s.online[peerId])
  const typing = useChat((s) => !!s.typing[peerId])
  const peerReadMap = useChat((s) => s.peerRead)
  const meId = useChat((s) => s.meId)
  const [enlarged, setEnlarged] = useState(null)
  const openImage = useCallback((src) => setEnlarged(src), [])

  if (!peer && (usersStatus === 'ready' || !/^[0-9a-f]{24}$/.test(peerId))) {
    return (
      <div className="flex h-full flex-col items-center justify-center gap-3 p-8 text-center" data-testid="conversation-not-found">
        <UserX className="size-12 text-base-content/30" aria-hidden="true" />
        <p className="text-lg font-semibold">This person isn’t here</p>
        <p className="text-sm text-base-content/60">The link may be wrong, or the account no longer exists.</p>
        <Link to="/chat" className="btn btn-primary btn-sm">
          Back to chats
        </Link>
      </div>
    )
  }

  return (
    <div className="flex h-full min-h-0 flex-col bg-base-200" data-testid="conversation" data-peer-id={peerId}>
      <header
        className="flex shrink-0 items-center gap-3 border-b border-base-300 bg-base-100 px-2 py-2 sm:px-4"
        data-testid="conversation-header"
      >
        <BackButton />
        {peer ? (
          <>
            <Avatar user={peer} size="sm" online={online} />
            <div className="min-w-0 flex-1">
              <h2 className="truncate font-semibold leading-tight" data-testid="peer-name">
                {peer.full_name}
              </h2>
              <div className="text-xs leading-tight" aria-live="polite">
                {typing ? (
                  <span className="font-medium text-primary" data-testid="typing-indicator">
                    typing…
                  </span>
                ) : (
                  <span
                    className={online ? 'text-success' : 'text-base-content/50'}
                    data-testid="peer-status"
                    data-online={online ? 'true' : 'false'}
                  >
                    {online ? 'Online' : 'Offline'}
                  </span>
                )}
              </div>
            </div>
          </>
        ) : (
          <div className="flex flex-1 items-center gap-3">
            <div className="skeleton size-10 rounded-full" />
            <div className="skeleton h-4 w-32" />
          </div>
        )}
      </header>
      <MessageList
        peerId={peerId}
        peer={peer}
        conv={conv}
        meId={meId}
        peerRead={peerReadMap}
        typing={typing}
        onOpenImage={openImage}
      />
      <Composer peerId={peerId} peerName={peer?.full_name} />
      <ImageModal src={enlarged} onClose={() => setEnlarged(null)} />
    </div>
  )
}
