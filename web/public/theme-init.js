// Applies the saved DaisyUI theme before the first paint (no flash of the default theme).
try {
  var t = localStorage.getItem('chatd-theme')
  if (t && /^[a-z0-9-]+$/.test(t)) document.documentElement.setAttribute('data-theme', t)
} catch (e) {
  /* storage unavailable: keep the default theme */
}
