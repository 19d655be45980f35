#include "core/page_heap.h"

#include <gtest/gtest.h>
#include <string.h>

#include <set>
#include <vector>

#include "core/os.h"
#include "core/page_map.h"
#include "core/partition.h"

namespace nitro {
namespace {

uint64_t g_now = 0;
uint64_t FakeClock() { return g_now; }

class PageHeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PartitionConfig config;
    config.max_free_committed = size_t{1} << 30;
    part_ = Partition::Create("page_heap_test", config, FakeClock);
    ASSERT_NE(part_, nullptr);
  }
  void TearDown() override { Partition::Destroy(part_); }
  PageHeap& heap() { return part_->pages(); }
  Partition* part_;
};

TEST_F(PageHeapTest, FreshRunsAreZeroAndMappedInThePageMap) {
  Span* s = heap().Allocate(10);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->zeroed);
  EXPECT_EQ(s->pages, 10u);
  for (size_t i = 0; i < s->bytes(); i += 512) {
    EXPECT_EQ(reinterpret_cast<char*>(s->start)[i], 0);
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(s->start + i)), s);
  }
  EXPECT_EQ(heap().Stats().in_use_bytes, 10 * kPageSize);
  heap().Free(s);
  EXPECT_EQ(heap().Stats().in_use_bytes, 0u);
}

TEST_F(PageHeapTest, FreedNeighboursCoalesceIntoOneRun) {
  Span* a = heap().Allocate(3);
  Span* b = heap().Allocate(4);
  Span* c = heap().Allocate(5);
  Span* guard = heap().Allocate(1);  // keeps c away from the region's virgin tail
  ASSERT_TRUE(a && b && c && guard);
  ASSERT_EQ(a->end(), b->start);
  ASSERT_EQ(b->end(), c->start);
  uintptr_t start = a->start;
  heap().Free(a);
  heap().Free(c);
  heap().Free(b);
  Span* merged = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(merged, nullptr);
  EXPECT_EQ(merged->state, SpanState::kFree);
  EXPECT_EQ(merged->start, start);
  EXPECT_EQ(merged->pages, 12u);
  // Every page of the merged run points at the surviving descriptor.
  for (int i = 0; i < 12; i++) {
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(start + i * kPageSize)), merged);
  }
  // The merged run satisfies a 12-page request at the same address, dirty.
  Span* again = heap().Allocate(12);
  EXPECT_EQ(again->start, start);
  EXPECT_FALSE(again->zeroed);
  heap().Free(again);
  heap().Free(guard);
}

TEST_F(PageHeapTest, AlignedRunsAreAligned) {
  for (size_t align_pages : {2, 16, 256}) {
    Span* s = heap().Allocate(3, align_pages);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->start % (align_pages * kPageSize), 0u);
    EXPECT_EQ(s->pages, 3u);
    heap().Free(s);
  }
}

TEST_F(PageHeapTest, PhasedRunsEndOnTheAlignment) {
  // strict's huge blocks: the data ends at a 2 MiB boundary, the guard page
  // (the run's last page) begins the next huge page.
  constexpr size_t kHuge = (size_t{2} << 20) / kPageSize;
  for (size_t data : {size_t{300}, kHuge, kHuge + 7, 3 * kHuge - 1}) {
    size_t phase = (kHuge - data % kHuge) % kHuge;
    Span* s = heap().Allocate(data + 1, kHuge, SpanState::kLarge, /*guard_page=*/true, phase);
    ASSERT_NE(s, nullptr) << data;
    EXPECT_EQ((s->start + data * kPageSize) % (kHuge * kPageSize), 0u) << data;
    EXPECT_EQ(s->pages, data + 1) << data;
    heap().Free(s);
  }
}

TEST_F(PageHeapTest, AFreedAlignedRunServesTheNextAlignedRequestOfItsSize) {
  // Before, an aligned request looked for pages + align - 1 free pages, so
  // the run an aligned block left was never reused by a block of its size.
  constexpr size_t kHuge = (size_t{2} << 20) / kPageSize;
  Span* a = heap().Allocate(2 * kHuge, kHuge);
  Span* sep = heap().Allocate(1);
  ASSERT_TRUE(a && sep);
  uintptr_t start = a->start;
  heap().Free(a);
  Span* b = heap().Allocate(2 * kHuge, kHuge);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->start, start);
  heap().Free(b);
  heap().Free(sep);
}

TEST_F(PageHeapTest, DecayReleasesOnlyRunsOlderThanTheCutoff) {
  g_now = 100;
  Span* old_run = heap().Allocate(8);
  Span* sep = heap().Allocate(1);
  Span* new_run = heap().Allocate(8);
  Span* sep2 = heap().Allocate(1);
  memset(reinterpret_cast<void*>(old_run->start), 0xAB, old_run->bytes());
  heap().Free(old_run);
  g_now = 200;
  heap().Free(new_run);
  EXPECT_EQ(heap().Stats().free_committed_bytes, 16 * kPageSize);
  EXPECT_EQ(heap().ReleaseFreedBefore(150), 8 * kPageSize);
  PageHeapStats st = heap().Stats();
  EXPECT_EQ(st.free_committed_bytes, 8 * kPageSize);
  EXPECT_EQ(st.free_released_bytes, 8 * kPageSize);
  // Committed runs are preferred: the next 8-page request reuses new_run.
  Span* reused = heap().Allocate(8);
  EXPECT_FALSE(reused->zeroed);
  heap().Free(reused);
  EXPECT_EQ(heap().ReleaseAll(), 8 * kPageSize);
  EXPECT_EQ(heap().Stats().free_committed_bytes, 0u);
  heap().Free(sep);
  heap().Free(sep2);
}

