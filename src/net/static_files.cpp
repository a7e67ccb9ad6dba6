#include "net/static_files.hpp"

#include <brotli/encode.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/log.hpp"

namespace chat::net {
namespace {

namespace fs = std::filesystem;

std::string content_type_of(const std::string& ext) {
  static const std::unordered_map<std::string, std::string> types = {
      {".html", "text/html; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},           {".map", "application/json"},
      {".svg", "image/svg+xml"},               {".png", "image/png"},
      {".jpg", "image/jpeg"},                  {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},                   {".webp", "image/webp"},
      {".ico", "image/x-icon"},                {".txt", "text/plain; charset=utf-8"},
      {".woff", "font/woff"},                  {".woff2", "font/woff2"},
      {".webmanifest", "application/manifest+json"}, {".xml", "application/xml"},
  };
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

bool compressible(const std::string& type) {
  return type.starts_with("text/") || type.starts_with("application/json") ||
         type.starts_with("image/svg") || type.starts_with("application/manifest") ||
         type.starts_with("application/xml");
}

std::string gzip(const std::string& in) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string{};
}

std::string brotli(const std::string& in) {
  std::size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) return {};
  std::string out(size, '\0');
  if (!BrotliEncoderCompress(BROTLI_MAX_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, in.size(),
                             reinterpret_cast<const uint8_t*>(in.data()), &size,
                             reinterpret_cast<uint8_t*>(out.data())))
    return {};
  out.resize(size);
  return out;
}

std::string etag_of(const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr);
  static const char hex[] = "0123456789abcdef";
  std::string tag = "\"";
  for (unsigned i = 0; i < 8 && i < len; ++i) {
    tag.push_back(hex[md[i] >> 4]);
    tag.push_back(hex[md[i] & 15]);
  }
  return tag + "\"";
}

bool accepts(std::string_view accept_encoding, std::string_view coding) {
  // Good enough for real browsers: "gzip, deflate, br" (q=0 is not honoured specially).
  std::size_t pos = 0;
  while ((pos = accept_encoding.find(coding, pos)) != std::string_view::npos) {
    bool start = pos == 0 || accept_encoding[pos - 1] == ' ' || accept_encoding[pos - 1] == ',';
    std::size_t end = pos + coding.size();
    bool stop = end == accept_encoding.size() || accept_encoding[end] == ',' || accept_encoding[end] == ';' ||
                accept_encoding[end] == ' ';
    if (start && stop) return accept_encoding.substr(end, 6) != ";q=0" && accept_encoding.substr(end, 7) != "; q=0";
    pos = end;
  }
  return false;
}

}  // namespace

result<std::unique_ptr<StaticFiles>> StaticFiles::load(const StaticOptions& options) {
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(options.root, ec);
  if (ec || !fs::is_regular_file(root / "index.html", ec))
    return error{errc::not_found, "no web client at '" + options.root + "' (index.html missing)"};
  auto out = std::unique_ptr<StaticFiles>(new StaticFiles());
  std::size_t total = 0;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const auto size = it->file_size(ec);
    if (ec || size > options.max_file_bytes) continue;
    if (total + size > options.max_total_bytes)
      return error{errc::too_large, "web client at '" + options.root + "' is larger than the limit"};
    total += size;
    std::ifstream f(it->path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    File file;
    file.body = ss.str();
    file.content_type = content_type_of(it->path().extension().string());
    file.etag = etag_of(file.body);
    const std::string rel = "/" + fs::relative(it->path(), root).generic_string();
    // Vite puts content-hashed files under /assets/: they never change, cache them for a year.
    if (rel.starts_with("/assets/")) file.cache_control = "public, max-age=31536000, immutable";
    else if (rel == "/index.html") file.cache_control = "no-cache";
    else file.cache_control = "public, max-age=3600";
    if (compressible(file.content_type) && file.body.size() >= 512) {
      file.gzip = gzip(file.body);
      file.brotli = brotli(file.body);
      if (file.gzip.size() >= file.body.size()) file.gzip.clear();
      if (file.brotli.size() >= file.body.size()) file.brotli.clear();
    }
    out->files_.emplace(rel, std::move(file));
  }
  spdlog::info("web client: {} files ({} KiB) from {}", out->files_.size(), total / 1024, root.string());
  return out;
}

Response StaticFiles::respond(const Request& req, const File& f) const {
  Response r;
  r.set("Cache-Control", f.cache_control);
  r.set("ETag", f.etag);
  r.set("Vary", "Accept-Encoding");
  if (req.header("if-none-match") == f.etag) {
    r.status = 304;
    return r;
  }
  r.set("Content-Type", f.content_type);
  std::string_view ae = req.header("accept-encoding");
  if (!f.brotli.empty() && accepts(ae, "br")) {
    r.set("Content-Encoding", "br");
    r.body = f.brotli;
  } else if (!f.gzip.empty() && accepts(ae, "gzip")) {
    r.set("Content-Encoding", "gzip");
    r.body = f.gzip;
  } else {
    r.body = f.body;
  }
  return r;
}

std::optional<Response> StaticFiles::serve(const Request& req) const {
  if (req.method != "GET" && req.method != "HEAD") return std::nullopt;
  std::string path = req.path.empty() ? "/" : req.path;
  if (path.find("..") != std::string::npos) return std::nullopt;
  if (path.back() == '/') path += "index.html";
  if (auto it = files_.find(path); it != files_.end()) return respond(req, it->second);
  // A client-side route (no file extension in the last segment) gets the app shell.
  const auto last = path.substr(path.rfind('/') + 1);
  if (last.find('.') == std::string::npos) return respond(req, files_.at("/index.html"));
  return std::nullopt;
}

}  // namespace chat::net
