// Image files: type and size checks, reading as a data URL, downscaling avatars.

export const MAX_IMAGE_BYTES = 5 * 1024 * 1024
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif']
export const IMAGE_ACCEPT = IMAGE_TYPES.join(',')

/** Returns an error message for a file that cannot be sent, or null. */
export function checkImage(file, maxBytes = MAX_IMAGE_BYTES) {
  if (!file) return 'No file selected'
  if (!IMAGE_TYPES.includes(file.type)) return 'Please choose a PNG, JPEG, WebP or GIF image'
  if (file.size > maxBytes) return `Images can be at most ${Math.round(maxBytes / 1024 / 1024)} MB`
  return null
}

export function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader()
    reader.onload = () => resolve(String(reader.result))
    reader.onerror = () => reject(reader.error ?? new Error('Could not read the file'))
    reader.readAsDataURL(file)
  })
}

/**
 * Downscales an image to at most `size`×`size` pixels (keeping its aspect ratio) as a JPEG or
 * WebP data URL. Animated GIFs and images already small enough are returned unchanged. Falls
 * back to the original if the browser cannot decode it.
 */
export async function downscaleImage(file, dataUrl, size = 512) {
  if (file.type === 'image/gif') return dataUrl
  try {
    const img = await new Promise((resolve, reject) => {
      const el = new Image()
      el.onload = () => resolve(el)
      el.onerror = () => reject(new Error('decode'))
      el.src = dataUrl
    })
    const scale = Math.min(1, size / Math.max(img.naturalWidth, img.naturalHeight))
    if (scale >= 1 && file.size < 300 * 1024) return dataUrl
    const w = Math.max(1, Math.round(img.naturalWidth * scale))
    const h = Math.max(1, Math.round(img.naturalHeight * scale))
    const canvas = document.createElement('canvas')
    canvas.width = w
    canvas.height = h
    const ctx = canvas.getContext('2d')
    if (!ctx) return dataUrl
    ctx.drawImage(img, 0, 0, w, h)
    const type = file.type === 'image/png' ? 'image/webp' : 'image/jpeg'
    const out = canvas.toDataURL(type, 0.88)
    return out.startsWith(`data:${type}`) && out.length < dataUrl.length ? out : dataUrl
  } catch {
    return dataUrl
  }
}
