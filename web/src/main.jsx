import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { createBrowserRouter } from 'react-router'
import { RouterProvider } from 'react-router/dom'
import './index.css'
import { authStore, chatStore } from './stores/index.js'
import { startRealtime } from './lib/realtime.js'
import { AppLayout } from './components/AppLayout.jsx'
import { GuestOnly, RequireAuth } from './components/Guards.jsx'
import Landing from './pages/Landing.jsx'
import Login from './pages/Login.jsx'
import Signup from './pages/Signup.jsx'
import Chat from './pages/Chat.jsx'
import Profile from './pages/Profile.jsx'
import Settings from './pages/Settings.jsx'
import NotFound from './pages/NotFound.jsx'

const router = createBrowserRouter([
  { path: '/', element: <Landing /> },
  {
    element: <GuestOnly />,
    children: [
      { path: '/user/login', element: <Login /> },
      { path: '/user/signup', element: <Signup /> },
    ],
  },
  {
    element: <RequireAuth />,
    children: [
      {
        element: <AppLayout />,
        children: [
          { path: '/chat', element: <Chat /> },
          { path: '/chat/:id', element: <Chat /> },
          { path: '/user/profile', element: <Profile /> },
          { path: '/user/profile/settings', element: <Settings /> },
        ],
      },
    ],
  },
  { path: '*', element: <NotFound /> },
])

startRealtime(authStore, chatStore)
authStore.getState().checkAuth()

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <RouterProvider router={router} />
  </StrictMode>,
)
