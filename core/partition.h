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
#include "core/page_heap.h"
#include "core/page_map.h"
#include "core/size_class.h"
#include "core/span.h"

namespace nitro {

struct PartitionConfig {
  size_t region_bytes = PageHeap::kDefaultRegionBytes;
  // Free page runs kept committed before the oldest are released at once;
  // decay releases them anyway after a while.
  size_t max_free_committed = size_t{64} << 20;
  // A PROT_NONE page after every large allocation.
  bool large_guard_pages = true;
  // Freed large runs wait (protected) before reuse; 0 bytes: no quarantine.
  size_t large_quarantine_bytes = size_t{16} << 20;
  size_t large_quarantine_spans = 8;
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
};

class Partition {
 public:
  static constexpr int kMaxPartitions = 256;
  static constexpr size_t kNameMax = 32;

  // nullptr with errno ENOMEM when the table is full or memory runs out, or
  // EEXIST when a live partition has that name. The name is copied
  // (truncated to kNameMax - 1 bytes).
  static Partition* Create(const char* name, const PartitionConfig& config,
                           PageHeap::Clock clock = nullptr);
  // Unmaps everything the partition holds; its pointers become invalid.
  static void Destroy(Partition* p);
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
  // The reclaimer's period: idle middle-layer batches and spare slabs go
  // back to the page heap.
  void ReleaseIdleObjects() {
    for (int c = 1; c < kNumClasses; c++) central_[c].ReleaseIdle();
  }
  PartitionStats Stats();

  // Set once, for the default partition, before any allocation from it.
  void set_thread_cached(bool v) { slab_owner_.thread_cached = v; }
  bool thread_cached() const { return slab_owner_.thread_cached; }
  // strict mode: slabs are zeroed when made and record each object's size.
  void set_strict(bool v) { slab_owner_.strict = v; }
  bool strict() const { return slab_owner_.strict; }
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
  friend class MetaPool<Partition>;
  Partition() = default;
  ~Partition() = default;
  void Init(const char* name, uint16_t id, const PartitionConfig& config, PageHeap::Clock clock);

  char name_[kNameMax];
  uint16_t id_ = 0;
  uintptr_t key_ = 0;
  bool large_guard_pages_ = true;
  PageHeap pages_;
  SlabOwner slab_owner_ = {};
  CentralFreeList central_[kNumClasses];
  SpinLock large_lock_{LockRank::kPartition};
  size_t large_count_ = 0;
  size_t large_bytes_ = 0;
  size_t large_usable_ = 0;
  uint64_t large_allocs_total_ = 0;
  uint64_t large_frees_total_ = 0;
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
void Partition::ForEach(F f) {
  LockGuard g(PartitionTableLock());
  for (int i = 1; i < kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) f(p);
  }
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_PARTITION_H_
