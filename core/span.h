// Span: the out-of-line descriptor of a run of pages. A span is either free
// (owned by its partition's PageHeap), a slab (cut into objects of one size
// class, owned by the CentralFreeList of that class) or a large allocation.
// Spans never live next to user data: they come from MetaPool.
#ifndef NITROHEAP_CORE_SPAN_H_
#define NITROHEAP_CORE_SPAN_H_

#include <stddef.h>
#include <stdint.h>

#include "core/base.h"
#include "core/size_class.h"

namespace nitro {

class Partition;

// kGuarded: a slot of the guarded sampling pool; kZeroSize: the region that
// serves malloc(0) in strict mode with no accessible bytes.
inline constexpr uint32_t kRecordedUnit = 8192;
static_assert(kNumClasses * kMagazineBytes <= kRecordedUnit, "magazine offsets fit below kRecordedUnit");
// A span word less its partition's base (Partition::fast_free_base) below
// this is an unsampled thread-cached slab's: its class's magazine offset
// past class 1's.
inline constexpr uint64_t kFastFreeSpan = uint64_t{kNumClasses - 1} * kMagazineBytes;

enum class SpanState : uint8_t { kFree = 0, kSlab = 1, kLarge = 2, kGuarded = 3, kZeroSize = 4 };

struct Span {
  uintptr_t start;
  uint32_t pages;
  SpanState state;
  uint8_t size_class;  // slabs only
  // Slabs: the class's stride_shift (ExactIndex), in the padding before
  // fast_free, on the line free's fast path reads.
  uint8_t stride_shift;
  // The one word free()'s fast path reads: the offset of the class's
  // magazine in a thread cache (class x kMagazineBytes, FastFreeClass) when
  // the slab belongs to a partition served by thread caches (else 0), plus
  // kRecordedUnit for each flight-recorder sample alive in the span. Only
  // a class's offset lets a free take the fast path, so a span with a
  // sample sends every free to the slow path, where it is timed. An
  // offset, not the class: free addresses the magazine with it directly
  // (a shift and an add fewer per free).
  // Changed only by atomic stores (a new slab) and atomic adds (samples).
  uint32_t fast_free;
  // Right after fast_free, 32 bits wide: read together as one 64-bit word
  // (FastFreeWordOf), they let a partition's free check the class and the
  // owner with one compare (core/heap.h, PartitionFree).
  uint32_t partition_id;
  // Slabs: the object geometry the free fast path checks, on this line.
  uint32_t object_size;
  uint32_t capacity;
  uint64_t stride_inverse;  // the class's (ExactIndex)
  // capacity again, 64 bits wide: free's fast path compares ExactIndex's
  // 64-bit result with it directly.
  uint64_t index_bound;
  Partition* partition;

  // Slab: objects handed out to caches or users, and one bit per object that
  // is free inside the span after being handed out. Objects at index `bump`
  // and beyond were never handed out since the slab was made or last
  // emptied: the middle layer carves them off by advancing `bump` (a fresh
  // slab costs no bitmap fill), and their bits stay clear. So an object is
  // free in the span when its bit is set or its index is >= bump. Guarded
  // by the class's CentralFreeList lock.
  uint32_t allocated;
  uint32_t bump;
  uint64_t free_bits[kMaxObjectsPerSlab / 64];

  // Large: the bytes the caller asked for (statistics, realloc).
  size_t requested;
  // Free runs: pages already given back to the kernel (they read as zero);
  // large/slab: the memory was zero when handed out.
  bool released;
  bool zeroed;
  // Free runs: pages of the run may be PROT_NONE (all of them, or the head
  // of a block the protection coin picked; freed large memory faults there).
  bool prot_none;
  // Free runs: waiting in the large-allocation quarantine, not reusable yet.
  bool quarantined;
  // Free runs: a freed large block that kept its guard page: every page is
  // accessible but the last, which is PROT_NONE. Such a run absorbs free
  // neighbours on its left only; a large allocation reuses its tail, guard
  // included, with no system call.
  bool guard_tail;
  // Large: the last page is a PROT_NONE guard page, not part of the block.
  uint8_t guard_pages;
  // Slabs: the pages holding only objects free in the slab were returned to
  // the kernel since the slab last handed an object out or took one back
  // (CentralFreeList::ReleaseIdle). In padding: the size does not change.
  bool free_pages_returned;
  // Strict mode slabs: the size each object was asked for (canaries).
  uint32_t* requested_sizes;
  // Objects sampled by the flight recorder (bit i: object i; large: bit 0).
  // While any is set, frees from this span take the slow path (timed).
  uint64_t recorded_bits[kMaxObjectsPerSlab / 64];
  // Free runs: when the span became free (for decay), in reclaim ticks.
  uint64_t free_tick;
  // Slabs: the thread cache that carves it (ThreadCache::id; 0: none), and
  // the class's call count when it last did (CentralFreeList::SlabFor).
  uint32_t slab_cache_id;
  uint32_t slab_cache_seen;

