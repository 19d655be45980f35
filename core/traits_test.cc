// Partitions with thread caches and trait policies, through the engine's
// own entry points (so it also runs under --config=tsan): the flight
// recorder never samples a TELEMETRY_SILENT partition, and destroying a
// partition drops the objects other threads cache of it.
#include "core/traits.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/heap.h"
#include "core/numa.h"
#include "gtest/gtest.h"

namespace nitro {
namespace {

std::atomic<int> g_samples[Partition::kMaxPartitions];

void OnSample(void*, size_t, size_t, size_t, Partition* partition) {
  g_samples[partition->id()].fetch_add(1, std::memory_order_relaxed);
}

// NITROHEAP_OPTIONS (BUILD): profile_rate=1, so every allocation is due for
// a flight-recorder sample.
TEST(Traits, TelemetrySilentIsNeverRecorded) {
  static const TelemetryHooks hooks = {OnSample, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  EnsureStarted();
  SetTelemetryHooks(&hooks);
  Partition* silent = PartitionForTraits(kTraitTelemetrySilent);
  Partition* loud = PartitionForTraits(kTraitPersistent);
  Partition* silent_strict = PartitionForTraits(kTraitTelemetrySilent | kTraitSecureStrict);
  ASSERT_NE(silent, nullptr);
  ASSERT_NE(loud, nullptr);
  ASSERT_NE(silent_strict, nullptr);
  for (Partition* p : {silent, loud, silent_strict}) {
    std::vector<void*> blocks;
    for (int i = 0; i < 3000; i++) blocks.push_back(PartitionMalloc(p, 16 + (i % 100) * 8));
    for (int i = 0; i < 20; i++) blocks.push_back(AllocateIn(p, 100000, 0, false));
    for (int i = 0; i < 20; i++) blocks.push_back(AllocateIn(p, 64, 256, true));
    for (void* b : blocks) Free(b);
  }
  SetTelemetryHooks(nullptr);
  EXPECT_EQ(g_samples[silent->id()].load(), 0);
  EXPECT_EQ(g_samples[silent_strict->id()].load(), 0);
  EXPECT_GT(g_samples[loud->id()].load(), 1000);
}

TEST(Traits, PoliciesFollowTheTraits) {
  EnsureStarted();
  PartitionPolicy strict = PolicyForTraits(kTraitSecureStrict);
  EXPECT_TRUE(strict.strict);
  EXPECT_GE(strict.quarantine_bytes, size_t{4} << 20);
  PartitionPolicy low = PolicyForTraits(kTraitLowLatency);
  EXPECT_FALSE(low.strict);
  EXPECT_EQ(low.quarantine_bytes, 0u);
  EXPECT_EQ(low.cache_max_bytes, 4 * DefaultPolicy().cache_max_bytes);
  EXPECT_EQ(PolicyForTraits(kTraitSharedRw).min_align, 64u);
  EXPECT_FALSE(PolicyForTraits(kTraitPersistent).decay);
  EXPECT_TRUE(PolicyForTraits(kTraitPersistent).huge_pages);
  EXPECT_FALSE(PolicyForTraits(kTraitTelemetrySilent).record);
  // MOVABLE names the movable heap's partition, alone: handles only.
  EXPECT_EQ(TraitsRefused(kTraitMovable), nullptr);
  EXPECT_NE(TraitsRefused(kTraitMovable | kTraitSharedRw), nullptr);
  EXPECT_TRUE(PolicyForTraits(kTraitMovable).handles_only);
  EXPECT_FALSE(PolicyForTraits(kTraitSharedRw).handles_only);
  EXPECT_NE(TraitsRefused(kTraitSecureStrict | kTraitLowLatency), nullptr);
  EXPECT_EQ(TraitsRefused(kTraitSecureStrict | kTraitSharedRw | kTraitPersistent), nullptr);
  EXPECT_EQ(PartitionForTraits(kTraitMovable | kTraitPersistent), nullptr);
  EXPECT_EQ(PartitionForTraits(kTraitAll + 1), nullptr);
}

// A thread's scoped partition: Malloc's fast path serves from it.
TEST(Partitions, ThreadPartitionTakesMallocsFastPath) {
  EnsureStarted();
  Partition* p = CreatePartition("scoped-engine", DefaultPolicy());
  ASSERT_NE(p, nullptr);
  Partition* before = SetThreadPartition(p);
  EXPECT_EQ(before, DefaultPartition());
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; i++) blocks.push_back(Malloc(16 + (i % 50) * 16));
  EXPECT_EQ(SetThreadPartition(before), p);
  for (void* b : blocks) {
    EXPECT_EQ(PartitionOf(b), p);
    Free(b);
  }
  void* d = Malloc(64);
  EXPECT_EQ(PartitionOf(d), DefaultPartition());
  Free(d);
  DestroyPartition(p);
}

TEST(Partitions, DestroyDropsOtherThreadsCaches) {
  EnsureStarted();
  constexpr int kThreads = 3, kRounds = 4;
  std::atomic<Partition*> current{CreatePartition("engine-dying", DefaultPolicy())};
  std::atomic<int> phase{0}, done{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; round++) {
        while (phase.load() < 2 * round) std::this_thread::yield();
        Partition* part = current.load();
        for (int i = 0; i < 2000; i++) {
          void* q = PartitionMalloc(part, 32 + (i % 8) * 16);
          if (PartitionOf(q) != part) wrong++;
          Free(q);  // kept in this thread's cache of part
        }
        done++;
        while (phase.load() < 2 * round + 1) std::this_thread::yield();
      }
    });
  }
  for (int round = 0; round < kRounds; round++) {
    phase = 2 * round;
    while (done.load() != kThreads * (round + 1)) std::this_thread::yield();
    DestroyPartition(current.load());
    current = CreatePartition("engine-dying", DefaultPolicy());
    ASSERT_NE(current.load(), nullptr);
    phase = 2 * round + 1;
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  DestroyPartition(current.load());
}

