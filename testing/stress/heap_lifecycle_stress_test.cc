// The process heap as it runs in a program, under ThreadSanitizer too: the
// background thread on with a short decay (it returns memory while threads
// allocate), telemetry publishing every tick, guarded sampling and the
// flight recorder sampling often, threads that come and go (their caches
// are made and destroyed), partitions created and destroyed, statistics
// read, recordings dumped, and the lock audit on. Options come from the
// test's environment (testing/stress/BUILD.bazel).
//
// The engine's entry points (nitro::Malloc ...) are called directly, so the
// test also runs where the process's malloc is ThreadSanitizer's.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "core/heap.h"
#include "core/partition.h"
#include "telemetry/stats.h"
#include "telemetry/runtime.h"

namespace nitro {
namespace {

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;
  size_t align = 0;
  unsigned char tag = 0;
};

void Fill(const Block& b) { memset(b.p, b.tag, b.size < 64 ? b.size : 64); }
void Check(const Block& b) {
  for (size_t i = 0; i < (b.size < 64 ? b.size : 64); i++) ASSERT_EQ(b.p[i], b.tag);
}

size_t SizeFor(std::mt19937& rng) {
  uint32_t r = rng();
  uint32_t kind = r % 100;
  if (kind < 85) return r % 600;
  if (kind < 98) return 600 + r % 30000;
  return 200000 + r % 400000;
}

// A thread-cached partition every worker uses beside malloc's: its caches
// come and go with the threads while the reader sums them (GetHeapStats).
Partition* g_cached_partition = nullptr;

// One short-lived thread's life: allocate through every entry point, free
// some blocks, hand the rest to the shared pool for another thread.
void Worker(uint32_t seed, std::atomic<Block*>* shared, size_t shared_n) {
  std::mt19937 rng(seed);
  {
    void* held[200];
    for (void*& p : held) {
      p = PartitionMalloc(g_cached_partition, 16 + rng() % 500);
      ASSERT_NE(p, nullptr);
    }
    for (void* p : held) PartitionFree(g_cached_partition, p);
  }
  // Bursts of one class: the thread cache's stack grows past its start and
  // moves to its second block (ThreadCache::GrowStack) while the
  // background thread's statistics read the cache (ListCount).
  for (int round = 0; round < 2; round++) {
    void* burst[300];
    for (void*& p : burst) {
      p = Malloc(48);
      ASSERT_NE(p, nullptr);
      memset(p, 0x5a, 48);
    }
    for (void* p : burst) Free(p);
  }
  std::vector<Block> mine;
  for (int i = 0; i < 400; i++) {
    Block b;
    b.size = SizeFor(rng);
    b.tag = static_cast<unsigned char>(rng());
    switch (rng() % 6) {
      case 0: b.p = static_cast<unsigned char*>(Calloc(1, b.size)); break;
      case 1:
        b.align = size_t{32} << (rng() % 8);
        b.p = static_cast<unsigned char*>(AllocateAligned(b.align, b.size));
        break;
      default: b.p = static_cast<unsigned char*>(Malloc(b.size)); break;
    }
    ASSERT_NE(b.p, nullptr);
    if (b.align) {
      ASSERT_EQ(reinterpret_cast<uintptr_t>(b.p) % b.align, 0u);
    }
    Fill(b);
    if (rng() % 4 == 0 && b.size > 0) {
      // Grow or shrink, keeping the alignment the block was made with.
      size_t to = SizeFor(rng) + 1;
      auto* q = static_cast<unsigned char*>(Reallocate(b.p, to, b.align));
      ASSERT_NE(q, nullptr);
      b.p = q;
      size_t keep = b.size < to ? b.size : to;
      for (size_t k = 0; k < (keep < 64 ? keep : 64); k++) ASSERT_EQ(q[k], b.tag);
      b.size = to;
      Fill(b);
    }
    mine.push_back(b);
    if (mine.size() > 50) {
      size_t k = rng() % mine.size();
      Check(mine[k]);
      if (rng() % 2) FreeSized(mine[k].p, mine[k].size, mine[k].align);
      else Free(mine[k].p);
      mine[k] = mine.back();
      mine.pop_back();
    }
    if (rng() % 8 == 0) {
      // Trade with other threads: a remote free for whoever finds it.
      auto* slot = new (Malloc(sizeof(Block))) Block(mine.back());
      mine.pop_back();
      Block* old = shared[rng() % shared_n].exchange(slot);
      if (old != nullptr) {
        Check(*old);
        Free(old->p);
        Free(old);
      }
    }
  }
  for (Block& b : mine) {
    Check(b);
    Free(b.p);
  }
}

TEST(HeapLifecycleStress, ThreadsComeAndGoWhileTheBackgroundThreadWorks) {
  ASSERT_EQ(Mode(), HeapMode::kNitro);
  telemetry::Install();
  constexpr size_t kShared = 64;
  std::atomic<Block*> shared[kShared] = {};
  std::atomic<bool> stop{false};
  g_cached_partition = Partition::Create("stress-cached", PartitionConfig{});
  ASSERT_NE(g_cached_partition, nullptr);
  ASSERT_TRUE(g_cached_partition->thread_cached());
  // Partitions come and go beside the process heap.
  std::thread partitions([&] {
    for (int i = 0; !stop.load(); i++) {
      char name[32];
      snprintf(name, sizeof(name), "stress-%d", i % 4);
      Partition* p = Partition::Create(name, PartitionConfig{});
      if (p == nullptr) continue;
      void* a = p->Allocate(100);
      void* b = p->Allocate(300000);
      PartitionFree(p, a);
      ASSERT_EQ(PartitionOf(b), p);
      Partition::Destroy(p);
    }
  });
  // Statistics and recordings, as a reader in the process would take them.
  std::thread reader([&] {
    static nitro_stats_t st;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/nitro-stress-%d.pb", static_cast<int>(getpid()));
    for (int i = 0; !stop.load(); i++) {
      st.size = sizeof(st);
      CollectStats(&st);
      // Sums every thread's caches of every partition while their owners
      // push and pop (ThreadSanitizer checks the reads); its figures are
      // checked where nothing moves (abi:mallctl_test).
      (void)GetHeapStats();
      if (i % 16 == 0) {
        ASSERT_EQ(telemetry::DumpFlightRecording(path), 0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    unlink(path);
  });
  for (int round = 0; round < 12; round++) {
    std::vector<std::thread> workers;
    for (int t = 0; t < 6; t++) {
      workers.emplace_back(Worker, static_cast<uint32_t>(round * 100 + t), shared, kShared);
    }
    for (auto& w : workers) w.join();
    Trim();  // while the background thread releases the same memory
  }
  stop.store(true);
  partitions.join();
  reader.join();
  for (auto& s : shared) {
    if (Block* b = s.exchange(nullptr)) {
      Check(*b);
      Free(b->p);
      Free(b);
    }
  }
  HeapStats st = GetHeapStats();
  EXPECT_GT(st.sampled_total, 0u) << "the options must make sampling happen";
}

}  // namespace
}  // namespace nitro
