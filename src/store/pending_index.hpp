#pragma once
// A flat hash index of the messages the SQLite store's journal holds and the main database may
// not have yet: 64-bit key hash → the message. The journal thread inserts one entry per
// journaled message and erases it once the message is indexed, so every append costs an
// insert and an erase. std::unordered_set/map spent ~13 % of chatd's CPU on them at the `dm`
// maximum (a heap node per entry and a cache miss per step of a bucket chain); open addressing
// keeps an entry in one 16-byte slot of one array.
#include <cstddef>
#include <cstdint>

#include "store/huge_array.hpp"

namespace chat::store {

struct Message;

/// Open addressing with linear probing and backward-shift deletion (no tombstones, so an index
/// that keeps taking and dropping entries never slows down). Several messages may share a hash:
/// `find` asks the caller's predicate which one is meant. The index views the messages, it does
/// not own them: an entry must be erased before its message is freed. Grows by doubling
/// (load ≤ 0.7); never shrinks. Not thread-safe: one owner.
class PendingIndex {
 public:
  explicit PendingIndex(std::size_t initial_capacity = 1024);

  /// Adds (hash, m); `m` is not null. The same pair twice is two entries.
  void insert(std::uint64_t hash, const Message* m);
  /// Removes one entry (hash, m); returns false (and changes nothing) when there is none.
  bool erase(std::uint64_t hash, const Message* m);
  /// The first entry with this hash for which `matches(const Message&)` is true, else null.
  template <class Pred>
  const Message* find(std::uint64_t hash, Pred&& matches) const {
    for (std::size_t i = hash & mask_; slots_[i].m; i = (i + 1) & mask_)
      if (slots_[i].hash == hash && matches(*slots_[i].m)) return slots_[i].m;
    return nullptr;
  }

  /// Starts fetching the slot where a probe for `hash` begins (ahead of insert/erase/find).
  void prefetch(std::uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return slots_.size(); }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    const Message* m = nullptr;  // null: empty
  };
  void place(Slot s);
  void grow();

  HugeArray<Slot> slots_;  // several MiB when many messages wait: on huge pages
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace chat::store
