// Partitions with thread caches and trait policies, through the engine's
// own entry points (so it also runs under --config=tsan): the flight
// recorder never samples a TELEMETRY_SILENT partition, and destroying a
// partition drops the objects other threads cache of it.
#include "core/traits.h"

#include <atomic>
#include <thread>
#include <vector>

#include "core/heap.h"
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

}  // namespace
}  // namespace nitro