TEST_F(PageHeapTest, ReleasedRunsComeBackZeroed) {
  Span* s = heap().Allocate(4);
  Span* sep = heap().Allocate(1);
  uintptr_t start = s->start;
  memset(reinterpret_cast<void*>(start), 0x5A, s->bytes());
  heap().Free(s);
  heap().ReleaseAll();
  Span* again = heap().Allocate(4);
  ASSERT_EQ(again->start, start);
  EXPECT_TRUE(again->zeroed);
  for (size_t i = 0; i < again->bytes(); i++) ASSERT_EQ(reinterpret_cast<char*>(start)[i], 0);
  heap().Free(again);
  heap().Free(sep);
}

TEST_F(PageHeapTest, GrowsInPlaceIntoFreeNeighboursAndShrinks) {
  Span* a = heap().Allocate(4);
  Span* b = heap().Allocate(6);
  Span* sep = heap().Allocate(1);
  uintptr_t a_start = a->start;
  heap().Free(b);
  ASSERT_TRUE(heap().GrowInPlace(a, 8));
  EXPECT_EQ(a->start, a_start);
  EXPECT_EQ(a->pages, 8u);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(a_start + 7 * kPageSize)), a);
  Span* rest = GlobalPageMap().Get(reinterpret_cast<void*>(a_start + 8 * kPageSize));
  EXPECT_EQ(rest->state, SpanState::kFree);
  EXPECT_EQ(rest->pages, 2u);
  EXPECT_FALSE(heap().GrowInPlace(a, 20));  // blocked by sep
  heap().Shrink(a, 2);
  EXPECT_EQ(a->pages, 2u);
  Span* tail = GlobalPageMap().Get(reinterpret_cast<void*>(a_start + 2 * kPageSize));
  EXPECT_EQ(tail->state, SpanState::kFree);
  // The shrunk tail is freed memory: protected, so it stays apart from the
  // accessible free run after it.
  EXPECT_TRUE(tail->prot_none);
  EXPECT_EQ(tail->pages, 6u);
  heap().Free(a);
  heap().Free(sep);
}

bool Readable(uintptr_t a) {
  char c;
  return os::ReadWithoutFault(reinterpret_cast<const void*>(a), &c, 1);
}

// A large block freed unprotected keeps its guard page; the next guarded
// block takes the tail of that run and ends at the same guard (no mprotect).
TEST_F(PageHeapTest, FreedGuardedRunsKeepTheirGuardForTheNextBlock) {
  Span* a = heap().Allocate(9, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  ASSERT_TRUE(a && sep);
  ASSERT_EQ(a->guard_pages, 1);
  uintptr_t start = a->start, guard = a->end() - kPageSize;
  EXPECT_FALSE(Readable(guard));
  heap().Free(a);
  Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->state, SpanState::kFree);
  EXPECT_TRUE(run->guard_tail);
  EXPECT_FALSE(run->prot_none);
  EXPECT_EQ(run->pages, 9u);
  EXPECT_TRUE(Readable(start));
  EXPECT_FALSE(Readable(guard));

  Span* b = heap().Allocate(5, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->start, start + 4 * kPageSize);
  EXPECT_EQ(b->end(), guard + kPageSize);
  EXPECT_EQ(b->guard_pages, 1);
  EXPECT_FALSE(b->zeroed);
  EXPECT_FALSE(Readable(guard));
  Span* head = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  EXPECT_EQ(head->state, SpanState::kFree);
  EXPECT_FALSE(head->guard_tail);
  EXPECT_EQ(head->pages, 4u);

  // Freed again, the block's run absorbs the free head on its left.
  heap().Free(b);
  Span* merged = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  EXPECT_TRUE(merged->guard_tail);
  EXPECT_EQ(merged->pages, 9u);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(guard)), merged);

  // Returned to the kernel, it gives its guard page up and merges again.
  heap().ReleaseAll();
  merged = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  EXPECT_FALSE(merged->guard_tail);
  EXPECT_TRUE(merged->released);
  EXPECT_TRUE(Readable(guard));
  heap().Free(sep);
}

