#include "store/key_filter.hpp"

#include <bit>
#include <functional>

#include "core/hash.hpp"

namespace chat::store {

// Two independent-enough 64-bit hashes of the pair; probe i is h1 + i·h2 (Kirsch–Mitzenmacher).
KeyFilter::Hashes KeyFilter::hash(std::string_view a, std::string_view b) {
  const std::uint64_t ha = std::hash<std::string_view>{}(a);
  const std::uint64_t hb = std::hash<std::string_view>{}(b);
  const std::uint64_t h1 = mix64(ha ^ mix64(hb + 0x9e3779b97f4a7c15ULL));
  return {h1, mix64(h1 ^ ha) | 1};
}

KeyFilter::KeyFilter(std::size_t initial_capacity) {
  add_layer(initial_capacity < 1024 ? 1024 : initial_capacity);
}

void KeyFilter::add_layer(std::size_t capacity) {
  // ~9.6 bits per key give 1% false positives with 7 probes; rounded up to a power of two.
  const std::uint64_t bits = std::bit_ceil(static_cast<std::uint64_t>(capacity) * 10);
  Layer l;
  l.bits.assign(bits / 64, 0);
  l.mask = bits - 1;
  l.capacity = capacity;
  layers_.push_back(std::move(l));
}

bool KeyFilter::test(const Layer& l, std::uint64_t h1, std::uint64_t h2) {
  for (int i = 0; i < kProbes; ++i) {
    const std::uint64_t bit = (h1 + static_cast<std::uint64_t>(i) * h2) & l.mask;
    if ((l.bits[bit >> 6] & (std::uint64_t{1} << (bit & 63))) == 0) return false;
  }
  return true;
}

void KeyFilter::add(const Hashes& h) {
  if (layers_.back().count >= layers_.back().capacity) add_layer(layers_.back().capacity * 2);
  Layer& l = layers_.back();
  for (int i = 0; i < kProbes; ++i) {
    const std::uint64_t bit = (h.h1 + static_cast<std::uint64_t>(i) * h.h2) & l.mask;
    l.bits[bit >> 6] |= std::uint64_t{1} << (bit & 63);
  }
  ++l.count;
  ++count_;
}

bool KeyFilter::may_contain(const Hashes& h) const {
  for (const Layer& l : layers_)
    if (test(l, h.h1, h.h2)) return true;
  return false;
}

std::size_t KeyFilter::memory_bytes() const {
  std::size_t n = 0;
  for (const Layer& l : layers_) n += l.bits.size() * sizeof(std::uint64_t);
  return n;
}

}  // namespace chat::store
