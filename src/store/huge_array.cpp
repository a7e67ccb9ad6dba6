#include "store/huge_array.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <new>

namespace chat::store {

HugePageMemory::HugePageMemory(std::size_t bytes) {
  if (bytes == 0) return;
  const bool huge = bytes >= kHugePage;
  // Huge: whole 2 MiB pages, from a 2 MiB boundary (the kernel backs only aligned 2 MiB ranges
  // of a mapping with huge pages: a 2 MiB mapping at an arbitrary address gets none).
  const std::size_t len = huge ? (bytes + kHugePage - 1) / kHugePage * kHugePage : bytes;
  const std::size_t map_len = huge ? len + kHugePage : len;
  void* p = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(p);
  if (huge) {
    const auto at = reinterpret_cast<std::uintptr_t>(base);
    char* aligned = base + ((kHugePage - at % kHugePage) % kHugePage);
    if (aligned > base) ::munmap(base, static_cast<std::size_t>(aligned - base));
    char* const end = aligned + len;
    char* const map_end = base + map_len;
    if (map_end > end) ::munmap(end, static_cast<std::size_t>(map_end - end));
    base = aligned;
    (void)::madvise(base, len, MADV_HUGEPAGE);  // advisory: fine if refused
  }
  p_ = base;
  mapped_ = len;
}

HugePageMemory& HugePageMemory::operator=(HugePageMemory&& o) noexcept {
  if (this != &o) {
    if (p_) ::munmap(p_, mapped_);
    p_ = std::exchange(o.p_, nullptr);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

HugePageMemory::~HugePageMemory() {
  if (p_) ::munmap(p_, mapped_);
}

}  // namespace chat::store
