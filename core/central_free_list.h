// CentralFreeList: the middle layer for one size class of one partition.
// Thread caches move objects to and from it in batches (arrays of up to
// kMaxBatchObjects object pointers and their free flags' addresses:
// nothing is written into a free object).
// It keeps whole batches in a bounded transfer cache, so a
// producer/consumer pair trades batches in O(1), and otherwise returns objects
// to their slabs, whose free objects are tracked by an out-of-line bitmap.
// A slab that becomes empty goes back to the page heap, except for a few
// kept per class so that cycling through classes never retires and recreates
// slabs on every call.
//
// Batches and slabs remember the thread cache that gave or carved them
// (ThreadCache::id), and a cache is served its own first: its batches, an
// exited cache's, then a slab it carves or nobody holds, before another
// cache's batch (unless kForeignBatchBacklog of them wait), and a new slab
// before another cache's slab. Each object keeps a free flag in its
// slab's descriptor, written on every malloc and free (core/span.h); when
// two threads' objects shared slabs, their flags shared cache lines, and
// each thread's flag writes took the line from the other core (a 2-thread
// random-size loop ran 4x slower than one thread). A slab's claim lapses
// when its holder has not carved from it for kSlabLease calls into the
// class, and at once when its thread exits (ForgetCache).
#ifndef NITROHEAP_CORE_CENTRAL_FREE_LIST_H_
#define NITROHEAP_CORE_CENTRAL_FREE_LIST_H_

#include <stddef.h>
#include <stdint.h>

#include "core/lock.h"
#include "core/page_heap.h"
#include "core/span.h"

namespace nitro {

// What the middle layer needs of the partition it serves, owned by that
// partition (the middle layer sits below it and does not know Partition).
struct SlabOwner {
  PageHeap* pages;
  const char* name;
  bool thread_cached;     // slabs' frees may take the thread-cache fast path
  bool strict;            // slabs are zeroed when made and record each object's size
  PageHeap::Clock clock;  // milliseconds, for idle batches and slabs (nullptr: always 0)
};

struct CentralStats {
  uint64_t direct_allocs;   // AllocateOne: partitions without thread caches
  uint64_t direct_frees;    // FreeOne
  uint64_t lock_contention;
  size_t transfer_objects;  // objects held in whole batches
  size_t span_free_objects; // free objects inside slabs
  size_t slabs;             // slabs of the class
  size_t slab_objects_in_use;  // objects handed out of slabs (in use or cached by threads)
};

class CentralFreeList {
 public:
  static constexpr int kMaxBatches = 32;
  static constexpr int kKeepEmptySlabs = 2;
  static constexpr uint32_t kMaxBatchObjects = 32;  // >= every class's batch

  struct Batch {
    uint32_t count;
    uint32_t cache_id;  // the cache that gave it (0: none)
    uint64_t since;  // when it came in (owner clock, ms)
    void* objects[kMaxBatchObjects];
    // Each object's free flag (&span->object_free[index]), which the thread
    // cache had: a refill from a batch then needs no page-map lookup per
    // object (21 of the ~60 instructions a refilled object cost).
    uint8_t* flags[kMaxBatchObjects];
  };
  // One class's stack of batches, on pages of its own: they become resident
  // only as deep as the stack grows, and go back to the kernel when an idle
  // class has no batch left (ReleaseIdle). Never read before written.
  struct alignas(kPageSize) BatchStack {
    Batch entries[kMaxBatches];
  };
  // `stack` lives apart from the lists (Partition::batches_), so the lists'
  // own fields, written at start-up, share a few pages instead of one page
  // per class.
  void Init(const SlabOwner* owner, int size_class, BatchStack* stack);
  // Calls into the class after which a slab's holder loses its claim.
  static constexpr uint32_t kSlabLease = 256;
  // Slabs looked at for one the cache holds or may claim (from the front).
  static constexpr int kSlabScan = 8;
  // Batches of other caches at which a cache takes one rather than carve.
  static constexpr int kForeignBatchBacklog = 2;
  // Takes up to `n` objects into out[] (room for n; from a batch, at most
  // one batch, taken from its end); returns how many (0 when out of
  // memory). Their free flags stay set. `cache_id`: the taking cache
  // (ThreadCache::id), served its own batches and slabs first; 0 takes the
  // top batch, else the front slab. `flags` (room for n, or null): the
  // objects' free flags, from the batch or the slab, which both know them.
  int RemoveRange(void** out, int n, uint32_t cache_id = 0, uint8_t** flags = nullptr);
  // Gives back `n` objects (any number), whose free flags are set, as
  // batches of cache `cache_id`; flags[i] is objects[i]'s free flag.
  void InsertRange(void* const* objects, uint8_t* const* flags, int n, uint32_t cache_id = 0);
  // Cache `cache_id` is gone: its batches, and the slabs it carves with
  // free objects, are nobody's, taken next after a cache's own. (A full
  // slab it carved lets its claim lapse: kSlabLease.)
  void ForgetCache(uint32_t cache_id);
  // One object at a time, for callers without a thread cache: AllocateOne
  // clears the object's free flag, FreeOne checks and sets it and returns
  // the object straight to its slab, so a double free is caught at once.
  void* AllocateOne();
  void FreeOne(void* p);
  // Returns every batch to the slabs and empty slabs to the page heap.
  void Drain();
  // Returns the batches given to the middle layer at or before `cutoff`
  // (owner clock, ms) and still unused, and the empty slabs kept for
  // hysteresis when no empty slab was reused since `cutoff`. Called on
  // every reclaimer tick, so memory leaves the middle layer once it has
  // been idle for a set time, whatever the tick's phase. When nothing was
  // taken from or given back to the class since the previous call, the
  // pages of its partly used slabs that hold only objects free in the slab
  // go back to the kernel too (not in strict partitions, nor for malloc(0)'s
  // class).
  void ReleaseIdle(uint64_t cutoff);
  CentralStats Stats();
  // The class's batch stack (tests read its residency).
  const void* batch_stack() const { return batch_; }
  SpinLock& lock() { return lock_; }
  // Partition reset, lock held: the page heap is about to drop every span,
  // so the class forgets its batches and slabs (Retire each slab first).
  void ForgetAllLocked();
  static void Retire(Span* slab);

