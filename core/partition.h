// Partition: an independent heap with its own address space, page heap and
// middle layer. Memory freed in one partition is never reused by another,
// which is what makes typed partitions a use-after-free mitigation. The
// process's default partition (serving malloc) is one instance; more can be
// created and destroyed at run time.
//
// The methods here take no thread cache: they are the whole allocator for
// non-default partitions and the slow path below the thread caches of the
// default one (core/heap.h).
#ifndef NITROHEAP_CORE_PARTITION_H_
#define NITROHEAP_CORE_PARTITION_H_

#include <stddef.h>
#include <stdint.h>

#include "core/central_free_list.h"
#include "core/large_protect.h"
#include "core/page_heap.h"
#include "core/page_map.h"
#include "core/size_class.h"
#include "core/span.h"

namespace nitro {

// How a partition serves its objects (set at creation; the heap layer fills
// it from the process options or a trait set, core/heap.h).
struct PartitionPolicy {
  // Every strict-mode check (core/strict.cc): zero on free and verified on
  // reuse, canaries past each request, checked links, randomized reuse.
  bool strict = false;
  // false: no thread caches (every call takes the partition's locks).
  bool thread_caches = true;
  // Bytes each thread's cache of this partition holds before it returns a
  // batch (tcache_max_bytes for the default partition).
  size_t cache_max_bytes = size_t{256} << 10;
  // Freed small objects a thread cache holds back before reuse, in bytes
  // per cache (ThreadCache::Init turns it into a depth per class).
  size_t quarantine_bytes = size_t{64} << 10;
  // Guarded sampling (core/guarded_pool.h): 0 never; N: one allocation in
  // sample_rate / N (at least 1; the process's option, read live, so
  // sample_rate=0 turns every partition's off). The default partition and
  // trait partitions 1, SECURE_STRICT ones 16; partitions the program
  // creates 0, since they are destroyed and reset in bulk while a guarded
  // block lives in the process-wide pool.
  uint32_t guarded_sample_divisor = 0;
  // Flight-recorder sampling; false: never recorded (TELEMETRY_SILENT).
  bool record = true;
  // Free pages go back to the kernel after decay_ms; false: kept (PERSISTENT).
  bool decay = true;
  // madvise(MADV_HUGEPAGE) on the partition's region (PERSISTENT).
  bool huge_pages = false;
  // Regions interleaved over the process's NUMA nodes where it has two or
  // more (PERSISTENT; core/numa.h); nothing on one node.
  bool numa_interleave = false;
  // Every object starts at a multiple of this and its size is rounded up
  // to it (SHARED_RW: 64, one cache line per object); 0: natural.
  uint32_t min_align = 0;
  // Typed partitions: the one object size served; other requests fail with
  // EINVAL and the memory is never used for another class.
  uint32_t object_size = 0;
  // The movable partition (NITRO_TRAIT_MOVABLE): its objects live in the
  // movable heap and are reached through handles (nitro_halloc); the
  // pointer API refuses it with EINVAL, since a raw pointer cannot follow
  // a moved object.
  bool handles_only = false;
};

// Thread caches exist for every partition: each thread holds a table of
// this many cache pointers (core/heap.h), indexed by the partition id that
// every span carries, one per id (Partition::kMaxPartitions): 2 KiB of
// static TLS per thread, no branch on the id in any fast path.
inline constexpr int kCachedPartitions = 256;

struct PartitionConfig {
  size_t region_bytes = PageHeap::kDefaultRegionBytes;
  // Free page runs kept committed before the oldest are released at once;
  // decay releases them anyway after a while.
  size_t max_free_committed = size_t{256} << 20;
  // A PROT_NONE page after every large allocation.
  bool large_guard_pages = true;
  // Freed large runs wait before reuse; 0 bytes: no quarantine.
  size_t large_quarantine_bytes = size_t{16} << 20;
  size_t large_quarantine_spans = 8;
  PartitionPolicy policy;
  // Which freed large runs are made PROT_NONE (use after free faults;
  // core/large_protect.h). A protected run costs an mprotect at the free and
  // another at its reuse; an unprotected one keeps its guard page and is
  // reused with no system call (core/page_heap.h).
  LargeProtectConfig large_protect = {/*every=*/true};
  // A protected run stays PROT_NONE until reused (true) or only while it is
  // in the quarantine (false: it is opened when it leaves, as a guard-tail
  // run that merges; PROT_NONE runs merge only with each other).
  bool large_protect_until_reuse = true;
};

// What the page map says about an address.
struct PointerInfo {
  Partition* partition;  // nullptr: not NitroHeap's
  Span* span;
  int size_class;        // 0 for large allocations and free memory
  void* object_start;    // start of the object containing the address
  size_t object_size;    // usable bytes of that object
  bool free_run;         // the address lies in a free page run
};

struct PartitionStats {
  PageHeapStats pages;
  size_t large_allocations;  // live large allocations
  size_t large_bytes;        // their requested bytes
  size_t large_usable_bytes; // their usable bytes
  uint64_t large_allocs_total;
  uint64_t large_frees_total;
  uint64_t lock_contention;  // page heap and large-allocation locks
  size_t small_transfer_bytes;  // objects in the middle layer's batches
  size_t small_slab_free_bytes; // free objects inside slabs
  size_t small_slabs;
  size_t small_object_bytes;    // the slabs' objects, free or not (capacity x size)
};

class Partition {
 public:
  static constexpr int kMaxPartitions = 256;
  static_assert(kCachedPartitions == kMaxPartitions, "every partition id has a thread-cache slot");
  static constexpr size_t kNameMax = 32;
  // strict: large blocks from this size on end at a 2 MiB boundary, so that
  // their pages are transparent huge pages (AllocateLarge).
  static constexpr size_t kHugePagePages = (size_t{2} << 20) >> kPageShift;
  static constexpr size_t kStrictHugeBlock = size_t{2} << 20;