// A request without a guard page (a slab) takes the head of a freed
// guarded run before fresh pages: the run is committed and open but for
// its guard page, which stays the last page of what is left. Best fit: the
// shorter of two such runs serves. A head longer than what is left keeps
// the run's descriptor, the rest gets a new one; either way every page maps
// to the descriptor of the run it is in.
TEST_F(PageHeapTest, AnUnguardedRequestTakesTheHeadOfAFreedGuardedRun) {
  Span* big = heap().Allocate(30, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  Span* small = heap().Allocate(9, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep2 = heap().Allocate(1);
  ASSERT_TRUE(big && sep && small && sep2);
  uintptr_t big_start = big->start, small_start = small->start, small_guard = small->end() - kPageSize;
  heap().Free(big);
  heap().Free(small);
  size_t free_before = heap().Stats().free_committed_bytes;

  Span* slab = heap().Allocate(4, 1, SpanState::kSlab);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(slab->start, small_start);
  EXPECT_EQ(slab->pages, 4u);
  EXPECT_EQ(slab->state, SpanState::kSlab);
  EXPECT_FALSE(slab->zeroed);
  for (uintptr_t a = slab->start; a < slab->end(); a += kPageSize) {
    EXPECT_TRUE(Readable(a));
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(a)), slab);
  }
  Span* rest = GlobalPageMap().Get(reinterpret_cast<void*>(slab->end()));
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(rest->state, SpanState::kFree);
  EXPECT_TRUE(rest->guard_tail);
  EXPECT_EQ(rest->pages, 5u);
  EXPECT_EQ(rest->end(), small_guard + kPageSize);
  EXPECT_FALSE(Readable(small_guard));
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(small_guard)), rest);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(big_start))->pages, 30u);  // untouched

  // 25 of the 30 pages: the head keeps the descriptor, the 5 left get one.
  Span* most = heap().Allocate(25, 1, SpanState::kLarge);
  ASSERT_NE(most, nullptr);
  EXPECT_EQ(most->start, big_start);
  EXPECT_EQ(most->pages, 25u);
  EXPECT_EQ(most->guard_pages, 0);
  EXPECT_TRUE(Readable(most->end() - kPageSize));
  Span* left = GlobalPageMap().Get(reinterpret_cast<void*>(most->end()));
  ASSERT_NE(left, nullptr);
  EXPECT_NE(left, most);
  EXPECT_TRUE(left->guard_tail);
  EXPECT_EQ(left->pages, 5u);
  for (uintptr_t a = left->start; a < left->end(); a += kPageSize) {
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(a)), left);
  }
  for (uintptr_t a = most->start; a < most->end(); a += kPageSize) {
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(a)), most);
  }
  // Both from the freed runs: nothing carved.
  EXPECT_EQ(heap().Stats().free_committed_bytes, free_before - 29 * kPageSize);

  // Freed, each absorbs the guard-tail rest on its right again.
  heap().Free(slab);
  Span* whole = GlobalPageMap().Get(reinterpret_cast<void*>(small_start));
  EXPECT_TRUE(whole->guard_tail);
  EXPECT_EQ(whole->pages, 9u);
  heap().Free(most);
  whole = GlobalPageMap().Get(reinterpret_cast<void*>(big_start));
  EXPECT_TRUE(whole->guard_tail);
  EXPECT_EQ(whole->pages, 30u);
  heap().Free(sep);
  heap().Free(sep2);
}

// A guarded request takes the tail of a freed guarded run (no system call)
// unless that run is more than twice its size and a plain committed run
// fits in less than half of it: then the plain run gets a guard page, and
// the big run stays whole for a request of its size.
TEST_F(PageHeapTest, AGuardTailRunOverTwiceTheRequestYieldsToAPlainRunHalfItsSize) {
  Span* big = heap().Allocate(40, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  Span* plain = heap().Allocate(12, 1, SpanState::kLarge);
  Span* sep2 = heap().Allocate(1);
  Span* mid = heap().Allocate(25, 1, SpanState::kLarge);
  Span* sep3 = heap().Allocate(1);
  ASSERT_TRUE(big && sep && plain && sep2 && mid && sep3);
  uintptr_t big_start = big->start, big_end = big->end();
  uintptr_t plain_start = plain->start, mid_start = mid->start;
  heap().Free(big);
  heap().Free(plain);

  Span* a = heap().Allocate(10, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->start, plain_start);
  EXPECT_EQ(a->guard_pages, 1);
  EXPECT_TRUE(Readable(a->end() - 2 * kPageSize));
  EXPECT_FALSE(Readable(a->end() - kPageSize));
  Span* kept = GlobalPageMap().Get(reinterpret_cast<void*>(big_start));
  EXPECT_EQ(kept->state, SpanState::kFree);
  EXPECT_TRUE(kept->guard_tail);
  EXPECT_EQ(kept->pages, 40u);

  // A plain run of 25 pages is no tighter fit than half of 40: the tail of
  // the guarded run serves a request of 15.
  heap().Free(mid);
  Span* b = heap().Allocate(15, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->end(), big_end);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(mid_start))->state, SpanState::kFree);
  heap().Free(a);
  heap().Free(b);
  heap().Free(sep);
  heap().Free(sep2);
  heap().Free(sep3);
}

