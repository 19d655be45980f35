// PageHeap: one partition's page-run allocator. It reserves the partition's
// own address space in regions, carves runs of pages for slabs and large
// allocations, coalesces freed runs, and returns idle runs to the kernel by
// time-based decay rather than at free time (a freed run stays committed and
// is reused at once by the next request of that size; see docs/architecture.md).
//
// Free runs are kept in three sets, committed (dirty), released (zero) and
// guard-tail (committed freed large blocks whose guard page is still in
// place), each with an exact-size list per page count up to kBuckets and one
// list beyond. Runs merge only with neighbours of the same set (guard-tail
// runs never), so a run is always wholly committed or wholly released and the
// statistics are exact.
//
// Guard-tail runs are how a large alloc/free cycle avoids system calls: a
// large allocation with a guard page takes the tail of the smallest
// guard-tail run that fits (its last page is the guard already) and leaves
// the head as an ordinary committed run, unless a plain committed run fits
// in less than half of it (that one pays an mprotect for its guard); only
// runs that are protected on free (strict, sampled) pay mprotect at free
// and at reuse.
#ifndef NITROHEAP_CORE_PAGE_HEAP_H_
#define NITROHEAP_CORE_PAGE_HEAP_H_

#include <stddef.h>
#include <stdint.h>

#include "core/contract.h"
#include "core/large_protect.h"
#include "core/lock.h"
#include "core/meta_pool.h"
#include "core/os.h"
#include "core/page_map.h"
#include "core/span.h"

namespace nitro {

struct PageHeapStats {
  size_t reserved_bytes;        // address space reserved for the partition
  size_t in_use_bytes;          // slabs and large allocations
  size_t free_committed_bytes;  // free runs still backed by memory (the cache)
  size_t free_released_bytes;   // free runs given back to the kernel
  size_t released_total_bytes;  // bytes ever given back (madvise) by decay or trim
  size_t quarantine_bytes;      // freed large runs waiting before reuse
  size_t quarantine_committed_bytes;  // of those, the runs not yet given back (resident)
  size_t regions;
};

class PageHeap {
 public:
  static constexpr size_t kBuckets = 256;
  static constexpr size_t kDefaultRegionBytes = size_t{1} << 30;
  // Below this many pages (1 MiB) a request takes fresh pages rather than
  // merge a row of free runs (MergeCommittedFor): slabs and small large
  // blocks never pay its mprotect.
  static constexpr size_t kMergeMinPages = 256;
  // The merge looks at this many committed runs at most, oldest first, so
  // that its cost stays bounded in a heap of many free runs.
  static constexpr size_t kMergeScanRuns = 256;

  using Clock = uint64_t (*)();

  // `max_free_committed` bounds the bytes of free runs kept committed;
  // runs beyond it are released oldest first.
  void Init(Partition* owner, uint16_t id, size_t region_bytes, size_t max_free_committed,
            Clock clock);
  // Regions reserved from now on ask the kernel for transparent huge pages.
  void AdviseHugePages() { huge_pages_ = true; }
  // Whether its runs may be transparent huge pages: asked for, and in
  // anonymous memory (not a file's, not the caller's).
  bool huge_pages() const { return huge_pages_ && file_fd_ < 0 && fixed_bytes_ == 0; }
  // Every region made from now on is interleaved over these NUMA nodes
  // (core/numa.h; 0: placed as the kernel's policy says).
  void InterleaveNodes(uint64_t mask) { numa_mask_ = mask; }
  // Backing memory other than anonymous mappings (nitro_partition_create_with,
  // docs/regions.md), chosen before the page heap is in use.
  // A file: each region maps its own range of the unlinked file `fd`
  // (MAP_SHARED, grown with ftruncate), so the kernel writes cold pages
  // back to the file rather than to swap; released pages are punched out of
  // the file. The page heap owns fd from now on (closed by Destroy).
  void UseFile(int fd) { file_fd_ = fd; }
  // The caller's memory [base, base + bytes) (page-aligned) is the only
  // region there will be: nothing is mapped, unmapped or released, and its
  // free pages are never assumed to read as zero.
  void UseFixed(void* base, size_t bytes) {
    fixed_base_ = reinterpret_cast<uintptr_t>(base);
    fixed_bytes_ = bytes;
    released_reads_zero_ = false;
  }

