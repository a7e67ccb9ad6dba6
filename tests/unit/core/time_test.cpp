#include "core/time.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <random>

#include <chrono>

namespace chat {
namespace {

TEST(Time, NowMsIsTheWallClock) {
  const auto sys = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_NEAR(static_cast<double>(now_ms()), static_cast<double>(sys), 1000.0);
  EXPECT_GT(now_ms(), 1'700'000'000'000);  // after Nov 2023
}

TEST(Time, Iso8601KnownValues) {
  EXPECT_EQ(to_iso8601(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(to_iso8601(1), "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(to_iso8601(999), "1970-01-01T00:00:00.999Z");
  // new Date(1714566896789).toJSON()
  EXPECT_EQ(to_iso8601(1714566896789), "2024-05-01T12:34:56.789Z");
  EXPECT_EQ(to_iso8601(1700000000000), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(to_iso8601(951782400000), "2000-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(to_iso8601(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(to_iso8601(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(to_iso8601(4102444799999), "2099-12-31T23:59:59.999Z");
  EXPECT_EQ(to_iso8601(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(to_iso8601(-62135596800000), "0001-01-01T00:00:00.000Z");
}

TEST(Time, Iso8601AgreesWithGmtimeEverywhere) {
  auto reference = [](std::int64_t ms) {
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    int millis = static_cast<int>(ms % 1000);
    if (millis < 0) {
      millis += 1000;
      --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    return std::string(buf);
  };
  std::mt19937_64 rng(42);
  // 1900 .. 2400, every kind of day, leap years and centuries included.
  std::uniform_int_distribution<std::int64_t> dist(-2208988800000LL, 13569465600000LL);
  for (int i = 0; i < 200000; ++i) {
    const std::int64_t ms = dist(rng);
    ASSERT_EQ(to_iso8601(ms), reference(ms)) << ms;
  }
}

TEST(Time, DurationsLikeTheMsLibrary) {
  EXPECT_EQ(parse_duration_seconds("7d"), 604800);
  EXPECT_EQ(parse_duration_seconds("1h"), 3600);
  EXPECT_EQ(parse_duration_seconds("12h"), 43200);
  EXPECT_EQ(parse_duration_seconds("30m"), 1800);
  EXPECT_EQ(parse_duration_seconds("45s"), 45);
  EXPECT_EQ(parse_duration_seconds("60"), 60);
  EXPECT_EQ(parse_duration_seconds("1.5h"), 5400);
  EXPECT_EQ(parse_duration_seconds("2 days"), 172800);
  EXPECT_EQ(parse_duration_seconds("1 Day"), 86400);
  EXPECT_EQ(parse_duration_seconds("2w"), 1209600);
  EXPECT_EQ(parse_duration_seconds("10 minutes"), 600);
  EXPECT_EQ(parse_duration_seconds("2000ms"), 2);
  EXPECT_EQ(parse_duration_seconds(" 7d "), 604800);
}

TEST(Time, InvalidDurations) {
  for (const char* bad : {"", " ", "abc", "-1d", "7x", "d", "7dd", "7 d s", "1h30m", "--1",
                          "99999999y", "inf", "-inf"}) {
    EXPECT_EQ(parse_duration_seconds(bad), std::nullopt) << '"' << bad << '"';
  }
  EXPECT_EQ(parse_duration_seconds(std::string(100, '1')), std::nullopt);
}

// from_chars accepts "nan"; converting NaN seconds to an integer is undefined behaviour (it
// returned INT64_MIN here), and ms("nan") is invalid.
TEST(Time, NanDurationIsInvalid) {
  EXPECT_EQ(parse_duration_seconds("nan"), std::nullopt);
  EXPECT_EQ(parse_duration_seconds("NaN d"), std::nullopt);
}

}  // namespace
}  // namespace chat