// A large alloc/free cycle on a freed guarded run maps only the shorter
// of the block and the free head left of it in the page map (a 4 MiB block
// is 1024 entries): the longer part keeps the freed run's descriptor, whose
// pages point at it already, and freed again, the block's run absorbs the
// head under whichever descriptor is the longer. Every page stays mapped to
// the descriptor of the run it is in. Both shapes, below and above kBuckets,
// each in a partition of its own (best fit would take another case's run).
TEST_F(PageHeapTest, ACycleOnAFreedGuardedRunMapsOnlyTheShorterPart) {
  for (size_t run_pages : {size_t{9}, PageHeap::kBuckets + 44}) {
    for (bool short_block : {false, true}) {
      SCOPED_TRACE(testing::Message() << run_pages << " pages, short block " << short_block);
      PartitionConfig config;
      config.max_free_committed = size_t{1} << 30;
      Partition* part = Partition::Create("page_heap_cycle", config, FakeClock);
      ASSERT_NE(part, nullptr);
      PageHeap& heap = part->pages();
      Span* a = heap.Allocate(run_pages, 1, SpanState::kLarge, /*guard_page=*/true);
      Span* sep = heap.Allocate(1);
      ASSERT_TRUE(a && sep);
      uintptr_t start = a->start, end = a->end();
      heap.Free(a);
      Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
      ASSERT_TRUE(run->guard_tail);
      ASSERT_EQ(run->pages, run_pages);
      size_t block_pages = short_block ? 3 : run_pages - 3;
      Span* b = heap.Allocate(block_pages, 1, SpanState::kLarge, /*guard_page=*/true);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->end(), end);  // the tail, before the guard page already there
      EXPECT_EQ(b->pages, block_pages);
      EXPECT_EQ(b->guard_pages, 1);
      EXPECT_EQ(b->state, SpanState::kLarge);
      EXPECT_FALSE(Readable(end - kPageSize));
      Span* head = GlobalPageMap().Get(reinterpret_cast<void*>(start));
      ASSERT_NE(head, nullptr);
      EXPECT_EQ(head->state, SpanState::kFree);
      EXPECT_FALSE(head->guard_tail);
      EXPECT_EQ(head->end(), b->start);
      // The longer part kept the run's descriptor.
      Span* longer = short_block ? head : b;
      EXPECT_EQ(longer, run);
      for (uintptr_t p = start; p < end; p += kPageSize) {
        ASSERT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(p)), p < b->start ? head : b);
      }
      heap.Free(b);
      Span* merged = GlobalPageMap().Get(reinterpret_cast<void*>(start));
      EXPECT_EQ(merged, longer);
      EXPECT_TRUE(merged->guard_tail);
      EXPECT_EQ(merged->start, start);
      EXPECT_EQ(merged->pages, run_pages);
      for (uintptr_t p = start; p < end; p += kPageSize) {
        ASSERT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(p)), merged);
      }
      heap.Free(sep);
      Partition::Destroy(part);
    }
  }
}

// Freed guarded blocks side by side stay separate guard-tail runs (merging
// them at free time would cost an mprotect per free). A request larger than
// each of them takes them together, their inner guard pages opened, rather
// than fresh pages (a page fault each).
TEST_F(PageHeapTest, ARequestLargerThanEachFreedBlockMergesTheRowOfThem) {
  constexpr size_t kBlock = 300;  // pages, guard included
  static_assert(kBlock >= PageHeap::kMergeMinPages, "merging starts at kMergeMinPages");
  Span* blocks[3];
  for (Span*& b : blocks) {
    b = heap().Allocate(kBlock, 1, SpanState::kLarge, /*guard_page=*/true);
    ASSERT_NE(b, nullptr);
  }
  Span* sep = heap().Allocate(1);
  ASSERT_NE(sep, nullptr);
  ASSERT_EQ(blocks[0]->end(), blocks[1]->start);
  ASSERT_EQ(blocks[1]->end(), blocks[2]->start);
  uintptr_t start = blocks[0]->start, end = blocks[2]->end();
  uintptr_t inner_guards[2] = {blocks[0]->end() - kPageSize, blocks[1]->end() - kPageSize};
  for (Span* b : blocks) heap().Free(b);
  for (uintptr_t g : inner_guards) {
    EXPECT_FALSE(Readable(g));
    EXPECT_TRUE(GlobalPageMap().Get(reinterpret_cast<void*>(g))->guard_tail);
  }
  EXPECT_NE(GlobalPageMap().Get(reinterpret_cast<void*>(start)),
            GlobalPageMap().Get(reinterpret_cast<void*>(end - kPageSize)));
  size_t reserved = heap().Stats().reserved_bytes;

  Span* big = heap().Allocate(2 * kBlock + 100, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(big, nullptr);
  // The tail of the merged row: it ends at the last block's guard page.
  EXPECT_EQ(big->end(), end);
  EXPECT_EQ(big->guard_pages, 1);
  EXPECT_FALSE(big->zeroed);  // committed pages, reused
  EXPECT_FALSE(Readable(end - kPageSize));
  for (uintptr_t g : inner_guards) EXPECT_TRUE(Readable(g));
  EXPECT_EQ(heap().Stats().reserved_bytes, reserved);
  // The rest of the row stays one ordinary committed run.
  Span* head = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->state, SpanState::kFree);
  EXPECT_FALSE(head->guard_tail);
  EXPECT_FALSE(head->released);
  EXPECT_EQ(head->end(), big->start);
  EXPECT_EQ(head->pages, 3 * kBlock - (2 * kBlock + 100));
  heap().Free(big);
  heap().Free(sep);
}

