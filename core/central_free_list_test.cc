// CentralFreeList, the middle layer of one class of one partition: batches
// in and out, single objects, double-free detection, Drain and the
// reclaimer's ReleaseIdle.
#include "core/central_free_list.h"

#include <gtest/gtest.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/page_map.h"
#include "core/partition.h"

namespace nitro {
namespace {

// The partition's clock (ms): batches and slab reuse are stamped with it.
uint64_t g_now = 1000;
uint64_t FakeNow() { return g_now; }

class CentralFreeListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_now = 1000;
    part_ = Partition::Create(::testing::UnitTest::GetInstance()->current_test_info()->name(),
                              PartitionConfig{}, FakeNow);
    ASSERT_NE(part_, nullptr);
    cls_ = kSizeClasses.ClassFor(64);
    ASSERT_EQ(kSizeClasses.size(cls_), 64u);
  }
  void TearDown() override { Partition::Destroy(part_); }

  CentralFreeList& central() { return part_->central(cls_); }
  const SizeClassInfo& info() const { return kSizeClasses.info(cls_); }
  size_t SlabBytes() const { return size_t{info().slab_pages} * kPageSize; }
  size_t InUseBytes() { return part_->Stats().pages.in_use_bytes; }

  // A batch as the middle layer hands it out: an array of objects.
  struct Range {
    std::vector<void*> objs;
    int n;
    void* head() const { return objs.front(); }
    void* tail() const { return objs.back(); }
  };
  Range Remove(int n) {
    Range r{std::vector<void*>(static_cast<size_t>(n)), 0};
    r.n = central().RemoveRange(r.objs.data(), n);
    r.objs.resize(static_cast<size_t>(r.n));
    return r;
  }
  void Insert(const Range& r) { central().InsertRange(r.objs.data(), FlagsOf(r.objs).data(), r.n); }
  static bool IsFree(void* p) { return GlobalPageMap().Get(p)->ObjectIsFree(p); }
  // The free flags a thread cache keeps beside its objects.
  static std::vector<uint8_t*> FlagsOf(const std::vector<void*>& objs) {
    std::vector<uint8_t*> flags;
    for (void* p : objs) flags.push_back(GlobalPageMap().Get(p)->FreeFlag(p));
    return flags;
  }

  Partition* part_ = nullptr;
  int cls_ = 0;
};

TEST_F(CentralFreeListTest, RemoveRangeHandsOutAnArrayOfFreshObjects) {
  const int batch = static_cast<int>(info().batch);
  Range r = Remove(batch);
  ASSERT_EQ(r.n, batch);
  std::vector<void*> objs = r.objs;
  ASSERT_EQ(objs.size(), static_cast<size_t>(batch));
  for (size_t i = 0; i < objs.size(); i++) {
    // Still free until a thread cache hands them to the program.
    EXPECT_TRUE(IsFree(objs[i]));
    PointerInfo pi;
    ASSERT_TRUE(Lookup(objs[i], &pi));
    EXPECT_EQ(pi.partition, part_);
    EXPECT_EQ(pi.size_class, cls_);
    EXPECT_EQ(pi.object_start, objs[i]);
    // A fresh slab is handed out front to back.
    if (i > 0) {
      EXPECT_EQ(static_cast<char*>(objs[i]) - static_cast<char*>(objs[i - 1]), 64);
    }
  }
  CentralStats st = central().Stats();
  EXPECT_EQ(st.slabs, 1u);
  EXPECT_EQ(st.transfer_objects, 0u);
  EXPECT_EQ(st.span_free_objects, info().capacity - batch);
  EXPECT_EQ(st.slab_objects_in_use, static_cast<size_t>(batch));
  EXPECT_EQ(InUseBytes(), SlabBytes());

  // More than a slab holds: the array continues in a new slab.
  Range big = Remove(static_cast<int>(info().capacity));
  ASSERT_EQ(big.n, static_cast<int>(info().capacity));
  std::vector<void*> more = big.objs;
  ASSERT_EQ(more.size(), info().capacity);
  std::set<void*> all(objs.begin(), objs.end());
  all.insert(more.begin(), more.end());
  EXPECT_EQ(all.size(), objs.size() + more.size()) << "an object was handed out twice";
  EXPECT_EQ(central().Stats().slabs, 2u);
  Insert(big);
  Insert(r);
}

