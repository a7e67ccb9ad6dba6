import { useEffect, useRef, useState } from 'react'
import { Link } from 'react-router'
import { Camera, CalendarDays, CheckCircle2, Mail, Palette, Save } from 'lucide-react'
import { authStore, useAuth } from '../stores/index.js'
import { Avatar } from '../components/Avatar.jsx'
import { FieldError } from '../components/AuthCard.jsx'
import { checkImage, downscaleImage, IMAGE_ACCEPT, readAsDataUrl } from '../lib/files.js'
import { fullLabel, monthYear } from '../lib/format.js'

const MAX_BIO = 500

export default function Profile() {
  const user = useAuth((s) => s.user)
  const [name, setName] = useState(user?.full_name ?? '')
  const [bio, setBio] = useState(user?.bio ?? '')
  const [picture, setPicture] = useState(null) // new avatar as a data URL
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const [fields, setFields] = useState({})
  const [saved, setSaved] = useState(false)
  const fileRef = useRef(null)

  useEffect(() => {
    if (!saved) return
    const t = setTimeout(() => setSaved(false), 4000)
    return () => clearTimeout(t)
  }, [saved])

  const changed =
    picture !== null || name.trim() !== (user?.full_name ?? '') || bio.trim() !== (user?.bio ?? '').trim()

  const pick = async (file) => {
    setError(null)
    const problem = checkImage(file)
    if (problem) return setError(problem)
    try {
      const original = await readAsDataUrl(file)
      setPicture(await downscaleImage(file, original, 512))
      setSaved(false)
    } catch {
      setError('Could not read that image')
    }
  }

  const submit = async (e) => {
    e.preventDefault()
    if (!changed || busy) return
    setBusy(true)
    setError(null)
    setFields({})
    const patch = {}
    if (name.trim() !== user.full_name) patch.full_name = name.trim()
    if (bio.trim() !== (user.bio ?? '').trim()) patch.bio = bio.trim()
    if (picture) patch.profile_picture = picture
    try {
      await authStore.getState().updateProfile(patch)
      setPicture(null)
      setSaved(true)
    } catch (err) {
      setError(err?.message || 'Could not save your profile')
      setFields(err?.fields || {})
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="h-full overflow-y-auto">
      <div className="mx-auto max-w-2xl p-4 sm:p-8">
        <form onSubmit={submit} className="card border border-base-300 bg-base-100 shadow-sm" data-testid="profile-form">
          <div className="h-28 rounded-t-box brand-gradient opacity-90" aria-hidden="true" />
          <div className="card-body -mt-20 gap-6">
            <div className="flex flex-col items-center gap-3 text-center">
              <div className="relative">
                <div className="rounded-full ring-4 ring-base-100" data-testid="profile-avatar-preview" data-changed={picture ? 'true' : 'false'}>
                  <Avatar user={user} src={picture ?? undefined} size="xl" />
                </div>
                <button
                  type="button"
                  className="btn btn-primary btn-circle btn-sm absolute bottom-1 right-1 shadow"
                  onClick={() => fileRef.current?.click()}
                  aria-label="Change profile picture"
                  data-testid="profile-avatar-button"
                >
                  <Camera className="size-4" />
                </button>
                <input
                  ref={fileRef}
                  type="file"
                  accept={IMAGE_ACCEPT}
                  className="hidden"
                  data-testid="profile-avatar-input"
                  onChange={(e) => {
                    const f = e.target.files?.[0]
                    e.target.value = ''
                    if (f) pick(f)
                  }}
                />
              </div>
              <div>
                <h1 className="text-2xl font-bold">{user?.full_name}</h1>
                <p className="text-sm text-base-content/60">
                  {picture ? 'New picture selected: save to apply it.' : 'Click the camera to change your picture.'}
                </p>
              </div>
            </div>

            {error && (
              <div role="alert" className="alert alert-error alert-soft text-sm" data-testid="profile-error">
                {error}
              </div>
            )}
            {saved && (
              <div role="status" className="alert alert-success alert-soft text-sm" data-testid="profile-success">
                <CheckCircle2 className="size-4" /> Profile saved
              </div>
            )}

            <fieldset className="fieldset gap-4">
              <div>
                <label className="fieldset-legend" htmlFor="profile-name">
                  Full name
                </label>
                <input
                  id="profile-name"
                  className={`input w-full ${fields.full_name ? 'input-error' : ''}`}
                  value={name}
                  maxLength={100}
                  required
                  onChange={(e) => setName(e.target.value)}
                  data-testid="profile-name"
                />
                <FieldError messages={fields.full_name} />
              </div>
              <div>
                <label className="fieldset-legend" htmlFor="profile-bio">
                  Bio
                </label>
                <textarea
                  id="profile-bio"
                  className={`textarea h-24 w-full ${fields.bio ? 'textarea-error' : ''}`}
                  value={bio}
                  maxLength={MAX_BIO}
                  placeholder="A few words about you"
                  onChange={(e) => setBio(e.target.value)}
                  data-testid="profile-bio"
                />
                <div className="flex justify-between">
                  <FieldError messages={fields.bio} />
                  <span className="ml-auto text-xs text-base-content/50">
                    {bio.length}/{MAX_BIO}
                  </span>
                </div>
              </div>
            </fieldset>

            <div className="grid gap-3 rounded-box bg-base-200 p-4 text-sm sm:grid-cols-2">
              <div className="flex items-center gap-3">
                <Mail className="size-5 text-base-content/50" aria-hidden="true" />
                <div className="min-w-0">
                  <div className="text-xs text-base-content/50">Email</div>
                  <div className="truncate font-medium" data-testid="profile-email">
                    {user?.email}
                  </div>
                </div>
              </div>
              <div className="flex items-center gap-3">
                <CalendarDays className="size-5 text-base-content/50" aria-hidden="true" />
                <div>
                  <div className="text-xs text-base-content/50">Member since</div>
                  <div className="font-medium" title={fullLabel(user?.createdAt)} data-testid="profile-member-since">
                    {monthYear(user?.createdAt) || '—'}
                  </div>
                </div>
              </div>
            </div>

            <div className="card-actions items-center justify-between">
              <Link to="/user/profile/settings" className="btn btn-ghost btn-sm">
                <Palette className="size-4" /> Appearance
              </Link>
              <button type="submit" className="btn btn-primary" disabled={!changed || busy} data-testid="profile-save">
                {busy ? <span className="loading loading-spinner loading-sm" /> : <Save className="size-4" />}
                Save changes
              </button>
            </div>
          </div>
        </form>
      </div>
    </div>
  )
}
