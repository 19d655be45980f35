// Where a thread finds its thread caches: malloc's (tls_cache) and one per
// partition id (tls_caches), in static (initial-exec) TLS; the empty
// sentinel wherever a thread has none yet, so a new thread's first call
// takes the slow path with no test of its own.
//
// Static TLS lies at one fixed distance from the thread pointer, the same
// in every thread and in a forked child (the x86-64 initial-exec model:
// the C library places it there, and the shared object's GOT holds that
// distance). So a partition records once, when it is made, the distances
// of its slots (Partition::Init) and its fast paths read a slot with one
// %fs-relative load, where a slot index would cost the index's load, the
// GOT load of the table's distance and the indexed load. They are here, in
// the engine, so that the partition that records them can name them.
#ifndef NITROHEAP_CORE_CACHE_SLOTS_H_
#define NITROHEAP_CORE_CACHE_SLOTS_H_

#include <stdint.h>

#include "core/base.h"
#include "core/partition.h"
#include "core/thread_cache.h"

namespace nitro {

// A thread's caches, by partition id (the sentinel where it has none; slot
// 0 always). Other threads write a slot only when the partition is
// destroyed (DestroyPartition), under the registry lock.
struct ThreadCaches {
  ThreadCache* by_slot[kCachedPartitions];
  ThreadCaches* next;  // the registry of threads holding partition caches
  ThreadCaches* prev;
  ThreadCache** current;  // &tls_cache of the owning thread
  bool registered;
};

// Constant-initialized: an all-empty cache with no room, shared by every
// thread until it gets its own.
extern ThreadCache g_sentinel_cache;
// The cache malloc pops from: that of the thread's current partition.
extern __thread ThreadCache* tls_cache __attribute__((tls_model("initial-exec")));
extern __thread ThreadCaches tls_caches __attribute__((tls_model("initial-exec")));

// The distance from the thread pointer to tls_caches.by_slot[slot].
intptr_t CacheSlotTpOffset(int slot);

// This thread's cache pointer at `tp_offset` (from CacheSlotTpOffset).
NITRO_ALWAYS_INLINE ThreadCache* CacheAtTpOffset(intptr_t tp_offset) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  // One load. The memory operand is the slot as the compiler sees it, so
  // the load is ordered with the slow paths' writes of slots like any
  // other read of memory; the %fs prefix makes it this thread's.
  ThreadCache* tc;
  asm("movq %%fs:%1, %0" : "=r"(tc) : "m"(*reinterpret_cast<ThreadCache* const*>(tp_offset)));
  return tc;
#else
  // The same address as an ordinary load (ThreadSanitizer sees it).
  return *reinterpret_cast<ThreadCache* const*>(static_cast<char*>(__builtin_thread_pointer()) + tp_offset);
#endif
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_CACHE_SLOTS_H_
