#pragma once
#include <string>
#include <string_view>

namespace chat {

/// Appends `s` as a JSON string literal: \" \\ \b \f \n \r \t, other control characters as
/// \u00xx (lowercase hex), everything else (including '/', DEL and UTF-8) verbatim — the bytes
/// both JSON.stringify and boost::json::serialize write, which JWTs (signed bytes) and the
/// message JSON of the send path rely on.
void append_json_string(std::string& out, std::string_view s);

}  // namespace chat
