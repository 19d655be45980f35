// The movable heap through its engine API (core/movable.h), under the
// system malloc, so that it also runs under --config=tsan: handles, pins,
// resizing, compaction (what moves, what stays, the budget, the grace
// period), threads reading and writing through pinned and unpinned pointers
// while a compactor runs, and random operation sequences against a model.
#include "core/movable.h"

#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace nitro::movable {
namespace {

// ThreadSanitizer runs everything about ten times slower: fewer rounds
// there keep the test within a minute.
#ifdef __SANITIZE_THREAD__
constexpr int kSlowdown = 4;
#else
constexpr int kSlowdown = 1;
#endif

Stats Now() {
  Stats s;
  GetStats(&s);
  return s;
}

// Every byte of an object is a function of (tag, version): a half-copied or
// lost write shows as a mismatch.
void Fill(void* p, size_t n, uint32_t tag, uint32_t version) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<unsigned char>(tag * 31 + version * 7 + i);
}
bool Check(const void* p, size_t n, uint32_t tag, uint32_t version) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != static_cast<unsigned char>(tag * 31 + version * 7 + i)) return false;
  }
  return true;
}

TEST(MovableTest, SizeClasses) {
  EXPECT_EQ(ClassSizeFor(0), 16u);
  EXPECT_EQ(ClassSizeFor(1), 16u);
  EXPECT_EQ(ClassSizeFor(17), 32u);
  EXPECT_EQ(ClassSizeFor(129), 144u);
  EXPECT_EQ(ClassSizeFor(257), 272u);
  EXPECT_EQ(ClassSizeFor(513), 544u);
  EXPECT_EQ(ClassSizeFor(1025), 1152u);
  EXPECT_EQ(ClassSizeFor(8000), 8192u);
  EXPECT_EQ(ClassSizeFor(8192), 8192u);
  EXPECT_EQ(ClassSizeFor(8193), 0u);
}

TEST(MovableTest, AllocateReadWriteFree) {
  Handle h = Allocate(100);
  ASSERT_NE(h, 0u);
  EXPECT_EQ(h >> 32 & 1, 1u) << "live handles have an odd generation";
  EXPECT_GE(UsableSize(h), 100u);
  Fill(Pointer(h), 100, 1, 1);
  EXPECT_TRUE(Check(Pointer(h), 100, 1, 1));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(Pointer(h)) % 16, 0u);
  Free(h);
  Free(0);  // nothing
  Handle big = Allocate(100000);
  ASSERT_NE(big, 0u);
  EXPECT_GE(UsableSize(big), 100000u);
  Fill(Pointer(big), 100000, 2, 1);
  EXPECT_TRUE(Check(Pointer(big), 100000, 2, 1));
  Free(big);
}

TEST(MovableTest, ResizeKeepsContentsAndHandle) {
  Handle h = Allocate(40);
  Fill(Pointer(h), 40, 3, 1);
  void* before = Pointer(h);
  ASSERT_EQ(Resize(h, 48), 0);  // same slot
  EXPECT_EQ(Pointer(h), before);
  ASSERT_EQ(Resize(h, 5000), 0);  // moves
  EXPECT_GE(UsableSize(h), 5000u);
  EXPECT_TRUE(Check(Pointer(h), 40, 3, 1));
  ASSERT_EQ(Resize(h, 50000), 0);  // a large object
  EXPECT_TRUE(Check(Pointer(h), 40, 3, 1));
  ASSERT_EQ(Resize(h, 20), 0);  // back into a slab
  EXPECT_TRUE(Check(Pointer(h), 20, 3, 1));
  // Pinned: may not move.
  void* pinned = Pin(h);
  EXPECT_EQ(Resize(h, 4000), EBUSY);
  EXPECT_EQ(Pointer(h), pinned);
  EXPECT_EQ(Resize(h, 24), 0);  // fits where it is
  Unpin(h);
  Free(h);
}

// Many objects of one class, 90% freed at random: compaction empties all
// but the slabs the survivors need, keeps every byte, returns pages.
TEST(MovableTest, CompactionEmptiesSparseSlabs) {
  Quiescent();
  constexpr int kCount = 20000;
  constexpr size_t kSize = 96;
  std::vector<Handle> hs(kCount);
  for (int i = 0; i < kCount; i++) {
    hs[i] = Allocate(kSize);
    ASSERT_NE(hs[i], 0u);
    Fill(Pointer(hs[i]), kSize, i, 0);
  }
  std::mt19937 rng(7);
  std::vector<int> live;
  for (int i = 0; i < kCount; i++) {
    if (rng() % 10 == 0) live.push_back(i); else Free(hs[i]);
  }
  Stats before = Now();
  size_t moved = Compact(SIZE_MAX, 1000);
  Stats after = Now();
  EXPECT_GT(moved, 0u);
  EXPECT_EQ(after.bytes_moved - before.bytes_moved, moved);
  EXPECT_EQ(moved, (after.objects_moved - before.objects_moved) * kSize);
  EXPECT_GT(after.slabs_freed, before.slabs_freed);
  EXPECT_GT(after.pages_returned, before.pages_returned);
  size_t per_slab = kSlabBytes / kSize;
  size_t needed = (live.size() + per_slab - 1) / per_slab;
  // Other tests' objects may share a few slabs; this class needs `needed`.
  EXPECT_LE(after.slabs, before.slabs - (kCount / per_slab - needed) + 2);
  for (int i : live) EXPECT_TRUE(Check(Pointer(hs[i]), kSize, i, 0)) << i;
  for (int i : live) Free(hs[i]);
}

