#pragma once
// The built web client, served from memory: files are read once at start, compressible ones are
// precompressed (brotli, gzip), hashed assets are cached for a year, index.html never, and
// client-side routes fall back to index.html.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/result.hpp"
#include "net/http.hpp"

namespace chat::net {

struct StaticOptions {
  std::string root;                             ///< e.g. web/dist
  std::size_t max_total_bytes = 128 << 20;      ///< refuse to load more than this
  std::size_t max_file_bytes = 32 << 20;
};

/// Immutable after load(); thread-safe.
class StaticFiles {
 public:
  /// Loads every file under options.root. not_found when root has no index.html.
  static result<std::unique_ptr<StaticFiles>> load(const StaticOptions& options);

  /// A response for GET/HEAD `req`, or nullopt when nothing here matches (the caller answers
  /// 404). Paths without a file extension that match no file get index.html (SPA routes).
  std::optional<Response> serve(const Request& req) const;
  std::size_t file_count() const noexcept { return files_.size(); }

 private:
  struct File {
    std::string content_type;
    std::string body;
    std::string gzip;    ///< "" when not worth it
    std::string brotli;  ///< "" when not worth it
    std::string etag;
    std::string cache_control;
  };
  Response respond(const Request& req, const File& f) const;
  std::unordered_map<std::string, File> files_;  ///< by URL path ("/assets/x.js")
};

}  // namespace chat::net