// Runs given back to the kernel, and quarantined ones, break a row: the
// merge never mixes committed and released pages nor reuses a block early.
TEST_F(PageHeapTest, ReleasedOrQuarantinedRunsBreakARow) {
  constexpr size_t kBlock = 300;
  Span* blocks[3];
  for (Span*& b : blocks) {
    b = heap().Allocate(kBlock, 1, SpanState::kLarge, /*guard_page=*/true);
    ASSERT_NE(b, nullptr);
  }
  Span* sep = heap().Allocate(1);
  ASSERT_NE(sep, nullptr);
  uintptr_t start = blocks[0]->start, end = blocks[2]->end();
  g_now = 1;
  heap().Free(blocks[0]);
  heap().ReleaseFreedBefore(1);  // the first block's pages go back to the kernel
  g_now = 2;
  heap().Free(blocks[1], /*quarantine=*/true);  // the fixture's quarantine holds 16 MiB
  heap().Free(blocks[2]);
  Span* big = heap().Allocate(2 * kBlock, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(big->start >= end || big->end() <= start);  // not in the row
  heap().Free(big);
  heap().Free(sep);
}

// A quarantined run holds its memory until the kernel has it back, and the
// statistics say so (committed memory in the heap report and mallctl).
TEST_F(PageHeapTest, QuarantinedRunsCountAsCommittedUntilReleased) {
  Span* a = heap().Allocate(100, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* b = heap().Allocate(50, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(heap().Stats().quarantine_committed_bytes, 0u);
  g_now = 10;
  heap().Free(a, /*quarantine=*/true);
  g_now = 20;
  heap().Free(b, /*quarantine=*/true);
  PageHeapStats st = heap().Stats();
  EXPECT_EQ(st.quarantine_bytes, 150 * kPageSize);
  EXPECT_EQ(st.quarantine_committed_bytes, 150 * kPageSize);
  heap().ReleaseFreedBefore(10);  // the older one goes back; it keeps its place
  st = heap().Stats();
  EXPECT_EQ(st.quarantine_bytes, 150 * kPageSize);
  EXPECT_EQ(st.quarantine_committed_bytes, 50 * kPageSize);
  heap().ReleaseAll();
  EXPECT_EQ(heap().Stats().quarantine_committed_bytes, 0u);
}

// Freed blocks kept PROT_NONE (strict keeps them closed until reuse) are
// never merged: their pages stay closed.
TEST_F(PageHeapTest, ProtectedRunsAreNeverMerged) {
  constexpr size_t kBlock = 300;
  Span* blocks[2];
  for (Span*& b : blocks) {
    b = heap().Allocate(kBlock, 1, SpanState::kLarge, /*guard_page=*/true);
    ASSERT_NE(b, nullptr);
  }
  Span* sep = heap().Allocate(1);
  ASSERT_NE(sep, nullptr);
  uintptr_t start = blocks[0]->start, end = blocks[1]->end();
  heap().Free(blocks[0], /*quarantine=*/false, LargeProtection::kWhole);
  heap().Free(blocks[1]);  // a guard-tail run right of the closed one
  Span* big = heap().Allocate(kBlock + 100, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(big->start >= end || big->end() <= start);  // not in the row
  for (uintptr_t a = start; a < start + kBlock * kPageSize; a += kPageSize) EXPECT_FALSE(Readable(a));
  heap().Free(big);
  heap().Free(sep);
}

// A protected free makes the whole run PROT_NONE (guard included); it is
// opened again, but for the new guard, when reused.
TEST_F(PageHeapTest, ProtectedFreesCloseTheWholeRun) {
  Span* a = heap().Allocate(6, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  ASSERT_TRUE(a && sep);
  uintptr_t start = a->start;
  heap().Free(a, /*quarantine=*/false, LargeProtection::kWhole);
  Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  EXPECT_TRUE(run->prot_none);
  EXPECT_FALSE(run->guard_tail);
  for (int i = 0; i < 6; i++) EXPECT_FALSE(Readable(start + i * kPageSize));
  Span* b = heap().Allocate(6, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_EQ(b->start, start);
  for (int i = 0; i < 5; i++) EXPECT_TRUE(Readable(start + i * kPageSize));
  EXPECT_FALSE(Readable(start + 5 * kPageSize));
  heap().Free(b);
  heap().Free(sep);
}

// The coin's protection closes the block's first kProtectHeadPages pages
// only (its guard page stays closed); reuse opens the run whole but for the
// new guard, and a block no longer than the head is closed whole.
TEST_F(PageHeapTest, HeadProtectionClosesTheFirstPagesOnly) {
  constexpr size_t kPages = kProtectHeadPages + 6;
  Span* a = heap().Allocate(kPages, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  ASSERT_TRUE(a && sep);
  uintptr_t start = a->start;
  heap().Free(a, /*quarantine=*/false, LargeProtection::kHead);
  Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  EXPECT_TRUE(run->prot_none);
  EXPECT_FALSE(run->guard_tail);
  for (size_t i = 0; i < kPages; i++) {
    EXPECT_EQ(Readable(start + i * kPageSize), i >= kProtectHeadPages && i < kPages - 1) << i;
  }
  Span* b = heap().Allocate(kPages, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_EQ(b->start, start);
  for (size_t i = 0; i < kPages - 1; i++) EXPECT_TRUE(Readable(start + i * kPageSize)) << i;
  EXPECT_FALSE(Readable(start + (kPages - 1) * kPageSize));
  heap().Free(b);

  Span* small = heap().Allocate(kProtectHeadPages - 1, 1, SpanState::kLarge, /*guard_page=*/true);
  ASSERT_NE(small, nullptr);
  uintptr_t small_start = small->start;
  size_t small_pages = small->pages;
  heap().Free(small, /*quarantine=*/false, LargeProtection::kHead);
  for (size_t i = 0; i < small_pages; i++) EXPECT_FALSE(Readable(small_start + i * kPageSize)) << i;
  heap().Free(sep);
}

// A token's protection closes the first MiB of a larger block, and the
// whole of a block up to a MiB.
TEST_F(PageHeapTest, FirstMiBProtectionClosesAtMostAMiB) {
  constexpr size_t kPages = kProtectFirstMiBPages + 10;
  Span* a = heap().Allocate(kPages, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap().Allocate(1);
  Span* b = heap().Allocate(kProtectFirstMiBPages, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep2 = heap().Allocate(1);
  ASSERT_TRUE(a && sep && b && sep2);
  uintptr_t start = a->start, b_start = b->start;
  heap().Free(a, /*quarantine=*/false, LargeProtection::kFirstMiB);
  heap().Free(b, /*quarantine=*/false, LargeProtection::kFirstMiB);
  for (size_t i = 0; i < kPages; i++) {
    EXPECT_EQ(Readable(start + i * kPageSize), i >= kProtectFirstMiBPages && i < kPages - 1) << i;
  }
  for (size_t i = 0; i < kProtectFirstMiBPages; i++) EXPECT_FALSE(Readable(b_start + i * kPageSize)) << i;
  heap().Free(sep);
  heap().Free(sep2);
}

// A protected block released while it waited in the quarantine leaves it as
// an ordinary released run (no guard page: its memory is the kernel's), so
// any request can reuse it, and a heap that cannot grow finds it.
TEST(PageHeapQuarantine, AProtectedRunReleasedWhileItWaitedLeavesAsAPlainReleasedRun) {
  PartitionConfig config;
  config.max_free_committed = size_t{1} << 30;
  config.large_quarantine_spans = 1;
  config.large_protect_until_reuse = false;  // the default mode's quarantine
  Partition* p = Partition::Create("quarantine_release", config, FakeClock);
  ASSERT_NE(p, nullptr);
  PageHeap& heap = p->pages();
  Span* a = heap.Allocate(20, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep = heap.Allocate(1);
  Span* b = heap.Allocate(3, 1, SpanState::kLarge, /*guard_page=*/true);
  Span* sep2 = heap.Allocate(1);
  ASSERT_TRUE(a && sep && b && sep2);
  uintptr_t start = a->start;
  g_now = 10;
  heap.Free(a, /*quarantine=*/true, LargeProtection::kWhole);
  heap.ReleaseFreedBefore(10);  // its pages go back while it waits
  heap.Free(b, /*quarantine=*/true);  // pushes it out of the one-run quarantine
  Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->state, SpanState::kFree);
  EXPECT_TRUE(run->released);
  EXPECT_FALSE(run->prot_none);
  EXPECT_FALSE(run->guard_tail);
  for (int i = 0; i < 20; i++) EXPECT_TRUE(Readable(start + i * kPageSize)) << i;
  // An unguarded request of its size (a slab) takes it.
  Span* slab = heap.Allocate(20, 1, SpanState::kSlab);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(slab->start, start);
  heap.Free(slab);
  heap.Free(sep);
  heap.Free(sep2);
  Partition::Destroy(p);
}

// Runs given back to the kernel give back the page-map memory of their
// interior too, also when they were released one by one and merged.
TEST_F(PageHeapTest, ReleasedRunsReturnTheirPageMapMemory) {
  constexpr int kBlocks = 32;  // one region (the first is 64 MiB)
  constexpr size_t kPages = 257;  // 1 MiB and a guard page
  std::vector<Span*> blocks;
  for (int i = 0; i < kBlocks; i++) {
    blocks.push_back(heap().Allocate(kPages, 1, SpanState::kLarge, /*guard_page=*/true));
    ASSERT_NE(blocks.back(), nullptr);
  }
  Span* sep = heap().Allocate(1);
  uintptr_t start = blocks.front()->start;
  size_t bytes = blocks.back()->end() - start;
  ASSERT_EQ(bytes, kBlocks * kPages * kPageSize);  // one contiguous stretch
  ASSERT_GE(GlobalPageMap().ResidentEntryBytes(start, bytes), 15 * kPageSize);
  for (int i = 0; i < kBlocks; i++) {
    heap().Free(blocks[i]);
    g_now++;  // released one by one, oldest first
  }
  heap().ReleaseAll();
  Span* run = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->pages, kBlocks * kPages);
  EXPECT_TRUE(run->released);
  // Only the leaf pages holding the run's two ends stay.
  EXPECT_LE(GlobalPageMap().ResidentEntryBytes(start, bytes), 2 * kPageSize);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(start + bytes / 2)), nullptr);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(start + bytes - 1)), run);
  // Taken again, the run is mapped in full.
  Span* again = heap().Allocate(kBlocks * kPages);
  ASSERT_EQ(again, run);
  EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(start + bytes / 2)), again);
  heap().Free(again);
  heap().Free(sep);
}

// Span descriptors of freed runs go back to the kernel even where a few
// descriptors stay in use in every chunk of the pool (slabs still holding
// objects): the pool returns pages, not only whole chunks. So does the page
// map's memory for the released runs.
TEST_F(PageHeapTest, FreedRunsReturnTheirSpanDescriptorsAndPageMapMemory) {
  SpanPool().ReleaseEmpty(/*now=*/true);  // what earlier tests left
  const size_t descriptors_before = SpanPool().committed_bytes();
  constexpr int kRuns = 4000;  // 16 KiB slabs: 62.5 MiB, about 28 chunks of descriptors
  std::vector<Span*> runs;
  for (int i = 0; i < kRuns; i++) {
    runs.push_back(heap().Allocate(4, 1, SpanState::kSlab));
    ASSERT_NE(runs.back(), nullptr);
  }
  uintptr_t start = runs.front()->start;
  size_t bytes = runs.back()->end() - start;
  const size_t descriptors_full = SpanPool().committed_bytes();
  EXPECT_GE(descriptors_full, descriptors_before + kRuns * sizeof(Span));
  const size_t map_full = GlobalPageMap().ResidentEntryBytes(start, bytes);
  EXPECT_GE(map_full, bytes / PageMap::kEntryPageSpan * kPageSize);
  const size_t map_total_full = GlobalPageMap().ResidentBytes();  // the heap report's figure
  EXPECT_GE(map_total_full, map_full);
  // One run in 100 stays in use (some in every chunk of descriptors).
  std::vector<Span*> kept;
  for (int i = 0; i < kRuns; i++) {
    if (i % 100 == 50) {
      kept.push_back(runs[i]);
    } else {
      heap().Free(runs[i]);
    }
  }
  heap().ReleaseAll();
  SpanPool().ReleaseEmpty();
  SpanPool().ReleaseEmpty();
  // What stays: the kept runs' and the free runs' between them (a page or
  // two each, a descriptor may straddle two pages), the first leaf page.
  const size_t descriptors_after = SpanPool().committed_bytes();
  EXPECT_LE(descriptors_after, descriptors_before + 2 * (2 * kept.size() + 2) * kPageSize);
  EXPECT_LT(descriptors_after - descriptors_before, (descriptors_full - descriptors_before) / 4);
  // The page map keeps the leaf pages with the kept runs' entries and the
  // free runs' ends (all of them here: a kept run every 1.6 MiB).
  EXPECT_LE(GlobalPageMap().ResidentEntryBytes(start, bytes), map_full);
  for (Span* s : kept) {
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(s->start + kPageSize)), s);
    heap().Free(s);
  }
  heap().ReleaseAll();
  SpanPool().ReleaseEmpty();
  SpanPool().ReleaseEmpty();
  EXPECT_LE(SpanPool().committed_bytes(), descriptors_before + 2 * kPageSize);
  EXPECT_LE(GlobalPageMap().ResidentEntryBytes(start, bytes), 2 * kPageSize);
  EXPECT_LE(GlobalPageMap().ResidentBytes() + map_full - 2 * kPageSize, map_total_full);
}

// Free's class guesses (PageMap::ClassHint) go back to the kernel with the
// memory they guess for, also when that memory was released in runs much
// smaller than the 8 MiB a page of guesses covers, one at a time, and only
// merged afterwards.
TEST_F(PageHeapTest, ClassGuessesOfRunsReleasedOneByOneGoBackOnceTheRunsMerge) {
  constexpr int kRuns = 3072;  // 16 KiB each: 48 MiB
  std::vector<Span*> runs;
  for (int i = 0; i < kRuns; i++) {
    runs.push_back(heap().Allocate(4, 1, SpanState::kSlab));
    ASSERT_NE(runs.back(), nullptr);
    if (i > 0) {
      ASSERT_EQ(runs[i - 1]->end(), runs[i]->start) << "contiguous runs";
    }
  }
  Span* after = heap().Allocate(1);  // keeps the last run away from the region's virgin tail
  ASSERT_NE(after, nullptr);
  const uintptr_t start = runs.front()->start, end = runs.back()->end();
  for (uintptr_t a = start; a < end; a += kPageSize) GlobalPageMap().SetClassHint(reinterpret_cast<void*>(a), 64);
  // Every other run freed and released alone, then the rest: each of those
  // merges with released neighbours when it is released in turn.
  for (int i = 0; i < kRuns; i += 2) heap().Free(runs[i]);
  heap().ReleaseAll();
  for (int i = 1; i < kRuns; i += 2) heap().Free(runs[i]);
  heap().ReleaseAll();
  // The merged run's first and last pages stay mapped (its ends), so the
  // pages of guesses holding theirs stay too.
  const uintptr_t inner_start = RoundUp(start + kPageSize, PageMap::kHintPageSpan);
  const uintptr_t inner_end = RoundDown(end - kPageSize, PageMap::kHintPageSpan);
  ASSERT_GE(inner_end - inner_start, 2 * PageMap::kHintPageSpan);
  int kept = 0;
  for (uintptr_t a = inner_start; a < inner_end; a += kPageSize) {
    kept += GlobalPageMap().ClassHint(reinterpret_cast<void*>(a)) != 0;
  }
  EXPECT_EQ(kept, 0) << "guesses of pages wholly inside the released memory";
  heap().Free(after);
}

// What stays of a heap its program freed is mostly released runs between
// the few blocks still in use. Their descriptors were made at busy times,
// among metadata that is gone since, so each would keep a page of
// descriptors resident for itself; released, a run's descriptor moves onto
// a page that holds live descriptors anyway (ReturningMetaPool::Repack),
// and the page map follows it.
TEST_F(PageHeapTest, ReleasedRunsDescriptorsMoveOntoPagesOfLiveOnes) {
  SpanPool().ReleaseEmpty(/*now=*/true);  // what earlier tests left
  const size_t descriptors_before = SpanPool().committed_bytes();
  // Each run's descriptor is followed by 11 short-lived ones (12 slots of
  // 448 bytes: 5376 bytes), so no two runs' descriptors share a page.
  constexpr int kRuns = 400, kKeepEvery = 20, kFillers = 11;
  std::vector<Span*> runs, fillers;
  for (int i = 0; i < kRuns; i++) {
    runs.push_back(heap().Allocate(4, 1, SpanState::kSlab));
    ASSERT_NE(runs.back(), nullptr);
    for (int k = 0; k < kFillers; k++) fillers.push_back(SpanPool().New());
  }
  for (Span* f : fillers) SpanPool().Delete(f);
  const uintptr_t start = runs.front()->start, end = runs.back()->end();
  std::vector<Span*> kept;
  std::set<uintptr_t> kept_pages;  // the pages of descriptors the kept runs hold anyway
  for (int i = 0; i < kRuns; i++) {
    if (i % kKeepEvery != kKeepEvery / 2) {
      heap().Free(runs[i]);
      continue;
    }
    kept.push_back(runs[i]);
    uintptr_t d = reinterpret_cast<uintptr_t>(runs[i]);
    kept_pages.insert(d / kPageSize);
    kept_pages.insert((d + sizeof(Span) - 1) / kPageSize);
  }
  heap().ReleaseAll();
  SpanPool().ReleaseEmpty();
  SpanPool().ReleaseEmpty();
  // 21 released runs beside 20 kept blocks: before the move, a page or two
  // more for each released run.
  EXPECT_LE(SpanPool().committed_bytes(), descriptors_before + (kept_pages.size() + 2) * kPageSize);
  // The page map leads from each block to the moved descriptors of the free
  // runs around it, which merge as before once the blocks are freed.
  for (Span* s : kept) {
    Span* left = GlobalPageMap().Get(reinterpret_cast<void*>(s->start - 1));
    Span* right = GlobalPageMap().Get(reinterpret_cast<void*>(s->end()));
    ASSERT_NE(left, nullptr);
    ASSERT_NE(right, nullptr);
    EXPECT_EQ(left->state, SpanState::kFree);
    EXPECT_TRUE(left->released);
    EXPECT_EQ(left->end(), s->start);
    EXPECT_EQ(GlobalPageMap().Get(reinterpret_cast<void*>(left->start)), left);
    EXPECT_EQ(right->state, SpanState::kFree);
    EXPECT_EQ(right->start, s->end());
  }
  for (Span* s : kept) heap().Free(s);
  heap().ReleaseAll();
  Span* whole = GlobalPageMap().Get(reinterpret_cast<void*>(start));
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(whole->start, start);
  EXPECT_GE(whole->end(), end);
  Span* again = heap().Allocate((end - start) / kPageSize);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->start, start);
  heap().Free(again);
}