TEST_F(CentralFreeListTest, InsertRangeThenRemoveRangeTradesWholeBatches) {
  const int batch = static_cast<int>(info().batch);
  Range a = Remove(batch);
  Range b = Remove(batch);
  Range partial = Remove(5);
  ASSERT_EQ(partial.n, 5);
  CentralStats st0 = central().Stats();
  Insert(a);
  Insert(b);
  Insert(partial);
  CentralStats st1 = central().Stats();
  EXPECT_EQ(st1.transfer_objects, st0.transfer_objects + 2 * batch + 5);
  EXPECT_EQ(st1.span_free_objects, st0.span_free_objects) << "batches do not go back to slabs";
  EXPECT_EQ(st1.slab_objects_in_use, st0.slab_objects_in_use);
  // A stack: the last batch in is the first out, unchanged (at most `n`
  // of it).
  Range r = Remove(batch);
  EXPECT_EQ(r.n, 5);
  EXPECT_EQ(r.objs, partial.objs);
  r = Remove(batch);
  EXPECT_EQ(r.n, batch);
  EXPECT_EQ(r.objs, b.objs);
  // Asking for less than the top batch holds takes its last objects.
  r = Remove(batch - 3);
  EXPECT_EQ(r.n, batch - 3);
  EXPECT_EQ(r.objs, std::vector<void*>(a.objs.begin() + 3, a.objs.end()));
  r = Remove(batch);
  EXPECT_EQ(r.objs, std::vector<void*>(a.objs.begin(), a.objs.begin() + 3));
  EXPECT_EQ(central().Stats().transfer_objects, 0u);
  // With no batch left, objects come from the slabs again.
  Range c = Remove(batch);
  std::set<void*> taken;
  for (const Range& x : {a, b, partial}) {
    for (void* p : x.objs) taken.insert(p);
  }
  for (void* p : c.objs) EXPECT_EQ(taken.count(p), 0u);
  Insert(a);
  Insert(b);
  Insert(partial);
  Insert(c);
}

TEST_F(CentralFreeListTest, TheBatchStackIsBoundedAndTheRestGoesToTheSlabs) {
  const int batch = static_cast<int>(info().batch);
  // 512 KiB of batches per class at most, at most kMaxBatches of them.
  size_t per_batch = size_t{info().batch} * info().size;
  int max_batches = static_cast<int>(std::min<size_t>(
      CentralFreeList::kMaxBatches, std::max<size_t>(2, (512 * 1024) / per_batch)));
  std::vector<Range> ranges;
  for (int i = 0; i < max_batches + 3; i++) {
    ranges.push_back(Remove(batch));
    ASSERT_EQ(ranges.back().n, batch);
  }
  for (const Range& r : ranges) Insert(r);
  CentralStats st = central().Stats();
  EXPECT_EQ(st.transfer_objects, static_cast<size_t>(max_batches) * batch);
  EXPECT_EQ(st.slab_objects_in_use, st.transfer_objects);
  // 1120 objects came from five 256-object slabs; the 96 that did not fit
  // went back to the last one, which is empty again (and kept).
  ASSERT_EQ(info().capacity, 256u);
  ASSERT_EQ(max_batches, 32);
  EXPECT_EQ(st.slabs, 5u);
  EXPECT_EQ(st.span_free_objects, 5u * 256 - 1024);
}

// A refill comes with each object's free flag, from slabs (which know it)
// and from batches (which keep the flags the thread cache gave with the
// objects), so the thread cache never looks one up.
TEST_F(CentralFreeListTest, RemoveRangeGivesEachObjectsFreeFlag) {
  const int batch = static_cast<int>(info().batch);
  // Fresh objects (the bump), then objects freed back into the slab (its
  // bitmap): every other object of a batch returned through a full stack.
  Range first = Remove(batch);
  ASSERT_EQ(first.n, batch);
  std::vector<void*> objs(static_cast<size_t>(batch));
  std::vector<uint8_t*> flags(static_cast<size_t>(batch));
  int n = central().RemoveRange(objs.data(), batch, 0, flags.data());
  ASSERT_EQ(n, batch);
  for (int i = 0; i < n; i++) {
    EXPECT_EQ(flags[static_cast<size_t>(i)], GlobalPageMap().Get(objs[static_cast<size_t>(i)])->FreeFlag(objs[static_cast<size_t>(i)])) << i;
  }
  // The second batch back to its slab (Drain returns every batch), which
  // the first keeps in use, then out again from the slab's bitmap.
  central().InsertRange(objs.data(), flags.data(), n);
  central().Drain();
  ASSERT_EQ(central().Stats().slab_objects_in_use, static_cast<size_t>(batch));
  std::vector<void*> again(static_cast<size_t>(batch));
  std::fill(flags.begin(), flags.end(), nullptr);
  n = central().RemoveRange(again.data(), batch, 0, flags.data());
  ASSERT_EQ(n, batch);
  for (int i = 0; i < n; i++) {
    void* p = again[static_cast<size_t>(i)];
    EXPECT_EQ(flags[static_cast<size_t>(i)], GlobalPageMap().Get(p)->FreeFlag(p)) << i;
    EXPECT_TRUE(IsFree(p));
  }
  // Through a batch: the flags given with the objects come back with them,
  // whole batches and parts of one.
  central().InsertRange(again.data(), flags.data(), n);
  ASSERT_EQ(central().Stats().transfer_objects, static_cast<size_t>(n));
  std::vector<void*> part(static_cast<size_t>(batch));
  std::vector<uint8_t*> part_flags(static_cast<size_t>(batch), nullptr);
  int k = central().RemoveRange(part.data(), n / 2, 0, part_flags.data());
  ASSERT_EQ(k, n / 2);
  int rest = central().RemoveRange(part.data() + k, n - k, 0, part_flags.data() + k);
  ASSERT_EQ(k + rest, n);
  std::set<void*> given(again.begin(), again.begin() + n);
  for (int i = 0; i < n; i++) {
    void* p = part[static_cast<size_t>(i)];
    EXPECT_EQ(given.count(p), 1u) << i;
    EXPECT_EQ(part_flags[static_cast<size_t>(i)], GlobalPageMap().Get(p)->FreeFlag(p)) << i;
  }
  central().InsertRange(part.data(), part_flags.data(), n);
  Insert(first);
}

