// MetaPool: fixed-size allocator for the engine's own metadata (spans,
// thread caches, partitions). Its memory is a separate mapping with guard
// pages at both ends, never adjacent to user data, and never comes from the
// heap it describes.
#ifndef NITROHEAP_CORE_META_POOL_H_
#define NITROHEAP_CORE_META_POOL_H_

#include <new>
#include <stddef.h>
#include <string.h>

#include "core/base.h"
#include "core/lock.h"

namespace nitro {

// Raw metadata memory, bump-allocated from guarded chunks. Never freed.
void* MetaAllocRaw(size_t bytes);
// Bytes of metadata mapped so far (a statistic).
size_t MetaBytesMapped();
SpinLock& MetaLock();

template <typename T>
class MetaPool {
 public:
  T* New() {
    void* p;
    {
      LockGuard g(lock_);
      p = free_;
      if (p) {
        free_ = *static_cast<void**>(p);
      }
      in_use_++;
    }
    bool recycled = p != nullptr;
    if (!p) p = MetaAllocRaw(sizeof(T) < sizeof(void*) ? sizeof(void*) : sizeof(T));
    if (!p) {
      LockGuard g(lock_);
      in_use_--;
      return nullptr;
    }
    // Fresh metadata comes zeroed from mmap: touching it would only cost
    // resident memory (a partition's middle layer is ~100 KiB, mostly idle).
    if (recycled) memset(p, 0, sizeof(T));
    return new (p) T();
  }
  void Delete(T* t) {
    t->~T();
    LockGuard g(lock_);
    *reinterpret_cast<void**>(t) = free_;
    free_ = t;
    in_use_--;
  }
  size_t in_use() const { return in_use_; }
  SpinLock& lock() { return lock_; }

 private:
  SpinLock lock_{LockRank::kMetaPool};
  void* free_ = nullptr;
  size_t in_use_ = 0;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_META_POOL_H_
