// ThreadCache over a partition of its own: the magazines (a delay line of
// `depth` entries, then a stack), the quarantine, the free flags outside the objects, the slow paths (Refill,
// Overflow, Flush), the counters and strict mode.
#include "core/thread_cache.h"

#include <gtest/gtest.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/page_map.h"
#include "core/partition.h"

namespace nitro {
namespace {

constexpr int64_t kNever = INT64_MAX;
constexpr size_t kNoBound = size_t{1} << 40;  // tcache_max_bytes never reached

// What Init derives per class (core/thread_cache.cc): the quarantine depth,
// and at most two batches above it (fewer when the class's cache bound is
// smaller).
uint32_t DepthFor(int cls, size_t quarantine) {
  const SizeClassInfo& info = kSizeClasses.info(cls);
  uint64_t depth = quarantine / 32 / info.size;
  if (depth > info.cache_max - info.batch) depth = info.cache_max - info.batch;
  return depth < 1 ? 1 : static_cast<uint32_t>(depth);
}
uint32_t MaxFor(int cls, size_t quarantine) {
  const SizeClassInfo& info = kSizeClasses.info(cls);
  uint32_t band = info.cache_max < 2 * info.batch ? info.cache_max : 2 * info.batch;
  return band + DepthFor(cls, quarantine);
}

class ThreadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    part_ = Partition::Create(::testing::UnitTest::GetInstance()->current_test_info()->name(),
                              PartitionConfig{});
    ASSERT_NE(part_, nullptr);
  }
  void TearDown() override { Partition::Destroy(part_); }

  std::unique_ptr<ThreadCache> NewCache(size_t quarantine, bool strict = false,
                                        size_t max_bytes = kNoBound, int64_t first_sample = kNever,
                                        int64_t first_record = kNever) {
    auto tc = std::make_unique<ThreadCache>();
    EXPECT_TRUE(tc->Init(part_, max_bytes, quarantine, strict, first_sample, first_record));
    return tc;
  }
  // malloc's and free's use of the cache (core/heap.h, core/heap.cc).
  static void* Alloc(ThreadCache& tc, int cls) {
    void* p = tc.Pop(cls);
    return p != nullptr ? p : tc.Refill(cls);
  }
  static void Free(ThreadCache& tc, int cls, void* p) {
    ASSERT_FALSE(IsFree(p)) << "freeing a free object";
    if (!tc.Push(cls, p, Flag(p))) tc.Overflow(cls, p);
  }
  // The same with malloc's and free's counting (AccountAlloc, AccountFree),
  // which the stack's growth reads (ThreadCache::Refill).
  static void* CountedAlloc(ThreadCache& tc, int cls) {
    void* p = Alloc(tc, cls);
    if (p != nullptr) {
      EXPECT_FALSE(tc.AccountAlloc(cls, kSizeClasses.size(cls))) << "no sampling here";
    }
    return p;
  }
  static void CountedFree(ThreadCache& tc, int cls, void* p) {
    Free(tc, cls, p);
    tc.AccountFree(cls);
  }
  // The object's free flag in its span (what free's fast path checks).
  static uint8_t* Flag(void* p) { return GlobalPageMap().Get(p)->FreeFlag(p); }
  static bool IsFree(void* p) { return *Flag(p) != 0; }

  Partition* part_ = nullptr;
};

TEST_F(ThreadCacheTest, EmptyCacheHasNothingToGiveAndNoRoom) {
  auto tc = NewCache(0);
  EXPECT_FALSE(tc->is_sentinel());
  for (int c = 1; c < kNumClasses; c++) {
    EXPECT_EQ(tc->Pop(c), nullptr) << c;
    EXPECT_EQ(tc->PopChecked(c, 0), nullptr) << c;
    EXPECT_EQ(tc->ListCount(c), 0u) << c;
  }
  EXPECT_EQ(tc->CachedBytes(), 0u);
  // Nothing was taken from the partition.
  EXPECT_EQ(part_->Stats().small_slabs, 0u);
}

TEST_F(ThreadCacheTest, RefillThenPopHandsOutDistinctAlignedObjectsOfTheClass) {
  auto tc = NewCache(0);
  for (size_t size :
       {size_t{16}, size_t{64}, size_t{1000}, size_t{5000}, size_t{40000}, kMaxSmallSize}) {
    int cls = kSizeClasses.ClassFor(size);
    const SizeClassInfo& info = kSizeClasses.info(cls);
    ASSERT_EQ(tc->Pop(cls), nullptr);
    void* first = tc->Refill(cls);
    ASSERT_NE(first, nullptr) << size;
    // One batch came in (a fresh slab always fills it) and one object left.
    EXPECT_EQ(tc->ListCount(cls), info.batch - 1) << size;
    std::vector<void*> got{first};
    std::set<void*> distinct{first};
    size_t n = 3 * info.batch + 1;
    while (got.size() < n) {
      void* p = Alloc(*tc, cls);
      ASSERT_NE(p, nullptr);
      got.push_back(p);
      distinct.insert(p);
    }
    EXPECT_EQ(distinct.size(), n) << "an object was handed out twice, size " << size;
    for (size_t i = 0; i < got.size(); i++) {
      void* p = got[i];
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kMinAlign, 0u);
      EXPECT_FALSE(IsFree(p)) << "an allocated object is still flagged free";
      PointerInfo pi;
      ASSERT_TRUE(Lookup(p, &pi));
      EXPECT_EQ(pi.partition, part_);
      EXPECT_EQ(pi.size_class, cls);
      EXPECT_EQ(pi.object_start, p) << "not the start of an object";
      EXPECT_EQ(pi.object_size, info.size);
      memset(p, static_cast<int>(i & 0xff), info.size);
    }
    // The objects do not overlap: every byte still holds its owner's value.
    for (size_t i = 0; i < got.size(); i++) {
      auto* b = static_cast<unsigned char*>(got[i]);
      for (size_t k = 0; k < info.size; k += 61) ASSERT_EQ(b[k], i & 0xff) << size;
      ASSERT_EQ(b[info.size - 1], i & 0xff);
    }
    // The middle layer counts handed-out and cached objects alike.
    EXPECT_EQ(part_->central(cls).Stats().slab_objects_in_use, n + tc->ListCount(cls));
  }
}

