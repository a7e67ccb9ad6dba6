#include "core/time.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace chat {

std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string to_iso8601(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) { millis += 1000; --secs; }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::optional<std::int64_t> parse_duration_seconds(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  if (text.empty() || text.size() > 64) return std::nullopt;
  double value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || !std::isfinite(value) || value < 0) return std::nullopt;
  std::string unit;
  for (char c : trim(std::string_view(p, text.data() + text.size() - p)))
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  double factor;  // in seconds
  if (unit.empty()) factor = 1;  // jsonwebtoken: a number means seconds
  else if (unit == "ms" || unit == "msec" || unit == "msecs" || unit == "millisecond" ||
           unit == "milliseconds") factor = 0.001;
  else if (unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds")
    factor = 1;
  else if (unit == "m" || unit == "min" || unit == "mins" || unit == "minute" || unit == "minutes")
    factor = 60;
  else if (unit == "h" || unit == "hr" || unit == "hrs" || unit == "hour" || unit == "hours")
    factor = 3600;
  else if (unit == "d" || unit == "day" || unit == "days") factor = 86400;
  else if (unit == "w" || unit == "week" || unit == "weeks") factor = 7 * 86400;
  else if (unit == "y" || unit == "yr" || unit == "yrs" || unit == "year" || unit == "years")
    factor = 365.25 * 86400;
  else return std::nullopt;
  double secs = value * factor;
  if (secs > 100.0 * 365.25 * 86400) return std::nullopt;
  return static_cast<std::int64_t>(secs);
}

}  // namespace chat
