import { Link } from 'react-router'
import { ArrowRight, CheckCheck, ImageIcon, ShieldCheck, Zap } from 'lucide-react'
import { useAuth } from '../stores/index.js'
import { Logo } from '../components/Logo.jsx'

const FEATURES = [
  {
    icon: Zap,
    title: 'Instant',
    text: 'Messages, typing and presence arrive in real time over WebSockets.',
  },
  {
    icon: ShieldCheck,
    title: 'Never lost',
    text: 'A message is confirmed only once it is safely stored. Offline? It catches up.',
  },
  {
    icon: ImageIcon,
    title: 'Photos too',
    text: 'Share images inline, see when they are read, pick a theme you love.',
  },
]

function PreviewBubble({ side, children, meta }) {
  return (
    <div className={`chat ${side === 'end' ? 'chat-end' : 'chat-start'}`}>
      <div className={`chat-bubble ${side === 'end' ? 'chat-bubble-primary' : 'bg-base-200 text-base-content'}`}>
        {children}
      </div>
      {meta && <div className="chat-footer flex items-center gap-1 text-xs opacity-60">{meta}</div>}
    </div>
  )
}

export default function Landing() {
  const status = useAuth((s) => s.status)
  const signedIn = status === 'authenticated'
  return (
    <div className="relative min-h-dvh overflow-hidden bg-base-200">
      <div className="pointer-events-none absolute -left-40 -top-40 size-[32rem] rounded-full bg-primary/20 blur-3xl" />
      <div className="pointer-events-none absolute -right-40 top-1/3 size-[28rem] rounded-full bg-secondary/20 blur-3xl" />
      <header className="relative mx-auto flex max-w-6xl items-center justify-between p-4 sm:p-6">
        <Logo />
        <nav className="flex items-center gap-2">
          {signedIn ? (
            <Link to="/chat" className="btn btn-primary btn-sm" data-testid="landing-open-chat">
              Open chat
            </Link>
          ) : (
            <>
              <Link to="/user/login" className="btn btn-ghost btn-sm" data-testid="landing-login">
                Log in
              </Link>
              <Link to="/user/signup" className="btn btn-primary btn-sm" data-testid="landing-signup">
                Sign up
              </Link>
            </>
          )}
        </nav>
      </header>

      <main className="relative mx-auto grid max-w-6xl items-center gap-12 px-4 pb-16 pt-6 sm:px-6 lg:grid-cols-2 lg:pt-16">
        <section>
          <span className="badge badge-soft badge-primary mb-4">Real-time chat, done right</span>
          <h1 className="text-4xl font-extrabold leading-tight tracking-tight sm:text-5xl lg:text-6xl">
            Talk in real time.
            <br />
            <span className="brand-text">Lose nothing.</span>
          </h1>
          <p className="mt-5 max-w-xl text-lg text-base-content/70">
            chatd is a fast, friendly messenger. See who is online, watch them type, share photos,
            and know the moment your message is read.
          </p>
          <div className="mt-8 flex flex-wrap gap-3">
            <Link
              to={signedIn ? '/chat' : '/user/signup'}
              className="btn btn-primary btn-lg"
              data-testid="landing-get-started"
            >
              {signedIn ? 'Go to your chats' : 'Get started, it’s free'}
              <ArrowRight className="size-5" />
            </Link>
            {!signedIn && (
              <Link to="/user/login" className="btn btn-ghost btn-lg">
                I have an account
              </Link>
            )}
          </div>
        </section>

        <section aria-hidden="true" className="relative">
          <div className="mockup-window border border-base-300 bg-base-100 shadow-2xl">
            <div className="flex items-center gap-3 border-b border-base-300 px-4 py-3">
              <div className="avatar avatar-online avatar-placeholder">
                <div className="w-10 rounded-full bg-secondary text-secondary-content">
                  <span>AL</span>
                </div>
              </div>
              <div>
                <div className="font-semibold">Ada Lovelace</div>
                <div className="text-xs text-primary">typing…</div>
              </div>
            </div>
            <div className="space-y-1 bg-base-100 p-4">
              <div className="divider my-1 text-xs opacity-60">Today</div>
              <PreviewBubble side="start" meta="9:41">
                Did the new build ship? 🚀
              </PreviewBubble>
              <PreviewBubble
                side="end"
                meta={
                  <>
                    9:42 <CheckCheck className="size-4 text-info" />
                  </>
                }
              >
                Yes! Shipped it this morning.
              </PreviewBubble>
              <PreviewBubble side="start" meta="9:42">
                And nothing dropped when the Wi-Fi blinked?
              </PreviewBubble>
              <PreviewBubble
                side="end"
                meta={
                  <>
                    9:43 <CheckCheck className="size-4 text-info" />
                  </>
                }
              >
                Not a single one. It replays what you missed ✨
              </PreviewBubble>
            </div>
          </div>
        </section>
      </main>

      <section className="relative mx-auto grid max-w-6xl gap-4 px-4 pb-20 sm:grid-cols-3 sm:px-6">
        {FEATURES.map(({ icon: Icon, title, text }) => (
          <div key={title} className="card border border-base-300 bg-base-100/80 shadow-sm backdrop-blur">
            <div className="card-body">
              <div className="grid size-11 place-items-center rounded-box bg-primary/10">
                <Icon className="size-6 text-primary" aria-hidden="true" />
              </div>
              <h2 className="card-title mt-2">{title}</h2>
              <p className="text-base-content/70">{text}</p>
            </div>
          </div>
        ))}
      </section>

      <footer className="relative border-t border-base-300 py-6 text-center text-sm text-base-content/50">
        chatd · real-time chat
      </footer>
    </div>
  )
}
