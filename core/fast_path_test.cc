// What the fast paths of core/heap.h rely on.
//
// The thread-pointer offsets a partition records when it is made
// (core/cache_slots.h) name this thread's slots of tls_caches in every
// thread: the main one, a new thread before and after its first
// allocation, and a forked child; and the fast paths that read a cache
// through them (PartitionMalloc, PartitionFree) use that thread's cache.
// Linked statically: the executable's TLS model (local-exec); the shared
// object's (initial-exec) is run by testing/lifecycle's partition_threads.
//
// The free fast paths' checks: a pointer at or above 2^kAddressBits, which
// PageMap::GetUnlessFar maps to the span of a lower address, never passes
// as an object's start, and the free flag test reads the flag.
#include "core/cache_slots.h"

#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include "core/heap.h"
#include "gtest/gtest.h"

namespace nitro {
namespace {

ThreadCache** SlotAt(intptr_t tp_offset) {
  return reinterpret_cast<ThreadCache**>(static_cast<char*>(__builtin_thread_pointer()) + tp_offset);
}

// What one thread saw of partition `p`'s slots.
struct Seen {
  bool offsets_name_slots = false;  // both offsets are this thread's slots
  ThreadCache* before = nullptr;    // read through the offset before the first allocation
  ThreadCache* after = nullptr;     // and after it
  ThreadCache* slot = nullptr;      // tls_caches.by_slot[id] after it
  uint64_t cached_before_free = 0;
  uint64_t cached_after_free = 0;
};

Seen Look(Partition* p, int cls) {
  Seen s;
  s.offsets_name_slots = SlotAt(p->alloc_cache_tp_offset()) == &tls_caches.by_slot[p->alloc_slot()] &&
                         SlotAt(p->free_cache_tp_offset()) == &tls_caches.by_slot[p->id()];
  s.before = CacheAtTpOffset(p->alloc_cache_tp_offset());
  void* a = PartitionMalloc(p, 64);
  s.after = CacheAtTpOffset(p->alloc_cache_tp_offset());
  s.slot = tls_caches.by_slot[p->id()];
  s.cached_before_free = s.after->cached_objects(cls);
  PartitionFree(p, a);
  s.cached_after_free = CacheAtTpOffset(p->free_cache_tp_offset())->cached_objects(cls);
  return s;
}

TEST(CacheSlots, EveryThreadReadsItsOwnSlots) {
  EnsureStarted();
  Partition* p = CreatePartition("cache-slots", DefaultPolicy());
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->alloc_slot(), p->id()) << "a thread-cached partition allocates from its own slot";
  const int cls = kSizeClasses.ClassFor(64);

  Seen main_seen = Look(p, cls);
  EXPECT_TRUE(main_seen.offsets_name_slots);
  EXPECT_TRUE(main_seen.before->is_sentinel()) << "no cache of a new partition yet";
  EXPECT_FALSE(main_seen.after->is_sentinel());
  EXPECT_EQ(main_seen.after, main_seen.slot);
  EXPECT_EQ(main_seen.cached_after_free, main_seen.cached_before_free + 1)
      << "the free went onto this thread's cache";

  // A new thread: nothing allocated in it before Look.
  Seen thread_seen;
  std::thread t([&] { thread_seen = Look(p, cls); });
  t.join();
  EXPECT_TRUE(thread_seen.offsets_name_slots);
  EXPECT_TRUE(thread_seen.before->is_sentinel());
  EXPECT_FALSE(thread_seen.after->is_sentinel());
  EXPECT_EQ(thread_seen.after, thread_seen.slot);
  EXPECT_NE(thread_seen.after, main_seen.after) << "each thread its own cache";
  EXPECT_EQ(thread_seen.cached_after_free, thread_seen.cached_before_free + 1);

  // A forked child inherits the main thread's cache and reads it at the
  // same offsets.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Seen child = Look(p, cls);
    bool ok = child.offsets_name_slots && child.before == main_seen.after && child.after == child.slot &&
              child.cached_after_free == child.cached_before_free + 1;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  DestroyPartition(p);
}

// A partition whose requests need adjusting allocates from slot 0, whose
// cache is always the sentinel (the slow path), and frees through its own.
TEST(CacheSlots, AdjustedPartitionAllocatesThroughTheSentinel) {
  EnsureStarted();
  PartitionPolicy policy = DefaultPolicy();
  policy.object_size = 48;
  Partition* p = CreatePartition("cache-slots-typed", policy);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->alloc_slot(), 0);
  EXPECT_EQ(SlotAt(p->alloc_cache_tp_offset()), &tls_caches.by_slot[0]);
  EXPECT_TRUE(CacheAtTpOffset(p->alloc_cache_tp_offset())->is_sentinel());
  EXPECT_EQ(SlotAt(p->free_cache_tp_offset()), &tls_caches.by_slot[p->id()]);
  void* a = PartitionMalloc(p, 48);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(CacheAtTpOffset(p->alloc_cache_tp_offset())->is_sentinel());
  PartitionFree(p, a);
  DestroyPartition(p);
}