TEST(MovableTest, PinnedObjectsNeverMove) {
  Quiescent();
  std::vector<Handle> hs(4000);
  for (auto& h : hs) h = Allocate(200);
  std::vector<std::pair<Handle, void*>> pinned;
  for (size_t i = 0; i < hs.size(); i++) {
    if (i % 20 == 0) {
      pinned.push_back({hs[i], Pin(hs[i])});
      Pin(hs[i]);  // pins nest
    } else if (i % 20 != 1) {
      Free(hs[i]);
      hs[i] = 0;
    }
  }
  Stats before = Now();
  Compact(SIZE_MAX, 1000);
  EXPECT_GT(Now().pinned_skipped, before.pinned_skipped);
  for (auto& [h, p] : pinned) EXPECT_EQ(Pointer(h), p);
  for (auto& [h, p] : pinned) Unpin(h);
  Compact(SIZE_MAX, 1000);
  for (auto& [h, p] : pinned) EXPECT_EQ(Pointer(h), p) << "still pinned once";
  for (auto& [h, p] : pinned) Unpin(h);
  for (Handle h : hs) Free(h);
}

TEST(MovableTest, BudgetBoundsBytesMoved) {
  Quiescent();
  std::vector<Handle> hs(8000);
  for (auto& h : hs) h = Allocate(64);
  for (size_t i = 0; i < hs.size(); i++) {
    if (i % 8 != 0) {
      Free(hs[i]);
      hs[i] = 0;
    }
  }
  size_t moved = Compact(4096, 1000);
  EXPECT_LE(moved, 4096u);
  EXPECT_GT(moved, 0u);
  EXPECT_EQ(Compact(0, 1000), 0u);
  Compact(SIZE_MAX, 1000);
  for (Handle h : hs) Free(h);
}

// The time budget (compact_budget_us): copying stops when it is spent, the
// objects not yet copied stay where they are (intact, and movable by the
// next compaction), and time_budget_stops says so. A budget of 1 ns is
// spent before the first check (every 32 claims), so the outcome does not
// depend on the machine's speed.
TEST(MovableTest, TimeBudgetStopsCopying) {
  Quiescent();
  constexpr size_t kSize = 112;
  std::vector<Handle> hs(16000 / kSlowdown);
  for (size_t i = 0; i < hs.size(); i++) {
    hs[i] = Allocate(kSize);
    Fill(Pointer(hs[i]), kSize, static_cast<uint32_t>(i), 1);
  }
  for (size_t i = 0; i < hs.size(); i++) {
    if (i % 10 != 0) {
      Free(hs[i]);
      hs[i] = 0;
    }
  }
  Stats before = Now();
  size_t moved = Compact(SIZE_MAX, 1000, 1);
  Stats stopped = Now();
  EXPECT_EQ(stopped.time_budget_stops, before.time_budget_stops + 1);
  EXPECT_LE(stopped.objects_moved - before.objects_moved, 31u);
  EXPECT_EQ(moved, (stopped.objects_moved - before.objects_moved) * kSize);
  for (size_t i = 0; i < hs.size(); i += 10) EXPECT_TRUE(Check(Pointer(hs[i]), kSize, i, 1)) << i;
  // No time bound: the rest moves, and no stop is counted.
  size_t rest = Compact(SIZE_MAX, 1000);
  Stats after = Now();
  EXPECT_GT(rest, 31 * kSize);
  EXPECT_EQ(after.time_budget_stops, stopped.time_budget_stops);
  EXPECT_GT(after.slabs_freed, stopped.slabs_freed);
  // A budget too large to be spent changes nothing either.
  EXPECT_EQ(Compact(SIZE_MAX, 1000, uint64_t{60} * 1000000000u), 0u);
  EXPECT_EQ(Now().time_budget_stops, stopped.time_budget_stops);
  for (size_t i = 0; i < hs.size(); i += 10) EXPECT_TRUE(Check(Pointer(hs[i]), kSize, i, 1)) << i;
  for (Handle h : hs) Free(h);
}

