#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

/// Milliseconds since the Unix epoch (wall clock).
std::int64_t now_ms() noexcept;
/// "2024-05-01T12:34:56.789Z", the form JavaScript's Date#toJSON (and Mongoose) writes.
std::string to_iso8601(std::int64_t ms);
/// Parses "7d", "12h", "30m", "45s", "500ms", "2 days" or a bare number of seconds, as the
/// `ms`/`jsonwebtoken` libraries do for expiresIn. Returns seconds, or nullopt when invalid.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);

}  // namespace chat