TEST_F(PageHeapTest, HugeRequestsFailCleanly) {
  EXPECT_EQ(heap().Allocate(size_t{1} << 40), nullptr);
  EXPECT_EQ(heap().Allocate(0), nullptr);
}

TEST(PageHeapBound, CommittedFreeMemoryIsBounded) {
  PartitionConfig config;
  config.max_free_committed = 64 * kPageSize;
  Partition* p = Partition::Create("bounded", config, FakeClock);
  std::vector<Span*> spans;
  for (int i = 0; i < 40; i++) {
    spans.push_back(p->pages().Allocate(4));
    spans.push_back(p->pages().Allocate(1));  // separators: no merging
  }
  for (size_t i = 0; i < spans.size(); i += 2) p->pages().Free(spans[i]);
  PageHeapStats st = p->pages().Stats();
  EXPECT_LE(st.free_committed_bytes, 64 * kPageSize);
  EXPECT_EQ(st.free_committed_bytes + st.free_released_bytes, 160 * kPageSize);
  Partition::Destroy(p);
}

// With a reclaimer running, Free leaves the bound to its tick (TrimToBound):
// a program freeing its whole heap pays no madvise per run in free().
bool g_reclaimer_running = false;
int g_wakes = 0;
bool ReclaimerRunning(bool wake) {
  if (g_reclaimer_running && wake) g_wakes++;
  return g_reclaimer_running;
}

