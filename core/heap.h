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
NITRO_NOINLINE void* SampleSlow(void* p, size_t size);
NITRO_NOINLINE void FreeSlow(void* p);
NITRO_NOINLINE void FreeSizedSlow(void* p, size_t size, size_t align);

NITRO_ALWAYS_INLINE void* Malloc(size_t size) {
  if (NITRO_LIKELY(size <= kMaxSmallSize)) {
    ThreadCache* tc = tls_cache;
    int cls = kSizeClasses.ClassFor(size);
    void* p = tc->Pop(cls);
    if (NITRO_LIKELY(p != nullptr)) {
      if (NITRO_LIKELY(!tc->AccountAlloc(cls, size))) return p;
      return SampleSlow(p, size);
    }
  }
  return MallocSlow(size);
}

// The checks every mode makes on a free, on the fast path: the pointer is
// the start of an object of a default-partition slab, and that object is not
// already free. Returns the size class, or 0 for "take the slow path" (also
// for slabs holding flight-recorder samples, whose frees are timed).
NITRO_ALWAYS_INLINE int FastFreeClass(void* p, Span* s, ThreadCache* tc) {
  int cls = __atomic_load_n(&s->cache_class, __ATOMIC_RELAXED);
  if (NITRO_UNLIKELY(cls == 0)) return 0;
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - s->start;
  uintptr_t idx = (off * s->magic) >> kMagicShift;
  if (NITRO_UNLIKELY(idx * s->object_size != off || idx >= s->capacity)) return 0;
  if (NITRO_UNLIKELY(static_cast<uintptr_t*>(p)[1] == tc->marker())) return 0;
  return cls;
}

NITRO_ALWAYS_INLINE void Free(void* p) {
  Span* s = GlobalPageMap().Get(p);
  if (NITRO_LIKELY(s != nullptr)) {
    ThreadCache* tc = tls_cache;
    int cls = FastFreeClass(p, s, tc);
    if (NITRO_LIKELY(cls != 0) && NITRO_LIKELY(tc->Push(cls, p))) {
      tc->AccountFree(cls);
      return;
    }
  }
  FreeSlow(p);
}

// free_sized, sized operator delete, Rust's dealloc: the size must match
// the allocation (align: the alignment it was made with, 0 for none).
NITRO_ALWAYS_INLINE void FreeSized(void* p, size_t size, size_t align) {
  Span* s = GlobalPageMap().Get(p);
  if (NITRO_LIKELY(s != nullptr && size <= kMaxSmallSize && align <= kMinAlign)) {
    ThreadCache* tc = tls_cache;
    int cls = FastFreeClass(p, s, tc);
    if (NITRO_LIKELY(cls != 0 && kSizeClasses.ClassFor(size) == cls) &&
        NITRO_LIKELY(tc->Push(cls, p))) {
      tc->AccountFree(cls);
      return;
    }
  }
  FreeSizedSlow(p, size, align);
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
HardeningMode CurrentMode();
Partition* DefaultPartition();

// Telemetry plugs in here (telemetry/runtime.cc registers it at start-up):
// sampled allocations and their frees, a periodic tick from the background
// thread, and process exit.
struct TelemetryHooks {
  void (*on_sample)(void* p, size_t requested, size_t usable, size_t align, Partition* partition);
  void (*on_free)(void* p);
  void (*on_tick)();
  void (*on_exit)();
  void (*on_fork_child)();
};
void SetTelemetryHooks(const TelemetryHooks* hooks);
// The per-thread caches, for statistics: calls f(cache) under the registry
// lock, then f(nullptr-free) for the counters of threads that have exited.
void ForEachThreadCache(void (*f)(const ThreadCache* tc, void* ctx), void* ctx);
const ThreadCache::Counters& ExitedThreadCounters();
// Samples taken by the guarded pool and the flight recorder.
size_t GuardedSamples();
// The guarded pool's allocations (part of the default partition's counts).
struct GuardedPoolCounts {
  uint64_t allocations, frees, live_objects, live_bytes;
};
GuardedPoolCounts GuardedCounts();
// Wall-clock nanoseconds (CLOCK_REALTIME) when the heap started.
uint64_t HeapStartTimeNs();

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
  size_t quarantine_bytes;       // large runs waiting before reuse
  size_t sampled_live;           // guarded allocations alive
  size_t sampled_total;          // guarded allocations made
};
HeapStats GetHeapStats();
// The heap report: a few lines per partition, to file descriptor `fd`.
void PrintHeapReport(int fd);

}  // namespace nitro

#endif  // NITROHEAP_CORE_HEAP_H_
