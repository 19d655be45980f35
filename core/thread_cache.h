// ThreadCache: one thread's free lists, one per size class, in front of the
// default partition. Pop and Push are the whole malloc/free fast path; every
// miss (empty list, full list, a thread with no cache yet) takes the same
// slow path, because a not-yet-created cache is a shared empty sentinel whose
// lists are empty and have no room.
#ifndef NITROHEAP_CORE_THREAD_CACHE_H_
#define NITROHEAP_CORE_THREAD_CACHE_H_

#include <stddef.h>
#include <stdint.h>

#include "core/base.h"
#include "core/free_list.h"
#include "core/size_class.h"

namespace nitro {

class Partition;

class ThreadCache {
 public:
  struct List {
    void* head;
    uint32_t count;
    uint32_t max;  // 0 in the sentinel: nothing may be pushed
  };

  NITRO_ALWAYS_INLINE void* Pop(int cls) {
    List& l = lists_[cls];
    void* p = l.head;
    if (NITRO_UNLIKELY(p == nullptr)) return nullptr;
    l.head = GetLink(p, key_);
    l.count--;
    return p;
  }
  // False when the list is full (or this is the sentinel): take the slow path.
  NITRO_ALWAYS_INLINE bool Push(int cls, void* p) {
    List& l = lists_[cls];
    if (NITRO_UNLIKELY(l.count >= l.max)) return false;
    SetLink(p, l.head, key_);
    l.head = p;
    l.count++;
    return true;
  }

  void Init(Partition* partition, size_t max_bytes);
  // Slow paths: refill an empty list from the middle layer and pop; make room
  // in a full list and push.
  void* Refill(int cls);
  void Overflow(int cls, void* p);
  // Returns every cached object to the middle layer.
  void Flush();
  size_t CachedBytes() const;
  uint64_t cached_objects(int cls) const { return lists_[cls].count; }
  bool is_sentinel() const { return partition_ == nullptr; }

  // Registry links (all live caches, for fork and statistics).
  ThreadCache* next = nullptr;
  ThreadCache* prev = nullptr;
  unsigned long owner_thread = 0;

 private:
  void ReleaseBatch(int cls, uint32_t n);

  List lists_[kNumClasses];
  uintptr_t key_ = 0;
  Partition* partition_ = nullptr;
  size_t max_bytes_ = 0;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_THREAD_CACHE_H_