TEST_F(CentralFreeListTest, AllocateOneAndFreeOne) {
  void* p = central().AllocateOne();
  void* q = central().AllocateOne();
  ASSERT_TRUE(p && q);
  EXPECT_NE(p, q);
  EXPECT_FALSE(IsFree(p));
  EXPECT_FALSE(IsFree(q));
  CentralStats st = central().Stats();
  EXPECT_EQ(st.direct_allocs, 2u);
  EXPECT_EQ(st.direct_frees, 0u);
  EXPECT_EQ(st.slab_objects_in_use, 2u);
  EXPECT_EQ(st.slabs, 1u);

  central().FreeOne(p);
  EXPECT_TRUE(IsFree(p));
  st = central().Stats();
  EXPECT_EQ(st.direct_frees, 1u);
  EXPECT_EQ(st.slab_objects_in_use, 1u);
  EXPECT_EQ(st.span_free_objects, info().capacity - 1);
  // The lowest free object of the slab comes back first.
  void* again = central().AllocateOne();
  EXPECT_EQ(again, p);
  EXPECT_FALSE(IsFree(again));
  central().FreeOne(again);
  central().FreeOne(q);
  st = central().Stats();
  EXPECT_EQ(st.direct_allocs, 3u);
  EXPECT_EQ(st.direct_frees, 3u);
  EXPECT_EQ(st.slab_objects_in_use, 0u);
  // An empty slab is kept for the next allocation (hysteresis).
  EXPECT_EQ(st.slabs, 1u);

  // With a batch on the stack, AllocateOne takes the batch's last object.
  Range r = Remove(static_cast<int>(info().batch));
  Insert(r);
  void* h = central().AllocateOne();
  EXPECT_EQ(h, r.tail());
  EXPECT_FALSE(IsFree(h));
  EXPECT_EQ(central().Stats().transfer_objects, info().batch - 1u);
  central().FreeOne(h);
}

TEST_F(CentralFreeListTest, EmptySlabsBeyondTheKeptOnesGoBackToThePageHeap) {
  const size_t cap = info().capacity;
  std::vector<void*> objs;
  for (size_t i = 0; i < 4 * cap; i++) objs.push_back(central().AllocateOne());
  EXPECT_EQ(central().Stats().slabs, 4u);
  EXPECT_EQ(InUseBytes(), 4 * SlabBytes());
  for (void* p : objs) central().FreeOne(p);
  CentralStats st = central().Stats();
  EXPECT_EQ(st.slabs, static_cast<size_t>(CentralFreeList::kKeepEmptySlabs));
  EXPECT_EQ(st.slab_objects_in_use, 0u);
  EXPECT_EQ(st.span_free_objects, CentralFreeList::kKeepEmptySlabs * cap);
  EXPECT_EQ(InUseBytes(), CentralFreeList::kKeepEmptySlabs * SlabBytes());
}

TEST_F(CentralFreeListTest, DrainReturnsBatchesAndEmptySlabsToThePageHeap) {
  const int batch = static_cast<int>(info().batch);
  std::vector<Range> ranges;
  for (int i = 0; i < 10; i++) ranges.push_back(Remove(batch));  // 320 objects, 2 slabs
  void* live = central().AllocateOne();
  for (const Range& r : ranges) Insert(r);
  PartitionStats ps = part_->Stats();
  EXPECT_EQ(ps.small_transfer_bytes, 10u * batch * 64);
  EXPECT_EQ(ps.small_slabs, 2u);

  central().Drain();
  CentralStats st = central().Stats();
  EXPECT_EQ(st.transfer_objects, 0u);
  EXPECT_EQ(st.slab_objects_in_use, 1u);
  EXPECT_EQ(st.slabs, 1u) << "only the slab holding the live object stays";
  ps = part_->Stats();
  EXPECT_EQ(ps.small_transfer_bytes, 0u);
  EXPECT_EQ(ps.small_slabs, 1u);
  EXPECT_EQ(ps.pages.in_use_bytes, SlabBytes());

  central().FreeOne(live);
  EXPECT_EQ(central().Stats().slabs, 1u);  // kept for hysteresis
  central().Drain();                       // but not by Drain
  st = central().Stats();
  EXPECT_EQ(st.slabs, 0u);
  EXPECT_EQ(st.span_free_objects, 0u);
  EXPECT_EQ(InUseBytes(), 0u);
  // And the class still works afterwards.
  void* p = central().AllocateOne();
  ASSERT_NE(p, nullptr);
  central().FreeOne(p);
}

