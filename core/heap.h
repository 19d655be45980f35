// The process heap: the default partition behind per-thread caches, and the
// whole life cycle around it (start-up, options, legacy mode, fork, thread
// exit, the background reclaimer). Every C, C++ and Rust entry point in abi/
// is a thin call into the functions here.
//
// One fast path and one slow path each way. Malloc pops from the thread's
// magazine for the size class (AllocateFast, which aligned requests up to
// the page size share); Free looks the page up and pushes onto that
// magazine. Anything else (an empty or full magazine, a thread without a
// cache, a sample due, a large, zeroed or foreign request, an alignment
// above the page size, a heap not yet started, legacy mode, strict mode)
// goes to AllocateSlow(size, align, zero) or FreeSlow. Every reallocation,
// whatever its ABI, is Reallocate.
//
// Every partition has thread caches too: a thread holds one cache per
// partition it uses (tls_caches, one slot per partition id, made on the
// slow path). PartitionMalloc and mallocx are Malloc with the cache of the
// partition named (AllocateFast, the one fast path); Free pushes onto the
// cache of the partition whose span holds the object. malloc's own cache, tls_cache, is the cache of
// the thread's current partition: the default one, or the one a scoped
// partition (SetThreadPartition) names, so switching costs the fast path
// nothing.
#ifndef NITROHEAP_CORE_HEAP_H_
#define NITROHEAP_CORE_HEAP_H_

#include <stddef.h>

#include "core/base.h"
#include "core/cache_slots.h"
#include "core/options.h"
#include "core/page_map.h"
#include "core/partition.h"
#include "core/size_class.h"
#include "core/thread_cache.h"

namespace nitro {

// The one allocation slow path. align: 0 (or up to kMinAlign) for the
// natural alignment, else a power of two; zero: the block reads as zero.
// Failure: nullptr with errno = ENOMEM (the C rule; abi/cpp_new.cc adds
// the C++ one on top).
NITRO_NOINLINE void* AllocateSlow(size_t size, size_t align, bool zero);
// The same in a named partition (nullptr: the default one).
NITRO_NOINLINE void* AllocateSlowIn(Partition* partition, size_t size, size_t align, bool zero);
NITRO_NOINLINE void* SampleSlow(void* p, size_t size);
NITRO_NOINLINE void* SampleSlowIn(Partition* partition, void* p, size_t size);
NITRO_NOINLINE void FreeSlow(void* p);
NITRO_NOINLINE void FreeSizedSlow(void* p, size_t size, size_t align);

// The one allocation fast path, behind malloc, aligned allocation, the
// partition calls and mallocx: a small request popped from cache `tc`, of
// the class of `class_size` (the request's size, or for an aligned request
// SizeClassMap::AlignedRequest); `size`, the size asked for, advances the
// samplers. sample(p, cls) takes an object whose allocation made a sampler
// due; slow() serves every other case (a large request, an empty magazine,
// the sentinel). kMinFast: the smallest class_size served here, 0
// (malloc(0) pops kZeroSizeClass) or 1 (mallocx, where size 0 means 1
// byte, and aligned requests, never 0: slow() serves it); the same one
// compare either way.
template <size_t kMinFast = 0, typename Sample, typename Slow>
NITRO_ALWAYS_INLINE void* AllocateFast(ThreadCache* tc, size_t class_size, size_t size, Sample sample, Slow slow) {
  static_assert(kMinFast <= 1, "sizes 1 and up all have their class");
  if (NITRO_LIKELY(class_size - kMinFast <= kMaxSmallSize - kMinFast)) {
    uint32_t offset = kSizeClasses.MagazineOffsetFor(class_size);
    ThreadCache::Magazine& m = tc->MagAtOffset(offset);
    void* p = ThreadCache::Pop(m);
    if (NITRO_LIKELY(p != nullptr)) {
      if (NITRO_LIKELY(!tc->AccountAlloc(m, size))) return p;
      return sample(p, static_cast<int>(offset / kMagazineBytes));
    }
  }
  return slow();
}

NITRO_ALWAYS_INLINE void* Malloc(size_t size) {
  return AllocateFast(
      tls_cache, size, size, [size](void* p, int) { return SampleSlow(p, size); },
      [size] { return AllocateSlow(size, 0, false); });
}

// An object whose aligned allocation (AllocateAlignedFast) made a sampler due.
NITRO_NOINLINE void* SampleAlignedSlow(void* p, size_t size, size_t align, int cls);

// Malloc for an alignment above kMinAlign: up to the page size, the class
// of the size rounded up to the alignment has aligned objects
// (SizeClassMap::ClassForAligned), so the same pop serves it; larger
// alignments, size 0 (a 1-byte class: AllocateFast<1>) and large sizes take
// AllocateSlow. `size` is tested before it is rounded, so the rounding
// cannot wrap.
NITRO_ALWAYS_INLINE void* AllocateAlignedFast(size_t size, size_t align) {
  if (NITRO_LIKELY(align <= kPageSize && size <= kMaxSmallSize)) {
    return AllocateFast<1>(
        tls_cache, SizeClassMap::AlignedRequest(size, align), size,
        [size, align](void* p, int cls) { return SampleAlignedSlow(p, size, align, cls); },
        [size, align] { return AllocateSlow(size, align, false); });
  }
  return AllocateSlow(size, align, false);
}

// a != b, by a compare whose meaning the compiler does not know, so that
// it does not replace one by the other where they are equal.
NITRO_ALWAYS_INLINE bool OpaqueNotEqual(uint64_t a, uint64_t b) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool differ;
  asm("cmpq %2, %1" : "=@ccne"(differ) : "r"(a), "r"(b));
  return differ;
#else
  return a != b;
#endif
}