// A thread that holds an unpinned pointer and never reaches a quiescent
// point keeps every object in place: compaction times out.
TEST(MovableTest, GracePeriodWaitsForEveryOnlineThread) {
  std::vector<Handle> hs(4000);
  for (auto& h : hs) h = Allocate(128);
  for (size_t i = 0; i < hs.size(); i++) {
    if (i % 10 != 0) {
      Free(hs[i]);
      hs[i] = 0;
    }
  }
  std::atomic<int> phase{0};
  void* held = nullptr;
  std::thread holder([&] {
    held = Pointer(hs[0]);  // online, and never quiescent until phase 2
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    Offline();
    phase.store(3);
  });
  while (phase.load() != 1) std::this_thread::yield();
  Stats before = Now();
  EXPECT_EQ(Compact(SIZE_MAX, 50), 0u);
  EXPECT_EQ(Now().grace_timeouts, before.grace_timeouts + 1);
  EXPECT_EQ(Pointer(hs[0]), held);
  phase.store(2);
  while (phase.load() != 3) std::this_thread::yield();
  EXPECT_GT(Compact(SIZE_MAX, 1000), 0u);
  holder.join();
  for (Handle h : hs) Free(h);
}

// fork while another thread's compaction waits for a grace period: the
// child (which has neither that thread nor the one holding a pointer)
// compacts on its own, and the parent's compaction finishes.
TEST(MovableTest, ForkDuringCompaction) {
  std::vector<Handle> hs(4000);
  for (size_t i = 0; i < hs.size(); i++) {
    hs[i] = Allocate(144);
    Fill(Pointer(hs[i]), 144, i, 0);
  }
  for (size_t i = 0; i < hs.size(); i++) {
    if (i % 10 != 0) {
      Free(hs[i]);
      hs[i] = 0;
    }
  }
  Offline();
  std::atomic<int> phase{0};
  std::thread holder([&] {
    Pointer(hs[0]);
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    Offline();
  });
  while (phase.load() != 1) std::this_thread::yield();
  std::thread compactor([] { Compact(SIZE_MAX, 10000); });
  usleep(200 * 1000);  // let it mark and start waiting (if not, the child just compacts first)
  pid_t pid = fork();
  if (pid == 0) {
    size_t moved = Compact(SIZE_MAX, 1000);
    for (size_t i = 0; i < hs.size(); i++) {
      if (hs[i] != 0 && !Check(Pointer(hs[i]), 144, i, 0)) _exit(2);
    }
    _exit(moved > 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  phase.store(2);
  holder.join();
  compactor.join();
  for (size_t i = 0; i < hs.size(); i++) {
    if (hs[i] != 0) {
      EXPECT_TRUE(Check(Pointer(hs[i]), 144, i, 0));
    }
    Free(hs[i]);
  }
}

// Worker threads own objects and, while a compactor runs, check and rewrite
// them through unpinned pointers (quiescent between operations) and pinned
// ones, and free and allocate to keep slabs sparse. Every object's bytes
// are checked at every access: a lost write or half-moved copy fails.
TEST(MovableTest, StressReadersWritersAndCompactor) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 3000;
  constexpr int kOps = 60000 / kSlowdown;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  Offline();  // this thread only waits from here: it must not hold up the compactor
  Stats before = Now();
  std::thread compactor([&] {
    while (!done.load()) {
      Compact(SIZE_MAX, 2000);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t + 1);
      struct Obj { Handle h; size_t size; uint32_t version; };
      std::vector<Obj> objs(kPerThread);
      for (int i = 0; i < kPerThread; i++) {
        size_t size = 16 + rng() % 600;
        objs[i] = {Allocate(size), size, 0};
        Fill(Pointer(objs[i].h), size, t * kPerThread + i, 0);
      }
      for (int op = 0; op < kOps; op++) {
        int i = rng() % kPerThread;
        Obj& o = objs[i];
        uint32_t tag = t * kPerThread + i;
        switch (rng() % 8) {
          case 0: {  // free and allocate again: sparse slabs
            Free(o.h);
            o.size = 16 + rng() % 600;
            o.h = Allocate(o.size);
            o.version = 0;
            Fill(Pointer(o.h), o.size, tag, 0);
            break;
          }
          case 1: {  // pinned: the address holds across quiescent points
            void* p = Pin(o.h);
            if (!Check(p, o.size, tag, o.version)) failures++;
            Quiescent();
            std::this_thread::yield();
            Fill(p, o.size, tag, ++o.version);
            if (Pointer(o.h) != p) failures++;
            Unpin(o.h);
            break;
          }
          default: {  // unpinned, valid until the next quiescent point
            void* p = Pointer(o.h);
            if (!Check(p, o.size, tag, o.version)) failures++;
            Fill(p, o.size, tag, ++o.version);
            break;
          }
        }
        if (op % 4 == 0) Quiescent();
      }
      Offline();
      for (int i = 0; i < kPerThread; i++) {
        if (!Check(Pointer(objs[i].h), objs[i].size, t * kPerThread + i, objs[i].version)) failures++;
        Free(objs[i].h);
      }
    });
  }
  for (auto& w : workers) w.join();
  done.store(true);
  compactor.join();
  EXPECT_EQ(failures.load(), 0);
  Stats after = Now();
  EXPECT_GT(after.objects_moved, before.objects_moved) << "the compactor moved objects while threads ran";
}