TEST(FastFree, FarPointersNeverPassAsObjects) {
  EnsureStarted();
  for (size_t size : {size_t{16}, size_t{64}, size_t{1000}, size_t{4096}, kMaxSmallSize}) {
    void* p = Malloc(size);
    ASSERT_NE(p, nullptr);
    Span* s = GlobalPageMap().Get(p);
    ASSERT_NE(s, nullptr);
    uint8_t* flag = nullptr;
    EXPECT_TRUE(FastFreeObject(p, s, &flag)) << size;
    EXPECT_EQ(flag, &s->object_free[(reinterpret_cast<uintptr_t>(p) - s->start) / s->object_size]);
    // Every far alias of p finds p's span (the masked root index) and fails.
    for (uint64_t k : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{1} << 16, (uint64_t{1} << 17) - 1}) {
      void* far = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) + (k << kAddressBits));
      EXPECT_EQ(GlobalPageMap().GetUnlessFar(far), s) << size << " " << k;
      EXPECT_EQ(GlobalPageMap().Get(far), nullptr);
      EXPECT_FALSE(FastFreeObject(far, s, &flag)) << size << " " << k;
    }
    Free(p);
  }
}

// free's exact-start check on real slabs (the geometry the middle layer
// writes into the span when it carves one: ExactIndex's inverse and shift,
// the capacity): across the whole slab and a little either side, a pointer
// passes exactly when it is the start of an object the program holds.
TEST(FastFree, OnlyTheStartOfAHeldObjectPasses) {
  EnsureStarted();
  for (size_t size : {size_t{16}, size_t{48}, size_t{64}, size_t{80}, size_t{1000}, size_t{4096}, kMaxSmallSize}) {
    void* p = Malloc(size);
    ASSERT_NE(p, nullptr);
    Span* s = GlobalPageMap().Get(p);
    ASSERT_NE(s, nullptr);
    const uint64_t stride = s->object_size;
    int passed = 0;
    for (int64_t off = -256; off < static_cast<int64_t>(s->bytes()) + 256; off++) {
      void* q = reinterpret_cast<void*>(s->start + static_cast<uintptr_t>(off));
      bool start = off >= 0 && off % stride == 0 && static_cast<uint64_t>(off) / stride < s->capacity;
      bool held = start && __atomic_load_n(&s->object_free[off / stride], __ATOMIC_RELAXED) == 0;
      uint8_t* flag = nullptr;
      ASSERT_EQ(FastFreeObject(q, s, &flag), held) << "size " << size << " offset " << off;
      if (held) {
        EXPECT_EQ(flag, &s->object_free[off / stride]);
        passed++;
      }
    }
    EXPECT_GE(passed, 1) << size;  // p itself
    Free(p);
  }
}

// Free takes malloc's cache (tls_cache) first and the span's partition's
// slot only when the span word does not match that cache's base: either
// way the magazine is that of the span's partition, whichever partition
// is the thread's current one.
TEST(FastFree, MagazineIsThatOfTheSpansPartitionWhateverMallocsCache) {
  EnsureStarted();
  Partition* p = CreatePartition("fast-free-magazine", DefaultPolicy());
  ASSERT_NE(p, nullptr);
  const int cls = kSizeClasses.ClassFor(64);
  void* d = Malloc(64);
  void* a = PartitionMalloc(p, 64);
  ASSERT_NE(d, nullptr);
  ASSERT_NE(a, nullptr);
  ThreadCache* dc = tls_caches.by_slot[DefaultPartition()->id()];
  ThreadCache* pc = tls_caches.by_slot[p->id()];
  ASSERT_FALSE(dc->is_sentinel());
  ASSERT_FALSE(pc->is_sentinel());
  ASSERT_NE(dc, pc);
  EXPECT_EQ(dc->free_word_base(), DefaultPartition()->fast_free_base());
  EXPECT_EQ(pc->free_word_base(), p->fast_free_base());
  for (Partition* current : {static_cast<Partition*>(nullptr), p}) {
    Partition* before = SetThreadPartition(current);
    EXPECT_EQ(tls_cache, current == nullptr ? dc : pc);
    for (auto [object, owner] : {std::pair{d, dc}, std::pair{a, pc}}) {
      Span* s = GlobalPageMap().Get(object);
      ASSERT_NE(s, nullptr);
      uint64_t mag_offset = 0;
      uint8_t* flag = nullptr;
      // The magazine malloc pops for this class.
      EXPECT_EQ(FastFreeMagazine(object, s, &mag_offset, &flag), &owner->MagAtOffset(uintptr_t{kMagazineBytes} * cls));
      EXPECT_EQ(mag_offset / kMagazineBytes + 1, static_cast<uint64_t>(cls));
      EXPECT_EQ(s->FastFreeClass(), cls);
      EXPECT_EQ(flag, s->FreeFlag(object));
      // The sentinel's base matches no span's word.
      EXPECT_GE(s->FastFreeWordOf() - g_sentinel_cache.free_word_base(), kFastFreeSpan);
    }
    SetThreadPartition(before);
  }
  // Freed while p is current, each object lands in its own partition's cache.
  uint64_t in_default = dc->cached_objects(cls), in_p = pc->cached_objects(cls);
  Partition* before = SetThreadPartition(p);
  Free(d);
  Free(a);
  SetThreadPartition(before);
  EXPECT_EQ(dc->cached_objects(cls), in_default + 1);
  EXPECT_EQ(pc->cached_objects(cls), in_p + 1);
  DestroyPartition(p);
}