// SECURE_STRICT's "more guarded sampling": its partition guards one
// allocation in sample_rate / kSecureStrictSampleDivisor, malloc one in
// sample_rate, counted by the guarded pool's statistics. At sample_rate=10000
// (set here: balanced's default is 100000) the countdown is uniform in
// [0, 2 * rate), so 200000 allocations give malloc about 20 samples (at most
// 40) and the strict partition about 320 (at least ~160).
TEST(Traits, SecureStrictGetsMoreGuardedSamples) {
  EnsureStarted();
  ASSERT_EQ(CurrentOptions().sample_rate, 100000u) << "balanced's default";
  ASSERT_EQ(SetOptionAtRunTime("sample_rate", 10000), 0);
  Partition* strict = PartitionForTraits(kTraitSecureStrict);
  ASSERT_NE(strict, nullptr);
  EXPECT_EQ(strict->policy().guarded_sample_divisor, kSecureStrictSampleDivisor);
  constexpr int kAllocations = 200000;
  auto guarded_during = [](auto allocate, auto release) {
    uint64_t before = GuardedCounts().allocations;
    for (int i = 0; i < kAllocations; i++) release(allocate());
    return GuardedCounts().allocations - before;
  };
  // Countdowns drawn at the default rate run out within 2 * 100000
  // allocations; from then on both draw at the new rate.
  guarded_during([] { return Malloc(64); }, [](void* q) { Free(q); });
  guarded_during([&] { return PartitionMalloc(strict, 64); }, [&](void* q) { PartitionFree(strict, q); });
  uint64_t by_malloc = guarded_during([] { return Malloc(64); }, [](void* q) { Free(q); });
  int in_strict = 0;
  uint64_t by_strict = guarded_during(
      [&] {
        void* q = PartitionMalloc(strict, 64);
        if (PartitionOf(q) == strict) in_strict++;  // guarded samples too
        return q;
      },
      [&](void* q) { PartitionFree(strict, q); });
  EXPECT_EQ(in_strict, kAllocations);
  EXPECT_GE(by_malloc, 5u);
  EXPECT_LE(by_malloc, 60u);
  EXPECT_GE(by_strict, 150u);
  EXPECT_GT(by_strict, 4 * by_malloc);
  // A partition the program creates takes no guarded samples (it is
  // destroyed and reset in bulk; the pool is process-wide).
  Partition* plain = CreatePartition("unsampled", DefaultPolicy());
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(guarded_during([&] { return PartitionMalloc(plain, 64); }, [&](void* q) { PartitionFree(plain, q); }),
            0u);
  DestroyPartition(plain);
  EXPECT_EQ(SetOptionAtRunTime("sample_rate", 100000), 0);
}

