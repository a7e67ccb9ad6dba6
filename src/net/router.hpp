#pragma once
// Path routing with ":param" segments. Pure and Beast-free. Matching is by segments, so
// "/api/messages/:id" matches "/api/messages/abc" but not "/api/messages/abc/def".
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat::net {

using Params = std::vector<std::pair<std::string, std::string>>;

inline std::string_view param(const Params& p, std::string_view name) {
  for (const auto& [k, v] : p)
    if (k == name) return v;
  return {};
}

template <class Handler>
class Router {
 public:
  struct Match {
    enum Kind { found, method_not_allowed, not_found } kind = not_found;
    const Handler* handler = nullptr;
    std::string pattern;  ///< the route pattern (metrics label), "" when not found
    Params params;
    std::string allow;    ///< for method_not_allowed: "GET, POST"
  };

  /// Registers `method` (upper case) on `pattern`. Not thread-safe: build before serving.
  void add(std::string method, std::string pattern, Handler handler) {
    routes_.push_back(Route{std::move(method), pattern, split(pattern), std::move(handler)});
  }

  /// Thread-safe (const). HEAD falls back to GET routes.
  Match match(std::string_view method, std::string_view path) const {
    Match m;
    auto segs = split(path);
    for (int pass = 0; pass < 2; ++pass) {
      std::string_view want = pass == 0 ? method : std::string_view("GET");
      if (pass == 1 && method != "HEAD") break;
      for (const auto& r : routes_) {
        Params params;
        if (!matches(r.segments, segs, params)) continue;
        if (r.method == want) {
          m.kind = Match::found;
          m.handler = &r.handler;
          m.pattern = r.pattern;
          m.params = std::move(params);
          return m;
        }
        if (pass == 0) {
          if (m.kind == Match::not_found) m.pattern = r.pattern;
          m.kind = Match::method_not_allowed;
          if (m.allow.find(r.method) == std::string::npos)
            m.allow += (m.allow.empty() ? "" : ", ") + r.method;
        }
      }
    }
    if (m.kind == Match::method_not_allowed && m.allow.find("GET") != std::string::npos &&
        m.allow.find("HEAD") == std::string::npos)
      m.allow += ", HEAD";
    return m;
  }

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };

  static std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> out;
    while (!path.empty()) {
      if (path.front() == '/') {
        path.remove_prefix(1);
        continue;
      }
      auto slash = path.find('/');
      out.emplace_back(path.substr(0, slash));
      path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
    }
    return out;
  }

  static bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& segs,
                      Params& params) {
    if (pattern.size() != segs.size()) return false;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      if (pattern[i].starts_with(':')) params.emplace_back(pattern[i].substr(1), segs[i]);
      else if (pattern[i] != segs[i]) return false;
    }
    return true;
  }

  std::vector<Route> routes_;
};

}  // namespace chat::net