// Free (and PartitionFree) address the magazine with the page map's guess
// (PageMap::ClassHint) only when the span word confirms it: whatever guess a page has (every
// value the map may hold: an offset below kFastFreeSpan), an object goes to
// its own class's magazine in its own partition's cache, the guess is then
// right, and a span with a flight-recorder sample takes the slow path even
// under the guess its class would give.
TEST(FastFree, AGuessNeverPicksTheMagazineTheSpanWordDoesNotConfirm) {
  EnsureStarted();
  Partition* p = CreatePartition("fast-free-guess", DefaultPolicy());
  ASSERT_NE(p, nullptr);
  void* d = Malloc(200);
  void* a = PartitionMalloc(p, 200);
  ASSERT_NE(d, nullptr);
  ASSERT_NE(a, nullptr);
  const int cls = kSizeClasses.ClassFor(200);
  const uint64_t right = uint64_t{kMagazineBytes} * (cls - 1);
  ThreadCache* dc = tls_caches.by_slot[DefaultPartition()->id()];
  ThreadCache* pc = tls_caches.by_slot[p->id()];
  ASSERT_EQ(tls_cache, dc);
  for (auto [object, owner] : {std::pair{d, dc}, std::pair{a, pc}}) {
    Span* s = GlobalPageMap().Get(object);
    ASSERT_NE(s, nullptr);
    for (uint64_t guess = 0; guess < kFastFreeSpan; guess += 8) {
      GlobalPageMap().SetClassHint(object, guess);
      uint64_t mag_offset = ~uint64_t{0};
      uint8_t* flag = nullptr;
      ASSERT_EQ(FastFreeMagazine(object, s, &mag_offset, &flag), &owner->MagAtOffset(uintptr_t{kMagazineBytes} * cls))
          << "guess " << guess;
      ASSERT_EQ(mag_offset, right) << "guess " << guess;
      ASSERT_EQ(flag, s->FreeFlag(object));
      if (owner == dc) {
        EXPECT_EQ(GlobalPageMap().ClassHint(object), right) << "corrected";
      }
    }
    // A sampled span: its word is its class's offset plus kRecordedUnit.
    __atomic_fetch_add(&s->fast_free, kRecordedUnit, __ATOMIC_ACQ_REL);
    for (uint64_t guess = 0; guess < kFastFreeSpan; guess += 64) {
      GlobalPageMap().SetClassHint(object, guess);
      uint64_t mag_offset = 0;
      uint8_t* flag = nullptr;
      EXPECT_EQ(FastFreeMagazine(object, s, &mag_offset, &flag), nullptr) << "guess " << guess;
    }
    __atomic_fetch_sub(&s->fast_free, kRecordedUnit, __ATOMIC_ACQ_REL);
  }
  // And through free itself: each object lands in its own cache.
  uint64_t in_default = dc->cached_objects(cls), in_p = pc->cached_objects(cls);
  GlobalPageMap().SetClassHint(d, right + kMagazineBytes);
  GlobalPageMap().SetClassHint(a, right);
  Free(d);
  Free(a);
  EXPECT_EQ(dc->cached_objects(cls), in_default + 1);
  EXPECT_EQ(pc->cached_objects(cls), in_p + 1);
  // nitro_partition_free's own fast path takes the same guess.
  void* b = PartitionMalloc(p, 200);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(GlobalPageMap().Get(b)->FastFreeClass(), cls);
  uint64_t in_p_before = pc->cached_objects(cls);
  GlobalPageMap().SetClassHint(b, right + kMagazineBytes);
  PartitionFree(p, b);
  EXPECT_EQ(pc->cached_objects(cls), in_p_before + 1);
  EXPECT_EQ(GlobalPageMap().ClassHint(b), right) << "corrected";
  DestroyPartition(p);
}

TEST(FastFree, FlagSetReadsTheFlag) {
  uint8_t flags[3] = {0, 1, 0};
  EXPECT_FALSE(FlagSet(&flags[0]));
  EXPECT_TRUE(FlagSet(&flags[1]));
  flags[2] = 0xff;
  EXPECT_TRUE(FlagSet(&flags[2]));
}

}  // namespace
}  // namespace nitro