// Random sequences of every operation against a model of what each live
// handle holds; compaction in between; bad handles must die with the
// diagnostic.
TEST(MovableTest, FuzzAgainstModel) {
  struct Model { size_t size; uint32_t version; int pins; };
  for (uint32_t seed = 1; seed <= 8 / kSlowdown; seed++) {
    std::mt19937 rng(seed);
    std::map<Handle, Model> live;
    std::vector<Handle> dead;
    auto pick = [&]() {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      return it;
    };
    for (int op = 0; op < 4000; op++) {
      uint32_t r = rng() % 100;
      if (live.empty() || r < 30) {
        size_t size = rng() % 4 == 0 ? rng() % 20000 : rng() % 300;
        Handle h = Allocate(size);
        ASSERT_NE(h, 0u);
        EXPECT_EQ(live.count(h), 0u);
        Fill(Pointer(h), size, static_cast<uint32_t>(h), 0);
        live[h] = {size, 0, 0};
      } else if (r < 50) {
        auto it = pick();
        if (it->second.pins > 0) continue;
        ASSERT_TRUE(Check(Pointer(it->first), it->second.size, static_cast<uint32_t>(it->first), it->second.version));
        Free(it->first);
        dead.push_back(it->first);
        live.erase(it);
      } else if (r < 60) {
        auto it = pick();
        size_t size = rng() % 3 == 0 ? rng() % 20000 : rng() % 300;
        int rc = Resize(it->first, size);
        if (it->second.pins > 0 && rc == EBUSY) continue;
        ASSERT_EQ(rc, 0);
        size_t keep = std::min(size, it->second.size);
        ASSERT_TRUE(Check(Pointer(it->first), keep, static_cast<uint32_t>(it->first), it->second.version));
        it->second.size = size;
        Fill(Pointer(it->first), size, static_cast<uint32_t>(it->first), ++it->second.version);
      } else if (r < 70) {
        auto it = pick();
        Pin(it->first);
        it->second.pins++;
      } else if (r < 78) {
        auto it = pick();
        if (it->second.pins == 0) continue;
        Unpin(it->first);
        it->second.pins--;
      } else if (r < 95) {
        auto it = pick();
        ASSERT_GE(UsableSize(it->first), it->second.size);
        ASSERT_TRUE(Check(Pointer(it->first), it->second.size, static_cast<uint32_t>(it->first), it->second.version));
        Fill(Pointer(it->first), it->second.size, static_cast<uint32_t>(it->first), ++it->second.version);
      } else {
        Compact(rng() % 2 ? SIZE_MAX : rng() % 10000, 1000);
        for (auto& [h, m] : live) {
          ASSERT_TRUE(Check(Pointer(h), m.size, static_cast<uint32_t>(h), m.version)) << "seed " << seed;
        }
      }
    }
    for (auto& [h, m] : live) {
      for (int i = 0; i < m.pins; i++) Unpin(h);
      Free(h);
    }
    // A sample of the freed handles: each is stale (its slot may live again
    // under a newer generation, never under the old one).
    for (size_t i = 0; i < dead.size() && i < 3 && seed == 1; i++) {
      EXPECT_DEATH(Pointer(dead[i]), "stale handle at 0x[0-9a-f]+ in partition movable");
    }
  }
}

TEST(MovableDeathTest, BadHandlesAreReported) {
  Handle h = Allocate(10);
  EXPECT_DEATH(Pointer(h + 2), "invalid handle");                   // a generation never issued
  EXPECT_DEATH(Pointer(0x12345), "invalid handle");                // even generation: not a handle
  EXPECT_DEATH(Pointer((uint64_t{1} << 32) | 0x7fffffff), "invalid handle");  // index past the table
  EXPECT_DEATH(Unpin(h), "unpin of a handle that is not pinned");
  Pin(h);
  EXPECT_DEATH(Free(h), "free of a pinned handle");
  Unpin(h);
  Free(h);
  EXPECT_DEATH(Free(h), "stale handle");
  EXPECT_DEATH(Pin(h), "stale handle");
  EXPECT_DEATH(UsableSize(h), "stale handle");
  EXPECT_DEATH(Resize(h, 10), "stale handle");
}

}  // namespace
}  // namespace nitro::movable