// Once the class hands nothing out for a reclaimer tick, the pages of a
// partly used slab that hold only objects free in the slab go back to the
// kernel; pages with an object in use (or in a batch) stay, contents and
// all, and the returned objects read as zero when handed out again.
TEST_F(CentralFreeListTest, IdleClassReturnsThePagesOfFreeObjectsInPartlyUsedSlabs) {
  const int cap = static_cast<int>(info().capacity);
  ASSERT_EQ(info().slab_pages, 4u);  // 64 objects a page
  Range all = Remove(cap);
  ASSERT_EQ(all.n, cap);
  uintptr_t start = GlobalPageMap().Get(all.head())->start;
  for (void* p : all.objs) {
    ASSERT_EQ(GlobalPageMap().Get(p)->start, start) << "one slab";
    memset(p, 0x5a, 64);
  }
  auto resident = [](uintptr_t page) {
    unsigned char v = 0;
    return mincore(reinterpret_cast<void*>(page), kPageSize, &v) == 0 && (v & 1);
  };
  // Kept: one object on the first page and one on the last.
  const int kept_a = 10, kept_b = 3 * 64 + 20;
  Range back{{}, 0};
  for (int i = 0; i < cap; i++) {
    if (i != kept_a && i != kept_b) back.objs.push_back(all.objs[static_cast<size_t>(i)]);
  }
  back.n = static_cast<int>(back.objs.size());
  Insert(back);
  central().ReleaseIdle(g_now);  // the batches go back to the slab; objects were handed out since
  for (int pg = 0; pg < 4; pg++) EXPECT_TRUE(resident(start + pg * kPageSize)) << pg;
  central().ReleaseIdle(g_now);  // idle for a tick: the free pages go
  EXPECT_TRUE(resident(start));
  EXPECT_FALSE(resident(start + kPageSize));
  EXPECT_FALSE(resident(start + 2 * kPageSize));
  EXPECT_TRUE(resident(start + 3 * kPageSize));
  for (int i : {kept_a, kept_b}) {
    const unsigned char* b = static_cast<const unsigned char*>(all.objs[static_cast<size_t>(i)]);
    for (int k = 0; k < 64; k++) ASSERT_EQ(b[k], 0x5a) << "an object in use lost its contents";
  }
  // Handed out again: the objects of the returned pages read as zero.
  Range again = Remove(cap - 2);
  ASSERT_EQ(again.n, cap - 2);
  for (void* p : again.objs) {
    uintptr_t page = (reinterpret_cast<uintptr_t>(p) - start) / kPageSize;
    if (page == 1 || page == 2) {
      for (int k = 0; k < 64; k++) ASSERT_EQ(static_cast<unsigned char*>(p)[k], 0);
    }
  }
  Insert(again);
  Range kept{{all.objs[kept_a], all.objs[kept_b]}, 2};
  Insert(kept);
  central().Drain();
}

// A class is idle only when nothing at all went in or out between two
// ticks. One served from its batches alone hands nothing out of its slabs,
// yet it is busy: the pages it will fault back in at once stay.
TEST_F(CentralFreeListTest, AClassServedFromItsBatchesBetweenTicksIsNotIdle) {
  const int cap = static_cast<int>(info().capacity);
  ASSERT_EQ(info().slab_pages, 4u);  // 64 objects a page
  Range all = Remove(cap);
  ASSERT_EQ(all.n, cap);
  uintptr_t start = GlobalPageMap().Get(all.head())->start;
  for (void* p : all.objs) memset(p, 0x5a, 64);
  auto resident = [](uintptr_t page) {
    unsigned char v = 0;
    return mincore(reinterpret_cast<void*>(page), kPageSize, &v) == 0 && (v & 1);
  };
  auto objects = [&](int first, int n) {
    Range r{{all.objs.begin() + first, all.objs.begin() + first + n}, n};
    return r;
  };
  // Pages 1 and 2 go back to the slab; page 0's first 32 objects become a
  // batch that stays (newer than the cutoff); the rest stays in use.
  Insert(objects(64, 128));
  central().ReleaseIdle(g_now);
  g_now += 100;
  Range batch = objects(0, 32);
  Insert(batch);
  central().ReleaseIdle(1000);  // traffic (the batch came in): not idle
  EXPECT_TRUE(resident(start + kPageSize));
  EXPECT_TRUE(resident(start + 2 * kPageSize));
  Range again = Remove(32);  // from the batch, not from the slab
  ASSERT_EQ(again.n, 32);
  Insert(again);
  central().ReleaseIdle(1000);
  EXPECT_TRUE(resident(start + kPageSize)) << "a busy class lost its free pages";
  EXPECT_TRUE(resident(start + 2 * kPageSize));
  central().ReleaseIdle(1000);  // nothing since: idle now
  EXPECT_FALSE(resident(start + kPageSize));
  EXPECT_FALSE(resident(start + 2 * kPageSize));
  EXPECT_TRUE(resident(start));
  central().Drain();
  Insert(objects(32, 32));
  Insert(objects(192, 64));
  central().Drain();
}