// An object's free flag, read once (relaxed): set when the object is free.
// On x86-64 one compare with memory whose flags the branch uses: GCC loads
// an atomic into a register and tests it (two instructions and a test).
NITRO_ALWAYS_INLINE bool FlagSet(const uint8_t* flag) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool set;
  asm("cmpb $0, %1" : "=@ccne"(set) : "m"(*flag));
  return set;
#else
  return __atomic_load_n(flag, __ATOMIC_RELAXED) != 0;
#endif
}

// The checks every mode makes on a free, on the fast path, once the span's
// fast_free word says the span is a thread-cached slab without samples:
// the pointer is the start of an object, and that object is not already
// free (its flag in the span, outside the object). Returns false for "take the slow path"; else
// *free_flag.
NITRO_ALWAYS_INLINE bool FastFreeObject(void* p, Span* s, uint8_t** free_flag) {
  // ExactIndex is below capacity only for the start of one of the slab's
  // objects: an interior or unaligned pointer, one below the slab or in its
  // unused tail, and a pointer at or above 2^kAddressBits that
  // PageMap::GetUnlessFar sent here (at least 2^46 past the slab's start,
  // so its quotient is far above any capacity) all take the slow path.
  // (Until fast8: a multiply by the magic, a shift, a multiply back and a
  // compare; this is two instructions shorter.)
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - s->start;
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  // The multiply takes the inverse from memory: GCC may load it into a
  // register first (an instruction per free, seen in objdump once free's
  // class guess took a register).
  asm("imulq %1, %0" : "+r"(off) : "m"(s->stride_inverse));
  uint64_t idx = ExactIndex(off, 1, s->stride_shift);
#else
  uint64_t idx = ExactIndex(off, s->stride_inverse, s->stride_shift);
#endif
  if (NITRO_UNLIKELY(idx >= s->index_bound)) return false;
  uint8_t* flag = &s->object_free[idx];
  if (NITRO_UNLIKELY(FlagSet(flag))) return false;
  *free_flag = flag;
  return true;
}

// The free fast path's checks for a span of any partition: returns the
// magazine the object goes to (in this thread's cache of the span's
// partition) with *mag_offset its offset past class 1's magazine
// (ThreadCache::MagazineAfterFirst; the class is mag_offset /
// kMagazineBytes + 1), or nullptr for the slow path (also for spans holding
// flight-recorder samples, whose frees are timed).
//
// The cache comes first from malloc's own (tls_cache, whose address does
// not depend on p): one compare of the span's word with that cache's base
// (ThreadCache::free_word_base) says whether the span is an unsampled slab
// of its partition, and gives the class. Only when it is not (another
// partition's object, a sampled span, the sentinel) is the cache looked
// up by the span's partition id, and the same compare made against it.
// Why: the magazine's address is where free's push stores, and the next
// malloc's pop of that class loads from there, so every load that address
// waits for lies on the loop-carried path of a malloc/free loop. With the
// id lookup first, that path held four dependent loads (page-map root,
// leaf, span, tls_caches slot); now three, and the fourth is a predicted
// branch (docs/architecture.md, "The free fast path's critical path").
//
// FastFreeCache makes these checks and returns the cache itself (strict's
// free, which keeps its own stacks, starts from it); FastFreeMagazine is
// the default's use of it.
// Since the fifteenth session the push's offset is the page's class guess,
// confirmed by the span word (ConfirmedMagazineOffset, below): one load.

