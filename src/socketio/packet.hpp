#pragma once
// Socket.IO v5 packet codec (the layer above Engine.IO: every Socket.IO packet travels as one
// Engine.IO message). Pure and I/O free; nothing here throws for any input. Wire format: see
// /work/shared/PROTOCOL.md and the reference socket.io-parser (Decoder.decodeString,
// isPayloadValid, binary.ts).
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace chat::socketio {

/// Packet type; the wire form is the digit '0' + value.
enum class PacketType : std::uint8_t {
  connect,
  disconnect,
  event,
  ack,
  connect_error,
  binary_event,
  binary_ack,
};

/// Default limit of binary attachments per packet (the reference's maxAttachments).
inline constexpr std::size_t kDefaultMaxAttachments = 10;
/// Largest accepted ack id: Number.MAX_SAFE_INTEGER, the largest id a JS client can represent.
inline constexpr std::uint64_t kMaxAckId = (std::uint64_t{1} << 53) - 1;
/// Maximum nesting of arrays/objects in a payload (bounds parser and validator recursion).
inline constexpr std::size_t kMaxJsonDepth = 64;

/// One Socket.IO packet.
struct Packet {
  PacketType type = PacketType::event;
  /// Namespace; "/" is the main namespace (omitted on the wire). Never contains ','.
  std::string nsp = "/";
  std::optional<std::uint64_t> id;  ///< ack id
  /// The payload as JSON text ("" when none). decode() stores the received text with surrounding
  /// whitespace trimmed (so numbers and key order are kept byte for byte); official clients send
  /// compact JSON. For binary types it still contains the {"_placeholder":true,"num":i} objects.
  std::string data;
  /// Number of binary attachments; only for binary_event / binary_ack (≥ 1), 0 otherwise.
  std::size_t attachments = 0;
  /// The attachments, in order (`num` i is buffers[i]). Filled by Decoder once complete; decode()
  /// of the text part alone leaves it empty.
  std::vector<std::string> buffers;

  friend bool operator==(const Packet&, const Packet&) = default;
};

/// True for binary_event / binary_ack.
constexpr bool is_binary(PacketType t) {
  return t == PacketType::binary_event || t == PacketType::binary_ack;
}

/// True for the event names a client may not emit: connect, connect_error, disconnect,
/// disconnecting, newListener, removeListener.
bool is_reserved_event(std::string_view name);

/// Encodes the text part: "<type>[<attachments>-][<nsp>,][<id>][<data>]", the namespace omitted
/// when it is "/" (or empty). For binary types the caller sends `attachments` binary Engine.IO
/// messages (the buffers, in order) right after this text message; `buffers` is not encoded here.
/// Precondition (asserted): `nsp` holds no ','; `data` is valid JSON or empty.
std::string encode(const Packet& packet);

/// Convenience: the text of a plain EVENT, e.g. encode_event("/admin", R"(["x",1])", 13) gives
/// `2/admin,13["x",1]`. `json_array` must be a JSON array whose first element is the event name.
std::string encode_event(std::string_view nsp, std::string_view json_array,
                         std::optional<std::uint64_t> ack_id = {});

/// Decodes the text part of a packet and validates it like the reference server:
/// - type digit 0–6; binary types need "<n>-" with 1 ≤ n ≤ max_attachments;
/// - a namespace starting with '/' runs to ',' (or the end);
/// - leading digits are the ack id (≤ kMaxAckId); ids are refused on CONNECT, DISCONNECT and
///   CONNECT_ERROR;
/// - the rest must be JSON (depth ≤ kMaxJsonDepth, valid UTF-8, nothing after it) fitting the
///   type: CONNECT absent or object; DISCONNECT absent; EVENT / BINARY_EVENT a non-empty array
///   whose first element is a non-reserved string or a number; ACK / BINARY_ACK an array;
///   CONNECT_ERROR an object or a string. Unlike the reference, a payload is required for
///   types 2–6 (official clients always send one).
/// - binary types: exactly `attachments` placeholder objects ({"_placeholder":true,"num":i}), with
///   distinct integer nums in [0, attachments). In non-binary packets such objects are plain data.
/// Errors: errc::too_large for more attachments than allowed, errc::invalid_argument otherwise.
/// The result's `buffers` is empty (use Decoder to collect the attachments).
result<Packet> decode(std::string_view text, std::size_t max_attachments = kDefaultMaxAttachments);

/// Parses JSON with the limits decode() uses (depth ≤ kMaxJsonDepth, strict RFC 8259, valid
/// UTF-8); never throws (except std::bad_alloc). Errors: errc::invalid_argument.
result<boost::json::value> parse_json(std::string_view text);

/// Number of placeholder objects ({"_placeholder":true,…}) in `v`, searched depth first without
/// descending into a placeholder. Recursion depth is that of `v` (bounded by parse_json).
std::size_t count_placeholders(const boost::json::value& v);

/// Reassembles packets from the sequence of Engine.IO messages of one connection: a BINARY_EVENT /
/// BINARY_ACK text packet is held until its `attachments` binary messages have arrived.
/// Not thread-safe: one Decoder per connection, used on that connection's strand.
/// After any error the pending state is discarded; the caller is expected to close the connection.
class Decoder {
 public:
  /// `max_attachment_bytes` bounds the total size of one packet's attachments (e.g. maxPayload).
  explicit Decoder(std::size_t max_attachments = kDefaultMaxAttachments,
                   std::size_t max_attachment_bytes = 1'000'000);

  /// Feeds a text Engine.IO message (without the Engine.IO '4'). Returns the packet when complete,
  /// nullopt when it is a binary packet now waiting for attachments.
  /// Errors: those of decode(); errc::invalid_argument if attachments are still pending.
  result<std::optional<Packet>> add_text(std::string_view text);

  /// Feeds a binary Engine.IO message (an attachment). Returns the packet (with `buffers` filled)
  /// once the last attachment arrived, nullopt while more are expected.
  /// Errors: errc::invalid_argument when no packet awaits attachments; errc::too_large when the
  /// attachments of the pending packet exceed `max_attachment_bytes` in total.
  result<std::optional<Packet>> add_binary(std::string_view bytes);

  /// True while a binary packet waits for attachments.
  bool awaiting_attachments() const noexcept { return pending_.has_value(); }

  /// Drops any pending packet.
  void reset() noexcept;

 private:
  std::size_t max_attachments_;
  std::size_t max_attachment_bytes_;
  std::optional<Packet> pending_;
  std::size_t pending_bytes_ = 0;
};

}  // namespace chat::socketio
