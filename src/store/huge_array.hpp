#pragma once
// Zeroed arrays in their own anonymous mappings, on transparent huge pages where the kernel
// allows it: the journal thread's hash tables (PendingIndex, KeyFilter) are probed at random
// all over several MiB, so that with 4 KiB pages nearly every probe also missed the TLB (and in a
// virtual machine a TLB miss walks two sets of page tables). A 2 MiB page covers 512 of them.
#include <cstddef>
#include <type_traits>
#include <utility>

namespace chat::store {

/// `bytes` of zeroed memory in an anonymous mapping of its own. From 2 MiB on, the mapping starts
/// at a 2 MiB boundary and is rounded up to whole 2 MiB pages, and asks for huge pages
/// (MADV_HUGEPAGE; advisory: with THP off it is ordinary memory). Throws std::bad_alloc.
class HugePageMemory {
 public:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  HugePageMemory() = default;
  explicit HugePageMemory(std::size_t bytes);
  HugePageMemory(HugePageMemory&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), mapped_(std::exchange(o.mapped_, 0)) {}
  HugePageMemory& operator=(HugePageMemory&& o) noexcept;
  HugePageMemory(const HugePageMemory&) = delete;
  HugePageMemory& operator=(const HugePageMemory&) = delete;
  ~HugePageMemory();

  void* data() const { return p_; }
  std::size_t mapped_bytes() const { return mapped_; }

 private:
  void* p_ = nullptr;
  std::size_t mapped_ = 0;
};

/// A fixed number of T, all bytes zero at first (so zero bytes must be a valid T). Move-only.
template <class T>
class HugeArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  HugeArray() = default;
  explicit HugeArray(std::size_t n) : mem_(n * sizeof(T)), n_(n) {}
  HugeArray(HugeArray&& o) noexcept : mem_(std::move(o.mem_)), n_(std::exchange(o.n_, 0)) {}
  HugeArray& operator=(HugeArray&& o) noexcept {
    mem_ = std::move(o.mem_);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }

  T* data() const { return static_cast<T*>(mem_.data()); }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) const { return data()[i]; }
  T* begin() const { return data(); }
  T* end() const { return data() + n_; }
  void swap(HugeArray& o) noexcept {
    std::swap(mem_, o.mem_);
    std::swap(n_, o.n_);
  }
  std::size_t memory_bytes() const { return mem_.mapped_bytes(); }

 private:
  HugePageMemory mem_;
  std::size_t n_ = 0;
};

}  // namespace chat::store