 private:
  int RemoveRangeLocked(void** out, int n, uint32_t cache_id, uint8_t** flags = nullptr);
  // Takes up to n objects (and their flags, when `flags` is not null) from
  // batch_[i], from its end; an emptied batch leaves the stack, the ones
  // above it keeping their order (ReleaseIdle).
  int TakeFromBatch(int i, void** out, uint8_t** flags, int n);
  // A slab in the first kSlabScan of nonempty_ that `cache_id` holds, else
  // one nobody holds or whose claim lapsed; nullptr if none.
  Span* SlabFor(uint32_t cache_id) const;
  int FromSpans(void** out, int n, uint32_t cache_id, uint8_t** flags);
  void ReturnToSpans(void* const* objects, int n);
  bool AddSlab();
  uint64_t Now() const { return owner_->clock != nullptr ? owner_->clock() : 0; }
  void ReleaseEmptySlabs();  // lock held
  // The pages of `s` whose every object is free in the slab (its bit set,
  // or at or beyond the bump) go back to the kernel: no thread cache or
  // batch holds such an object, and only this lock's holder hands one out.
  void ReturnFreePages(Span* s);
  bool PageHoldsOnlyFreeObjects(const Span* s, uint32_t page) const;

  SpinLock lock_{LockRank::kPartition};
  const SlabOwner* owner_ = nullptr;
  int size_class_ = 0;
  uint32_t stride_ = 0;  // bytes between objects (kSizeClasses.stride)
  int max_batches_ = 0;
  int batches_ = 0;
  uint64_t slab_reused_at_ = 0;  // when an empty slab last served an allocation
  // Calls into this class (objects taken or given back, in batches or one
  // at a time): a class with none between two ticks is idle. Counting slab
  // hand-outs alone called a class served from its batches idle, and the
  // reclaimer returned pages the class faulted back in at once.
  uint64_t traffic_ = 0;
  uint64_t traffic_seen_ = 0;  // traffic_ at the previous ReleaseIdle
  // A stack of kMaxBatches entries in the owner's storage: the bottom batch
  // is the oldest, so idle ones leave from there. Entries below batches_ are
  // valid; the rest are left untouched until used.
  Batch* batch_ = nullptr;
  int batches_touched_ = 0;  // the deepest the stack grew since its pages were last returned
  SpanList nonempty_;  // slabs with at least one free object
  int empty_slabs_ = 0;
  size_t slabs_ = 0;
  size_t span_free_ = 0;
  uint64_t direct_allocs_ = 0;
  uint64_t direct_frees_ = 0;
};

// strict mode's per-slab size tables come from this pool (fork takes it).
SpinLock& SizeTablePoolLock();

}  // namespace nitro

#endif  // NITROHEAP_CORE_CENTRAL_FREE_LIST_H_