// The pages a class's batch stack grew into go back when the class is idle
// with no batch left.
TEST_F(CentralFreeListTest, AnIdleClassWithNoBatchReturnsItsBatchStackPages) {
  const void* stack = central().batch_stack();
  ASSERT_EQ(reinterpret_cast<uintptr_t>(stack) % kPageSize, 0u);
  ASSERT_EQ(sizeof(CentralFreeList::BatchStack) % kPageSize, 0u);
  const int batch = static_cast<int>(info().batch);
  const int kBatches = 14;  // 14 * 528 bytes: the stack's first two pages
  const size_t used = RoundUp(kBatches * sizeof(CentralFreeList::Batch), kPageSize);
  ASSERT_EQ(used, 2 * kPageSize);
  auto resident_pages = [&]() {
    unsigned char v[2] = {0, 0};
    if (mincore(const_cast<void*>(stack), used, v) != 0) return -1;
    return (v[0] & 1) + (v[1] & 1);
  };
  std::vector<Range> ranges;
  for (int i = 0; i < kBatches; i++) ranges.push_back(Remove(batch));
  for (const Range& r : ranges) Insert(r);
  EXPECT_EQ(resident_pages(), 2);
  central().ReleaseIdle(g_now);  // the batches go to the slabs; traffic since the last tick
  EXPECT_EQ(central().Stats().transfer_objects, 0u);
  EXPECT_EQ(resident_pages(), 2);
  central().ReleaseIdle(g_now);  // idle, no batch: the pages go
  EXPECT_EQ(resident_pages(), 0);
  // And the class still works.
  Range r = Remove(batch);
  Insert(r);
  EXPECT_EQ(central().Stats().transfer_objects, static_cast<size_t>(batch));
  EXPECT_EQ(resident_pages(), 1);
  central().Drain();
}

TEST_F(CentralFreeListTest, ReleaseIdleReturnsOnlyBatchesThatCameInByTheCutoff) {
  const int batch = static_cast<int>(info().batch);
  std::vector<Range> ranges;
  for (int i = 0; i < 6; i++) ranges.push_back(Remove(batch));
  void* live = central().AllocateOne();  // keeps one slab from becoming empty
  g_now = 1000;
  for (int i = 0; i < 3; i++) Insert(ranges[i]);
  g_now = 1100;
  Insert(ranges[3]);
  // Nothing came in by 999.
  central().ReleaseIdle(999);
  EXPECT_EQ(central().Stats().transfer_objects, 4u * batch);
  // The top batch is taken and given back later: it is new again.
  g_now = 1200;
  Range top = Remove(batch);
  EXPECT_EQ(top.objs, ranges[3].objs);
  Insert(top);
  Insert(ranges[4]);
  Insert(ranges[5]);
  // By 1100: only the three stamped 1000, at the bottom.
  central().ReleaseIdle(1100);
  CentralStats st = central().Stats();
  EXPECT_EQ(st.transfer_objects, 3u * batch);
  EXPECT_EQ(st.slab_objects_in_use, 3u * batch + 1);
  // What is left on the stack is the top three, newest on top.
  EXPECT_EQ(Remove(batch).objs, ranges[5].objs);
  EXPECT_EQ(Remove(batch).objs, ranges[4].objs);
  EXPECT_EQ(Remove(batch).objs, ranges[3].objs);
  g_now = 1300;
  Insert(ranges[3]);
  Insert(ranges[4]);
  Insert(ranges[5]);
  central().ReleaseIdle(1299);
  EXPECT_EQ(central().Stats().transfer_objects, 3u * batch);
  central().ReleaseIdle(1300);
  st = central().Stats();
  EXPECT_EQ(st.transfer_objects, 0u);
  EXPECT_EQ(st.slab_objects_in_use, 1u);
  central().FreeOne(live);
}

