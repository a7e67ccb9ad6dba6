#pragma once
// Extraction of the few members chat-bench reads from the server's events and acks, in one
// validating pass over the JSON text: Boost.JSON's SAX parser (the grammar, UTF-8, escape and
// depth checks of json::parse) without building a DOM, and without allocating once the captured
// strings have grown. On the generator's hot path this replaces a json::parse per frame.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace chat::bench {

/// A member found by PayloadScanner. With duplicate keys the last one counts.
struct ScannedField {
  enum class Kind : std::uint8_t { absent, string, other };
  Kind kind = Kind::absent;
  std::string value;  ///< unescaped; only when kind == string

  bool is_string() const noexcept { return kind == Kind::string; }
};

/// What chat-bench reads of an EVENT's arguments `["name", {…}, …]`.
struct ScannedEvent {
  ScannedField name;         ///< args[0]
  std::size_t args = 0;      ///< number of elements
  bool arg1_object = false;  ///< args[1] is an object
  ScannedField id, sender_id, text;  ///< args[1]._id, .senderId, .text
};

/// What chat-bench reads of an ACK's arguments `[{status, code, message: {_id}}, …]`.
struct ScannedAck {
  bool arg0_object = false;  ///< args[0] is an object
  ScannedField status, code;  ///< args[0].status, .code
  bool message_object = false;  ///< args[0].message is an object
  ScannedField message_id;      ///< args[0].message._id
};

/// Not thread-safe: one per thread.
class PayloadScanner {
 public:
  PayloadScanner();
  ~PayloadScanner();
  PayloadScanner(const PayloadScanner&) = delete;
  PayloadScanner& operator=(const PayloadScanner&) = delete;

  /// Fills `out` from `json`. False (and `out` unspecified) unless `json` is exactly one valid
  /// JSON array (surrounding whitespace allowed) nested at most socketio::kMaxJsonDepth deep.
  bool scan_event(std::string_view json, ScannedEvent& out);
  bool scan_ack(std::string_view json, ScannedAck& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::bench
