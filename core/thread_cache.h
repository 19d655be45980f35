// ThreadCache: one thread's free lists, one per size class, in front of the
// default partition. Pop and Push are the whole malloc/free fast path.
//
// Each list is a FIFO: frees append at the tail, allocations take the head,
// and an allocation needs more than `depth` objects in the list. So a freed
// object waits at least `depth` allocations of its class before reuse (the
// quarantine), at the cost of one compare. Every free object carries the
// partition's free marker in its second word and allocation clears it, so
// freeing an object that is already free is caught on the fast path.
//
// Every miss (empty or full list, a thread with no cache yet, strict mode)
// takes the same slow path: a not-yet-created cache is a shared sentinel
// whose lists have no room and nothing to give.
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
    void* tail;
    uint32_t count;
    uint32_t max;    // pushes need 0 < count < max (0 in the sentinel, 1 in strict)
    uint32_t depth;  // pops need count > depth (>= 1)
  };

  NITRO_ALWAYS_INLINE void* Pop(int cls) {
    List& l = lists_[cls];
    if (NITRO_UNLIKELY(l.count <= l.depth)) return nullptr;
    void* p = l.head;
    l.head = GetLink(p, key_);
    l.count--;
    static_cast<uintptr_t*>(p)[1] = 0;  // no longer free
    return p;
  }
  // False when the list is empty or full, or this is the sentinel.
  NITRO_ALWAYS_INLINE bool Push(int cls, void* p) {
    List& l = lists_[cls];
    if (NITRO_UNLIKELY(l.count - 1 >= l.max - 1)) return false;
    SetLink(l.tail, p, key_);
    l.tail = p;
    l.count++;
    static_cast<uintptr_t*>(p)[1] = marker_;
    return true;
  }
  uintptr_t marker() const { return marker_; }
  // Sampling: counts allocations down to the next guarded one.
  NITRO_ALWAYS_INLINE bool SampleTick() { return NITRO_UNLIKELY(--sample_countdown_ < 0); }
  void ResetSampleCountdown(int64_t countdown) { sample_countdown_ = countdown; }

  // quarantine_bytes sets each class's depth; strict routes every call to
  // the slow path (the fast fields block) where PopChecked/PushChecked run.
  void Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes, bool strict,
            int64_t first_sample);
  // Slow paths: refill from the middle layer and pop; make room and push.
  void* Refill(int cls);
  bool RefillList(int cls);
  void Overflow(int cls, void* p);
  // The slow-path forms, honouring the real limits even in strict mode.
  // `pick` > 1 takes a random one of the first `pick` reusable objects;
  // `valid`, if given, vets every object before its link is read.
  using Validator = bool (*)(void* object, int cls);
  void* PopChecked(int cls, uint32_t pick, Validator valid = nullptr);
  void PushChecked(int cls, void* p);
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
  void Prepend(int cls, void* head, int n);

  List lists_[kNumClasses];
  uintptr_t key_ = 0;
  uintptr_t marker_ = 0;
  int64_t sample_countdown_ = 0;
  Partition* partition_ = nullptr;
  size_t max_bytes_ = 0;
  uint32_t real_max_[kNumClasses] = {};
  uint32_t real_depth_[kNumClasses] = {};
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_THREAD_CACHE_H_