// The magazine offset a free pushes with, given c, the span word less the
// base of the cache it tries (FastFreeCache, PartitionFree): the page's
// guess (PageMap::ClassHint, which needs no load before it) when c
// confirms it, so on the likely path the push's address waits for one
// load, not three (a one-size malloc/free loop 6.9-7.9 -> 5.5-6.5 ns a
// pair, 16 sizes 12.6-13.4 -> 10.4-11.1; docs/architecture.md, "Free's
// class guess"); else c, with the guess corrected when c is a magazine
// offset (a mispredicted branch and a store). At kFastFreeSpan or above:
// the span is not an unsampled slab of that cache's partition.
NITRO_ALWAYS_INLINE uint64_t ConfirmedMagazineOffset(const void* p, uint64_t c) {
  uint64_t guess = GlobalPageMap().ClassHint(p);
  // Compared out of the compiler's sight: told that the two are equal, it
  // addresses the magazine with either, and it picks c (measured).
  if (NITRO_LIKELY(!OpaqueNotEqual(c, guess))) {
    // Every guess is an offset (PageMap::SetClassHint): the callers' range
    // test then costs the likely path nothing.
    if (guess >= kFastFreeSpan) __builtin_unreachable();
    return guess;
  }
  if (c < kFastFreeSpan) GlobalPageMap().SetClassHint(p, c);
  return c;
}

NITRO_ALWAYS_INLINE ThreadCache* FastFreeCache(void* p, Span* s, uint64_t* mag_offset, uint8_t** free_flag) {
  ThreadCache* tc = tls_cache;
  uint64_t c = ConfirmedMagazineOffset(p, s->FastFreeWordOf() - tc->free_word_base());
  if (NITRO_UNLIKELY(c >= kFastFreeSpan)) {
    // The word is read again here rather than kept from above: keeping it
    // costs the likely path a register copy (one instruction per free).
    uint64_t word = s->FastFreeWordOf();
    tc = tls_caches.by_slot[s->partition_id];
    c = word - tc->free_word_base();
    if (NITRO_UNLIKELY(c >= kFastFreeSpan)) return nullptr;
  }
  if (NITRO_UNLIKELY(!FastFreeObject(p, s, free_flag))) return nullptr;
  *mag_offset = c;
  return tc;
}

NITRO_ALWAYS_INLINE ThreadCache::Magazine* FastFreeMagazine(void* p, Span* s, uint64_t* mag_offset,
                                                            uint8_t** free_flag) {
  ThreadCache* tc = FastFreeCache(p, s, mag_offset, free_flag);
  return NITRO_LIKELY(tc != nullptr) ? &tc->MagazineAfterFirst(*mag_offset) : nullptr;
}

NITRO_ALWAYS_INLINE void Free(void* p) {
  Span* s = GlobalPageMap().GetUnlessFar(p);
  uint64_t mag_offset;
  uint8_t* flag;
  ThreadCache::Magazine* m = FastFreeMagazine(p, s, &mag_offset, &flag);
  if (NITRO_LIKELY(m != nullptr) && NITRO_LIKELY(ThreadCache::Push(*m, p, flag))) {
    ThreadCache::AccountFree(*m);
    return;
  }
  FreeSlow(p);
}

// free_sized, sized operator delete, Rust's dealloc: the size must match
// the allocation (align: the alignment it was made with, 0 for none). The
// fast path accepts the class the allocation's fast path picks for (size,
// align); every other size the sized-free rule accepts (SlabSizeFits) and
// every mismatch go to FreeSizedSlow.
NITRO_ALWAYS_INLINE void FreeSized(void* p, size_t size, size_t align) {
  Span* s = GlobalPageMap().GetUnlessFar(p);
  if (NITRO_LIKELY(size <= kMaxSmallSize && align <= kPageSize)) {
    uint64_t mag_offset;
    uint8_t* flag;
    ThreadCache::Magazine* m = FastFreeMagazine(p, s, &mag_offset, &flag);
    size_t class_size = align <= kMinAlign ? size : SizeClassMap::AlignedRequest(size, align);
    if (NITRO_LIKELY(m != nullptr && kSizeClasses.MagazineOffsetFor(class_size) == mag_offset + kMagazineBytes) &&
        NITRO_LIKELY(ThreadCache::Push(*m, p, flag))) {
      ThreadCache::AccountFree(*m);
      return;
    }
  }
  FreeSizedSlow(p, size, align);
}

