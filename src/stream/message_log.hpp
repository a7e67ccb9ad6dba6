#pragma once
// The durable message stream (cluster mode): every stored message is a record of one topic, keyed
// by conversation id so each conversation stays ordered in one partition. kafka_log implements it
// with librdkafka; chat-worker consumes it into the database. In embedded mode the SQLite store
// is the log and nothing here is used.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "store/store.hpp"

namespace chat::stream {

/// Thread-safety: every method may be called from any thread.
class MessageLog {
 public:
  using Done = std::function<void(result<void>)>;
  virtual ~MessageLog() = default;

  /// Non-blocking. Appends `m` to the stream. `done` runs exactly once, on the log's delivery
  /// thread (keep it short), after the broker acknowledged the record with acks=all (ok) or it
  /// failed (unavailable: local queue full, broker unreachable past the delivery timeout).
  virtual void append(const store::Message& m, Done done) = 0;
  /// Blocking (bounded by a short timeout): ok when a broker answers a metadata request.
  virtual result<void> ping() = 0;
  /// Blocking: waits up to `timeout` for every record appended so far to be acknowledged.
  virtual void flush(std::chrono::milliseconds timeout) = 0;
};

/// The record value: a JSON object with the message fields named as in the MongoDB documents
/// ({"v":1,"_id","conversationId","senderId","receiverId","text","image","clientMsgId",
/// "createdAt","updatedAt"}, times in ms since epoch). Shared by the producer and the worker.
std::string encode_record(const store::Message& m);
/// invalid_argument (with the reason) for anything that is not a well-formed record: the worker
/// dead-letters those.
result<store::Message> decode_record(std::string_view value);

}  // namespace chat::stream