  // A run of `pages` pages whose start is aligned to `align_pages` pages, or
  // nullptr when address space or metadata run out. The span's pages point
  // at it in the page map. `state` (kSlab or kLarge) is set under the lock,
  // since neighbours read it when they coalesce.
  // With `guard_page`, the run's last page is left (or made) PROT_NONE and
  // recorded in guard_pages: one mprotect covers both, none when the run is
  // the tail of a guard-tail run.
  // With `phase_pages`, the start is phase_pages past a multiple of
  // align_pages instead (strict's huge blocks end at a 2 MiB boundary).
  Span* Allocate(size_t pages, size_t align_pages = 1, SpanState state = SpanState::kLarge,
                 bool guard_page = false, size_t phase_pages = 0);
  // Takes a slab or large span back as a free run. With `quarantine`, it
  // waits in the large-allocation quarantine before it can be reused (a
  // double free is still caught after other large allocations); with
  // `protection`, its pages also become PROT_NONE (so use after free
  // faults): all of them, or as many first pages as it says. A large span
  // freed unprotected keeps its guard page (a guard-tail run).
  void Free(Span* s, bool quarantine = false, LargeProtection protection = LargeProtection::kNone);
  // Bounds of the large-allocation quarantine (0 bytes: none). A protected
  // run stays PROT_NONE until reused with `keeps_protection`, else until it
  // leaves the quarantine. Before the page heap is in use (no lock taken).
  void SetQuarantine(size_t max_bytes, size_t max_spans, bool keeps_protection = true);
  // Whether a run of `bytes` freed with protection would stay protected for
  // a while: until reuse (strict), or while it waits in the quarantine. A
  // run larger than the quarantine's byte bound leaves it at once, so
  // protecting it would only cost two mprotect calls (and, on this project's
  // virtual machines, fresh pages for the next allocation).
  bool ProtectionLasts(size_t bytes) const {
    return quarantine_keeps_protection_ || bytes <= __atomic_load_n(&quarantine_max_bytes_, __ATOMIC_RELAXED);
  }
  // Extends a large span into the free or never-used pages that follow it.
  bool GrowInPlace(Span* s, size_t new_pages);
  // Gives the tail of a large span beyond `new_pages` back (protected).
  void Shrink(Span* s, size_t new_pages);

  // Pages inside a slab holding only free objects (the middle layer, under
  // its class lock): given back to the kernel when the memory is anonymous
  // small pages; a file's or the caller's backing, and huge pages (which a
  // 4 KiB madvise would split), are left as they are.
  void ReturnSlabPages(void* p, size_t bytes) {
    if (file_fd_ < 0 && fixed_bytes_ == 0 && !huge_pages_) os::Release(p, bytes);
  }
  // Releases committed free runs that became free at or before `tick`.
  size_t ReleaseFreedBefore(uint64_t tick);
  // Free keeps at most max_free_committed bytes of free pages committed,
  // returning the oldest runs at once: a system call and a TLB flush per
  // run. While `reclaimer_running(wake)` is true, Free leaves that to the
  // reclaimer (TrimToBound), so a program freeing its heap before it exits
  // does not pay them; the first Free over the bound passes wake = true,
  // so the reclaimer starts at once instead of at its next period. A bound
  // of 0 ("at once") is never deferred.
  static void SetBoundDeferral(bool (*reclaimer_running)(bool wake));
  // The reclaimer's tick: enforces the bound that Free deferred.
  void TrimToBound();
  size_t ReleaseAll() { return ReleaseFreedBefore(~uint64_t{0}); }
  // Unmaps all regions; every span of the partition becomes invalid.
  void Destroy();
  // The same with the lock held by the caller; the page heap is empty and
  // usable afterwards (a partition reset).
  void DestroyLocked();
  // Calls f(span) for every span, free or not, region by region in address
  // order. The lock is held by the caller.
  template <typename F>
  void ForEachSpanLocked(F f);

