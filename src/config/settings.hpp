#pragma once
// The machinery behind a program's settings (chatd's Config, chat-worker's WorkerConfig): each
// setting has a flag, an environment variable, a hint and a parser; flags win over the
// environment, which wins over a .env file. The programs list their settings and check the
// combinations; parsing, precedence and error wording live here once.
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace chat::config {

/// Parses a value into the config; returns what was expected when the value is invalid.
template <class C>
using Setter = std::function<std::optional<std::string>(C&, const std::string&)>;

template <class C>
struct Setting {
  const char* flag;        ///< without "--"
  const char* env;         ///< "" when none
  const char* value_hint;  ///< e.g. "PORT"
  const char* help;
  Setter<C> set;
};

template <class C, class Int>
Setter<C> integer(Int C::*field, long long lo, long long hi) {
  return [=](C& c, const std::string& v) -> std::optional<std::string> {
    long long x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc{} || p != v.data() + v.size() || x < lo || x > hi)
      return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    c.*field = static_cast<Int>(x);
    return std::nullopt;
  };
}

template <class C>
Setter<C> text(std::string C::*field, bool allow_empty = true) {
  return [=](C& c, const std::string& v) -> std::optional<std::string> {
    if (!allow_empty && v.empty()) return "a non-empty value";
    c.*field = v;
    return std::nullopt;
  };
}

template <class C>
Setter<C> log_level(std::string C::*field) {
  return [=](C& c, const std::string& v) -> std::optional<std::string> {
    for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"})
      if (v == l) {
        c.*field = v;
        return std::nullopt;
      }
    return "one of trace, debug, info, warn, error, critical, off";
  };
}

/// Command-line flags: `--name value` or `--name=value`; -h/--help sets `help`.
struct Args {
  std::map<std::string, std::string> flags;  ///< name (without "--") → value
  bool help = false;
};

/// invalid_argument for a stray argument, a flag without a value, or a name `known` rejects.
result<Args> parse_args(int argc, const char* const* argv,
                        const std::function<bool(std::string_view)>& known);

/// Applies every setting found, flags first, then `env`, then `dotenv` (an empty variable
/// counts as unset: docker-compose turns an unset ${VAR} into ""). invalid_argument names the
/// setting: "invalid value for --port/SERVER_PORT: 'abc' (expected an integer in 0..65535)".
template <class C>
result<void> apply(C& config, const std::vector<Setting<C>>& settings, const Args& args,
                   const std::map<std::string, std::string>& env,
                   const std::map<std::string, std::string>& dotenv = {}) {
  for (const auto& s : settings) {
    const std::string* value = nullptr;
    if (auto it = args.flags.find(s.flag); it != args.flags.end()) value = &it->second;
    else if (auto e = env.find(s.env); *s.env && e != env.end() && !e->second.empty()) value = &e->second;
    else if (auto d = dotenv.find(s.env); *s.env && d != dotenv.end() && !d->second.empty()) value = &d->second;
    if (!value) continue;
    if (auto expected = s.set(config, *value))
      return error{errc::invalid_argument, "invalid value for --" + std::string(s.flag) +
                                               (*s.env ? "/" + std::string(s.env) : "") + ": '" +
                                               *value + "' (expected " + *expected + ")"};
  }
  return {};
}

/// True when `name` is the flag of one of `settings`.
template <class C>
bool has_flag(const std::vector<Setting<C>>& settings, std::string_view name) {
  for (const auto& s : settings)
    if (name == s.flag) return true;
  return false;
}

}  // namespace chat::config