TEST_F(ThreadCacheTest, PopAndPushKeepTheFreeFlagAndWriteNothingIntoObjects) {
  auto tc = NewCache(0);
  int cls = kSizeClasses.ClassFor(48);
  void* a = Alloc(*tc, cls);
  void* b = Alloc(*tc, cls);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(IsFree(a));
  EXPECT_FALSE(IsFree(b));
  memset(a, 0xAB, 48);
  memset(b, 0xCD, 48);
  ASSERT_TRUE(tc->Push(cls, a, Flag(a)));
  EXPECT_TRUE(IsFree(a));
  ASSERT_TRUE(tc->Push(cls, b, Flag(b)));
  EXPECT_TRUE(IsFree(b));
  // No link, no marker: every byte of the freed objects is the program's.
  for (int i = 0; i < 48; i++) {
    ASSERT_EQ(static_cast<unsigned char*>(a)[i], 0xAB) << i;
    ASSERT_EQ(static_cast<unsigned char*>(b)[i], 0xCD) << i;
  }
  // Quarantine 0 is depth 1: b, the last free, waits in the delay line;
  // a, past the depth, is the stack's top and comes back first (LIFO beyond
  // the depth), with its flag cleared again. b never comes back while the
  // stack has anything.
  std::vector<void*> popped;
  while (void* p = tc->Pop(cls)) popped.push_back(p);
  ASSERT_FALSE(popped.empty());
  EXPECT_EQ(popped[0], a);
  EXPECT_EQ(std::find(popped.begin(), popped.end(), b), popped.end());
  EXPECT_TRUE(IsFree(b));
  EXPECT_EQ(tc->ListCount(cls), 1u);
  for (void* p : popped) EXPECT_FALSE(IsFree(p));
}

// The order: after frees x0..x(n-1), allocations take x(n-1-depth) first,
// then the older ones down to x0 (the most recently freed object past the
// depth each time), never one of the last `depth` freed; then each further
// free lets the object freed `depth` frees before it come back next.
TEST_F(ThreadCacheTest, TheObjectReusedIsTheMostRecentlyFreedPastTheDepth) {
  int cls = kSizeClasses.ClassFor(64);
  for (size_t quarantine : {size_t{0}, size_t{16} << 10, size_t{64} << 10, size_t{1} << 30}) {
    SCOPED_TRACE(quarantine);
    auto tc = NewCache(quarantine);
    const uint32_t depth = DepthFor(cls, quarantine);
    const uint32_t past = 10;  // well inside the stack's two batches
    std::vector<void*> x;
    for (uint32_t i = 0; i < depth + past; i++) x.push_back(Alloc(*tc, cls));
    tc->Flush();  // nothing cached: the frees below fill the delay line first
    for (void* p : x) Free(*tc, cls, p);
    ASSERT_EQ(tc->ListCount(cls), depth + past);
    for (uint32_t k = 0; k < past; k++) {
      void* q = tc->Pop(cls);
      ASSERT_EQ(q, x[past - 1 - k]) << k;
    }
    EXPECT_EQ(tc->Pop(cls), nullptr) << "the last `depth` frees wait in the delay line";
    EXPECT_EQ(tc->ListCount(cls), depth);
    // Steady state: free one, allocate one.
    std::vector<void*> order(x.begin() + past, x.end());  // still waiting, oldest first
    void* y = x[0];  // allocated again above
    for (int round = 0; round < 3 * static_cast<int>(depth) + 5; round++) {
      ASSERT_TRUE(tc->Push(cls, y, Flag(y)));
      order.push_back(y);
      void* q = tc->Pop(cls);
      ASSERT_EQ(q, order.front()) << "not the object freed `depth` frees before, round " << round;
      order.erase(order.begin());
      y = q;
    }
    Free(*tc, cls, y);
    for (uint32_t k = 1; k < past; k++) Free(*tc, cls, x[k]);
    tc->Flush();
  }
}

// The property the magazines exist for: a use-after-free write into a
// freed object (here a pointer to a stack buffer in every word of it) does
// not change what later allocations return.
TEST_F(ThreadCacheTest, UseAfterFreeWriteCannotRedirectAnAllocation) {
  for (size_t quarantine : {size_t{0}, size_t{64} << 10}) {
    auto tc = NewCache(quarantine);
    int cls = kSizeClasses.ClassFor(64);
    alignas(16) char stack_buffer[64];
    std::vector<void*> live;
    for (int i = 0; i < 100; i++) live.push_back(Alloc(*tc, cls));
    std::set<void*> expected(live.begin(), live.end());
    for (void* p : live) Free(*tc, cls, p);
    for (void* p : live) {
      void** words = static_cast<void**>(p);
      for (int w = 0; w < 8; w++) words[w] = stack_buffer;  // after free
    }
    // Every allocation is one of the freed objects or a fresh one of the
    // class, never the planted address.
    for (int i = 0; i < 300; i++) {
      void* q = Alloc(*tc, cls);
      ASSERT_NE(q, nullptr);
      ASSERT_NE(q, static_cast<void*>(stack_buffer));
      PointerInfo pi;
      ASSERT_TRUE(Lookup(q, &pi));
      ASSERT_EQ(pi.size_class, cls);
      ASSERT_EQ(pi.object_start, q);
      ASSERT_FALSE(IsFree(q));
    }
    tc->Flush();
  }
}

// One free then alloc/free pairs: the freed object comes back after exactly
// `depth` allocations of other objects of its class.
TEST_F(ThreadCacheTest, FreedObjectWaitsExactlyDepthAllocations) {
  int cls = kSizeClasses.ClassFor(64);
  ASSERT_EQ(kSizeClasses.size(cls), 64u);
  for (size_t quarantine : {size_t{0}, size_t{16} << 10, size_t{64} << 10, size_t{1} << 30}) {
    auto tc = NewCache(quarantine);
    uint32_t depth = DepthFor(cls, quarantine);
    void* x = Alloc(*tc, cls);
    ASSERT_NE(x, nullptr);
    // Take everything above the depth: the list now holds exactly `depth`.
    std::vector<void*> held;
    while (void* p = tc->Pop(cls)) held.push_back(p);
    ASSERT_EQ(tc->ListCount(cls), depth) << quarantine;
    size_t in_use = part_->central(cls).Stats().slab_objects_in_use;
    Free(*tc, cls, x);
    uint32_t others = 0;
    for (;;) {
      void* q = Alloc(*tc, cls);
      ASSERT_NE(q, nullptr);
      if (q == x) break;
      ASSERT_LT(others, 100000u) << "the freed object never came back";
      others++;
      Free(*tc, cls, q);
    }
    EXPECT_EQ(others, depth) << "quarantine " << quarantine;
    // All of it happened inside the list: no refill, no overflow.
    EXPECT_EQ(part_->central(cls).Stats().slab_objects_in_use, in_use);
    EXPECT_EQ(tc->ListCount(cls), depth);
    Free(*tc, cls, x);
    for (void* p : held) Free(*tc, cls, p);
    tc->Flush();
  }
}

