#pragma once
#include <string>
#include <string_view>

namespace chat {

/// ASCII lower case (ids, emails, header tokens); other bytes unchanged.
inline std::string to_lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace chat
