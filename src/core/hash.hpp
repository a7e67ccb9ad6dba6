#pragma once
// Small integer hashing helpers shared by the store and the tools.
#include <cstdint>

namespace chat {

/// splitmix64's finaliser: a bijective mix whose every output bit depends on every input bit.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace chat