void* Calloc(size_t n, size_t size);

// Allocation with a policy: the alignment (0 or up to kMinAlign: natural)
// and whether the block must read as zero.
NITRO_ALWAYS_INLINE void* Allocate(size_t size, size_t align, bool zero) {
  if (align <= kMinAlign) return zero ? Calloc(1, size) : Malloc(size);
  if (!zero) return AllocateAlignedFast(size, align);
  return AllocateSlow(size, align, zero);
}

// nullptr with errno = EINVAL: AllocateAligned's answer to an alignment
// that is not a power of two.
NITRO_NOINLINE void* NotPowerOfTwoAlignment();
// align: any power of two; returns null with errno = EINVAL otherwise.
NITRO_ALWAYS_INLINE void* AllocateAligned(size_t align, size_t size) {
  if (NITRO_UNLIKELY(!IsPowerOfTwo(align))) return NotPowerOfTwoAlignment();
  return Allocate(size, align, false);
}
// realloc for every ABI and partition. align: 0 for the natural alignment
// (then size 0 frees p and returns nullptr, as glibc does), else the
// alignment the block was made with and keeps. The block stays in place
// exactly when a sized free with the new size would then be accepted.
NITRO_NOINLINE void* ReallocateSlow(void* p, size_t size, size_t align);
// The rest of a reallocation of p that Reallocate vetted (the live start of
// an object of class `cls` in `s`, an unsampled thread-cached slab without
// strict's recorded sizes): kept by SlabKeeps, moved, or freed for size 0.
NITRO_NOINLINE void* ReallocateVetted(void* p, size_t size, Span* s, int cls);
// The size class of `p` when it is a live object of an unsampled
// thread-cached slab outside strict's recorded sizes, vetted as free's fast
// path vets it (the start of one of the slab's objects, not free); 0 for
// every other pointer, which the caller's slow path reports or handles.
// The one check behind the fast paths of realloc and malloc_usable_size.
NITRO_ALWAYS_INLINE int LiveSlabClass(const void* p, Span* s) {
  int cls = s->FastFreeClass();
  uint8_t* flag;
  if (NITRO_LIKELY(cls != 0 && s->requested_sizes == nullptr && FastFreeObject(const_cast<void*>(p), s, &flag))) {
    return cls;
  }
  return 0;
}
// The fast path makes free's fast-path checks once (a freed or interior
// pointer, a sampled span, strict's recorded sizes and every other block go
// to ReallocateSlow, which reports or handles them) and keeps the block when
// the new size lies in the upper half of its class: a string grown a few
// bytes at a time. Inline and without a frame: 73 instructions an in-place
// call before, 45 now (tcmalloc's realloc 61, mimalloc's 67).
NITRO_ALWAYS_INLINE void* Reallocate(void* p, size_t size, size_t align = 0) {
  if (NITRO_LIKELY(align < kMinAlign)) {
    Span* s = GlobalPageMap().GetUnlessFar(p);
    int cls = LiveSlabClass(p, s);
    if (NITRO_LIKELY(cls != 0)) {
      size_t usable = kSizeClasses.size(cls);
      if (NITRO_LIKELY(size <= usable && size > usable / 2)) return p;
      return ReallocateVetted(p, size, s, cls);
    }
  }
  return ReallocateSlow(p, size, align);
}
// The partition a live block belongs to (guarded and zero-size blocks
// included); nullptr for pointers that are not NitroHeap's.
Partition* PartitionOf(const void* p);
// nitro_partition_free / _realloc: the pointer must be the partition's
// (reported otherwise); then the same paths as free and realloc.
// `what` names the call in the report.
NITRO_NOINLINE void PartitionFreeSlow(Partition* partition, void* p, const char* what);
// The span's class and owner in one compare (Partition::fast_free_base),
// so that checking the partition costs nothing over free's own checks.
NITRO_ALWAYS_INLINE void PartitionFree(Partition* partition, void* p,
                                       const char* what = "nitro_partition_free") {
  Span* s = GlobalPageMap().GetUnlessFar(p);
  uint64_t mag_offset = ConfirmedMagazineOffset(p, s->FastFreeWordOf() - partition->fast_free_base());
  uint8_t* flag;
  if (NITRO_LIKELY(mag_offset < kFastFreeSpan) && NITRO_LIKELY(FastFreeObject(p, s, &flag))) {
    // The span is the partition's (the compare above), so the partition
    // names this thread's cache of it: one load, not free's three.
    ThreadCache* tc = CacheAtTpOffset(partition->free_cache_tp_offset());
    ThreadCache::Magazine& m = tc->MagazineAfterFirst(mag_offset);
    if (NITRO_LIKELY(ThreadCache::Push(m, p, flag))) {
      ThreadCache::AccountFree(m);
      return;
    }
  }
  PartitionFreeSlow(partition, p, what);
}
void* PartitionReallocate(Partition* partition, void* p, size_t size);
// Malloc in a named partition: the same fast path with that partition's
// cache in this thread (the sentinel's when it has none, or when requests
// need adjusting: SHARED_RW, typed partitions; those take the slow path).
NITRO_ALWAYS_INLINE void* PartitionMalloc(Partition* partition, size_t size) {
  return AllocateFast(
      CacheAtTpOffset(partition->alloc_cache_tp_offset()), size, size,
      [partition, size](void* p, int) { return SampleSlowIn(partition, p, size); },
      [partition, size] { return AllocateSlowIn(partition, size, 0, false); });
}

