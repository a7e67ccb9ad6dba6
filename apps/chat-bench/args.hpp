#pragma once
// Numbers on the command lines of the bench programs.
#include <charconv>
#include <string_view>
#include <system_error>

namespace chat::bench {

/// `out` = all of `text` as a number (std::from_chars: no sign for unsigned types, no spaces,
/// nothing after it). False, `out` unspecified, otherwise.
template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && p == text.data() + text.size();
}

}  // namespace chat::bench
