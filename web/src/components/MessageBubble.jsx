import { memo } from 'react'
import { AlertCircle, Check, CheckCheck, Clock3, RotateCw, Trash2 } from 'lucide-react'
import { fullLabel, timeLabel } from '../lib/format.js'
import { Avatar } from './Avatar.jsx'

function Ticks({ status, read }) {
  if (status === 'pending')
    return (
      <span title="Sending" aria-label="Sending" data-testid="tick-pending">
        <Clock3 className="size-3.5" />
      </span>
    )
  if (status === 'failed')
    return (
      <span title="Not sent" aria-label="Not sent" className="text-error" data-testid="tick-failed">
        <AlertCircle className="size-3.5" />
      </span>
    )
  if (read)
    return (
      <span title="Read" aria-label="Read" className="text-info" data-testid="tick-read">
        <CheckCheck className="size-4" />
      </span>
    )
  return (
    <span title="Sent" aria-label="Sent" data-testid="tick-sent">
      <Check className="size-4" />
    </span>
  )
}

/**
 * One message. Text is rendered as a React text node (escaped), never as HTML.
 * data-status: pending | sent | failed; data-read: true once the peer has read it.
 */
export const MessageBubble = memo(function MessageBubble({
  message,
  mine,
  read,
  peer,
  firstOfRun,
  lastOfRun,
  onOpenImage,
  onRetry,
  onDiscard,
  onMediaLoad,
}) {
  const { text, image, createdAt, status } = message
  const failed = status === 'failed'
  const pending = status === 'pending'
  return (
    <div
      className={`chat ${mine ? 'chat-end' : 'chat-start'} ${firstOfRun ? 'mt-2' : 'mt-0.5'} py-0`}
      data-testid="message"
      data-status={status || 'sent'}
      data-own={mine ? 'true' : 'false'}
      data-read={mine && read ? 'true' : 'false'}
      data-message-id={message._id || ''}
      data-client-msg-id={message.clientMsgId || ''}
    >
      {!mine && (
        <div className="chat-image self-end">
          {lastOfRun ? <Avatar user={peer} size="xs" /> : <div className="w-8" aria-hidden="true" />}
        </div>
      )}
      <div
        title={timeLabel(createdAt)}
        className={`chat-bubble max-w-[85%] px-3 py-2 text-[0.95rem] leading-relaxed sm:max-w-[70%] ${
          mine ? 'chat-bubble-primary' : 'bg-base-100 text-base-content shadow-sm'
        } ${pending ? 'opacity-80' : ''} ${failed ? 'outline-2 outline-error/60' : ''} ${
          lastOfRun ? '' : 'before:hidden'
        }`}
      >
        {image && (
          <button
            type="button"
            className="-mx-1 -mt-0.5 mb-1 block cursor-zoom-in overflow-hidden rounded-field focus-visible:outline-2"
            onClick={() => onOpenImage(image)}
            aria-label="Enlarge image"
          >
            <img
              src={image}
              alt="Shared image"
              className="max-h-72 min-h-16 min-w-16 max-w-full object-cover sm:max-w-xs"
              loading="lazy"
              decoding="async"
              onLoad={onMediaLoad}
              data-testid="message-image"
            />
          </button>
        )}
        {text && (
          <p className="whitespace-pre-wrap break-words [overflow-wrap:anywhere]" data-testid="message-text">
            {text}
          </p>
        )}
      </div>
      {(lastOfRun || status === 'pending' || failed) && (
        <div className="chat-footer mt-0.5 flex items-center gap-1 text-[0.7rem] text-base-content/50">
          <time dateTime={createdAt} title={fullLabel(createdAt)}>
            {timeLabel(createdAt)}
          </time>
          {mine && <Ticks status={status} read={read} />}
          {failed && (
            <span className="ml-1 flex items-center gap-1 text-error">
              <span data-testid="message-error">{message.error || 'Not sent'}</span>
              <button
                type="button"
                className="btn btn-link btn-xs h-auto min-h-0 gap-0.5 p-0 text-error"
                onClick={() => onRetry(message.clientMsgId)}
                data-testid="retry-button"
              >
                <RotateCw className="size-3" /> Retry
              </button>
              <button
                type="button"
                className="btn btn-link btn-xs h-auto min-h-0 p-0 text-base-content/50"
                onClick={() => onDiscard(message.clientMsgId)}
                aria-label="Delete unsent message"
                data-testid="discard-button"
              >
                <Trash2 className="size-3" />
              </button>
            </span>
          )}
        </div>
      )}
    </div>
  )
})
