#pragma once
// Tiny real images (1x1 pixel) and data-URL helpers for the chat tests.
#include <cstddef>
#include <string>
#include <string_view>

#include "core/base64.hpp"

namespace chat::test {

inline std::string from_base64(std::string_view b64) {
  auto bytes = base64_decode(b64);
  return bytes ? *bytes : std::string("<bad fixture>");
}

inline std::string tiny_png() {
  return from_base64(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=");
}
inline std::string tiny_jpeg() {
  return from_base64(
      "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
      "////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQAB"
      "PxA=");
}
inline std::string tiny_gif() {
  return from_base64("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7");
}
inline std::string tiny_webp() {
  return from_base64("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==");
}

/// `size` bytes that sniff as PNG (the signature, then filler).
inline std::string png_of_size(std::size_t size) {
  std::string out = tiny_png();
  out.resize(size, 'x');
  return out;
}

inline std::string data_url(std::string_view mime, std::string_view bytes) {
  return "data:" + std::string(mime) + ";base64," + base64_encode(bytes);
}

}  // namespace chat::test
