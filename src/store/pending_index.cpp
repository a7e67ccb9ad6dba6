#include "store/pending_index.hpp"

#include <bit>
#include <cassert>

namespace chat::store {

PendingIndex::PendingIndex(std::size_t initial_capacity) {
  const std::size_t n = std::bit_ceil(initial_capacity < 16 ? std::size_t{16} : initial_capacity);
  slots_ = HugeArray<Slot>(n);
  mask_ = n - 1;
}

void PendingIndex::place(Slot s) {
  std::size_t i = s.hash & mask_;
  while (slots_[i].m) i = (i + 1) & mask_;
  slots_[i] = s;
}

void PendingIndex::grow() {
  HugeArray<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old)
    if (s.m) place(s);
}

void PendingIndex::insert(std::uint64_t hash, const Message* m) {
  assert(m);
  // Load ≤ 0.7: linear probing's expected probe count stays below ~2 for hits.
  if ((size_ + 1) * 10 > slots_.size() * 7) grow();
  place(Slot{hash, m});
  ++size_;
}

bool PendingIndex::erase(std::uint64_t hash, const Message* m) {
  std::size_t i = hash & mask_;
  for (; slots_[i].m; i = (i + 1) & mask_)
    if (slots_[i].m == m && slots_[i].hash == hash) break;
  if (!slots_[i].m) return false;
  // Backward shift: move later entries of the probe run into the hole when their home slot is
  // not between the hole and them (cyclically), so that every entry stays reachable from its
  // home slot without tombstones.
  for (std::size_t j = (i + 1) & mask_; slots_[j].m; j = (j + 1) & mask_) {
    const std::size_t home = slots_[j].hash & mask_;
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i] = Slot{};
  --size_;
  return true;
}

}  // namespace chat::store