// Random traffic (a fixed seed) with refills and overflows: no object is
// handed out twice, and a freed object comes back only after at least
// `depth` other objects of its class were freed after it
// (docs/security.md, "Quarantine").
TEST_F(ThreadCacheTest, QuarantineHoldsUnderRandomTraffic) {
  struct Case {
    size_t size;
    size_t quarantine;
    uint32_t depth;
  };
  const Case cases[] = {
      {64, 32 * 64 * 40, 40},               // two batches above the depth
      {16, size_t{4} << 20, 480},           // strict's quarantine: the cap
      {1024, size_t{64} << 10, 2},          // balanced's
      {16384, size_t{4} << 20, 8},          // a class with small batches
      {kMaxSmallSize, size_t{4} << 20, 1},  // one batch is the whole bound
  };
  for (const Case& k : cases) {
    int cls = kSizeClasses.ClassFor(k.size);
    auto tc = NewCache(k.quarantine);
    const uint64_t depth = DepthFor(cls, k.quarantine);
    ASSERT_EQ(depth, k.depth) << k.size;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    std::vector<void*> live;
    std::set<void*> live_set;
    std::map<void*, uint64_t> freed_at;  // object -> number of frees when it was freed
    uint64_t frees = 0, reuses = 0;
    for (int round = 0; round < 6; round++) {
      // Grow to a few hundred live objects, then shrink, with the other
      // operation mixed in.
      size_t target = (100 + 150 * static_cast<size_t>(round % 3)) / (k.size >= 16384 ? 8 : 1);
      for (int phase = 0; phase < 2; phase++) {
        for (int step = 0; step < 1500; step++) {
          bool grow = phase == 0 ? (XorShift64(&rng) % 4 != 0) : (XorShift64(&rng) % 4 == 0);
          if (grow || live.empty()) {
            void* p = Alloc(*tc, cls);
            ASSERT_NE(p, nullptr);
            ASSERT_TRUE(live_set.insert(p).second)
                << "an object was handed out twice, size " << k.size;
            live.push_back(p);
            auto it = freed_at.find(p);
            if (it != freed_at.end()) {
              ASSERT_GE(frees - it->second, depth)
                  << "reused before the quarantine ran out, size " << k.size;
              freed_at.erase(it);
              reuses++;
            }
          } else {
            size_t i = XorShift64(&rng) % live.size();
            void* p = live[i];
            live[i] = live.back();
            live.pop_back();
            live_set.erase(p);
            Free(*tc, cls, p);
            frees++;
            freed_at[p] = frees;
          }
          if (phase == 0 && live.size() >= target) break;
        }
      }
    }
    EXPECT_GT(reuses, 500u) << "the check above really ran, size " << k.size;
    for (void* p : live) Free(*tc, cls, p);
    tc->Flush();
  }
}

TEST_F(ThreadCacheTest, PushFailsWhenFullAndOverflowSendsTheNewestBatchToTheMiddleLayer) {
  int cls = kSizeClasses.ClassFor(64);
  const SizeClassInfo& info = kSizeClasses.info(cls);
  auto tc = NewCache(0);
  const uint32_t max = MaxFor(cls, 0);  // depth 1 plus two batches
  ASSERT_EQ(max, 1 + 2 * info.batch);
  // Allocated by another cache: tc never refills, so its stack keeps its
  // starting limit (GrowStack).
  auto src = NewCache(0);
  std::vector<void*> objs;
  for (uint32_t i = 0; i < max + 10; i++) objs.push_back(Alloc(*src, cls));
  src->Flush();
  ASSERT_EQ(tc->ListCount(cls), 0u);
  ASSERT_EQ(tc->stack_limit(cls), 2 * info.batch);

  // The delay line (depth 1) fills through the slow path only: the fast
  // push refuses until it is full, so each entry it moves out has waited.
  EXPECT_FALSE(tc->Push(cls, objs[0], Flag(objs[0])));
  EXPECT_FALSE(IsFree(objs[0])) << "a refused push leaves the flag alone";
  Free(*tc, cls, objs[0]);
  uint32_t pushed = 1;
  while (tc->Push(cls, objs[pushed], Flag(objs[pushed]))) {
    pushed++;
    ASSERT_LE(pushed, max) << "the list grew past its bound";
  }
  EXPECT_EQ(pushed, max);
  EXPECT_EQ(tc->ListCount(cls), max);

  CentralStats before = part_->central(cls).Stats();
  tc->Overflow(cls, objs[pushed]);
  CentralStats after = part_->central(cls).Stats();
  EXPECT_EQ(tc->ListCount(cls), max - info.batch + 1);
  EXPECT_EQ(after.transfer_objects, before.transfer_objects + info.batch);
  EXPECT_EQ(after.slab_objects_in_use, before.slab_objects_in_use);
  // The batch on top of the middle layer's stack is the top of the
  // magazine's stack: the batch of objects that left the delay line last
  // (objs[max - 1] is still in it), so nothing below has to move.
  void* batch[CentralFreeList::kMaxBatchObjects];
  uint8_t* flags[CentralFreeList::kMaxBatchObjects];
  ASSERT_EQ(part_->central(cls).RemoveRange(batch, static_cast<int>(info.batch), 0, flags),
            static_cast<int>(info.batch));
  std::set<void*> expected(objs.begin() + (max - 1 - info.batch), objs.begin() + (max - 1));
  for (uint32_t i = 0; i < info.batch; i++) {
    ASSERT_EQ(expected.erase(batch[i]), 1u) << i;
    ASSERT_EQ(flags[i], Flag(batch[i])) << i;  // the flags went with the objects
  }
  part_->central(cls).InsertRange(batch, flags, static_cast<int>(info.batch));
  // The fast push works again.
  EXPECT_TRUE(tc->Push(cls, objs[pushed + 1], Flag(objs[pushed + 1])));
}

// A class whose allocations outrun its stack grows the stack a batch per
// refill of an empty stack, up to the class's cache_max: a thread that
// allocates and then frees a burst of objects keeps them, and the next
// burst takes nothing from the middle layer and gives nothing back.
TEST_F(ThreadCacheTest, StackGrowsWithAllocationBurstsUpToTheClassBound) {
  const int cls = kSizeClasses.ClassFor(64);
  const SizeClassInfo& info = kSizeClasses.info(cls);
  const uint32_t start = 2 * info.batch;
  const uint32_t burst = start + 4 * info.batch;
  ASSERT_GT(info.cache_max, burst + info.batch);
  auto tc = NewCache(0);
  ASSERT_EQ(tc->stack_limit(cls), start);
  std::vector<void*> objs;
  for (uint32_t i = 0; i < burst; i++) objs.push_back(CountedAlloc(*tc, cls));
  EXPECT_GE(tc->stack_limit(cls), burst) << "a batch per refill";
  for (void* p : objs) CountedFree(*tc, cls, p);
  CentralStats before = part_->central(cls).Stats();
  for (int round = 0; round < 3; round++) {
    for (uint32_t i = 0; i < burst; i++) objs[i] = CountedAlloc(*tc, cls);
    EXPECT_EQ(std::set<void*>(objs.begin(), objs.end()).size(), burst);
    for (void* p : objs) CountedFree(*tc, cls, p);
  }
  CentralStats after = part_->central(cls).Stats();
  EXPECT_EQ(after.transfer_objects, before.transfer_objects) << "a batch went through the middle layer";
  EXPECT_EQ(after.slab_objects_in_use, before.slab_objects_in_use);
  // Up to cache_max, not past it.
  objs.clear();
  for (uint32_t i = 0; i < 2 * info.cache_max; i++) objs.push_back(CountedAlloc(*tc, cls));
  EXPECT_EQ(tc->stack_limit(cls), info.cache_max);
  for (void* p : objs) CountedFree(*tc, cls, p);
  EXPECT_LE(tc->ListCount(cls), info.cache_max + DepthFor(cls, 0));
  tc->Flush();
}