  PageHeapStats Stats();
  SpinLock& lock() { return lock_; }
  // The partition's heap contract: every run handed out for a slab or a
  // large block is charged to it, and refused when a hard limit would pass.
  Contract& contract() { return contract_; }
  // Multiplies the large-block quarantine's byte bound by `factor`, up to
  // 8 times the bound it was set up with (a contract's quarantine action).
  void EnlargeQuarantine(size_t factor);

  struct Region {
    uintptr_t base;
    size_t size;
    uintptr_t frontier;  // pages below are carved; the last page is never carved
    bool oversized;      // made for one run larger than the regions of the time
    size_t file_offset;  // where the region lies in the backing file (UseFile)
    Region* next;
  };
  static MetaPool<Region>& RegionPool();

 private:
  Span* AllocateRun(size_t pages, size_t align_pages, SpanState state, bool guard_page, size_t phase_pages);
  bool GrowRun(Span* s, size_t new_pages, size_t need);
  // The sets of free runs (free_ and nonempty_).
  enum FreeSet { kCommitted = 0, kReleased = 1, kGuardTail = 2, kFreeSets = 3 };
  static FreeSet SetOf(const Span* s) {
    return s->guard_tail ? kGuardTail : s->released ? kReleased : kCommitted;
  }
  // A free run of `set` that holds `pages` pages starting at a multiple of
  // `align_pages` pages.
  Span* FindFree(size_t pages, size_t align_pages, size_t phase_pages, FreeSet set);
  // Pages from `start` to the first address phase_pages past a multiple of
  // align_pages pages.
  static size_t LeadPages(uintptr_t start, size_t align_pages, size_t phase_pages) {
    return (((phase_pages << kPageShift) - start) & ((align_pages << kPageShift) - 1)) >> kPageShift;
  }
  // A free run given back to the kernel (and not waiting in the quarantine,
  // nor holding PROT_NONE pages) has only its first and last page in the
  // page map: its interior entries are cleared and the page-map memory that
  // held them is returned too. Every other run has all its pages mapped.
  static bool MappedByEnds(const Span* s) {
    return s->released && !s->prot_none && !s->guard_tail && !s->quarantined;
  }
  // Maps a free run as MappedByEnds says.
  void MapFree(Span* s);
  // Maps `piece`, cut from the free run `whole` (not yet shortened).
  void MapPiece(const Span* whole, Span* piece);
  // Maps a run merged of two runs mapped by their ends, `junction` the
  // start of the right one.
  void ClearAround(Span* merged, uintptr_t junction);
  Span* TakeGuardTail(Span* run, size_t pages);
  // The first `pages` pages of a committed guard-tail run longer than that,
  // handed out as `state` to a request without a guard page; the rest stays
  // a guard-tail run. Null without metadata for the split.
  Span* TakeGuardHead(Span* run, size_t pages, SpanState state);
  // Merges the shortest row of adjacent committed free runs (guard-tail
  // runs included) that holds `pages` pages into one run, opening the guard
  // pages inside it with one mprotect; false when no row holds them.
  bool MergeCommittedFor(size_t pages);
  // A free run of `pages` found once every free run could be reused.
  Span* TakeAfterMakingRoom(size_t pages);
  // Marks a run taken (state) and points its pages at it, unless they are
  // `mapped` to it already.
  Span* Handed(Span* s, SpanState state, bool mapped = false);
  void ReleasePages(Span* s);
  // Moves the descriptor of `s`, a run just released and on no list, next
  // to other live descriptors when it is alone on a page of them
  // (ReturningMetaPool::Repack), and repoints its page-map entries. Only a
  // run whose entries are few: its ends, or one page of entries.
  Span* Repacked(Span* s);
  Span* Carve(size_t pages);
  Region* NewRegion(size_t min_bytes);
  Region* AddRegion(uintptr_t base, size_t size, bool oversized, size_t file_offset);
  // Gives a region's address space back as its backing allows.
  void GiveBackRegion(uintptr_t base, size_t size);
  // Returns the memory of a free run to the kernel (to the file's holes).
  void ReturnPages(uintptr_t start, size_t bytes);
  Span* NewSpan(uintptr_t start, size_t pages);
  void Split(Span* s, size_t pages);
  void InsertFree(Span* s);
  void RemoveFree(Span* s);
  Span* MergeNeighbours(Span* s);
  // Joins the free runs `left` and `right` (adjacent, on no list) into one
  // and returns it (the other descriptor is deleted). Only the shorter
  // one's page entries are rewritten (a freed block and the head beside
  // it: the head; large_cycle spent half its instructions mapping), or,
  // when both are mapped by their ends, only the two inner ends.
  Span* Join(Span* left, Span* right);
  void ReleaseSpan(Span* s);
  void EnforceCommittedBound();
  bool MakeAccessible(Span* s, bool guard_page);
  void Unquarantine(Span* s);
  SpanList& ListFor(const Span* s);

