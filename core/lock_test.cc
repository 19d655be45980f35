// SpinLock (mutual exclusion, TryLock, the contention counter), the lock
// registry that fork uses, and the lock audit (unregistered locks, rank
// order).
#include "core/lock.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <stdint.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/lock_registry.h"

namespace nitro {
namespace {

// Registered locks must outlive the process: globals, one per rank used.
SpinLock g_heap_init{LockRank::kHeapInit};
SpinLock g_partition{LockRank::kPartition};
SpinLock g_partition2{LockRank::kPartition};
SpinLock g_page_map{LockRank::kPageMap};
SpinLock g_meta_arena{LockRank::kMetaArena};
SpinLock g_never_registered{LockRank::kPartition};

void RegisterTestLocks() {
  for (SpinLock* l : {&g_heap_init, &g_partition, &g_partition2, &g_page_map, &g_meta_arena}) {
    RegisterLock(l);
  }
}

// Turns the audit on for one scope, as the lock_audit option does.
class Audit {
 public:
  Audit() {
    SetLockAuditor(IsRegisteredLock);
    g_lock_audit = true;
  }
  ~Audit() {
    g_lock_audit = false;
    SetLockAuditor(nullptr);
  }
};

TEST(SpinLock, MutualExclusionUnderEightThreads) {
  SpinLock lock{LockRank::kPartition};
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  // Plain, non-atomic data: only the lock keeps the increments whole (and
  // ThreadSanitizer sees any access the lock does not order).
  uint64_t counter = 0;
  uint64_t per_thread[kThreads] = {};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) sched_yield();
      for (int i = 0; i < kIterations; i++) {
        lock.Lock();
        uint64_t v = counter;
        if (i % 64 == 0) sched_yield();  // widen the window now and then
        counter = v + 1;
        per_thread[t]++;
        lock.Unlock();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kIterations);
  for (int t = 0; t < kThreads; t++) EXPECT_EQ(per_thread[t], uint64_t{kIterations});
  // Eight threads, yields inside the critical section: they collided.
  EXPECT_GT(lock.contended(), 0u);
  EXPECT_TRUE(lock.TryLock());
  lock.Unlock();
}

TEST(SpinLock, TryLock) {
  SpinLock lock{LockRank::kPageMap};
  EXPECT_EQ(lock.rank(), LockRank::kPageMap);
  EXPECT_TRUE(lock.TryLock());
  EXPECT_FALSE(lock.TryLock());
  bool other = true;
  std::thread([&] { other = lock.TryLock(); }).join();
  EXPECT_FALSE(other);
  lock.Unlock();
  std::thread([&] {
    other = lock.TryLock();
    if (other) lock.Unlock();
  }).join();
  EXPECT_TRUE(other);
  EXPECT_TRUE(lock.TryLock());
  lock.Unlock();
  // TryLock never waits, so it is never counted as contention.
  EXPECT_EQ(lock.contended(), 0u);
}

TEST(SpinLock, ContendedCountsEachLockThatHadToWait) {
  SpinLock lock{LockRank::kPartition};
  EXPECT_EQ(lock.contended(), 0u);
  lock.Lock();
  lock.Unlock();
  EXPECT_EQ(lock.contended(), 0u) << "an uncontended lock is not counted";
  int shared = 0;
  for (uint64_t waiters = 1; waiters <= 3; waiters++) {
    lock.Lock();
    std::vector<std::thread> threads;
    for (uint64_t w = 0; w < waiters; w++) {
      threads.emplace_back([&] {
        lock.Lock();  // held by the main thread: must wait
        shared++;
        lock.Unlock();
      });
    }
    // Each waiter counts itself as soon as its first attempt fails.
    uint64_t expected = waiters * (waiters + 1) / 2;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (lock.contended() < expected && std::chrono::steady_clock::now() < deadline) {
      sched_yield();
    }
    EXPECT_EQ(lock.contended(), expected) << "a waiter was not counted";
    shared += 100;
    lock.Unlock();
    for (auto& th : threads) th.join();
    EXPECT_EQ(lock.contended(), expected);
  }
  EXPECT_EQ(shared, 300 + 6);
}

TEST(SpinLock, ResetAfterForkReleasesAHeldLock) {
  SpinLock lock{LockRank::kPartition};
  lock.Lock();
  EXPECT_FALSE(lock.TryLock());
  lock.ResetAfterFork();
  EXPECT_TRUE(lock.TryLock());
  lock.Unlock();
}

TEST(LockRegistry, RegisterIsIdempotentAndIsRegisteredAnswers) {
  EXPECT_FALSE(IsRegisteredLock(&g_never_registered));
  RegisterTestLocks();
  // The table has room for 48 locks: registering again must not take more.
  for (int i = 0; i < 200; i++) RegisterTestLocks();
  for (const SpinLock* l :
       {&g_heap_init, &g_partition, &g_partition2, &g_page_map, &g_meta_arena}) {
    EXPECT_TRUE(IsRegisteredLock(l));
  }
  EXPECT_FALSE(IsRegisteredLock(&g_never_registered));
  SpinLock local{LockRank::kPartition};
  EXPECT_FALSE(IsRegisteredLock(&local));
}

TEST(LockRegistry, AcquireAllTakesEveryRegisteredLockAndReleaseAllGivesThemBack) {
  RegisterTestLocks();
  SpinLock* const registered[] = {&g_heap_init, &g_partition, &g_partition2, &g_page_map,
                                  &g_meta_arena};
  AcquireAllLocks();
  for (SpinLock* l : registered) {
    EXPECT_FALSE(l->TryLock()) << LockRankName(l->rank());
    // Held for every thread, not just this one.
    bool other = true;
    std::thread([&] { other = l->TryLock(); }).join();
    EXPECT_FALSE(other);
  }
  EXPECT_TRUE(g_never_registered.TryLock());
  g_never_registered.Unlock();
  ReleaseAllLocks();
  for (SpinLock* l : registered) {
    EXPECT_TRUE(l->TryLock()) << LockRankName(l->rank());
    l->Unlock();
  }
  // The fork child's step: every registered lock is free again.
  AcquireAllLocks();
  ResetAllLocksInChild();
  for (SpinLock* l : registered) {
    EXPECT_TRUE(l->TryLock());
    l->Unlock();
  }
}

TEST(LockRegistry, AcquireAllTakesLocksInRankOrder) {
  RegisterTestLocks();
  // With the audit on, taking them in any other order would abort.
  Audit audit;
  AcquireAllLocks();
  ReleaseAllLocks();
  AcquireAllLocks();
  ReleaseAllLocks();
}

TEST(LockAuditDeathTest, UnregisteredLockAborts) {
  RegisterTestLocks();
  {
    Audit audit;
    g_partition.Lock();  // registered: fine
    g_partition.Unlock();
  }
  EXPECT_DEATH(
      {
        Audit audit;
        g_never_registered.Lock();
      },
      "nitroheap: lock audit: lock 0x[0-9a-f]+ \\(rank partition\\) is not registered, so fork "
      "would not take it");
  EXPECT_DEATH(
      {
        Audit audit;
        if (g_never_registered.TryLock()) g_never_registered.Unlock();
      },
      "is not registered");
  // Without an auditor only the ranks are checked.
  g_lock_audit = true;
  g_never_registered.Lock();
  g_never_registered.Unlock();
  g_lock_audit = false;
}

TEST(LockAuditDeathTest, RanksOutOfOrderAbort) {
  RegisterTestLocks();
  {
    // In rank order, and two of the same rank nested: fine.
    Audit audit;
    g_heap_init.Lock();
    g_partition.Lock();
    g_partition2.Lock();
    g_page_map.Lock();
    g_meta_arena.Lock();
    g_meta_arena.Unlock();
    g_page_map.Unlock();
    g_partition2.Unlock();
    g_partition.Unlock();
    g_heap_init.Unlock();
    // Released locks no longer count: a lower rank after them is fine.
    g_page_map.Lock();
    g_page_map.Unlock();
    g_partition.Lock();
    g_partition.Unlock();
  }
  EXPECT_DEATH(
      {
        Audit audit;
        g_page_map.Lock();
        g_partition.Lock();
      },
      "nitroheap: lock audit: taking a partition lock while holding a page-map lock \\(ranks out "
      "of order\\)");
  EXPECT_DEATH(
      {
        Audit audit;
        g_partition.Lock();
        g_meta_arena.Lock();
        g_heap_init.Lock();
      },
      "taking a heap-init lock while holding a .* lock \\(ranks out of order\\)");
  // A lock taken with TryLock counts as held too.
  EXPECT_DEATH(
      {
        Audit audit;
        if (g_meta_arena.TryLock()) g_page_map.Lock();
      },
      "taking a page-map lock while holding a meta-arena lock");
}

TEST(LockRank, EveryRankHasAName) {
  EXPECT_STREQ(LockRankName(LockRank::kLibcResolve), "libc-resolve");
  EXPECT_STREQ(LockRankName(LockRank::kPartition), "partition");
  EXPECT_STREQ(LockRankName(LockRank::kMetaArena), "meta-arena");
  EXPECT_STREQ(LockRankName(LockRank::kCount), "?");
}

}  // namespace
}  // namespace nitro