// A class whose frees keep up with its allocations (larson's threads:
// every allocation replaces an object freed) empties its stack now and
// then without a burst: it does not grow, or a cache of many threads would
// hold cache_max of every class.
TEST_F(ThreadCacheTest, StackDoesNotGrowWhenFreesKeepUp) {
  const int cls = kSizeClasses.ClassFor(64);
  const uint32_t start = 2 * kSizeClasses.info(cls).batch;
  auto tc = NewCache(0);
  std::deque<void*> live;
  for (int i = 0; i < 4000; i++) {
    // Two allocations for each free: the stack runs dry every few dozen
    // steps, with frees half the allocations since the last refill.
    live.push_back(CountedAlloc(*tc, cls));
    live.push_back(CountedAlloc(*tc, cls));
    CountedFree(*tc, cls, live.front());
    live.pop_front();
    ASSERT_EQ(tc->stack_limit(cls), start) << i;
  }
  for (void* p : live) CountedFree(*tc, cls, p);
  tc->Flush();
}

// Growth stops at the cache's byte bound (tcache_max_bytes), which the
// overflows that a grown stack no longer makes used to enforce: bursts in
// many classes leave the cache within its bound plus a batch.
TEST_F(ThreadCacheTest, StacksDoNotGrowPastTheCacheByteBound) {
  const size_t bound = 256 * 1024;
  auto tc = NewCache(0, false, bound);
  size_t most = 0, largest_batch = 0;
  for (size_t size : {512, 768, 1024, 1536, 2048, 3072, 4096, 8192}) {
    const int cls = kSizeClasses.ClassFor(size);
    const SizeClassInfo& info = kSizeClasses.info(cls);
    largest_batch = std::max<size_t>(largest_batch, size_t{info.batch} * info.size);
    for (int round = 0; round < 3; round++) {
      std::vector<void*> objs;
      for (uint32_t i = 0; i + 2 < info.cache_max; i++) objs.push_back(CountedAlloc(*tc, cls));
      for (void* p : objs) CountedFree(*tc, cls, p);
      most = std::max(most, tc->CachedBytes());
    }
  }
  EXPECT_LE(most, bound + largest_batch);
  tc->Flush();
}

// A cache at its byte bound refuses a burst's growth, and skips asking for
// the bursts right after (the check walks every class); once the cache
// shrinks, a flush here, the next burst grows again at once.
TEST_F(ThreadCacheTest, GrowthRefusedAtTheBoundResumesOnceTheCacheShrinks) {
  const size_t bound = 16 * 1024;
  auto tc = NewCache(0, false, bound);
  const int filler = kSizeClasses.ClassFor(1024);
  std::vector<void*> fill;
  for (int i = 0; i < 16; i++) fill.push_back(CountedAlloc(*tc, filler));
  for (void* p : fill) CountedFree(*tc, filler, p);
  ASSERT_GE(tc->CachedBytes(), bound - 1024);
  const int cls = kSizeClasses.ClassFor(64);
  const SizeClassInfo& info = kSizeClasses.info(cls);
  const uint32_t start = tc->stack_limit(cls);
  // Bursts held by the program: nothing is freed, so the cache stays at
  // its bound (the filler) and no overflow halves it.
  std::vector<void*> held;
  auto burst = [&] {
    for (uint32_t i = 0; i < start + 4 * info.batch; i++) held.push_back(CountedAlloc(*tc, cls));
    return tc->stack_limit(cls);
  };
  EXPECT_EQ(burst(), start) << "grew past the byte bound";
  EXPECT_EQ(burst(), start) << "grew past the byte bound";
  tc->Flush();
  ASSERT_EQ(tc->CachedBytes(), 0u);
  // The first refill after the flush (its stack is empty) grows the stack.
  held.push_back(CountedAlloc(*tc, cls));
  EXPECT_GT(tc->stack_limit(cls), start) << "a flushed cache did not grow at the next burst";
  for (void* p : held) CountedFree(*tc, cls, p);
  tc->Flush();
}

// capacity_bytes, the slow paths' bound that lets them skip summing every
// class, is never below CachedBytes, whatever the cache went through:
// bursts that grow stacks, overflows that shrink and halve them, free runs,
// large frees, flushes; with a quarantine, without one, and in strict.
TEST_F(ThreadCacheTest, CapacityBoundIsNeverBelowTheCachedBytes) {
  const int classes[] = {kSizeClasses.ClassFor(16), kSizeClasses.ClassFor(64), kSizeClasses.ClassFor(200),
                         kSizeClasses.ClassFor(1024), kSizeClasses.ClassFor(3000),
                         kSizeClasses.ClassFor(16384)};
  for (bool strict : {false, true}) {
    for (size_t quarantine : {size_t{0}, size_t{64} << 10}) {
      SCOPED_TRACE(testing::Message() << "strict " << strict << " quarantine " << quarantine);
      auto tc = NewCache(quarantine, strict, size_t{96} << 10);
      uint64_t rng = 0x9E3779B97F4A7C15ull;
      auto next = [&rng] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
      };
      std::map<int, std::vector<void*>> live;
      size_t most = 0;
      for (int step = 0; step < 20000; step++) {
        int cls = classes[next() % 6];
        uint64_t what = next() % 100;
        std::vector<void*>& mine = live[cls];
        if (what < 2) {
          // A burst: allocations outrunning frees (stacks grow).
          for (int i = 0; i < 300; i++) {
            void* p = strict ? tc->PopChecked(cls, 1) : tc->Pop(cls);
            if (p == nullptr) p = tc->Refill(cls);
            ASSERT_NE(p, nullptr);
            EXPECT_FALSE(tc->AccountAlloc(cls, kSizeClasses.size(cls)));
            mine.push_back(p);
          }
        } else if (what < 4) {
          // A run of frees (overflows, free runs).
          while (!mine.empty()) {
            void* p = mine.back();
            mine.pop_back();
            tc->PushChecked(cls, p, Flag(p));
            tc->AccountFree(cls);
          }
        } else if (what < 5) {
          tc->NoteLargeFree(size_t{1} << 20);
        } else if (what < 6) {
          tc->NoteLargeAllocation();
        } else if (what == 6 && next() % 8 == 0) {
          tc->Flush();
        } else if (what < 55) {
          void* p = strict ? tc->PopChecked(cls, 1) : tc->Pop(cls);
          if (p == nullptr) p = tc->Refill(cls);
          ASSERT_NE(p, nullptr);
          EXPECT_FALSE(tc->AccountAlloc(cls, kSizeClasses.size(cls)));
          mine.push_back(p);
        } else if (!mine.empty()) {
          size_t k = next() % mine.size();
          void* p = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          if (strict || !tc->Push(cls, p, Flag(p))) tc->PushChecked(cls, p, Flag(p));
          tc->AccountFree(cls);
        }
        size_t cached = tc->CachedBytes();
        most = std::max(most, cached);
        ASSERT_LE(cached, tc->capacity_bytes()) << "step " << step;
      }
      EXPECT_GT(most, size_t{32} << 10) << "the cache never filled: the bound was not tested";
      for (auto& [cls, objs] : live) {
        for (void* p : objs) tc->PushChecked(cls, p, Flag(p));
      }
      tc->Flush();
      EXPECT_EQ(tc->capacity_bytes(), 0u);
    }
  }
}

