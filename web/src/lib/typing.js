// Debounced typing notifications: `typing {isTyping:true}` when the user starts typing (and again
// every `refreshMs` while they keep typing, so the peer's indicator does not time out), and
// `{isTyping:false}` after `idleMs` without input or when the message is sent.

export function createTypingEmitter(send, { idleMs = 2000, refreshMs = 2000, now = () => Date.now() } = {}) {
  let typing = false
  let lastSent = 0
  let idleTimer = null

  const stop = () => {
    clearTimeout(idleTimer)
    idleTimer = null
    if (typing) {
      typing = false
      send(false)
    }
  }

  return {
    /** Call on every keystroke that changes the draft. */
    input() {
      const t = now()
      if (!typing || t - lastSent >= refreshMs) {
        typing = true
        lastSent = t
        send(true)
      }
      clearTimeout(idleTimer)
      idleTimer = setTimeout(stop, idleMs)
    },
    /** Call when the message is sent, the draft is cleared or the conversation closes. */
    stop,
  }
}