  Span* next;
  Span* prev;
  Span* lru_next;  // free committed runs, oldest first
  Span* lru_prev;

  // Slabs: one byte per object, 1 while the program does not hold it (in
  // the slab, in a middle-layer batch or in a thread cache's magazine), 0
  // while it does. Set on every free and cleared on every allocation, in
  // every mode: the double-free and never-allocated checks of the fast path
  // read it here, outside the object, so a freed object carries no marker.
  // A byte, not a bit: threads freeing neighbours store to their own bytes
  // with plain (relaxed atomic) stores and never race on a shared word.
  // The byte after the last object is set too: it stands for the slab's
  // unused tail, so a free there fails the flag check instead of a bound check.
  uint8_t object_free[kMaxObjectsPerSlab + 1];

  uintptr_t end() const { return start + (static_cast<uintptr_t>(pages) << kPageShift); }
  size_t bytes() const { return static_cast<size_t>(pages) << kPageShift; }
  // Large: the bytes the caller may use (the guard page excluded).
  size_t usable_bytes() const { return static_cast<size_t>(pages - guard_pages) << kPageShift; }
  // Index of the object containing `addr` (a slab span).
  uint32_t ObjectIndex(uintptr_t addr) const {
    return static_cast<uint32_t>(((addr - start) * kSizeClasses.info(size_class).magic) >>
                                 kMagicShift);
  }
  // The free flag of the slab object starting at `p`.
  uint8_t* FreeFlag(const void* p) { return &object_free[ObjectIndex(reinterpret_cast<uintptr_t>(p))]; }
  bool ObjectIsFree(const void* p) const {
    return __atomic_load_n(&object_free[ObjectIndex(reinterpret_cast<uintptr_t>(p))], __ATOMIC_RELAXED) != 0;
  }
  // The class fast_free names, or 0 when it names none (not a
  // thread-cached slab, or a sampled one).
  int FastFreeClass() const {
    uint32_t word = __atomic_load_n(&fast_free, __ATOMIC_RELAXED);
    uint32_t cls = word / kMagazineBytes;
    return cls - 1 < static_cast<uint32_t>(kNumClasses - 1) ? static_cast<int>(cls) : 0;
  }
  // fast_free in the low half, partition_id in the high half (x86-64 and
  // every other little-endian target). One relaxed load: each half is
  // written whole, and partition_id only while the span is not in use.
  uint64_t FastFreeWordOf() const {
    using Word = uint64_t __attribute__((may_alias));
    return __atomic_load_n(reinterpret_cast<const Word*>(&fast_free), __ATOMIC_RELAXED);
  }
};
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "FastFreeWordOf reads fast_free as the low half");
static_assert(offsetof(Span, partition_id) == offsetof(Span, fast_free) + 4 && offsetof(Span, fast_free) % 8 == 0,
              "FastFreeWordOf reads fast_free and partition_id as one aligned word");

// An intrusive doubly linked list of spans through next/prev.
class SpanList {
 public:
  bool empty() const { return head_ == nullptr; }
  Span* first() const { return head_; }
  size_t length() const { return length_; }
  void PushFront(Span* s) {
    s->prev = nullptr;
    s->next = head_;
    if (head_) head_->prev = s;
    head_ = s;
    length_++;
  }
  void Remove(Span* s) {
    if (s->prev) s->prev->next = s->next; else head_ = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = nullptr;
    length_--;
  }

 private:
  Span* head_ = nullptr;
  size_t length_ = 0;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_SPAN_H_