// A thread that mostly frees a class (a consumer of another thread's
// objects) overflows its stack again and again: every third overflow
// lowers a grown limit by a batch, back to two batches. Flush and a free
// run put it back at once.
TEST_F(ThreadCacheTest, GrownStackShrinksUnderOverflowsAndOnFlush) {
  const int cls = kSizeClasses.ClassFor(64);
  const SizeClassInfo& info = kSizeClasses.info(cls);
  const uint32_t start = 2 * info.batch;
  auto tc = NewCache(0);
  auto src = NewCache(0);
  std::vector<void*> mine;
  for (uint32_t i = 0; i < 6 * info.batch; i++) mine.push_back(CountedAlloc(*tc, cls));
  const uint32_t grown = tc->stack_limit(cls);
  ASSERT_GE(grown, start + 4 * info.batch);
  for (void* p : mine) CountedFree(*tc, cls, p);
  // The consumer: objects of another cache, freed here, never allocated here.
  std::vector<void*> theirs;
  uint32_t last = grown;
  for (int i = 0; i < 40 * static_cast<int>(info.batch); i++) {
    void* p = CountedAlloc(*src, cls);
    ASSERT_NE(p, nullptr);
    CountedFree(*tc, cls, p);
    ASSERT_LE(tc->stack_limit(cls), last) << "it only shrinks while nothing is allocated";
    ASSERT_GE(tc->stack_limit(cls), start);
    last = tc->stack_limit(cls);
  }
  EXPECT_EQ(tc->stack_limit(cls), start);
  EXPECT_LE(tc->ListCount(cls), start + DepthFor(cls, 0));
  // Grown again, then flushed: back to the start.
  mine.clear();
  for (uint32_t i = 0; i < 6 * info.batch; i++) mine.push_back(CountedAlloc(*tc, cls));
  ASSERT_GT(tc->stack_limit(cls), start);
  for (void* p : mine) CountedFree(*tc, cls, p);
  tc->Flush();
  EXPECT_EQ(tc->stack_limit(cls), start);
  EXPECT_EQ(tc->ListCount(cls), 0u);
  // A free run (more than the cache's bound sent onward since its last
  // refill) puts a grown stack back too: it flushes the cache when it
  // starts, and only a refill, which ends the run, grows a stack.
  auto bounded = NewCache(0, false, /*max_bytes=*/16 * 1024);
  mine.clear();
  for (uint32_t i = 0; i < 6 * info.batch; i++) mine.push_back(CountedAlloc(*bounded, cls));
  ASSERT_GT(bounded->stack_limit(cls), start);
  for (void* p : mine) CountedFree(*bounded, cls, p);
  for (int i = 0; i < 40 * static_cast<int>(info.batch) && !bounded->in_free_run(); i++) {
    CountedFree(*bounded, cls, CountedAlloc(*src, cls));
  }
  ASSERT_TRUE(bounded->in_free_run());
  CountedFree(*bounded, cls, CountedAlloc(*src, cls));  // a free-run overflow, at most a stack later
  for (uint32_t i = 0; i < 2 * info.batch && bounded->stack_limit(cls) != start; i++) {
    CountedFree(*bounded, cls, CountedAlloc(*src, cls));
  }
  EXPECT_EQ(bounded->stack_limit(cls), start);
  bounded->Flush();
  src->Flush();
}

// Resident pages among the whole pages of [p, p + bytes).
size_t ResidentWholePages(const void* p, size_t bytes) {
  uintptr_t begin = RoundUp(reinterpret_cast<uintptr_t>(p), kPageSize);
  uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kPageSize - 1);
  size_t resident = 0;
  for (uintptr_t page = begin; page < end; page += kPageSize) {
    unsigned char v = 0;
    if (mincore(reinterpret_cast<void*>(page), kPageSize, &v) == 0 && (v & 1)) resident++;
  }
  return resident;
}

// A flush (a free run's start, a thread's exit) moves the grown stacks back
// to the cache's first block and gives the pages they grew into back to
// the kernel; the next burst grows them again.
TEST_F(ThreadCacheTest, AFlushGivesTheGrownStacksPagesBack) {
  const int cls = kSizeClasses.ClassFor(64);
  const SizeClassInfo& info = kSizeClasses.info(cls);
  auto tc = NewCache(0);
  for (int round = 0; round < 2; round++) {
    std::vector<void*> mine;
    for (uint32_t i = 0; i < 12 * info.batch; i++) mine.push_back(CountedAlloc(*tc, cls));
    ASSERT_GT(tc->stack_limit(cls), 2 * info.batch) << "round " << round;
    ASSERT_NE(tc->grow_store(), nullptr);
    for (void* p : mine) CountedFree(*tc, cls, p);
    // 12 batches of entries, 16 bytes each: at least one whole page written.
    ASSERT_GT(ResidentWholePages(tc->grow_store(), tc->grow_store_bytes()), 0u) << "round " << round;
    EXPECT_GE(tc->ListCount(cls), 12 * info.batch);  // and the delay line's
    tc->Flush();
    EXPECT_EQ(tc->ListCount(cls), 0u);
    EXPECT_EQ(tc->stack_limit(cls), 2 * info.batch);
    EXPECT_EQ(ResidentWholePages(tc->grow_store(), tc->grow_store_bytes()), 0u) << "round " << round;
    // The next round's burst starts from the stack's first block and grows
    // into the grow store again.
  }
  tc->Flush();
}

