// The process heap: the default partition behind per-thread caches, and the
// whole life cycle around it (start-up, options, legacy mode, fork, thread
// exit, the background reclaimer). Every C and C++ entry point in abi/ is a
// thin call into the functions here.
//
// Fast paths: Malloc pops from the thread's list for the size class; Free
// looks the page up and pushes onto that list. Anything else (an empty or
// full list, a thread without a cache, a large or foreign pointer, a heap
// not yet started, legacy mode) fails that one test and goes to a slow path.
#ifndef NITROHEAP_CORE_HEAP_H_
#define NITROHEAP_CORE_HEAP_H_

#include <stddef.h>

#include "core/base.h"
#include "core/options.h"
#include "core/page_map.h"
#include "core/partition.h"
#include "core/size_class.h"
#include "core/thread_cache.h"

namespace nitro {

extern __thread ThreadCache* tls_cache __attribute__((tls_model("initial-exec")));

NITRO_NOINLINE void* MallocSlow(size_t size);
NITRO_NOINLINE void FreeSlow(void* p);

NITRO_ALWAYS_INLINE void* Malloc(size_t size) {
  if (NITRO_LIKELY(size <= kMaxSmallSize)) {
    void* p = tls_cache->Pop(kSizeClasses.ClassFor(size));
    if (NITRO_LIKELY(p != nullptr)) return p;
  }
  return MallocSlow(size);
}

NITRO_ALWAYS_INLINE void Free(void* p) {
  Span* s = GlobalPageMap().Get(p);
  if (NITRO_LIKELY(s != nullptr)) {
    int cls = s->cache_class;
    if (NITRO_LIKELY(cls != 0) && NITRO_LIKELY(tls_cache->Push(cls, p))) return;
  }
  FreeSlow(p);
}

void* Calloc(size_t n, size_t size);
void* Realloc(void* p, size_t size);
// align: any power of two; returns null with errno = EINVAL otherwise.
void* AllocateAligned(size_t align, size_t size);
// 0 for null; the C library's answer for its own pointers.
size_t UsableSize(const void* p);
// Returns free memory of every partition to the kernel; true if any was.
bool Trim();

enum class HeapMode { kNitro, kLegacy };
HeapMode Mode();
// Starts the heap if it has not started (idempotent, thread-safe).
void EnsureStarted();
const Options& CurrentOptions();
Partition* DefaultPartition();

struct HeapStats {
  size_t reserved_bytes;        // address space of all partitions
  size_t committed_bytes;       // pages in use or free but not yet released
  size_t in_use_page_bytes;     // pages holding slabs or large allocations
  size_t free_committed_bytes;  // free pages still committed (released by decay)
  size_t free_released_bytes;   // free pages given back to the kernel
  size_t released_total_bytes;  // everything ever given back
  size_t thread_cache_bytes;    // objects cached by threads
  size_t transfer_bytes;        // objects in the middle layer's batches
  size_t slab_free_bytes;       // free objects inside slabs
  size_t allocated_bytes;       // bytes in objects held by the program
  size_t large_allocations;
  size_t large_bytes;
  size_t metadata_bytes;
  size_t partitions;
  size_t threads;
};
HeapStats GetHeapStats();
// The heap report: a few lines per partition, to file descriptor `fd`.
void PrintHeapReport(int fd);

}  // namespace nitro

#endif  // NITROHEAP_CORE_HEAP_H_
