// Partitions as arenas: nitro_partition_visit sees exactly the live blocks,
// nitro_partition_reset frees everything at once and returns the memory.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <random>
#include <thread>
#include <set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

using Blocks = std::set<std::pair<uintptr_t, size_t>>;

Blocks Visit(nitro_partition_t* p, long* count = nullptr) {
  Blocks seen;
  long n = nitro_partition_visit(
      p,
      [](void* block, size_t usable, void* ctx) {
        static_cast<Blocks*>(ctx)->insert({reinterpret_cast<uintptr_t>(block), usable});
        return 1;
      },
      &seen);
  if (count != nullptr) *count = n;
  return seen;
}

TEST(Arena, VisitSeesExactlyTheLiveBlocks) {
  nitro_partition_t* p = nitro_partition_create("arena-visit");
  ASSERT_NE(p, nullptr);
  std::mt19937 rng(1);
  std::vector<std::pair<char*, size_t>> live;
  for (int i = 0; i < 3000; i++) {
    size_t n = rng() % 8 == 0 ? 40000 + rng() % 300000 : 1 + rng() % 2000;
    auto* b = static_cast<char*>(nitro_partition_malloc(p, n));
    ASSERT_NE(b, nullptr);
    memset(b, 1, n);
    live.push_back({b, n});
  }
  for (size_t i = 0; i < live.size(); i += 3) nitro_partition_free(p, live[i].first);
  std::set<uintptr_t> expected;
  for (size_t i = 0; i < live.size(); i++) {
    if (i % 3 != 0) expected.insert(reinterpret_cast<uintptr_t>(live[i].first));
  }
  long count = 0;
  Blocks seen = Visit(p, &count);
  EXPECT_EQ(count, static_cast<long>(expected.size()));
  std::set<uintptr_t> seen_addrs;
  for (auto& [a, usable] : seen) seen_addrs.insert(a);
  EXPECT_EQ(seen_addrs, expected);
  // Every visited block is at least as large as what was asked.
  for (size_t i = 0; i < live.size(); i++) {
    if (i % 3 == 0) continue;
    auto it = seen.lower_bound({reinterpret_cast<uintptr_t>(live[i].first), 0});
    ASSERT_NE(it, seen.end());
    EXPECT_GE(it->second, live[i].second);
  }
  // The visitor stops the walk.
  long stopped = nitro_partition_visit(p, [](void*, size_t, void*) { return 0; }, nullptr);
  EXPECT_EQ(stopped, 1);
  nitro_partition_destroy(p);
}

TEST(Arena, ResetFreesEverythingAndReturnsTheMemory) {
  nitro_partition_t* p = nitro_partition_create("arena-reset");
  ASSERT_NE(p, nullptr);
  for (int round = 0; round < 5; round++) {
    std::vector<char*> blocks;
    for (int i = 0; i < 2000; i++) {
      size_t n = i % 50 == 0 ? 1 << 20 : 16 + i % 1500;
      auto* b = static_cast<char*>(nitro_partition_malloc(p, n));
      ASSERT_NE(b, nullptr);
      memset(b, round, n);
      blocks.push_back(b);
    }
    EXPECT_EQ(Visit(p).size(), blocks.size());
    for (char* b : blocks) ASSERT_EQ(nitro_partition_of(b), p);
    ASSERT_EQ(nitro_partition_reset(p), 0);
    // The address space is gone: the old pointers are nobody's now.
    for (char* b : blocks) ASSERT_EQ(nitro_owns(b), 0);
    long count = -1;
    EXPECT_TRUE(Visit(p, &count).empty());
    EXPECT_EQ(count, 0);
  }
  // Usable after a reset, with everything the partition offers.
  void* a = nitro_partition_aligned_alloc(p, 4096, 100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 4096, 0u);
  void* b = nitro_partition_realloc(p, nitro_partition_malloc(p, 10), 5000);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Visit(p).size(), 2u);
  nitro_partition_free(p, a);
  nitro_partition_free(p, b);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

// Objects other threads freed sit in those threads' caches of the
// partition: a visit sees them as free, a reset drops them, and the threads
// (still alive, not using the partition meanwhile) allocate there again.
TEST(Arena, OtherThreadsCachesAreFlushedForVisitAndDroppedForReset) {
  nitro_partition_t* p = nitro_partition_create("arena-threads");
  ASSERT_NE(p, nullptr);
  constexpr int kThreads = 4, kBlocks = 500;
  std::vector<std::vector<char*>> kept(kThreads);
  std::atomic<int> phase{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::vector<char*> all;
      for (int i = 0; i < kBlocks; i++) {
        auto* b = static_cast<char*>(nitro_partition_malloc(p, 16 + (i % 7) * 40));
        if (b == nullptr) abort();
        all.push_back(b);
      }
      for (int i = 0; i < kBlocks; i++) {
        if (i % 2 == 0) nitro_partition_free(p, all[i]);  // into this thread's cache
        else kept[t].push_back(all[i]);
      }
      done++;
      while (phase.load() == 0) std::this_thread::yield();
      // After the reset: the dropped cache is made again on the slow path.
      for (int i = 0; i < kBlocks; i++) {
        auto* b = static_cast<char*>(nitro_partition_malloc(p, 64));
        if (b == nullptr) abort();
        memset(b, 7, 64);
        nitro_partition_free(p, b);
      }
      done++;
    });
  }
  while (done.load() < kThreads) std::this_thread::yield();
  std::set<uintptr_t> expected;
  for (auto& v : kept)
    for (char* b : v) expected.insert(reinterpret_cast<uintptr_t>(b));
  std::set<uintptr_t> seen;
  for (auto& [a, usable] : Visit(p)) seen.insert(a);
  EXPECT_EQ(seen, expected);
  ASSERT_EQ(nitro_partition_reset(p), 0);
  EXPECT_EQ(Visit(p).size(), 0u);
  phase = 1;
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 2 * kThreads);
  EXPECT_EQ(Visit(p).size(), 0u);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

TEST(Arena, RefusedForMallocsPartitionAndBadInput) {
  void* m = malloc(64);
  memset(m, 0, 64);
  nitro_partition_t* def = nitro_partition_of(m);
  ASSERT_NE(def, nullptr);
  errno = 0;
  EXPECT_EQ(nitro_partition_reset(def), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_partition_visit(def, [](void*, size_t, void*) { return 1; }, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(nitro_partition_reset(nullptr), -1);
  nitro_partition_t* p = nitro_partition_create("arena-null-cb");
  ASSERT_NE(p, nullptr);
  errno = 0;
  EXPECT_EQ(nitro_partition_visit(p, nullptr, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
  free(m);
}

}  // namespace