  // nullptr with errno ENOMEM when the table is full or memory runs out, or
  // EEXIST when a live partition has that name. The name is copied
  // (truncated to kNameMax - 1 bytes).
  static Partition* Create(const char* name, const PartitionConfig& config,
                           PageHeap::Clock clock = nullptr);
  // Unmaps everything the partition holds; its pointers become invalid.
  static void Destroy(Partition* p);
  // Called first by every Destroy: the process heap (core/heap.cc) drops
  // each thread's cache of the partition there, whoever destroys it (the
  // C API, the Windows heap API, tests), since those caches point into
  // memory Destroy unmaps and the id is reused. Set once at start-up.
  static void SetBeforeDestroy(void (*hook)(Partition* p));
  static Partition* FromId(uint16_t id);
  // Calls f(partition) for every live partition, under the table lock.
  template <typename F>
  static void ForEach(F f);

  // Allocation without a thread cache. align == 0 means kMinAlign.
  void* Allocate(size_t size, size_t align = 0);
  void Free(void* p);
  void* Reallocate(void* p, size_t size);
  size_t UsableSize(const void* p);

  void* AllocateLarge(size_t size, size_t align, bool* zeroed);
  void FreeLarge(Span* s, void* p);
  // Resizes a large allocation in place when the pages around it allow.
  bool ResizeLargeInPlace(Span* s, size_t size);

  // Returns batches and empty slabs to the page heap, then all free pages
  // to the kernel. Returns the bytes released.
  size_t ReleaseFreeMemory();
  size_t ReleaseFreedBefore(uint64_t tick) { return pages_.ReleaseFreedBefore(tick); }
  // Every reclaimer tick: middle-layer batches and spare slabs idle since
  // `cutoff` (ms) go back to the page heap.
  void ReleaseIdleObjects(uint64_t cutoff) {
    for (int c = 1; c < kNumClasses; c++) central_[c].ReleaseIdle(cutoff);
  }
  PartitionStats Stats();
  // Hard and soft limits, pressure callback, state (core/contract.h).
  Contract& contract() { return pages_.contract(); }

  // Arena use, once no thread caches the partition's objects (the caller,
  // ReleaseCachesForArena, sees to it).
  // Reset frees every block at once: each slab and large block is dropped
  // with its span, the address space unmapped (memory returned), in
  // O(spans); the partition stays usable and its pointers become invalid.
  void Reset();
  // Calls f(block, usable_bytes) for each live block in address order, with
  // every lock of the partition held, until f returns false. Returns the
  // number of blocks f was called for.
  template <typename F>
  size_t Visit(F f);