TEST_F(CentralFreeListTest, ReleaseIdleKeepsEmptySlabsWhileTheyAreReused) {
  const size_t cap = info().capacity;
  std::vector<void*> objs;
  g_now = 1000;
  for (size_t i = 0; i < 4 * cap; i++) objs.push_back(central().AllocateOne());
  for (void* p : objs) central().FreeOne(p);
  ASSERT_EQ(central().Stats().slabs, static_cast<size_t>(CentralFreeList::kKeepEmptySlabs));
  // Slabs were made (and so reused) at 1000: the kept ones stay.
  central().ReleaseIdle(999);
  EXPECT_EQ(central().Stats().slabs, static_cast<size_t>(CentralFreeList::kKeepEmptySlabs));
  EXPECT_EQ(InUseBytes(), CentralFreeList::kKeepEmptySlabs * SlabBytes());
  // An empty slab served an allocation at 1200: still kept at cutoff 1100.
  g_now = 1200;
  void* p = central().AllocateOne();
  central().FreeOne(p);
  central().ReleaseIdle(1100);
  EXPECT_EQ(central().Stats().slabs, static_cast<size_t>(CentralFreeList::kKeepEmptySlabs));
  // No reuse since 1200: the spare slabs go back too.
  central().ReleaseIdle(1200);
  CentralStats st = central().Stats();
  EXPECT_EQ(st.slabs, 0u);
  EXPECT_EQ(st.span_free_objects, 0u);
  EXPECT_EQ(InUseBytes(), 0u);
}

TEST_F(CentralFreeListTest, ReleaseIdleNeverTakesASlabWithObjectsInUse) {
  void* live = central().AllocateOne();
  central().ReleaseIdle(~uint64_t{0});
  central().ReleaseIdle(~uint64_t{0});
  CentralStats st = central().Stats();
  EXPECT_EQ(st.slabs, 1u);
  EXPECT_EQ(st.slab_objects_in_use, 1u);
  EXPECT_EQ(InUseBytes(), SlabBytes());
  central().FreeOne(live);
}

TEST_F(CentralFreeListTest, DoubleFreeOneIsReported) {
  void* p = central().AllocateOne();
  void* keep = central().AllocateOne();
  ASSERT_TRUE(p && keep);
  central().FreeOne(p);
  EXPECT_DEATH(central().FreeOne(p),
               std::string("nitroheap: double free at 0x[0-9a-f]+ in partition ") + part_->name() +
                   ": a 64-byte object that is already free");
  // The parent is unharmed and p is still free exactly once.
  EXPECT_EQ(central().Stats().slab_objects_in_use, 1u);
  central().FreeOne(keep);
}

// A fresh slab is handed out by bumping: objects past the bump were never
// handed out. Their free flags are set (the fast path's check), and the slab
// itself reports one that reaches it with its flag cleared (a corrupted flag
// or a batch entry forged by the program).
TEST_F(CentralFreeListTest, AnObjectPastTheBumpIsReportedAsAlreadyFree) {
  void* p = central().AllocateOne();
  ASSERT_NE(p, nullptr);
  void* never = static_cast<char*>(p) + 5 * 64;
  EXPECT_TRUE(IsFree(never));
  const std::string report = std::string("nitroheap: double free at 0x[0-9a-f]+ in partition ") +
                             part_->name() + ": a 64-byte object that is already free";
  EXPECT_DEATH(central().FreeOne(never), report);
  EXPECT_DEATH(
      {
        *GlobalPageMap().Get(never)->FreeFlag(never) = 0;
        central().FreeOne(never);
      },
      report);
  central().FreeOne(p);
}

TEST_F(CentralFreeListTest, AnEmptiedSlabIsHandedOutByBumpingAgain) {
  Range r = Remove(3);
  ASSERT_EQ(r.n, 3);
  Insert(r);
  central().Drain();  // the batch back to its slab: empty, kept or released
  Range again = Remove(3);
  ASSERT_EQ(again.n, 3);
  for (int i = 1; i < 3; i++) {
    EXPECT_EQ(static_cast<char*>(again.objs[i]) - static_cast<char*>(again.objs[i - 1]), 64);
  }
  // The fourth object of the slab is past the new bump.
  void* past = static_cast<char*>(again.objs[2]) + 64;
  EXPECT_DEATH(
      {
        *GlobalPageMap().Get(past)->FreeFlag(past) = 0;
        central().FreeOne(past);
      },
      "nitroheap: double free at 0x[0-9a-f]+ in partition");
  Insert(again);
  EXPECT_EQ(central().Stats().slab_objects_in_use, 3u);  // in the batch, not in the slab
}

TEST_F(CentralFreeListTest, FreeOneOfAnObjectWaitingInABatchIsReportedAtOnce) {
  Range r = Remove(4);
  ASSERT_EQ(r.n, 4);
  Insert(r);
  // Its free flag is set: freeing it is a double free, caught before it
  // could reach its slab while still in the batch.
  EXPECT_DEATH(central().FreeOne(r.objs[2]),
               std::string("nitroheap: double free at 0x[0-9a-f]+ in partition ") + part_->name() +
                   ": a 64-byte object that is already free");
}

