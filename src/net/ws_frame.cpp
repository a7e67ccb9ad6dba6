#include "net/ws_frame.hpp"

#include <openssl/evp.h>

#include <cstring>

#include "core/base64.hpp"

namespace chat::net::ws {
namespace {

std::uint64_t load_be(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool valid_close_code(std::uint16_t c) {
  if (c >= 3000 && c <= 4999) return true;
  switch (c) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010:
    case 1011:
      return true;
    default:
      return false;
  }
}

}  // namespace

void apply_mask(char* p, std::size_t n, const unsigned char key[4]) noexcept {
  const unsigned char key8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  std::uint64_t k8;
  std::memcpy(&k8, key8, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= k8;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    // ASCII runs, 8 bytes at a time: the common case for JSON.
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p >= end) break;
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int len;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    p += len;
  }
  return true;
}

FrameReader::Step FrameReader::next_frame(char* p, std::size_t n, Frame& f, ParseResult& r) {
  auto fail = [&r](std::uint16_t code, const char* why) {
    r.error = code;
    r.reason = why;
    return Step::error;
  };
  if (n < 2) return Step::need_more;
  const auto b0 = static_cast<unsigned char>(p[0]);
  const auto b1 = static_cast<unsigned char>(p[1]);
  if (b0 & 0x70) return fail(kCloseProtocolError, "reserved bits set");
  const unsigned op = b0 & 0x0F;
  if (!(b1 & 0x80)) return fail(kCloseProtocolError, "unmasked client frame");
  std::uint64_t len = b1 & 0x7F;
  std::size_t hdr = 2;
  if (len == 126) {
    if (n < 4) return Step::need_more;
    len = load_be(p + 2, 2);
    hdr = 4;
    if (len < 126) return fail(kCloseProtocolError, "non-minimal length");
  } else if (len == 127) {
    if (n < 10) return Step::need_more;
    len = load_be(p + 2, 8);
    hdr = 10;
    if (len >> 63) return fail(kCloseProtocolError, "length with the high bit set");
    if (len < 65536) return fail(kCloseProtocolError, "non-minimal length");
  }
  f.fin = (b0 & 0x80) != 0;
  switch (op) {
    case 0x0: case 0x1: case 0x2:
      // Checked before the payload arrives, so an oversize frame is never buffered.
      if (len > max_message_ || partial_.size() + len > max_message_)
        return fail(kCloseTooBig, "message too big");
      break;
    case 0x8: case 0x9: case 0xA:
      if (!f.fin) return fail(kCloseProtocolError, "fragmented control frame");
      if (len > 125) return fail(kCloseProtocolError, "control frame too long");
      break;
    default:
      return fail(kCloseProtocolError, "unknown opcode");
  }
  f.op = static_cast<Opcode>(op);
  if (n < hdr + 4) return Step::need_more;
  unsigned char key[4];
  std::memcpy(key, p + hdr, 4);
  hdr += 4;
  if (n - hdr < len) return Step::need_more;
  f.header_size = hdr;
  f.length = static_cast<std::size_t>(len);
  f.payload = p + hdr;
  apply_mask(f.payload, f.length, key);
  return Step::frame;
}

bool FrameReader::take(Frame& f, Event& ev, ParseResult& r) {
  auto fail = [&r](std::uint16_t code, const char* why) {
    r.error = code;
    r.reason = why;
    return false;
  };
  const std::string_view payload(f.payload, f.length);
  switch (f.op) {
    case Opcode::text:
    case Opcode::binary:
      if (in_message_) return fail(kCloseProtocolError, "new message inside a fragmented one");
      if (!f.fin) {
        in_message_ = true;
        partial_binary_ = f.op == Opcode::binary;
        partial_.assign(payload);
        return true;
      }
      if (f.op == Opcode::text && !valid_utf8(payload))
        return fail(kCloseInvalidPayload, "text message is not UTF-8");
      ev.kind = Event::Kind::message;
      ev.binary = f.op == Opcode::binary;
      ev.data.assign(payload);
      f.deliver = true;
      return true;
    case Opcode::continuation:
      if (!in_message_) return fail(kCloseProtocolError, "continuation without a message");
      partial_.append(payload);
      if (!f.fin) return true;
      if (!partial_binary_ && !valid_utf8(partial_))
        return fail(kCloseInvalidPayload, "text message is not UTF-8");
      ev.kind = Event::Kind::message;
      ev.binary = partial_binary_;
      ev.data = std::move(partial_);
      partial_ = std::string();  // give the capacity back
      in_message_ = false;
      f.deliver = true;
      return true;
    case Opcode::ping:
    case Opcode::pong:
      ev.kind = f.op == Opcode::ping ? Event::Kind::ping : Event::Kind::pong;
      ev.data.assign(payload);
      f.deliver = true;
      return true;
    case Opcode::close:
      ev.kind = Event::Kind::close;
      if (payload.empty()) {
        ev.close_code = kCloseNoStatus;
      } else {
        if (payload.size() < 2) return fail(kCloseProtocolError, "close frame with one byte");
        ev.close_code = static_cast<std::uint16_t>(load_be(payload.data(), 2));
        if (!valid_close_code(ev.close_code)) return fail(kCloseProtocolError, "invalid close code");
        ev.data.assign(payload.substr(2));
        if (!valid_utf8(ev.data)) return fail(kCloseInvalidPayload, "close reason is not UTF-8");
      }
      r.closed = true;
      f.deliver = true;
      return true;
  }
  return fail(kCloseProtocolError, "unknown opcode");
}

std::size_t append_frame_header(std::string& out, Opcode op, std::size_t n) {
  char h[10];
  std::size_t len = 2;
  h[0] = static_cast<char>(0x80 | static_cast<unsigned>(op));
  if (n < 126) {
    h[1] = static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    h[1] = 126;
    h[2] = static_cast<char>(n >> 8);
    h[3] = static_cast<char>(n);
    len = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
    len = 10;
  }
  out.append(h, len);
  return len;
}

void append_frame(std::string& out, Opcode op, std::string_view payload) {
  append_frame_header(out, op, payload.size());
  out.append(payload);
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason.substr(0, 123));
  return p;
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in;
  in.reserve(client_key.size() + kGuid.size());
  in.append(client_key).append(kGuid);
  // The digest fetched once: OpenSSL 3's one-shot SHA1() looks the algorithm up on every call.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!sha1 || EVP_Digest(in.data(), in.size(), digest, &len, sha1, nullptr) != 1) return {};
  return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

bool valid_client_key(std::string_view key) {
  if (key.size() != 24) return false;
  auto raw = base64_decode(key);
  return raw && raw->size() == 16;
}

}  // namespace chat::net::ws