TEST(PageHeapBound, ARunningReclaimerEnforcesTheBoundOnItsTick) {
  PageHeap::SetBoundDeferral(ReclaimerRunning);
  PartitionConfig config;
  config.max_free_committed = 64 * kPageSize;
  Partition* p = Partition::Create("bounded_on_tick", config, FakeClock);
  std::vector<Span*> spans;
  for (int i = 0; i < 40; i++) {
    spans.push_back(p->pages().Allocate(4));
    spans.push_back(p->pages().Allocate(1));  // separators: no merging
  }
  g_reclaimer_running = true;
  for (size_t i = 0; i < 20; i += 2) p->pages().Free(spans[i]);
  for (size_t i = 20; i < 40; i += 2) p->pages().Free(spans[i]);
  PageHeapStats st = p->pages().Stats();
  EXPECT_EQ(st.free_committed_bytes, 80 * kPageSize) << "nothing released in Free";
  EXPECT_EQ(st.free_released_bytes, 0u);
  EXPECT_EQ(g_wakes, 1) << "woken once, by the first free over the bound";
  p->pages().TrimToBound();  // the tick
  st = p->pages().Stats();
  EXPECT_LE(st.free_committed_bytes, 64 * kPageSize);
  EXPECT_EQ(st.free_committed_bytes + st.free_released_bytes, 80 * kPageSize);
  // Without one (stopped, or a fork child's before it starts), Free bounds.
  g_reclaimer_running = false;
  for (size_t i = 40; i < spans.size(); i += 2) p->pages().Free(spans[i]);
  st = p->pages().Stats();
  EXPECT_LE(st.free_committed_bytes, 64 * kPageSize);
  EXPECT_EQ(st.free_committed_bytes + st.free_released_bytes, 160 * kPageSize);
  PageHeap::SetBoundDeferral(nullptr);
  Partition::Destroy(p);
}

}  // namespace
}  // namespace nitro
