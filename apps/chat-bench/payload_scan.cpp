#include "payload_scan.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include "socketio/packet.hpp"

namespace chat::bench {
namespace {

namespace json = boost::json;
using error_code = boost::system::error_code;

enum class Key : std::uint8_t { none, id, sender_id, text, status, code, message };

Key key_of(std::string_view k) noexcept {
  if (k == "_id") return Key::id;
  if (k == "senderId") return Key::sender_id;
  if (k == "text") return Key::text;
  if (k == "status") return Key::status;
  if (k == "code") return Key::code;
  if (k == "message") return Key::message;
  return Key::none;
}

void reset(ScannedField& f) noexcept {
  f.kind = ScannedField::Kind::absent;
  f.value.clear();
}

/// The SAX handler. `depth_` counts the containers open around the current token: the elements
/// of the top-level array are seen at depth 1, the members of args[i] at depth 2, the members of
/// args[0].message at depth 3.
class Handler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  void start(ScannedEvent* ev, ScannedAck* ack) {
    ev_ = ev;
    ack_ = ack;
    depth_ = 0;
    elements_ = 0;
    top_array_ = false;
    target2_ = target3_ = false;
    key2_ = key3_ = Key::none;
    capture_ = nullptr;
    in_string_ = in_key_ = in_number_ = false;
    if (ev_) {
      reset(ev_->name);
      reset(ev_->id);
      reset(ev_->sender_id);
      reset(ev_->text);
      ev_->args = 0;
      ev_->arg1_object = false;
    } else {
      reset(ack_->status);
      reset(ack_->code);
      reset(ack_->message_id);
      ack_->arg0_object = false;
      ack_->message_object = false;
    }
  }

  bool finish() {
    if (ev_) ev_->args = elements_;
    return top_array_;
  }

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }

  bool on_array_begin(error_code& ec) {
    if (depth_ == 0) {
      top_array_ = true;
    } else if (!value(false, false, ec)) {
      return false;
    }
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, error_code&) { return end(); }

  bool on_object_begin(error_code& ec) {
    if (!value(false, true, ec)) return false;
    ++depth_;
    if (depth_ == 2 && target2_) key2_ = Key::none;
    if (depth_ == 3 && target3_) key3_ = Key::none;
    return true;
  }
  bool on_object_end(std::size_t, error_code&) { return end(); }

  bool on_string_part(json::string_view s, std::size_t, error_code& ec) {
    if (!in_string_) {
      in_string_ = true;
      if (!value(true, false, ec)) return false;
    }
    if (capture_) capture_->value.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, error_code& ec) {
    if (!on_string_part(s, n, ec)) return false;
    in_string_ = false;
    capture_ = nullptr;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, error_code&) {
    if (!in_key_) {
      in_key_ = true;
      key_.clear();
    }
    if (relevant_keys()) key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, error_code& ec) {
    on_key_part(s, n, ec);
    in_key_ = false;
    if (depth_ == 2 && target2_) key2_ = key_of(key_);
    else if (depth_ == 3 && target3_) key3_ = key_ == "_id" ? Key::id : Key::none;
    return true;
  }

  bool on_number_part(json::string_view, error_code& ec) {
    if (in_number_) return true;
    in_number_ = true;
    return value(false, false, ec);
  }
  bool on_int64(std::int64_t, json::string_view, error_code& ec) { return number_end(ec); }
  bool on_uint64(std::uint64_t, json::string_view, error_code& ec) { return number_end(ec); }
  bool on_double(double, json::string_view, error_code& ec) { return number_end(ec); }
  bool on_bool(bool, error_code& ec) { return value(false, false, ec); }
  bool on_null(error_code& ec) { return value(false, false, ec); }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }

 private:
  bool relevant_keys() const noexcept { return (depth_ == 2 && target2_) || (depth_ == 3 && target3_); }

  bool number_end(error_code& ec) {
    if (in_number_) {
      in_number_ = false;
      return true;
    }
    return value(false, false, ec);
  }

  bool end() {
    --depth_;
    if (depth_ == 1) target2_ = false;
    if (depth_ == 2) target3_ = false;
    return true;
  }

  /// A value starts at the current depth.
  bool value(bool is_string, bool is_object, error_code& ec) {
    capture_ = nullptr;
    if (depth_ == 0) {  // the top level must be an array
      ec = json::error::syntax;
      return false;
    }
    if (depth_ == 1) {
      const std::size_t i = elements_++;
      if (ev_) {
        if (i == 0) set(ev_->name, is_string);
        if (i == 1 && is_object) ev_->arg1_object = target2_ = true;
      } else if (i == 0 && is_object) {
        ack_->arg0_object = target2_ = true;
      }
      return true;
    }
    if (depth_ == 2 && target2_) {
      if (ev_) {
        if (key2_ == Key::id) set(ev_->id, is_string);
        else if (key2_ == Key::sender_id) set(ev_->sender_id, is_string);
        else if (key2_ == Key::text) set(ev_->text, is_string);
      } else {
        if (key2_ == Key::status) set(ack_->status, is_string);
        else if (key2_ == Key::code) set(ack_->code, is_string);
        else if (key2_ == Key::message) {
          reset(ack_->message_id);
          ack_->message_object = target3_ = is_object;
        }
      }
      return true;
    }
    if (depth_ == 3 && target3_ && key3_ == Key::id) set(ack_->message_id, is_string);
    return true;
  }

  void set(ScannedField& f, bool is_string) {
    f.value.clear();
    if (is_string) {
      f.kind = ScannedField::Kind::string;
      capture_ = &f;
    } else {
      f.kind = ScannedField::Kind::other;
    }
  }

  ScannedEvent* ev_ = nullptr;
  ScannedAck* ack_ = nullptr;
  std::size_t depth_ = 0;
  std::size_t elements_ = 0;
  bool top_array_ = false;
  bool target2_ = false;  ///< the open depth-2 container is the object we read
  bool target3_ = false;  ///< the open depth-3 container is args[0].message
  Key key2_ = Key::none, key3_ = Key::none;
  ScannedField* capture_ = nullptr;
  std::string key_;
  bool in_string_ = false, in_key_ = false, in_number_ = false;
};

json::parse_options scan_options() {
  json::parse_options o;
  o.max_depth = socketio::kMaxJsonDepth;
  return o;
}

}  // namespace

struct PayloadScanner::Impl {
  json::basic_parser<Handler> parser{scan_options()};

  bool run(std::string_view text, ScannedEvent* ev, ScannedAck* ack) {
    parser.reset();
    parser.handler().start(ev, ack);
    error_code ec;
    const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
    const bool top_array = parser.handler().finish();
    return !ec && n == text.size() && top_array;
  }
};

PayloadScanner::PayloadScanner() : impl_(std::make_unique<Impl>()) {}
PayloadScanner::~PayloadScanner() = default;

bool PayloadScanner::scan_event(std::string_view json, ScannedEvent& out) { return impl_->run(json, &out, nullptr); }
bool PayloadScanner::scan_ack(std::string_view json, ScannedAck& out) { return impl_->run(json, nullptr, &out); }

}  // namespace chat::bench
