import { useEffect } from 'react'
import { useParams } from 'react-router'
import { chatStore } from '../stores/index.js'
import { Sidebar } from '../components/Sidebar.jsx'
import { Conversation, NoConversation } from '../components/Conversation.jsx'

const USERS_REFRESH_MS = 30_000

/** /chat and /chat/:id — the sidebar and the open conversation (one at a time on a phone). */
export default function Chat() {
  const { id } = useParams()
  const peerId = id ? id.toLowerCase() : null

  // The users list: now, every 30 s and when the tab regains focus (new avatars, new people).
  useEffect(() => {
    const load = () => chatStore.getState().loadUsers()
    load()
    const timer = setInterval(load, USERS_REFRESH_MS)
    const onFocus = () => load()
    window.addEventListener('focus', onFocus)
    return () => {
      clearInterval(timer)
      window.removeEventListener('focus', onFocus)
    }
  }, [])

  useEffect(() => {
    if (peerId) chatStore.getState().openConversation(peerId)
    else chatStore.getState().closeConversation()
  }, [peerId])

  useEffect(() => () => chatStore.getState().closeConversation(), [])

  return (
    <div className="flex h-full min-h-0">
      <aside
        className={`${peerId ? 'hidden md:flex' : 'flex'} w-full shrink-0 flex-col border-r border-base-300 md:w-80 lg:w-96`}
        aria-label="Conversations"
      >
        <Sidebar activeId={peerId} />
      </aside>
      <section className={`${peerId ? 'flex' : 'hidden md:flex'} min-w-0 flex-1 flex-col`}>
        {peerId ? <Conversation key={peerId} peerId={peerId} /> : <NoConversation />}
      </section>
    </div>
  )
}