// Every partition id has a slot in each thread's cache table: 100
// partitions (ids past 32 among them) used from several threads never take
// the middle layer's per-call path (AllocateOne/FreeOne, under the class's
// lock), which is what a partition without thread caches takes every call.
TEST(Partitions, HundredPartitionsAreAllThreadCached) {
  EnsureStarted();
  constexpr int kPartitions = 100, kThreads = 4, kRounds = 3;
  std::vector<Partition*> parts;
  for (int i = 0; i < kPartitions; i++) {
    char name[32];
    snprintf(name, sizeof(name), "many-%d", i);
    parts.push_back(CreatePartition(name, DefaultPolicy()));
    ASSERT_NE(parts.back(), nullptr);
    EXPECT_TRUE(parts.back()->thread_cached());
  }
  int max_id = 0;
  for (Partition* p : parts) max_id = p->id() > max_id ? p->id() : max_id;
  EXPECT_GE(max_id, 100);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::vector<void*> held;
      for (int round = 0; round < kRounds; round++) {
        for (int k = 0; k < kPartitions; k++) {
          Partition* p = parts[(k + t * 7) % kPartitions];
          for (int i = 0; i < 50; i++) {
            void* q = PartitionMalloc(p, 16 + (i % 16) * 16);
            if (q == nullptr || PartitionOf(q) != p) wrong++;
            held.push_back(q);
          }
          for (void* q : held) PartitionFree(p, q);
          held.clear();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  uint64_t direct = 0;
  for (Partition* p : parts) {
    for (int c = 1; c < kNumClasses; c++) {
      CentralStats st = p->central(c).Stats();
      direct += st.direct_allocs + st.direct_frees;
    }
  }
  EXPECT_EQ(direct, 0u);
  // The per-partition counts see the threads' caches (kept when threads exit).
  std::vector<PartitionCacheSums> sums(kCachedPartitions);
  memset(sums.data(), 0, sizeof(PartitionCacheSums) * sums.size());
  SumPartitionCaches(sums.data());
  for (Partition* p : parts) {
    uint64_t allocs = 0;
    for (int c = 1; c < kNumClasses; c++) allocs += sums[p->id()].allocs[c];
    EXPECT_EQ(allocs, uint64_t{kThreads * kRounds * 50}) << p->name();
  }
  for (Partition* p : parts) DestroyPartition(p);
}

// SumPartitionCaches reads and writes only the slots that have had a thread
// cache (the telemetry tick calls it ten times a second): the pages of the
// others' sums stay untouched, the used ones are exact, counts
// of exited threads included, and a destroyed partition's slot reused by a
// new partition starts again from zero.
TEST(Partitions, CacheSumsTouchOnlyUsedSlotsAndStayExact) {
  EnsureStarted();
  Partition* used = CreatePartition("sums-used", DefaultPolicy());
  Partition* idle = CreatePartition("sums-idle", DefaultPolicy());
  ASSERT_NE(used, nullptr);
  ASSERT_NE(idle, nullptr);
  auto run = [](Partition* p, int n) {
    std::thread t([p, n] {
      std::vector<void*> v;
      for (int i = 0; i < n; i++) v.push_back(PartitionMalloc(p, 64));
      for (int i = 0; i < n / 2; i++) PartitionFree(p, v[i]);
      for (int i = n / 2; i < n; i++) PartitionFree(p, v[i]);
    });
    t.join();
  };
  run(used, 1000);  // an exited thread: its counts are kept as the slot's
  std::vector<void*> mine;
  for (int i = 0; i < 300; i++) mine.push_back(PartitionMalloc(used, 64));  // a live cache
  // Fresh pages from the kernel: the ones written become resident.
  const size_t bytes = sizeof(PartitionCacheSums) * kCachedPartitions;
  auto* fresh = static_cast<PartitionCacheSums*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(fresh, MAP_FAILED);
  SumPartitionCaches(fresh);
  const size_t page = 4096, pages = (bytes + page - 1) / page;
  std::vector<unsigned char> resident(pages);
  ASSERT_EQ(mincore(fresh, bytes, resident.data()), 0);
  size_t written = 0;
  for (unsigned char r : resident) written += r & 1;
  // Two pages at most per slot with caches: this test's one, and any other
  // test's partition still alive. Summing every slot wrote 134 of the 135.
  EXPECT_LE(written, 16u) << "of " << pages << " pages";
  uint64_t allocs = 0, frees = 0;
  for (int c = 1; c < kNumClasses; c++) {
    allocs += fresh[used->id()].allocs[c];
    frees += fresh[used->id()].frees[c];
    EXPECT_EQ(fresh[idle->id()].allocs[c], 0u);
  }
  EXPECT_EQ(allocs, 1300u);
  EXPECT_EQ(frees, 1000u);
  munmap(fresh, bytes);
  std::vector<PartitionCacheSums> sums(kCachedPartitions);
  for (void* q : mine) PartitionFree(used, q);
  int slot = used->id();
  DestroyPartition(used);
  // Partition ids are reused lowest first: the next partition may take the
  // slot; whichever slot it has, it starts from nothing.
  Partition* next = CreatePartition("sums-next", DefaultPolicy());
  ASSERT_NE(next, nullptr);
  memset(sums.data(), 0, sizeof(PartitionCacheSums) * sums.size());
  SumPartitionCaches(sums.data());
  uint64_t leftover = 0;
  for (int c = 1; c < kNumClasses; c++) leftover += sums[slot].allocs[c] + sums[next->id()].allocs[c];
  EXPECT_EQ(leftover, 0u);
  run(next, 200);
  memset(sums.data(), 0, sizeof(PartitionCacheSums) * sums.size());
  SumPartitionCaches(sums.data());
  allocs = 0;
  for (int c = 1; c < kNumClasses; c++) allocs += sums[next->id()].allocs[c];
  EXPECT_EQ(allocs, 200u);
  DestroyPartition(next);
  DestroyPartition(idle);
}

// PERSISTENT's NUMA interleaving: the decision from the kernel's node lists
// (online and allowed), and what happens on this machine: with fewer than
// two nodes, no mbind at all.
TEST(Traits, PersistentNumaDecision) {
  uint64_t m;
  EXPECT_TRUE(numa::ParseNodeList("0\n", &m));
  EXPECT_EQ(m, 1u);
  EXPECT_TRUE(numa::ParseNodeList("0-3", &m));
  EXPECT_EQ(m, 0xfu);
  EXPECT_TRUE(numa::ParseNodeList("0,2-3,7\n", &m));
  EXPECT_EQ(m, 0x8du);
  EXPECT_FALSE(numa::ParseNodeList("", &m));
  EXPECT_FALSE(numa::ParseNodeList("3-1", &m));
  EXPECT_FALSE(numa::ParseNodeList("x", &m));
  EXPECT_EQ(m, 0u);
  EXPECT_EQ(numa::InterleaveMask(0x1, 0x1), 0u);    // one node: nothing
  EXPECT_EQ(numa::InterleaveMask(0xf, 0x1), 0u);    // one allowed (cpuset)
  EXPECT_EQ(numa::InterleaveMask(0xf, 0xf), 0xfu);  // four: all of them
  EXPECT_EQ(numa::InterleaveMask(0xf, 0x6), 0x6u);  // the allowed ones
  EXPECT_TRUE(PolicyForTraits(kTraitPersistent).numa_interleave);
  EXPECT_FALSE(PolicyForTraits(kTraitLowLatency).numa_interleave);

  EnsureStarted();
  uint64_t calls = numa::InterleaveCalls();
  Partition* persistent = PartitionForTraits(kTraitPersistent);
  ASSERT_NE(persistent, nullptr);
  std::vector<void*> blocks;
  for (int i = 0; i < 64; i++) blocks.push_back(AllocateIn(persistent, 1 << 20, 0, false));
  for (void* b : blocks) Free(b);
  if (numa::ProcessInterleaveMask() == 0) {
    EXPECT_EQ(numa::InterleaveCalls(), calls) << "mbind on a machine with fewer than two usable nodes";
  } else {
    // Machines with nodes: this partition's regions (made after the calls
    // were counted, or before by an earlier test) are interleaved.
    EXPECT_GE(numa::InterleaveCalls(), 1u);
  }
  // The system call itself, as the heap makes it, over node 0 (present on
  // every machine): the kernel accepts the arguments (EINVAL would say they
  // are wrong). A seccomp filter may refuse mbind (Docker's default does
  // without CAP_SYS_NICE): EPERM, and the memory stays where it is.
  size_t bytes = size_t{2} << 20;
  void* range = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(range, MAP_FAILED);
  errno = 0;
  bool interleaved = numa::Interleave(range, bytes, 0x1);
  if (!interleaved) {
    EXPECT_TRUE(errno == EPERM || errno == ENOSYS) << strerror(errno);
  }
  EXPECT_FALSE(numa::Interleave(range, bytes, 0));
  munmap(range, bytes);
}

}  // namespace
}  // namespace nitro
