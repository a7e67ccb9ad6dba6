import { useEffect, useRef } from 'react'
import { X } from 'lucide-react'

/** A full-screen view of an image (a native <dialog>: Esc and the backdrop close it). */
export function ImageModal({ src, onClose }) {
  const ref = useRef(null)
  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (src && !d.open) d.showModal()
    if (!src && d.open) d.close()
  }, [src])
  return (
    <dialog ref={ref} className="modal" onClose={onClose} data-testid="image-modal">
      <div className="modal-box max-w-5xl bg-base-100 p-2">
        <form method="dialog" className="absolute right-3 top-3 z-10">
          <button className="btn btn-circle btn-sm" aria-label="Close image" data-testid="image-modal-close">
            <X className="size-4" />
          </button>
        </form>
        {src && <img src={src} alt="Enlarged" className="mx-auto max-h-[85dvh] rounded-box object-contain" />}
      </div>
      <form method="dialog" className="modal-backdrop">
        <button aria-label="Close">close</button>
      </form>
    </dialog>
  )
}