TEST_F(ThreadCacheTest, OverflowPastTheByteBoundHalvesEveryList) {
  int big = kSizeClasses.ClassFor(64);
  int small = kSizeClasses.ClassFor(16);
  const uint32_t max = MaxFor(big, 0);
  const uint32_t after_batch = max - kSizeClasses.info(big).batch + 1;
  // What the cache holds right after the overflow below, before any halving.
  const size_t held = after_batch * 64 + 10 * 16;
  for (size_t bound : {held, held - 1}) {
    auto tc = NewCache(0, false, /*max_bytes=*/bound);
    auto src = NewCache(0);  // allocates the big ones: tc's big stack keeps its starting limit
    std::vector<void*> bigs, smalls;
    for (uint32_t i = 0; i < max + 1; i++) bigs.push_back(Alloc(*src, big));
    src->Flush();
    for (int i = 0; i < 10; i++) smalls.push_back(Alloc(*tc, small));
    tc->Flush();
    for (void* p : smalls) Free(*tc, small, p);
    ASSERT_EQ(tc->ListCount(small), 10u);
    tc->Overflow(big, bigs[0]);
    for (uint32_t i = 1; i < max; i++) {
      ASSERT_TRUE(tc->Push(big, bigs[i], Flag(bigs[i])));  // the fast path never checks the byte bound
    }
    ASSERT_GT(tc->CachedBytes(), bound);
    // A slow free with room in its stack (an object of a slab holding a
    // flight-recorder sample takes that path) pushes without the check.
    void* q = Alloc(*tc, small);
    ASSERT_NE(q, nullptr);
    tc->Overflow(small, q);
    EXPECT_EQ(tc->ListCount(small), 10u);
    EXPECT_EQ(tc->ListCount(big), max);
    // Full: one batch goes back. Then, only if the cache is over its bound,
    // every list returns half (rounded up) of what it holds.
    tc->Overflow(big, bigs[max]);
    if (bound == held) {
      EXPECT_EQ(tc->ListCount(big), after_batch);
      EXPECT_EQ(tc->ListCount(small), 10u);
      EXPECT_EQ(tc->CachedBytes(), held);
    } else {
      EXPECT_EQ(tc->ListCount(big), after_batch - (after_batch + 1) / 2);
      EXPECT_EQ(tc->ListCount(small), 5u);
      EXPECT_EQ(tc->CachedBytes(), tc->ListCount(big) * 64 + tc->ListCount(small) * 16);
    }
    tc->Flush();
  }
}

// A thread that only frees (more than its cache's bound returned since its
// last refill) empties its whole cache at the start of the run, quarantine
// included, and then each ring as it fills: what an idle thread keeps after
// freeing its heap is at most one ring per class. A refill ends the run.
TEST_F(ThreadCacheTest, AFreeRunEmptiesTheCacheAndARefillEndsIt) {
  const int cls = kSizeClasses.ClassFor(64);
  const int other = kSizeClasses.ClassFor(3000);
  const size_t quarantine = size_t{64} << 10;
  const size_t bound = size_t{16} << 10;
  ASSERT_GT(DepthFor(cls, quarantine), 1u);
  for (bool free_run_possible : {false, true}) {
    auto tc = NewCache(quarantine, false, free_run_possible ? bound : kNoBound);
    std::vector<void*> objs;
    for (int i = 0; i < 2000; i++) objs.push_back(Alloc(*tc, cls));  // 125 KiB
    void* o = Alloc(*tc, other);
    ASSERT_NE(o, nullptr);
    tc->Flush();
    Free(*tc, other, o);  // waits in its ring (the quarantine)
    EXPECT_FALSE(tc->in_free_run());
    for (void* p : objs) Free(*tc, cls, p);
    SCOPED_TRACE(free_run_possible ? "bounded" : "unbounded");
    if (free_run_possible) {
      EXPECT_TRUE(tc->in_free_run());
      EXPECT_EQ(tc->ListCount(other), 0u);  // emptied when the run started
      EXPECT_LT(tc->ListCount(cls), MaxFor(cls, quarantine));
    } else {
      EXPECT_FALSE(tc->in_free_run());
      EXPECT_EQ(tc->ListCount(other), 1u);
      EXPECT_GE(tc->ListCount(cls), MaxFor(cls, quarantine) - kSizeClasses.info(cls).batch);
    }
    // Every object is free, in the magazine or in the middle layer, or in
    // a slab that every object left and that went back to the page heap.
    EXPECT_EQ(part_->central(cls).Stats().slab_objects_in_use,
              part_->central(cls).Stats().transfer_objects + tc->ListCount(cls));
    for (void* p : objs) {
      const Span* s = GlobalPageMap().Get(p);
      EXPECT_TRUE(s == nullptr || s->state != SpanState::kSlab || IsFree(p));
    }
    // An allocation that needs the middle layer ends the run.
    void* again = Alloc(*tc, other);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(tc->in_free_run());
    Free(*tc, other, again);
    tc->Flush();
  }
}

// In a free run an overflowing magazine returns its stack but keeps its
// delay line full: the quarantine still holds, and the frees after the
// overflow go on the fast path again. (It used to empty the delay line,
// which refills one slow-path free at a time: `depth` slow frees per
// `stack_max` fast ones.) The flag handed to Overflow is the object's.
TEST_F(ThreadCacheTest, AFreeRunKeepsTheDelayLineFull) {
  const int cls = kSizeClasses.ClassFor(16);
  const size_t quarantine = size_t{64} << 10;
  const uint32_t depth = DepthFor(cls, quarantine);
  const uint32_t band = MaxFor(cls, quarantine) - depth;
  ASSERT_GT(depth, band);  // the old behaviour made most frees slow here
  auto tc = NewCache(quarantine, false, size_t{16} << 10);
  std::vector<void*> objs;
  for (int i = 0; i < 8000; i++) objs.push_back(Alloc(*tc, cls));  // 125 KiB
  tc->Flush();
  size_t slow_in_run = 0, frees_in_run = 0;
  for (void* p : objs) {
    ASSERT_FALSE(IsFree(p));
    bool in_run = tc->in_free_run();
    if (!tc->Push(cls, p, Flag(p))) {
      tc->Overflow(cls, p, Flag(p));
      if (in_run) slow_in_run++;
    }
    if (in_run) frees_in_run++;
    ASSERT_TRUE(IsFree(p));
  }
  ASSERT_TRUE(tc->in_free_run());
  ASSERT_GT(frees_in_run, 6000u);
  // One slow free per stack's worth of fast ones, and one delay line's
  // filling after the flush that started the run.
  EXPECT_LE(slow_in_run, frees_in_run / band + depth + 1);
  EXPECT_GE(tc->ListCount(cls), depth);
  tc->Flush();
  EXPECT_EQ(tc->ListCount(cls), 0u);
}