  // Set once at creation, before any allocation from the partition: its
  // slabs' frees take the thread-cache fast path.
  void set_thread_cached(bool v) { slab_owner_.thread_cached = v; }
  bool thread_cached() const { return slab_owner_.thread_cached; }
  // strict mode: slabs are zeroed when made and record each object's size.
  void set_strict(bool v) { slab_owner_.strict = v; }
  bool strict() const { return slab_owner_.strict; }
  const PartitionPolicy& policy() const { return policy_; }
  // The thread-cache slot the allocation fast path may use: the id when a
  // request needs no adjusting (no min_align, not typed) and the partition
  // is thread cached, else 0, whose cache is always the empty sentinel.
  uint16_t alloc_slot() const { return alloc_slot_; }
  // Where this thread's cache of alloc_slot() and of id() lie from the
  // thread pointer (core/cache_slots.h CacheAtTpOffset): the allocation
  // and free fast paths read them with one load each.
  intptr_t alloc_cache_tp_offset() const { return alloc_cache_tp_offset_; }
  intptr_t free_cache_tp_offset() const { return free_cache_tp_offset_; }
  // Span::FastFreeWordOf of this partition's thread-cached slabs of class
  // 1; class c reads fast_free_base() + (c - 1) x kMagazineBytes. A word
  // outside [base, base + kFastFreeSpan) is another partition's span, a
  // sampled one, or one whose frees take the slow path: one compare for all three.
  uint64_t fast_free_base() const { return fast_free_base_; }
  const char* name() const { return name_; }
  uint16_t id() const { return id_; }
  // The partition's secret (strict's canary byte derives from it).
  uintptr_t key() const { return key_; }
  PageHeap& pages() { return pages_; }
  CentralFreeList& central(int cls) { return central_[cls]; }
  void LockAll();
  void UnlockAll();
  void ResetLocksAfterFork();

 private:
  friend class MetaPool<Partition, false>;
  // User-provided, not `= default`: MetaPool::New's `new T()` would then
  // zero-initialize the whole object first, and batches_ (~1 MiB, read only
  // where written) would all become resident at start-up. Every other member
  // has an initializer.
  Partition() {}
  ~Partition() = default;
  void Init(const char* name, uint16_t id, const PartitionConfig& config, PageHeap::Clock clock);
  void* AllocateOnce(size_t size, size_t align);

  char name_[kNameMax] = {};
  uint16_t id_ = 0;
  uintptr_t key_ = 0;
  bool large_guard_pages_ = true;
  uint16_t alloc_slot_ = 0;
  uint64_t fast_free_base_ = 0;
  intptr_t alloc_cache_tp_offset_ = 0;
  intptr_t free_cache_tp_offset_ = 0;
  PartitionPolicy policy_;
  PageHeap::Clock clock_ = nullptr;  // milliseconds; nullptr: the bucket never refills
  LargeProtectBudget large_protect_;  // under large_lock_
  PageHeap pages_;
  SlabOwner slab_owner_ = {};
  CentralFreeList central_[kNumClasses];
  SpinLock large_lock_{LockRank::kPartition};
  size_t large_count_ = 0;
  size_t large_bytes_ = 0;
  size_t large_usable_ = 0;
  uint64_t large_allocs_total_ = 0;
  uint64_t large_frees_total_ = 0;
  // The middle layer's batch stacks (~1 MiB of address space), last and
  // without an initializer: only the pages of batches in use are resident.
  CentralFreeList::BatchStack batches_[kNumClasses];
};

// Looks an address up in O(1). Works for any address, including ones inside
// an object or in free memory.
bool Lookup(const void* p, PointerInfo* out);

// The partition table lock (held by ForEach, Create and Destroy).
SpinLock& PartitionTableLock();
SpinLock& PartitionPoolLock();
struct LockGroup;
// The locks of every live partition, as one group of the lock registry.
const LockGroup* PartitionLockGroup();
Partition* PartitionSlot(int id);

template <typename F>
size_t Partition::Visit(F f) {
  LockAll();
  size_t n = 0;
  bool go = true;
  pages_.ForEachSpanLocked([&](Span* s) {
    if (!go) return;
    if (s->state == SpanState::kLarge) {
      n++;
      go = f(reinterpret_cast<void*>(s->start), s->usable_bytes());
    } else if (s->state == SpanState::kSlab) {
      for (uint32_t i = 0; go && i < s->capacity; i++) {
        // Set for every object the program does not hold (in a slab, a
        // batch or a thread cache).
        if (__atomic_load_n(&s->object_free[i], __ATOMIC_RELAXED) != 0) continue;
        n++;
        go = f(reinterpret_cast<void*>(s->start + static_cast<uintptr_t>(i) * s->object_size),
               static_cast<size_t>(kSizeClasses.size(s->size_class)));  // 0 for malloc(0)'s
      }
    }
  });
  UnlockAll();
  return n;
}

template <typename F>
void Partition::ForEach(F f) {
  LockGuard g(PartitionTableLock());
  for (int i = 1; i < kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) f(p);
  }
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_PARTITION_H_
