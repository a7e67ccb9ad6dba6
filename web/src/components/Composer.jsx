import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react'
import { ImagePlus, SendHorizontal, X } from 'lucide-react'
import { chatStore, useChat } from '../stores/index.js'
import { checkImage, IMAGE_ACCEPT, readAsDataUrl } from '../lib/files.js'
import { createTypingEmitter } from '../lib/typing.js'
import { formatBytes } from '../lib/format.js'

const MAX_TEXT = 4000

/** Message input: Enter sends, Shift+Enter adds a line; an image can be attached or pasted. */
export function Composer({ peerId, peerName }) {
  const connected = useChat((s) => s.connection === 'connected')
  const [text, setText] = useState('')
  const [image, setImage] = useState(null) // {dataUrl, name, size}
  const [error, setError] = useState(null)
  const textRef = useRef(null)
  const fileRef = useRef(null)

  const typing = useMemo(
    () => createTypingEmitter((isTyping) => chatStore.getState().sendTyping(peerId, isTyping)),
    [peerId],
  )
  useEffect(() => () => typing.stop(), [typing])

  // Grow with the text, up to about six lines.
  useLayoutEffect(() => {
    const el = textRef.current
    if (!el) return
    el.style.height = 'auto'
    el.style.height = `${Math.min(el.scrollHeight, 160)}px`
  }, [text])

  // Focus the input when a conversation opens (not on touch screens: the keyboard would pop up).
  useEffect(() => {
    if (window.matchMedia?.('(pointer: fine)').matches) textRef.current?.focus()
  }, [peerId])

  const attach = async (file) => {
    setError(null)
    const problem = checkImage(file)
    if (problem) {
      setError(problem)
      return
    }
    try {
      const dataUrl = await readAsDataUrl(file)
      setImage({ dataUrl, name: file.name || 'image', size: file.size })
    } catch {
      setError('Could not read that image')
    }
  }

  const canSend = connected && (text.trim().length > 0 || !!image) && text.length <= MAX_TEXT

  const submit = () => {
    if (!canSend) return
    const payload = { text, image: image?.dataUrl ?? '' }
    setText('')
    setImage(null)
    setError(null)
    typing.stop()
    chatStore.getState().sendMessage(peerId, payload)
    textRef.current?.focus()
  }

  const onKeyDown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault()
      submit()
    }
  }

  const onPaste = (e) => {
    const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'))
    if (file) {
      e.preventDefault()
      attach(file)
    }
  }

  return (
    <div className="shrink-0 border-t border-base-300 bg-base-100 p-2 sm:p-3" data-testid="composer">
      {(image || error) && (
        <div className="mb-2 flex items-center gap-3 px-1">
          {image && (
            <div className="flex items-center gap-3 rounded-box bg-base-200 p-2 pr-3" data-testid="image-preview">
              <img src={image.dataUrl} alt="Attachment preview" className="size-16 rounded-field object-cover" />
              <div className="min-w-0 text-sm">
                <div className="max-w-48 truncate font-medium">{image.name}</div>
                <div className="text-base-content/60">{formatBytes(image.size)}</div>
              </div>
              <button
                type="button"
                className="btn btn-ghost btn-xs btn-circle"
                onClick={() => setImage(null)}
                aria-label="Remove image"
                data-testid="remove-image"
              >
                <X className="size-4" />
              </button>
            </div>
          )}
          {error && (
            <div role="alert" className="text-sm text-error" data-testid="composer-error">
              {error}
            </div>
          )}
        </div>
      )}
      <form
        className="flex items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault()
          submit()
        }}
      >
        <input
          ref={fileRef}
          type="file"
          accept={IMAGE_ACCEPT}
          className="hidden"
          data-testid="image-input"
          onChange={(e) => {
            const f = e.target.files?.[0]
            e.target.value = ''
            if (f) attach(f)
          }}
        />
        <button
          type="button"
          className="btn btn-ghost btn-circle shrink-0"
          onClick={() => fileRef.current?.click()}
          disabled={!connected}
          aria-label="Attach an image"
          title="Attach an image"
          data-testid="attach-button"
        >
          <ImagePlus className="size-5" />
        </button>
        <div className="relative min-w-0 flex-1">
          <textarea
            ref={textRef}
            rows={1}
            value={text}
            disabled={!connected}
            onChange={(e) => {
              setText(e.target.value)
              if (e.target.value) typing.input()
              else typing.stop()
            }}
            onKeyDown={onKeyDown}
            onPaste={onPaste}
            onBlur={() => typing.stop()}
            placeholder={connected ? `Message ${peerName || ''}`.trim() : 'Waiting for the connection…'}
            aria-label="Message"
            data-testid="composer-input"
            className="textarea textarea-bordered block max-h-40 min-h-11 w-full resize-none py-2.5 leading-snug"
          />
          {text.length > MAX_TEXT - 200 && (
            <span
              className={`absolute bottom-1 right-3 text-xs ${text.length > MAX_TEXT ? 'text-error' : 'text-base-content/50'}`}
            >
              {text.length}/{MAX_TEXT}
            </span>
          )}
        </div>
        <button
          type="submit"
          className="btn btn-primary btn-circle shrink-0"
          disabled={!canSend}
          aria-label="Send"
          title="Send (Enter)"
          data-testid="send-button"
        >
          <SendHorizontal className="size-5" />
        </button>
      </form>
    </div>
  )
}