  SpinLock lock_{LockRank::kPartition};
  bool huge_pages_ = false;
  uint64_t numa_mask_ = 0;
  int file_fd_ = -1;          // UseFile
  size_t file_bytes_ = 0;     // the file's length: regions map consecutive ranges
  uintptr_t fixed_base_ = 0;  // UseFixed
  size_t fixed_bytes_ = 0;
  bool released_reads_zero_ = true;
  Partition* owner_ = nullptr;
  uint16_t id_ = 0;
  size_t region_bytes_ = kDefaultRegionBytes;
  size_t max_free_committed_ = 0;
  Clock clock_ = nullptr;
  size_t next_region_bytes_ = 0;
  Region* regions_ = nullptr;
  Region* current_ = nullptr;
  SpanList free_[kFreeSets][kBuckets + 1];  // [FreeSet][pages or kBuckets for larger]
  uint64_t nonempty_[kFreeSets][(kBuckets + 1 + 63) / 64] = {};
  Span* lru_head_ = nullptr;  // committed free runs (guard-tail ones too), oldest first
  Span* lru_tail_ = nullptr;
  size_t reserved_ = 0;
  size_t in_use_pages_ = 0;
  size_t free_pages_[2] = {0, 0};  // [released]
  size_t released_total_pages_ = 0;
  size_t region_count_ = 0;
  // Quarantine: a FIFO of freed large runs through next/prev.
  Span* quarantine_head_ = nullptr;
  Span* quarantine_tail_ = nullptr;
  size_t quarantine_bytes_ = 0;
  size_t quarantine_spans_ = 0;
  size_t quarantine_max_bytes_ = 0;
  size_t quarantine_max_spans_ = 0;
  size_t quarantine_base_bytes_ = 0;
  Contract contract_;
  bool quarantine_keeps_protection_ = true;
  bool trim_requested_ = false;  // the reclaimer was woken to enforce the bound
};

template <typename F>
void PageHeap::ForEachSpanLocked(F f) {
  for (Region* r = regions_; r != nullptr; r = r->next) {
    for (uintptr_t a = r->base; a < r->frontier;) {
      Span* s = GlobalPageMap().Get(reinterpret_cast<void*>(a));
      if (s == nullptr || s->start != a) {  // not carved into a span yet
        a += kPageSize;
        continue;
      }
      f(s);
      a = s->end();
    }
  }
}

// Process-wide pools of metadata used by every partition.
ReturningMetaPool<Span>& SpanPool();

}  // namespace nitro

#endif  // NITROHEAP_CORE_PAGE_HEAP_H_
