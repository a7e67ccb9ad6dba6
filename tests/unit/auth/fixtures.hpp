#pragma once
// Loads tests/fixtures/auth/fixtures.json (made by gen_fixtures.mjs with Node's jsonwebtoken and
// bcryptjs/bcrypt) from $CHAT_FIXTURES, or from the source tree when that is unset.
#include <boost/json/object.hpp>

#include <cstdint>
#include <string>

namespace chat::test {

/// The parsed fixture file; a test failure (not a crash) when it is missing or malformed.
const boost::json::object& fixtures();
/// fixtures()[section][key] as a string / integer; empty / 0 with a test failure when absent.
std::string fixture_string(const char* section, const char* key);
std::int64_t fixture_int(const char* section, const char* key);

}  // namespace chat::test
