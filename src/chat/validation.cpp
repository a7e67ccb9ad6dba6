#include "chat/validation.hpp"

#include <cctype>
#include <cstring>

#include "core/base64.hpp"
#include "core/text.hpp"

namespace chat {

void FieldErrors::add(std::string field, std::string message) {
  for (auto& [f, msgs] : fields_)
    if (f == field) {
      msgs.push_back(std::move(message));
      return;
    }
  fields_.emplace_back(std::move(field), std::vector<std::string>{std::move(message)});
}

std::string trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::string normalize_email(std::string_view email) { return to_lower_ascii(trim(email)); }

bool is_valid_email(std::string_view e) {
  if (e.size() < 3 || e.size() > 254) return false;
  auto at = e.find('@');
  if (at == std::string_view::npos || at == 0 || at > 64 || e.find('@', at + 1) != std::string_view::npos)
    return false;
  std::string_view domain = e.substr(at + 1);
  if (domain.size() < 3 || domain.front() == '.' || domain.back() == '.' ||
      domain.find('.') == std::string_view::npos || domain.find("..") != std::string_view::npos)
    return false;
  for (unsigned char c : e)
    if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' ||
        c == ';' || c == ':' || c == '\\' || c == '"' || c == '[' || c == ']')
      return false;
  return true;
}

long utf8_length(std::string_view s) noexcept {
  // Strict UTF-8 (RFC 3629): no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF.
  long n = 0;
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  for (std::size_t i = 0; i < s.size(); ++n) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return -1;
    }
    if (i + len > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return -1;
    for (std::size_t k = 2; k < len; ++k)
      if ((byte(i + k) & 0xc0) != 0x80) return -1;
    i += len;
  }
  return n;
}

const char* sniff_image_type(std::string_view b) noexcept {
  auto starts = [&](const char* magic, std::size_t n, std::size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (starts("\xff\xd8\xff", 3)) return "image/jpeg";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "image/gif";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "image/webp";
  return nullptr;
}

result<Image> parse_image_data_url(std::string_view url, std::size_t max_bytes) {
  constexpr std::string_view prefix = "data:";
  if (!url.starts_with(prefix))
    return error{errc::invalid_argument, "Image must be a data URL (data:image/...;base64,...)"};
  auto comma = url.find(',');
  if (comma == std::string_view::npos) return error{errc::invalid_argument, "Malformed data URL"};
  std::string meta = to_lower_ascii(trim(url.substr(prefix.size(), comma - prefix.size())));
  if (!meta.ends_with(";base64")) return error{errc::invalid_argument, "Image data URL must be base64-encoded"};
  std::string mime = meta.substr(0, meta.size() - 7);
  if (mime == "image/jpg") mime = "image/jpeg";
  static const std::pair<const char*, const char*> allowed[] = {
      {"image/png", "png"}, {"image/jpeg", "jpg"}, {"image/webp", "webp"}, {"image/gif", "gif"}};
  const char* ext = nullptr;
  for (auto [m, e] : allowed)
    if (mime == m) ext = e;
  if (!ext) return error{errc::invalid_argument, "Image type must be png, jpeg, webp or gif"};
  std::string_view data = url.substr(comma + 1);
  // Decoded size is 3/4 of the encoded size: refuse oversize input before decoding it.
  if (data.size() / 4 * 3 > max_bytes + 3) return error{errc::too_large, "Image is too large"};
  auto bytes = base64_decode(data);
  if (!bytes || bytes->empty()) return error{errc::invalid_argument, "Image data is not valid base64"};
  if (bytes->size() > max_bytes) return error{errc::too_large, "Image is too large"};
  const char* real = sniff_image_type(*bytes);
  if (!real || mime != real)
    return error{errc::invalid_argument, "Image content does not match its declared type"};
  return Image{mime, ext, std::move(*bytes)};
}

}  // namespace chat
