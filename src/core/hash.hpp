#pragma once
// Small hashing helpers shared by the store, the buses and the tools.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace chat {

/// A transparent string hash: an unordered container keyed by std::string (with
/// std::equal_to<>) is searched by string_view without building a temporary string.
struct StringViewHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

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