// Large frees count toward a free run too, each for at most an eighth of
// the bound: one free, however large, is not a run (a thread freeing a
// large block after each allocation would flush its cache, and cut its
// quarantine short, every time). In a run each large free empties the
// cache; a large allocation ends the run.
TEST_F(ThreadCacheTest, LargeFreesInAFreeRunEmptyTheCache) {
  const int cls = kSizeClasses.ClassFor(200);
  const size_t bound = size_t{1} << 20;
  auto tc = NewCache(size_t{64} << 10, false, bound);
  std::vector<void*> objs;
  for (int i = 0; i < 20; i++) objs.push_back(Alloc(*tc, cls));
  for (void* p : objs) Free(*tc, cls, p);
  ASSERT_GE(tc->ListCount(cls), 20u);
  tc->NoteLargeFree(bound * 64);
  EXPECT_FALSE(tc->in_free_run()) << "one free is not a run";
  EXPECT_GT(tc->ListCount(cls), 0u);
  for (size_t i = 1; i < ThreadCache::kLargeFreesPerRun - 1; i++) tc->NoteLargeFree(bound);
  EXPECT_FALSE(tc->in_free_run());
  EXPECT_GT(tc->ListCount(cls), 0u);
  tc->NoteLargeFree(bound);
  EXPECT_TRUE(tc->in_free_run());
  EXPECT_EQ(tc->ListCount(cls), 0u);
  tc->NoteLargeAllocation();
  EXPECT_FALSE(tc->in_free_run());
  // Small large frees add up as before: the bound in smaller pieces.
  tc->NoteLargeFree(bound / 16);
  EXPECT_FALSE(tc->in_free_run());
  for (int i = 0; i < 16; i++) tc->NoteLargeFree(bound / 16);
  EXPECT_TRUE(tc->in_free_run());
  tc->NoteLargeAllocation();
  // A large free after each allocation never starts one.
  for (int i = 0; i < 100; i++) {
    tc->NoteLargeFree(bound * 4);
    tc->NoteLargeAllocation();
  }
  void* again = Alloc(*tc, cls);
  Free(*tc, cls, again);
  tc->NoteLargeFree(bound * 4);
  EXPECT_FALSE(tc->in_free_run());
  EXPECT_GT(tc->ListCount(cls), 0u);
}

// Flush visits only the classes that may hold objects (each large free in
// a run flushes), so what any class takes after a flush, by a free or by a
// refill, must make the next large free of a run empty it again.
TEST_F(ThreadCacheTest, EachLargeFreeInARunEmptiesWhatCameInSinceTheLast) {
  const int classes[] = {kSizeClasses.ClassFor(200), kSizeClasses.ClassFor(3000),
                         kNumClasses - 1};
  const size_t bound = size_t{16} << 20;
  auto tc = NewCache(size_t{64} << 10, false, bound);
  std::map<int, std::vector<void*>> objs;
  for (int cls : classes) {
    for (int i = 0; i < 4; i++) objs[cls].push_back(Alloc(*tc, cls));
  }
  auto all_empty = [&] {
    for (int cls : classes) {
      if (tc->ListCount(cls) != 0) return false;
    }
    return true;
  };
  auto start_run = [&] {
    for (size_t i = 0; i < ThreadCache::kLargeFreesPerRun; i++) tc->NoteLargeFree(bound + kPageSize);
  };
  start_run();
  ASSERT_TRUE(tc->in_free_run());
  EXPECT_TRUE(all_empty());
  tc->NoteLargeFree(kPageSize);  // nothing came in: nothing to do
  EXPECT_TRUE(all_empty());
  // Frees after the flush fill the delay lines (a slow path).
  for (int cls : classes) {
    for (void* p : objs[cls]) Free(*tc, cls, p);
    ASSERT_GT(tc->ListCount(cls), 0u);
  }
  tc->NoteLargeFree(kPageSize);
  EXPECT_TRUE(all_empty()) << "freed since the last flush";
  // A refill of one class ends the run and fills its magazine.
  for (int cls : classes) {
    SCOPED_TRACE(cls);
    void* again = Alloc(*tc, cls);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(tc->in_free_run());
    ASSERT_GT(tc->ListCount(cls), 0u);
    start_run();
    ASSERT_TRUE(tc->in_free_run());
    EXPECT_TRUE(all_empty()) << "refilled since the last flush";
    // Every object is back in the middle layer but the one still held.
    EXPECT_EQ(part_->central(cls).Stats().slab_objects_in_use,
              part_->central(cls).Stats().transfer_objects + 1);
    Free(*tc, cls, again);
    tc->Flush();
  }
}

TEST_F(ThreadCacheTest, FlushReturnsEverythingToTheMiddleLayer) {
  auto tc = NewCache(size_t{64} << 10);
  const int classes[] = {kSizeClasses.ClassFor(16), kSizeClasses.ClassFor(200),
                         kSizeClasses.ClassFor(3000)};
  std::map<int, std::vector<void*>> objs;
  for (int cls : classes) {
    for (int i = 0; i < 150; i++) objs[cls].push_back(Alloc(*tc, cls));
  }
  for (int cls : classes) {
    for (void* p : objs[cls]) Free(*tc, cls, p);
  }
  size_t expected_bytes = 0;
  std::map<int, size_t> cached, transfer_before;
  for (int cls : classes) {
    cached[cls] = tc->ListCount(cls);
    EXPECT_GT(cached[cls], 0u);
    expected_bytes += cached[cls] * kSizeClasses.size(cls);
    transfer_before[cls] = part_->central(cls).Stats().transfer_objects;
  }
  EXPECT_EQ(tc->CachedBytes(), expected_bytes);

  tc->Flush();
  EXPECT_EQ(tc->CachedBytes(), 0u);
  for (int c = 1; c < kNumClasses; c++) EXPECT_EQ(tc->ListCount(c), 0u) << c;
  for (int cls : classes) {
    CentralStats st = part_->central(cls).Stats();
    EXPECT_EQ(st.transfer_objects, transfer_before[cls] + cached[cls]) << cls;
    // Nothing is in use any more: every object out of a slab is in a batch.
    EXPECT_EQ(st.slab_objects_in_use, st.transfer_objects) << cls;
  }
  // Nothing was lost: draining the middle layer empties every slab.
  part_->ReleaseFreeMemory();
  PartitionStats ps = part_->Stats();
  EXPECT_EQ(ps.small_slabs, 0u);
  EXPECT_EQ(ps.pages.in_use_bytes, 0u);
  // The cache still works after a flush.
  void* p = Alloc(*tc, classes[0]);
  EXPECT_NE(p, nullptr);
}

TEST_F(ThreadCacheTest, CountersCountExactly) {
  auto tc = NewCache(0);
  int a = kSizeClasses.ClassFor(32), b = kSizeClasses.ClassFor(4096);
  ThreadCache::Counters c0 = tc->ReadCounters();
  for (int i = 0; i < kNumClasses; i++) {
    EXPECT_EQ(c0.allocs[i], 0u);
    EXPECT_EQ(c0.frees[i], 0u);
  }
  for (int i = 0; i < 5; i++) EXPECT_FALSE(tc->AccountAlloc(a, 32));
  for (int i = 0; i < 3; i++) EXPECT_FALSE(tc->AccountAlloc(b, 4096));
  for (int i = 0; i < 4; i++) tc->AccountFree(a);
  tc->UnaccountAlloc(a);  // served by the guarded pool instead
  ThreadCache::Counters c = tc->ReadCounters();
  for (int i = 0; i < kNumClasses; i++) {
    uint64_t allocs = i == a ? 4 : (i == b ? 3 : 0);
    uint64_t frees = i == a ? 4 : 0;
    EXPECT_EQ(c.allocs[i], allocs) << i;
    EXPECT_EQ(c.frees[i], frees) << i;
  }
  // Pop and Push themselves count nothing (malloc and free count).
  void* p = Alloc(*tc, a);
  Free(*tc, a, p);
  EXPECT_EQ(tc->ReadCounters().allocs[a], 4u);
  EXPECT_EQ(tc->ReadCounters().frees[a], 4u);
}

