// C++ over NitroHeap's partitions: an STL allocator over a partition or a
// trait set, and a scoped per-thread default partition.
//
//   nitro::partition_allocator<int> alloc(nitro_partition_for_traits(NITRO_TRAIT_LOW_LATENCY));
//   std::vector<int, nitro::partition_allocator<int>> v(alloc);
//
//   {
//     nitro::scoped_partition guard(p);   // new, malloc and containers here go to p
//     auto* node = new Node;
//   }                                     // the previous partition again
//
// Frees always go to the partition that owns the block, so memory allocated
// inside a scope may be freed outside it (and by any thread).
#ifndef NITROHEAP_ALLOCATOR_HPP_
#define NITROHEAP_ALLOCATOR_HPP_

#include <cerrno>
#include <cstddef>
#include <new>

#include "nitroheap/nitroheap.h"

namespace nitro {

template <typename T>
class partition_allocator {
 public:
  using value_type = T;

  // Allocates in `partition` (NULL: the thread's current partition).
  explicit partition_allocator(nitro_partition_t* partition) noexcept : partition_(partition) {}
  // Allocates in the partition a trait set names (NITRO_TRAIT_* or-ed);
  // throws std::bad_alloc when the set is refused (errno says why), and for
  // NITRO_TRAIT_MOVABLE: a container's pointers cannot follow moved objects
  // (movable memory is reached through handles, nitroheap/movable.h).
  static partition_allocator for_traits(int traits) {
    if ((traits & NITRO_TRAIT_MOVABLE) == NITRO_TRAIT_MOVABLE) {
      errno = EINVAL;
      throw std::bad_alloc();
    }
    nitro_partition_t* p = nitro_partition_for_traits(traits);
    if (p == nullptr) throw std::bad_alloc();
    return partition_allocator(p);
  }
  template <typename U>
  partition_allocator(const partition_allocator<U>& other) noexcept : partition_(other.partition()) {}

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    std::size_t bytes = n * sizeof(T);
    void* p = alignof(T) > alignof(std::max_align_t)
                  ? nitro_partition_aligned_alloc(target(), alignof(T), bytes)
                  : nitro_partition_malloc(target(), bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  // The block's own partition when this allocator names none (the thread's
  // current partition may have changed since).
  void deallocate(T* p, std::size_t) noexcept {
    nitro_partition_free(partition_ != nullptr ? partition_ : nitro_partition_of(p), p);
  }

  nitro_partition_t* partition() const noexcept { return partition_; }

  template <typename U>
  bool operator==(const partition_allocator<U>& o) const noexcept { return partition_ == o.partition(); }
  template <typename U>
  bool operator!=(const partition_allocator<U>& o) const noexcept { return partition_ != o.partition(); }

 private:
  nitro_partition_t* target() const noexcept {
    return partition_ != nullptr ? partition_ : nitro_thread_partition();
  }
  nitro_partition_t* partition_;
};

// For the life of the guard, this thread's malloc, new and every allocator
// that names no partition allocate in `partition`; the previous current
// partition comes back when it ends. Guards nest.
class scoped_partition {
 public:
  explicit scoped_partition(nitro_partition_t* partition) noexcept
      : previous_(nitro_set_thread_partition(partition)) {}
  scoped_partition(const scoped_partition&) = delete;
  scoped_partition& operator=(const scoped_partition&) = delete;
  ~scoped_partition() { nitro_set_thread_partition(previous_); }

 private:
  nitro_partition_t* previous_;
};

}  // namespace nitro

#endif  // NITROHEAP_ALLOCATOR_HPP_
