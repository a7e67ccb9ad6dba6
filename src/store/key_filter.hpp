#pragma once
// A growing Bloom filter of strings: "maybe stored" or "certainly not". The SQLite store keeps
// every (sender, clientMsgId) it holds in one, so that an append of a new clientMsgId (nearly
// all of them) skips the index lookup that only a retry needs.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace chat::store {

/// A scalable Bloom filter (layers of doubling capacity, each ~1% false positives at its
/// capacity): no false negatives, 1.25-2.5 bytes per key of capacity (bit arrays are powers
/// of two); a lookup checks every layer (a few: the first holds `initial_capacity` keys).
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
  /// False: (a, b) was never added. True: it may have been.
  bool may_contain(std::string_view a, std::string_view b) const { return may_contain(hash(a, b)); }
  bool may_contain(const Hashes& h) const;

  std::size_t size() const { return count_; }
  std::size_t layers() const { return layers_.size(); }
  std::size_t memory_bytes() const;

 private:
  struct Layer {
    std::vector<std::uint64_t> bits;
    std::uint64_t mask = 0;  // bit count - 1 (a power of two)
    std::size_t capacity = 0;
    std::size_t count = 0;
  };
  static constexpr int kProbes = 7;

  void add_layer(std::size_t capacity);
  static bool test(const Layer& l, std::uint64_t h1, std::uint64_t h2);

  std::vector<Layer> layers_;
  std::size_t count_ = 0;
};

}  // namespace chat::store