TEST_F(ThreadCacheTest, SamplingCountdownsFireWhenTheyRunOut) {
  int cls = kSizeClasses.ClassFor(64);
  // One in 3 allocations for the guarded pool: due at the 4th.
  auto tc = NewCache(0, false, kNoBound, /*first_sample=*/3, /*first_record=*/kNever);
  EXPECT_FALSE(tc->AccountAlloc(cls, 64));
  EXPECT_FALSE(tc->AccountAlloc(cls, 64));
  EXPECT_FALSE(tc->AccountAlloc(cls, 64));
  EXPECT_FALSE(tc->GuardDue());
  EXPECT_TRUE(tc->AccountAlloc(cls, 64));
  EXPECT_TRUE(tc->GuardDue());
  EXPECT_FALSE(tc->RecordDue());
  tc->ResetSampleCountdown(kNever);
  EXPECT_FALSE(tc->AccountAlloc(cls, 64));
  EXPECT_EQ(tc->ReadCounters().allocs[cls], 5u);

  // The flight recorder counts bytes: 100 bytes run out at the second
  // 64-byte allocation.
  auto tr = NewCache(0, false, kNoBound, kNever, /*first_record=*/100);
  EXPECT_FALSE(tr->AccountAlloc(cls, 64));
  EXPECT_TRUE(tr->AccountAlloc(cls, 64));
  EXPECT_TRUE(tr->RecordDue());
  EXPECT_FALSE(tr->GuardDue());
  tr->ResetRecordCountdown(1000);
  EXPECT_FALSE(tr->RecordBytes(999));
  EXPECT_TRUE(tr->RecordBytes(2));
}

TEST_F(ThreadCacheTest, StrictBlocksBothFastPathsButNotTheCheckedOnes) {
  int cls = kSizeClasses.ClassFor(64);
  auto tc = NewCache(0, /*strict=*/true);
  EXPECT_EQ(tc->Pop(cls), nullptr);
  ASSERT_TRUE(tc->RefillList(cls));
  uint32_t n = tc->ListCount(cls);
  ASSERT_EQ(n, kSizeClasses.info(cls).batch);
  // Plenty to give, plenty of room: the fast forms still refuse.
  EXPECT_EQ(tc->Pop(cls), nullptr);
  void* p = tc->PopChecked(cls, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(IsFree(p));
  EXPECT_EQ(tc->ListCount(cls), n - 1);
  EXPECT_FALSE(tc->Push(cls, p, Flag(p)));
  EXPECT_FALSE(IsFree(p)) << "a refused push leaves the flag alone";
  EXPECT_EQ(tc->ListCount(cls), n - 1);
  tc->PushChecked(cls, p);
  EXPECT_EQ(tc->ListCount(cls), n);
  EXPECT_TRUE(IsFree(p));
  for (int c = 1; c < kNumClasses; c++) {
    EXPECT_EQ(tc->Pop(c), nullptr) << c;
    EXPECT_FALSE(tc->Push(c, p, Flag(p))) << c;
  }
  // The real limits still apply on the checked path: depth 1 holds one back.
  std::vector<void*> got;
  while (void* q = tc->PopChecked(cls, 0)) got.push_back(q);
  EXPECT_EQ(got.size(), n - 1);
  EXPECT_EQ(tc->ListCount(cls), 1u);
  // Refill works too (it pops with the checked form).
  void* r = tc->Refill(cls);
  EXPECT_NE(r, nullptr);
  tc->PushChecked(cls, r);
  for (void* q : got) tc->PushChecked(cls, q);
  tc->Flush();
  EXPECT_EQ(tc->CachedBytes(), 0u);
}

TEST_F(ThreadCacheTest, StrictRandomPickTakesOneOfTheFirstReusableObjects) {
  int cls = kSizeClasses.ClassFor(64);
  auto tc = NewCache(0, /*strict=*/true);
  std::vector<void*> objs;
  for (int i = 0; i < 40; i++) objs.push_back(part_->central(cls).AllocateOne());
  // A model of the magazine: pushes go through a delay line of depth 1 onto
  // a stack; a pick removes one of the top min(4, stack size), and the top
  // entry takes its place (one move, whatever the window).
  std::deque<void*> delay;
  std::vector<void*> stack;
  auto held = [&](void* p) {
    return std::find(delay.begin(), delay.end(), p) != delay.end() ||
           std::find(stack.begin(), stack.end(), p) != stack.end();
  };
  int not_top = 0;
  for (int round = 0; round < 20; round++) {
    for (void* p : objs) {
      if (held(p)) continue;
      tc->PushChecked(cls, p);
      delay.push_back(p);
      if (delay.size() > 1) {
        stack.push_back(delay.front());
        delay.pop_front();
      }
    }
    for (int k = 0; k < 30; k++) {
      void* p = tc->PopChecked(cls, 4);
      ASSERT_NE(p, nullptr);
      ASSERT_NE(p, delay.front()) << "the delay line's object was handed out";
      auto it = std::find(stack.begin(), stack.end(), p);
      ASSERT_NE(it, stack.end()) << "not an object of the stack";
      size_t from_top = static_cast<size_t>(stack.end() - 1 - it);
      ASSERT_LT(from_top, std::min<size_t>(4, stack.size()));
      if (from_top != 0) not_top++;
      *it = stack.back();
      stack.pop_back();
      ASSERT_EQ(tc->ListCount(cls), stack.size() + delay.size());
    }
  }
  // 600 picks: the top alone has a chance of 4^-600 or so.
  EXPECT_GT(not_top, 0);
  // The stack is still in the model's order after all the picks.
  while (void* p = tc->PopChecked(cls, 0)) {
    ASSERT_FALSE(stack.empty());
    ASSERT_EQ(p, stack.back());
    stack.pop_back();
  }
  EXPECT_TRUE(stack.empty());
  EXPECT_EQ(tc->ListCount(cls), 1u);  // the depth
}

bool RejectAll(void*, int) { return false; }

TEST_F(ThreadCacheTest, StrictValidatorReportsABadEntry) {
  int cls = kSizeClasses.ClassFor(64);
  auto tc = NewCache(0, /*strict=*/true);
  ASSERT_TRUE(tc->RefillList(cls));
  EXPECT_DEATH(tc->PopChecked(cls, 0, RejectAll),
               std::string("nitroheap: corrupted free list at 0x[0-9a-f]+ in partition ") +
                   part_->name() + ": a thread-cache entry points outside the 64-byte class");
}

}  // namespace
}  // namespace nitro
