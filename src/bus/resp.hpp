#pragma once
// RESP2 values, command encoding and an incremental reply parser (hiredis's reader). Internal to
// src/bus: replies come from the network, so the parser bounds what it buffers and reports
// malformed input as an error instead of crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace chat::bus::resp {

struct Reply {
  enum class Type : std::uint8_t { string, array, integer, nil, status, error };
  Type type = Type::nil;
  std::string str;  ///< string, status or error text
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }
  bool is_array() const { return type == Type::array; }
  bool is_integer() const { return type == Type::integer; }
  /// A bulk string or a status line.
  bool is_text() const { return type == Type::string || type == Type::status; }
};

/// Appends `argv` to `out` as a RESP array of bulk strings.
void encode(std::string& out, const std::vector<std::string_view>& argv);

/// Not thread-safe (one per connection).
class Parser {
 public:
  enum class Status { reply, incomplete, error };
  /// `max_buffered`: unparsed bytes above this are a protocol error (a reply larger than any
  /// the bus asks for, or garbage announcing a huge bulk length).
  explicit Parser(std::size_t max_buffered = 64u << 20);
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  /// Returns false (and stays failed) on a protocol error.
  bool feed(const char* data, std::size_t n);
  /// The next complete reply, if any.
  Status next(Reply& out);
  const std::string& error() const { return error_; }

 private:
  redisReader* reader_;
  std::size_t max_buffered_;
  std::string error_;
};

}  // namespace chat::bus::resp
