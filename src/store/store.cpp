#include "store/store.hpp"

#include <string>

#include "core/text.hpp"

namespace chat::store {

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

result<std::string> Store::mark_read_as_many(std::string_view conversation_id,
                                             std::string_view user_id, std::string_view up_to_id) {
  auto one = mark_read_many(
      {ReadMark{std::string(conversation_id), std::string(user_id), std::string(up_to_id)}});
  if (one.empty()) return error{errc::internal, "mark read: no result"};
  return std::move(one.front());
}

std::vector<result<std::string>> Store::mark_read_many(const std::vector<ReadMark>& marks) {
  std::vector<result<std::string>> out;
  out.reserve(marks.size());
  for (const ReadMark& m : marks) out.push_back(mark_read(m.conversation_id, m.user_id, m.up_to_id));
  return out;
}

}  // namespace chat::store
