#pragma once
// A growing Bloom filter of strings: "maybe stored" or "certainly not". The SQLite store keeps
// every (sender, clientMsgId) it holds in one, so that an append of a new clientMsgId (nearly
// all of them) skips the index lookup that only a retry needs.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "store/huge_array.hpp"

namespace chat::store {

/// A scalable, cache-line-blocked Bloom filter (layers of doubling capacity, each ~1.2% false
/// positives at its capacity): no false negatives, 1.25-2.5 bytes per key of capacity (bit
/// arrays are powers of two); a lookup checks every layer (a few: the first holds
/// `initial_capacity` keys).
/// Not thread-safe: one owner.
class KeyFilter {
 public:
  explicit KeyFilter(std::size_t initial_capacity = 1u << 20);

  /// The two 64-bit hashes of a pair: computed once, they serve add and may_contain, and `h1`
  /// (well mixed in every bit) may key other tables of the same pairs.
  struct Hashes {
    std::uint64_t h1;
    std::uint64_t h2;
  };
  static Hashes hash(std::string_view a, std::string_view b);

  void add(std::string_view a, std::string_view b) { add(hash(a, b)); }
  void add(const Hashes& h);
  /// add() of each, with their blocks fetched ahead: for bulk loads (one cache miss per key
  /// otherwise waits for the last).
  void add_all(const Hashes* h, std::size_t n);
  /// False: (a, b) was never added. True: it may have been.
  bool may_contain(std::string_view a, std::string_view b) const { return may_contain(hash(a, b)); }
  bool may_contain(const Hashes& h) const;
  /// Starts fetching the blocks may_contain(h) and add(h) will read (one per layer).
  void prefetch(const Hashes& h) const {
    for (const Layer& l : layers_) __builtin_prefetch(l.block(h.h1));
  }

  std::size_t size() const { return count_; }
  std::size_t layers() const { return layers_.size(); }
  std::size_t memory_bytes() const;

 private:
  static constexpr int kProbes = 7;  // 7 × 9 bits of h2 pick the bits within a block
  static constexpr unsigned kBlockBits = 512;
  static constexpr std::size_t kBlockWords = kBlockBits / 64;
  struct Layer {
    HugeArray<std::uint64_t> words;    // page-aligned: every block is one cache line
    std::uint64_t block_mask = 0;      // block count - 1 (a power of two)
    std::size_t capacity = 0;
    std::size_t count = 0;
    std::uint64_t* block(std::uint64_t h1) const {
      return words.data() + (h1 & block_mask) * kBlockWords;
    }
  };

  void add_layer(std::size_t capacity);
  static bool test(const Layer& l, std::uint64_t h1, std::uint64_t h2);

  std::vector<Layer> layers_;
  std::size_t count_ = 0;
};

}  // namespace chat::store