// An allocation in `partition` (nullptr: the thread's current partition,
// Allocate); zero: the block reads as zero.
void* AllocateIn(Partition* partition, size_t size, size_t align, bool zero);

// A partition with a policy (core/partition.h), made and destroyed by the
// process heap so that thread caches follow: DestroyPartition first drops
// every thread's cache of it (without touching its memory), then unmaps it.
// nullptr with errno as Partition::Create.
Partition* CreatePartition(const char* name, const PartitionPolicy& policy);
// The policy a partition created without one gets: the process options'.
PartitionPolicy DefaultPolicy();
void DestroyPartition(Partition* partition);
// Before a partition is reset or visited as an arena (abi/arena.cc): every
// thread's cache of it is taken away, its objects returned to the partition
// first when `flush` (a visit then sees them as free) or dropped (a reset
// frees everything anyway). As for destroy, using the partition from
// another thread meanwhile is the program's error. False for the default
// partition (malloc's, never an arena) and for nullptr.
bool ReleaseCachesForArena(Partition* partition, bool flush);
// The thread's current partition: malloc, new and every call that names no
// partition allocate there (nullptr or the default partition: the default).
// Returns the previous one. Checked on the slow path only: switching sets
// the cache malloc's fast path pops from.
Partition* SetThreadPartition(Partition* partition);
Partition* ThreadPartition();
// The usable size a request for `size` bytes (alignment `align`) gets from
// `partition` (nullptr: the default one), without allocating (nallocx): the
// class's size for a slab object, the exact size for strict mode's small
// objects (which record it), whole pages for a large block. 0 for a request
// that can never succeed. *request: the size to ask for so that the block
// reports exactly that usable size: the usable size itself for a small
// object (a guarded sample then records it too), `size` for a large block
// (which records the size asked for, and sized frees check it exactly).
// Mapping a size through it before a sized free accepts every size from the
// request up to the usable size of a small object.
size_t UsableSizeFor(Partition* partition, size_t size, size_t align, size_t* request = nullptr);
// The in-place half of Reallocate alone (xallocx): p keeps its address for
// `size` bytes exactly when Reallocate would keep it, and never moves.
// Returns p's usable size afterwards (unchanged when it could not resize).
size_t ResizeInPlaceOnly(void* p, size_t size, size_t align);
// Returns this thread's cached objects to the middle layer.
bool FlushThreadCache();
// 0 for null; the C library's answer for its own pointers; a report for a
// pointer that is not a live block's start (as free makes).
NITRO_NOINLINE size_t UsableSizeSlow(const void* p);
// malloc_usable_size, sallocx: a live small object's class size inline
// (programs such as redis ask it on every allocation and free to count
// their memory), everything else from UsableSizeSlow.
NITRO_ALWAYS_INLINE size_t UsableSize(const void* p) {
  int cls = LiveSlabClass(p, GlobalPageMap().GetUnlessFar(p));
  if (NITRO_LIKELY(cls != 0)) return kSizeClasses.size(cls);
  return UsableSizeSlow(p);
}
// Returns free memory of every partition to the kernel; true if any was.
bool Trim();

