#pragma once
// The embedded store's message journal: an append-only log of messages in fixed-size segment
// files, each commit one write and one fdatasync. It replaces a second SQLite database, whose
// commits cost ~8 page writes, a page read and an inline checkpoint every few hundred commits
// (the checkpoints' fsyncs were the acknowledgements' longest stalls).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "store/store.hpp"

namespace chat::store {

struct JournalRecord {
  std::uint64_t seq = 0;
  Message m;
};

/// Files: "<base>.<n>" (segments, n = 0, 1, …) and "<base>.lock" (flock'd while open, so that a
/// second process, or a second store in this one, is refused).
///
/// A segment is `segment_bytes` long, allocated when created. It starts with a 32-byte header
/// (magic, a random epoch, the first sequence number, CRC-32) followed by records: length, CRC-32
/// of (epoch, seq, payload), seq, payload (the message's fields). A record is valid when its CRC
/// matches and its seq is greater than the previous record's: reading stops at the first that is
/// not, which is where the last durable commit ended (a torn write fails its CRC; what a
/// segment held before it was reused carries another epoch and fails it too).
///
/// Segments whose records are all released (durable elsewhere) are reused; their header is
/// cleared at release, so that after a crash they are not read again (a lost clear only makes
/// the reader see records it already has: callers must treat records idempotently).
///
/// Not thread-safe: one owner thread after open().
class MessageJournal {
 public:
  struct Options {
    std::string base_path;
    std::size_t segment_bytes = 16u << 20;  ///< at least 1 MiB
    std::size_t max_free_segments = 2;      ///< released segments kept for reuse; others deleted
    /// How long open() waits for the lock (a previous owner still closing), in milliseconds.
    int lock_wait_ms = 0;
  };

  /// Opens the journal (creating its directory), and returns in `recovered` every valid record,
  /// in seq order. Errors: unavailable when another owner holds the lock for longer than
  /// lock_wait_ms or the file system fails.
  static result<std::unique_ptr<MessageJournal>> open(const Options& opts,
                                                      std::vector<JournalRecord>& recovered);
  ~MessageJournal();
  MessageJournal(const MessageJournal&) = delete;
  MessageJournal& operator=(const MessageJournal&) = delete;

  /// Adds a record to the batch of the next commit(); `seq` must be greater than every seq
  /// added before. invalid_argument when the encoded record cannot fit in a segment.
  result<void> add(std::uint64_t seq, const Message& m);
  /// Writes the batch and makes it durable. On failure the batch is dropped, and the segment
  /// being written is not written again (after a failed fsync its pages may be lost silently);
  /// what the failed commit did write may still be read back after a crash.
  result<void> commit();
  /// Drops the batch without writing it.
  void discard();
  /// Every record with seq ≤ `seq` is durable elsewhere: segments holding only such records are
  /// cleared for reuse (no sync: see the class comment).
  void release(std::uint64_t seq);
  /// Clears every segment (the caller has made every record durable elsewhere), without sync.
  void clear();

  /// Records added but not committed.
  std::size_t batched() const;
  /// Segment files on disk.
  std::size_t segment_files() const;

  /// The path of segment `n` for a base path. Pure.
  static std::string segment_path(std::string_view base_path, std::size_t n);
  /// The lock file for a base path (it exists once a journal was opened there). Pure.
  static std::string lock_path(std::string_view base_path);

  struct Impl;

 private:
  explicit MessageJournal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::store