TEST_F(CentralFreeListTest, AnObjectInABatchThatIsAlreadyFreeIsReportedWhenItReachesItsSlab) {
  Range r = Remove(4);
  ASSERT_EQ(r.n, 4);
  void* second = r.objs[1];
  // As if a thread cache had handed it out, the program freed it directly,
  // and it also stayed in the batch.
  *GlobalPageMap().Get(second)->FreeFlag(second) = 0;
  central().FreeOne(second);
  Insert(r);
  EXPECT_DEATH(central().Drain(), "nitroheap: double free at 0x[0-9a-f]+ in partition");
}

TEST_F(CentralFreeListTest, AForeignPointerInABatchIsReported) {
  alignas(16) static uintptr_t not_heap[4];
  void* entry = not_heap;
  static uint8_t flag = 1;
  uint8_t* entry_flag = &flag;
  central().InsertRange(&entry, &entry_flag, 1);
  EXPECT_DEATH(central().Drain(),
               std::string("nitroheap: corrupted free list at 0x[0-9a-f]+ in partition ") +
                   part_->name() + ": a free-list entry is not an object of the 64-byte class");
  // Take it out again before the partition drains at teardown.
  void* h;
  EXPECT_EQ(central().RemoveRange(&h, 1), 1);
  EXPECT_EQ(h, static_cast<void*>(not_heap));
}

// Thread caches by id (ThreadCache::id): each is served its own batches and
// slabs first, so two threads' objects do not share slabs, nor the cache
// lines of their free flags (span.h), while the heap has room.
class CacheAffinityTest : public CentralFreeListTest {
 protected:
  Range RemoveFor(uint32_t cache, int n) {
    Range r{std::vector<void*>(static_cast<size_t>(n)), 0};
    r.n = central().RemoveRange(r.objs.data(), n, cache);
    r.objs.resize(static_cast<size_t>(r.n));
    return r;
  }
  void InsertFor(uint32_t cache, const Range& r) {
    central().InsertRange(r.objs.data(), FlagsOf(r.objs).data(), r.n, cache);
  }
  static std::set<Span*> SlabsOf(const Range& r) {
    std::set<Span*> spans;
    for (void* p : r.objs) spans.insert(GlobalPageMap().Get(p));
    return spans;
  }
  static bool Disjoint(const std::set<Span*>& a, const std::set<Span*>& b) {
    for (Span* s : a) {
      if (b.count(s) != 0) return false;
    }
    return true;
  }
  int Batch() const { return static_cast<int>(info().batch); }
};

TEST_F(CacheAffinityTest, TwoCachesCarveTheirOwnSlabs) {
  Range a1 = RemoveFor(1, Batch());
  Range b1 = RemoveFor(2, Batch());
  Range a2 = RemoveFor(1, Batch());
  Range b2 = RemoveFor(2, Batch());
  ASSERT_EQ(a1.n + a2.n + b1.n + b2.n, 4 * Batch());
  std::set<Span*> a = SlabsOf(a1), b = SlabsOf(b1);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(Disjoint(a, b)) << "cache 2 carved cache 1's slab";
  // Each goes on in its own slab, where it left off.
  EXPECT_EQ(SlabsOf(a2), a);
  EXPECT_EQ(SlabsOf(b2), b);
  EXPECT_EQ(static_cast<char*>(a2.head()) - static_cast<char*>(a1.tail()), 64);
  EXPECT_EQ(central().Stats().slabs, 2u);
  for (const Range* r : {&a1, &a2, &b1, &b2}) Insert(*r);
}

TEST_F(CacheAffinityTest, ACacheGetsItsOwnBatchBackBeforeAnotherCachesNewerOne) {
  Range mine = RemoveFor(1, Batch());
  Range theirs = RemoveFor(2, Batch());
  InsertFor(1, mine);
  InsertFor(2, theirs);  // on top
  Range r = RemoveFor(1, Batch());
  EXPECT_EQ(r.objs, mine.objs);
  // The other batch stayed whole, and is still the one on top.
  EXPECT_EQ(central().Stats().transfer_objects, static_cast<size_t>(theirs.n));
  r = RemoveFor(2, Batch());
  EXPECT_EQ(r.objs, theirs.objs);
  Insert(mine);
  Insert(theirs);
}

TEST_F(CacheAffinityTest, TakingABatchFromTheMiddleKeepsTheOthersInOrder) {
  Range r[4];
  for (uint32_t i = 0; i < 4; i++) r[i] = RemoveFor(i + 1, Batch());
  for (uint32_t i = 0; i < 4; i++) InsertFor(i + 1, r[i]);
  EXPECT_EQ(RemoveFor(2, Batch()).objs, r[1].objs);
  // Nobody's requests (id 0) take the top: the others, newest first.
  EXPECT_EQ(Remove(Batch()).objs, r[3].objs);
  EXPECT_EQ(Remove(Batch()).objs, r[2].objs);
  EXPECT_EQ(Remove(Batch()).objs, r[0].objs);
  EXPECT_EQ(central().Stats().transfer_objects, 0u);
  for (const Range& x : r) Insert(x);
}

