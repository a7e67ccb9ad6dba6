#include "core/result.hpp"

namespace chat {

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::unauthorized: return "unauthorized";
    case errc::forbidden: return "forbidden";
    case errc::too_large: return "too_large";
    case errc::rate_limited: return "rate_limited";
    case errc::unavailable: return "unavailable";
    case errc::internal: return "internal";
  }
  return "unknown";
}

}  // namespace chat
