#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace chat {

std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);  ///< no padding (JWT)
/// Strict decoders: nullopt on any character outside the alphabet or bad padding.
std::optional<std::string> base64_decode(std::string_view text);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace chat
