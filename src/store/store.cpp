#include "store/store.hpp"

#include <string>

namespace chat::store {
namespace {

std::string to_lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

std::string direct_conversation_id(std::string_view a, std::string_view b) {
  std::string x = to_lower_ascii(a);
  std::string y = to_lower_ascii(b);
  if (y < x) x.swap(y);
  std::string out;
  out.reserve(3 + x.size() + y.size());
  out += "d:";
  out += x;
  out += ':';
  out += y;
  return out;
}

}  // namespace chat::store