TEST_F(CacheAffinityTest, AnotherCachesBatchGoesBeforeANewSlab) {
  // A producer (cache 1) allocates, a consumer (cache 2) frees: the
  // consumer's batches feed the producer, whose slab is full, rather than
  // a new slab and a growing stack of batches.
  Range all = RemoveFor(1, static_cast<int>(info().capacity));
  ASSERT_EQ(all.n, static_cast<int>(info().capacity));
  Range freed{std::vector<void*>(all.objs.begin(), all.objs.begin() + Batch()), Batch()};
  InsertFor(2, freed);
  Range r = RemoveFor(1, Batch());
  EXPECT_EQ(r.objs, freed.objs);
  EXPECT_EQ(central().Stats().slabs, 1u);
  Range rest{std::vector<void*>(all.objs.begin() + Batch(), all.objs.end()), all.n - Batch()};
  Insert(rest);
  Insert(r);
}

TEST_F(CacheAffinityTest, ACacheCarvesItsSlabUntilOtherCachesBatchesPileUp) {
  Range mine = RemoveFor(1, Batch());
  std::vector<Range> theirs;
  for (int i = 0; i < CentralFreeList::kForeignBatchBacklog; i++) theirs.push_back(RemoveFor(2, Batch()));
  for (int i = 0; i + 1 < CentralFreeList::kForeignBatchBacklog; i++) InsertFor(2, theirs[static_cast<size_t>(i)]);
  // Fewer than the backlog wait: cache 1 carves on in its slab.
  Range carved = RemoveFor(1, Batch());
  EXPECT_EQ(SlabsOf(carved), SlabsOf(mine));
  EXPECT_EQ(central().Stats().transfer_objects,
            static_cast<size_t>(CentralFreeList::kForeignBatchBacklog - 1) * static_cast<size_t>(Batch()));
  // One more: cache 1 takes the newest of them.
  InsertFor(2, theirs.back());
  Range taken = RemoveFor(1, Batch());
  EXPECT_EQ(taken.objs, theirs.back().objs);
  for (int i = 0; i + 1 < CentralFreeList::kForeignBatchBacklog; i++) Remove(Batch());
  EXPECT_EQ(central().Stats().transfer_objects, 0u);
  for (Range& r : theirs) Insert(r);
  Insert(mine);
  Insert(carved);
}

TEST_F(CacheAffinityTest, AnExitedCachesBatchesAndSlabsServeOthersFirst) {
  Range gone = RemoveFor(1, Batch());
  Range live = RemoveFor(2, Batch());
  Range third = RemoveFor(3, Batch());
  Range gone_batch = RemoveFor(1, Batch());
  EXPECT_EQ(central().Stats().slabs, 3u);
  InsertFor(1, gone_batch);
  InsertFor(3, third);  // a live cache's batch, on top
  central().ForgetCache(1);
  // Cache 2 has no batch of its own: the exited cache's goes first.
  Range r = RemoveFor(2, Batch());
  EXPECT_EQ(r.objs, gone_batch.objs);
  // Cache 4 is new: it carves the exited cache's slab (no new slab).
  size_t slabs = central().Stats().slabs;
  Range fresh = RemoveFor(4, Batch());
  EXPECT_EQ(central().Stats().slabs, slabs);
  EXPECT_EQ(SlabsOf(fresh), SlabsOf(gone));
  for (const Range* x : {&gone, &live, &r, &fresh}) Insert(*x);
}

TEST_F(CacheAffinityTest, AClaimLapsesAfterTheLeaseWithoutCarving) {
  Range a = RemoveFor(1, Batch());
  // Cache 2 while cache 1's claim holds: a slab of its own.
  Range b = RemoveFor(2, Batch());
  EXPECT_TRUE(Disjoint(SlabsOf(a), SlabsOf(b)));
  // Cache 2 calls into the class kSlabLease times (its own batch, back and
  // forth) while cache 1 does nothing.
  Range spare = RemoveFor(2, Batch());
  for (uint32_t i = 0; i < CentralFreeList::kSlabLease / 2 + 1; i++) {
    InsertFor(2, spare);
    spare = RemoveFor(2, Batch());
  }
  // A claim is renewed by carving, not by trading batches: cache 2 carves
  // one object from its slab, and holds it again.
  Range one = RemoveFor(2, 1);
  EXPECT_EQ(SlabsOf(one), SlabsOf(b));
  // Cache 3 finds both slabs: cache 2's held, cache 1's lapsed.
  size_t slabs = central().Stats().slabs;
  Range c = RemoveFor(3, Batch());
  EXPECT_EQ(SlabsOf(c), SlabsOf(a));
  EXPECT_EQ(central().Stats().slabs, slabs);
  for (const Range* x : {&a, &b, &spare, &one, &c}) Insert(*x);
}

}  // namespace
}  // namespace nitro
