#pragma once
// Domain validation shared by the REST routes and (later) the socket events. Pure functions.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace chat {

/// Field → messages, in the order the problems were found ({"errors":{field:[…]}} in JSON).
class FieldErrors {
 public:
  void add(std::string field, std::string message);
  bool empty() const noexcept { return fields_.empty(); }
  const std::vector<std::pair<std::string, std::vector<std::string>>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::vector<std::string>>> fields_;
};

/// Trimmed and lower-cased.
std::string normalize_email(std::string_view email);
/// A pragmatic check: one '@', non-empty local part ≤ 64, a dotted domain, no spaces, ≤ 254.
bool is_valid_email(std::string_view normalized);
/// Length in Unicode code points; nullopt-like -1 when `s` is not valid UTF-8.
long utf8_length(std::string_view s) noexcept;
/// Trims ASCII whitespace at both ends.
std::string trim(std::string_view s);

struct Image {
  std::string content_type;  ///< image/png, image/jpeg, image/webp, image/gif
  std::string extension;     ///< png, jpg, webp, gif
  std::string bytes;
};

/// Parses "data:image/<type>;base64,<data>" and checks that the decoded bytes really are that
/// type (magic bytes) and at most `max_bytes` long. Errors: invalid_argument (with a message for
/// the user), too_large.
result<Image> parse_image_data_url(std::string_view url, std::size_t max_bytes);
/// The image type of `bytes` by magic number, or nullptr.
const char* sniff_image_type(std::string_view bytes) noexcept;

}  // namespace chat
