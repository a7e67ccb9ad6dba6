#include "fixtures.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace chat::test {

const boost::json::object& fixtures() {
  static const boost::json::object obj = [] {
    const char* dir = std::getenv("CHAT_FIXTURES");
    const std::string path =
        std::string(dir != nullptr && *dir != '\0' ? dir : CHAT_SOURCE_FIXTURES) +
        "/auth/fixtures.json";
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = boost::json::parse(ss.str(), ec);
    if (!in || ec || !v.is_object()) {
      ADD_FAILURE() << "cannot read fixture file " << path;
      return boost::json::object{};
    }
    return v.get_object();
  }();
  return obj;
}

namespace {
const boost::json::value* find(const char* section, const char* key) {
  const auto* s = fixtures().if_contains(section);
  if (s == nullptr || !s->is_object()) return nullptr;
  return s->get_object().if_contains(key);
}
}  // namespace

std::string fixture_string(const char* section, const char* key) {
  const auto* v = find(section, key);
  if (v == nullptr || !v->is_string()) {
    ADD_FAILURE() << "fixture " << section << "." << key << " missing or not a string";
    return {};
  }
  return std::string(v->get_string());
}

std::int64_t fixture_int(const char* section, const char* key) {
  const auto* v = find(section, key);
  if (v == nullptr || !v->is_int64()) {
    ADD_FAILURE() << "fixture " << section << "." << key << " missing or not an integer";
    return 0;
  }
  return v->get_int64();
}

}  // namespace chat::test
