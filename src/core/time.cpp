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
  // Every message is serialised with two of these: civil-from-days arithmetic (H. Hinnant's
  // algorithm) and direct digit writes, not gmtime_r + snprintf (which showed in profiles).
  std::int64_t secs = ms / 1000;
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) {  // outside ISO 8601's basic four digits: the slow, general way
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", static_cast<long long>(year),
                  month, day, static_cast<int>(sod / 3600), static_cast<int>(sod / 60 % 60),
                  static_cast<int>(sod % 60), millis);
    return buf;
  }
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t at, int value, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, static_cast<int>(year), 4);
  put(5, month, 2);
  put(8, day, 2);
  put(11, static_cast<int>(sod / 3600), 2);
  put(14, static_cast<int>(sod / 60 % 60), 2);
  put(17, static_cast<int>(sod % 60), 2);
  put(20, millis, 3);
  return out;
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