enum class HeapMode { kNitro, kLegacy };
HeapMode Mode();
// Starts the heap if it has not started (idempotent, thread-safe).
void EnsureStarted();
const Options& CurrentOptions();
HardeningMode CurrentMode();
// Writes an option while threads run (nitro_ctl "opt.<name>"). Only options
// whose every reader loads them atomically are writable: sample_rate (each
// thread picks it up at its next sample), decay_ms (the background thread's
// next period) and stats_print (read at exit). Returns 0, ENOENT for an
// unknown option, EPERM for one fixed at start-up (or sample_rate turned on
// when it was 0 at start-up: the guarded pool is reserved only then), or
// EINVAL for a value outside the option's range.
int SetOptionAtRunTime(const char* name, uint64_t value);
// Bytes this thread allocated and freed through the default partition's
// malloc family: size-class bytes for small objects, requested bytes for
// large and guarded ones.
struct ThreadBytes {
  uint64_t allocated;
  uint64_t freed;
};
ThreadBytes ThisThreadBytes();
Partition* DefaultPartition();

// Telemetry plugs in here (telemetry/runtime.cc registers it at start-up):
// sampled allocations and their frees, a periodic tick from the background
// thread, process exit, and the dumps the extension API asks for. The
// engine and the ABI reach telemetry only through these.
struct TelemetryHooks {
  void (*on_sample)(void* p, size_t requested, size_t usable, size_t align, Partition* partition);
  void (*on_free)(void* p);
  void (*on_tick)();
  void (*on_exit)();
  void (*on_fork_child)();
  int (*dump_recording)(const char* path);
  int (*dump_profile)(const char* path);
  // A sampled movable object moved (compaction or nitro_hrealloc): the
  // recorder's entry follows it, and a move event is recorded.
  void (*on_move)(void* from, void* to, size_t size);
};
void SetTelemetryHooks(const TelemetryHooks* hooks);
// The movable heap's sampling (core/movable.h RecorderHooks), installed
// with the movable partition: one sample per profile_rate bytes of
// nitro_halloc, recorded in the movable partition's name.
void InstallMovableRecorder(Partition* movable);
// The flight recording or the pprof heap profile, written to `path`; an
// errno value, ENOSYS when no telemetry runs (legacy mode).
int DumpFlightRecording(const char* path);
int DumpHeapProfile(const char* path);
// The per-thread caches, for statistics: calls f(cache) under the registry
// lock, then f(nullptr-free) for the counters of threads that have exited.
void ForEachThreadCache(void (*f)(const ThreadCache* tc, void* ctx), void* ctx);
const ThreadCache::Counters& ExitedThreadCounters();
// The per-class counts of other partitions' thread caches (allocations,
// frees, objects cached), from every thread's cache and from caches gone,
// added into out[id] for each thread-cached partition id (kCachedPartitions
// entries; the default partition's are ForEachThreadCache's). Takes the
// registry lock: call it before Partition::ForEach, whose lock ranks after.
struct PartitionCacheSums {
  uint64_t allocs[kNumClasses];
  uint64_t frees[kNumClasses];
  uint64_t cached[kNumClasses];
};
void SumPartitionCaches(PartitionCacheSums* out);
size_t ThreadCount();
// Bytes of the objects every thread's caches hold, of every partition.
size_t ThreadCachedBytes();
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
  size_t committed_bytes;       // pages in use, free but not yet released, or quarantined and not released
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
  size_t metadata_bytes;         // mapped by the metadata arena (never returned)
  size_t span_descriptor_bytes;  // pages of span descriptors written and not returned
  size_t page_map_bytes;         // resident pages of the page map's leaves and free's class guesses (mincore)
  size_t partitions;
  size_t threads;
  size_t quarantine_bytes;       // large runs waiting before reuse
  size_t quarantine_committed_bytes;  // of those, not yet given back (part of committed_bytes)
  size_t sampled_live;           // guarded allocations alive
  size_t sampled_total;          // guarded allocations made
};
HeapStats GetHeapStats();
// Sections of the heap report and of the statistics JSON that a reader
// may leave out (malloc_stats_print's opts letters, abi/mallocx.cc).
enum ReportSection : unsigned {
  kSectionGeneral = 1u << 0,     // what never changes: pid, modes, options
  kSectionMerged = 1u << 1,      // the process's totals
  kSectionPartitions = 1u << 2,  // per partition (jemalloc's arenas)
  kSectionClasses = 1u << 3,     // per size class (jemalloc's bins)
  kSectionLarge = 1u << 4,       // large blocks
};
// The heap report, to file descriptor `fd`, without the sections in `omit`.
void PrintHeapReport(int fd, unsigned omit = 0);

}  // namespace nitro

#endif  // NITROHEAP_CORE_HEAP_H_
