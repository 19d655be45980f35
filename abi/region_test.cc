// Heaps over a fixed region (nitroheap/region.h), through the public API,
// with NitroHeap as the program's malloc (so its fork handler is installed).
// Random operation sequences are checked against a model: blocks lie inside
// the region, never overlap, keep their contents, and after every block is
// freed a free-list region is one whole free block again.
#include "nitroheap/region.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

constexpr size_t kBlockHeader = 16;

struct Buffer {
  explicit Buffer(size_t n) : bytes(n), mem(static_cast<char*>(aligned_alloc(4096, n))) {}
  ~Buffer() { free(mem); }
  size_t bytes;
  char* mem;
};

nitro_region_stats_t StatsOf(nitro_region_t* r) {
  nitro_region_stats_t s;
  EXPECT_EQ(nitro_region_stats(r, &s), 0);
  return s;
}

struct Live {
  size_t size;
  unsigned char fill;
};

void ExpectFilled(const void* p, size_t n, unsigned char fill) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != fill) {
      ADD_FAILURE() << "byte " << i << " of " << p << " is " << int(b[i]) << ", wrote " << int(fill);
      return;
    }
  }
}

// One random sequence of alloc / aligned_alloc / realloc / free on a region
// of `kind`, against a model of the live blocks.
void RunModel(int kind, uint32_t seed, size_t region_bytes, int steps) {
  Buffer buf(region_bytes);
  nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, kind);
  ASSERT_NE(r, nullptr);
  const nitro_region_stats_t initial = StatsOf(r);
  EXPECT_EQ(initial.used, 0u);
  EXPECT_EQ(initial.free, initial.capacity);
  EXPECT_GE(initial.capacity, region_bytes - NITRO_REGION_HEADER_BYTES);
  const auto lo = reinterpret_cast<uintptr_t>(buf.mem);
  const uintptr_t hi = lo + buf.bytes;

  std::mt19937 rng(seed);
  std::map<uintptr_t, Live> live;  // by address
  uint64_t failures = 0;
  auto size_of = [&] {
    switch (rng() % 4) {
      case 0: return size_t{rng() % 33};
      case 1: return size_t{rng() % 256};
      case 2: return size_t{rng() % 2048};
      default: return size_t{rng() % 9000};
    }
  };
  auto check_place = [&](void* p, size_t size, size_t align) {
    auto a = reinterpret_cast<uintptr_t>(p);
    ASSERT_EQ(a % align, 0u);
    ASSERT_GE(a, lo);
    ASSERT_LE(a + size, hi);
    ASSERT_GE(nitro_region_usable_size(r, p), size);
    auto next = live.lower_bound(a);
    if (next != live.end()) {
      ASSERT_LE(a + size, next->first) << "overlaps the next block";
    }
    if (next != live.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second.size, a) << "overlaps the previous block";
    }
  };
  auto random_live = [&] {
    auto it = live.lower_bound(lo + rng() % (hi - lo));
    return it == live.end() ? live.begin() : it;
  };
  for (int step = 0; step < steps; step++) {
    unsigned op = rng() % 10;
    if (live.empty() || op < 4) {
      size_t size = size_of();
      size_t align = op == 3 ? size_t{1} << (4 + rng() % 9) : 16;
      errno = 0;
      void* p = align == 16 ? nitro_region_alloc(r, size) : nitro_region_aligned_alloc(r, align, size);
      if (p == nullptr) {
        ASSERT_EQ(errno, ENOMEM);
        failures++;
        continue;
      }
      check_place(p, size, align);
      auto fill = static_cast<unsigned char>(rng());
      memset(p, fill, size);
      live[reinterpret_cast<uintptr_t>(p)] = {size, fill};
    } else if (op < 7) {
      auto it = random_live();
      ExpectFilled(reinterpret_cast<void*>(it->first), it->second.size, it->second.fill);
      nitro_region_free(r, reinterpret_cast<void*>(it->first));
      live.erase(it);
    } else {
      auto it = random_live();
      void* old = reinterpret_cast<void*>(it->first);
      Live was = it->second;
      size_t size = size_of();
      errno = 0;
      void* p = nitro_region_realloc(r, old, size);
      if (p == nullptr) {
        ASSERT_EQ(errno, ENOMEM);
        failures++;
        ExpectFilled(old, was.size, was.fill);  // untouched
        continue;
      }
      live.erase(it);
      check_place(p, size, 16);
      ExpectFilled(p, std::min(size, was.size), was.fill);
      memset(p, was.fill, size);
      live[reinterpret_cast<uintptr_t>(p)] = {size, was.fill};
    }
    if (step % 64 == 0) {
      nitro_region_stats_t s = StatsOf(r);
      ASSERT_EQ(s.live_blocks, live.size());
      ASSERT_EQ(s.failures, failures);
      ASSERT_EQ(s.used + s.free, s.capacity);
      ASSERT_GE(s.fragmentation, 0.0);
      ASSERT_LE(s.fragmentation, 1.0);
      // The walk sees exactly the live blocks, in address order, tiling
      // the used part of the region.
      struct Walk {
        std::vector<uintptr_t> in_use;
        size_t all = 0;
      } walk;
      size_t n = nitro_region_visit(
          r,
          [](void* block, size_t, int in_use, void* ctx) {
            auto* w = static_cast<Walk*>(ctx);
            w->all++;
            if (in_use) w->in_use.push_back(reinterpret_cast<uintptr_t>(block));
          },
          &walk);
      ASSERT_EQ(n, walk.all);
      std::vector<uintptr_t> expected;
      for (auto& [a, l] : live) expected.push_back(a);
      ASSERT_EQ(walk.in_use, expected);
    }
  }
  EXPECT_GT(StatsOf(r).allocations, 0u);
  for (auto& [a, l] : live) {
    ExpectFilled(reinterpret_cast<void*>(a), l.size, l.fill);
    nitro_region_free(r, reinterpret_cast<void*>(a));
  }
  nitro_region_stats_t s = StatsOf(r);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  if ((kind & 0xff) == NITRO_REGION_FREE_LIST) {
    // Coalescing restores the whole region.
    EXPECT_EQ(s.free_blocks, 1u);
    EXPECT_EQ(s.free, s.capacity);
    EXPECT_EQ(s.largest_free, s.capacity - kBlockHeader);
    EXPECT_EQ(s.fragmentation, 0.0);
  }
  nitro_region_reset(r);
  s = StatsOf(r);
  EXPECT_EQ(s.free, s.capacity);
  EXPECT_EQ(s.resets, 1u);
  nitro_region_destroy(r);
}

TEST(RegionModel, FreeListRandomSequences) {
  for (uint32_t seed = 1; seed <= 12; seed++) RunModel(NITRO_REGION_FREE_LIST, seed, 256 << 10, 6000);
}

TEST(RegionModel, FreeListSmallRegionRunsOutOften) {
  for (uint32_t seed = 100; seed <= 110; seed++) RunModel(NITRO_REGION_FREE_LIST, seed, 16 << 10, 3000);
}

TEST(RegionModel, BumpRandomSequences) {
  for (uint32_t seed = 1; seed <= 12; seed++) RunModel(NITRO_REGION_BUMP, seed, 1 << 20, 2000);
}

TEST(RegionModel, SingleThreadedFlag) {
  RunModel(NITRO_REGION_FREE_LIST | NITRO_REGION_SINGLE_THREADED, 7, 64 << 10, 3000);
  RunModel(NITRO_REGION_BUMP | NITRO_REGION_SINGLE_THREADED, 7, 256 << 10, 1000);
}

TEST(Region, BadArguments) {
  alignas(64) static char mem[4096];
  errno = 0;
  EXPECT_EQ(nitro_region_create(nullptr, 4096, NITRO_REGION_BUMP), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_region_create(mem, NITRO_REGION_MIN_BYTES - 1, NITRO_REGION_BUMP), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_region_create(mem, sizeof(mem), 3), nullptr);
  EXPECT_EQ(errno, EINVAL);
  nitro_region_t* r = nitro_region_create(mem, sizeof(mem), NITRO_REGION_FREE_LIST);
  ASSERT_NE(r, nullptr);
  errno = 0;  // the same memory again while r lives: refused, r untouched
  EXPECT_EQ(nitro_region_create(mem, sizeof(mem), NITRO_REGION_BUMP | NITRO_REGION_SINGLE_THREADED),
            nullptr);
  EXPECT_EQ(errno, EBUSY);
  errno = 0;
  EXPECT_EQ(nitro_region_aligned_alloc(r, 48, 8), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(nitro_region_stats(r, nullptr), -1);
  nitro_region_free(r, nullptr);  // ignored
  errno = 0;
  EXPECT_EQ(nitro_region_alloc(r, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  nitro_region_destroy(r);
}

// The metadata promise: the handle and every block lie inside the memory.
TEST(Region, EverythingInsideTheMemory) {
  for (int kind : {NITRO_REGION_BUMP, NITRO_REGION_FREE_LIST}) {
    alignas(64) static char mem[8192];
    nitro_region_t* r = nitro_region_create(mem + 3, sizeof(mem) - 3, kind);
    ASSERT_NE(r, nullptr);
    auto h = reinterpret_cast<char*>(r);
    EXPECT_GE(h, mem);
    EXPECT_LT(h, mem + 64 + 3);
    nitro_region_stats_t s = StatsOf(r);
    EXPECT_GE(s.capacity, sizeof(mem) - 3 - NITRO_REGION_HEADER_BYTES);
    std::vector<char*> blocks;
    while (char* p = static_cast<char*>(nitro_region_alloc(r, 100))) {
      EXPECT_GE(p, h + NITRO_REGION_HEADER_BYTES / 2);
      EXPECT_LE(p + 100, mem + sizeof(mem));
      blocks.push_back(p);
    }
    EXPECT_GT(blocks.size(), 50u);
    nitro_region_destroy(r);
  }
}

// Exhaustion: NULL with ENOMEM, counted, and the region still works.
TEST(Region, ExhaustionLeavesTheRegionUsable) {
  for (int kind : {NITRO_REGION_BUMP, NITRO_REGION_FREE_LIST}) {
    Buffer buf(64 << 10);
    nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, kind);
    std::vector<void*> blocks;
    void* p;
    while ((p = nitro_region_alloc(r, 1000)) != nullptr) blocks.push_back(p);
    EXPECT_EQ(errno, ENOMEM);
    nitro_region_stats_t s = StatsOf(r);
    EXPECT_EQ(s.failures, 1u);
    EXPECT_LT(s.largest_free, 1000u);
    EXPECT_EQ(nitro_region_alloc(r, s.largest_free + 1), nullptr);
    if (s.largest_free > 0) {
      EXPECT_NE(nitro_region_alloc(r, s.largest_free), nullptr);
    }
    if (kind == NITRO_REGION_FREE_LIST) {
      nitro_region_free(r, blocks[blocks.size() / 2]);
      EXPECT_EQ(nitro_region_alloc(r, 1000), blocks[blocks.size() / 2]);  // reused
    } else {
      nitro_region_reset(r);
      EXPECT_EQ(nitro_region_alloc(r, 1000), blocks[0]);
    }
    nitro_region_destroy(r);
  }
}

TEST(Region, BumpReallocOfTheLastBlockStaysInPlace) {
  Buffer buf(64 << 10);
  nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, NITRO_REGION_BUMP);
  char* a = static_cast<char*>(nitro_region_alloc(r, 10));
  char* b = static_cast<char*>(nitro_region_alloc(r, 10));
  memcpy(b, "0123456789", 10);
  EXPECT_EQ(nitro_region_realloc(r, b, 5000), b);
  EXPECT_EQ(memcmp(b, "0123456789", 10), 0);
  char* a2 = static_cast<char*>(nitro_region_realloc(r, a, 100));  // not last: moves
  EXPECT_NE(a2, a);
  EXPECT_GT(a2, b);
  nitro_region_destroy(r);
}

TEST(Region, FreeListCoalescesBothNeighbours) {
  Buffer buf(64 << 10);
  nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, NITRO_REGION_FREE_LIST);
  void* a = nitro_region_alloc(r, 100);
  void* b = nitro_region_alloc(r, 100);
  void* c = nitro_region_alloc(r, 100);
  void* d = nitro_region_alloc(r, 100);  // keeps c's right side used
  EXPECT_EQ(StatsOf(r).free_blocks, 1u);
  nitro_region_free(r, a);
  nitro_region_free(r, c);
  EXPECT_EQ(StatsOf(r).free_blocks, 3u);
  nitro_region_free(r, b);  // joins a and c
  EXPECT_EQ(StatsOf(r).free_blocks, 2u);
  EXPECT_EQ(nitro_region_alloc(r, 3 * 128 - 16), a);  // three 128-byte blocks as one
  nitro_region_destroy(r);
  (void)d;
}

// Threads share one region; each checks its own blocks' contents.
TEST(Region, ThreadsShareARegion) {
  for (int kind : {NITRO_REGION_BUMP, NITRO_REGION_FREE_LIST}) {
    Buffer buf(4 << 20);
    nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, kind);
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(t);
        std::vector<std::pair<unsigned char*, size_t>> mine;
        for (int i = 0; i < 20000; i++) {
          if (mine.size() < 64 && rng() % 2) {
            size_t n = rng() % 300;
            auto* p = static_cast<unsigned char*>(nitro_region_alloc(r, n));
            if (p == nullptr) continue;
            memset(p, t + 1, n);
            mine.push_back({p, n});
          } else if (!mine.empty()) {
            size_t k = rng() % mine.size();
            for (size_t j = 0; j < mine[k].second; j++) {
              if (mine[k].first[j] != t + 1) bad++;
            }
            nitro_region_free(r, mine[k].first);
            mine[k] = mine.back();
            mine.pop_back();
          }
          if (kind == NITRO_REGION_BUMP && StatsOf(r).free < 4096 && t == 0) break;
        }
        for (auto& [p, n] : mine) nitro_region_free(r, p);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
    nitro_region_stats_t s = StatsOf(r);
    EXPECT_EQ(s.live_blocks, 0u);
    if (kind == NITRO_REGION_FREE_LIST) {
      EXPECT_EQ(s.free_blocks, 1u);
    }
    nitro_region_destroy(r);
  }
}

// fork while other threads allocate from the region: the child's region is
// consistent and usable (the fork handler held the region's lock).
TEST(Region, ForkWhileThreadsAllocate) {
  Buffer buf(1 << 20);
  nitro_region_t* r = nitro_region_create(buf.mem, buf.bytes, NITRO_REGION_FREE_LIST);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      void* held[16] = {};
      while (!stop.load(std::memory_order_relaxed)) {
        int k = rng() % 16;
        nitro_region_free(r, held[k]);
        held[k] = nitro_region_alloc(r, rng() % 1000);
      }
      for (void* p : held) nitro_region_free(r, p);
    });
  }
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Only this thread exists here; the others' blocks stay live.
      nitro_region_stats_t before;
      nitro_region_stats(r, &before);
      void* p[64];
      for (auto& q : p) q = nitro_region_alloc(r, 200);
      for (auto& q : p) nitro_region_free(r, q);
      nitro_region_stats_t after;
      nitro_region_stats(r, &after);
      _exit(after.live_blocks == before.live_blocks && after.used == before.used ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  stop = true;
  for (auto& th : threads) th.join();
  nitro_region_stats_t s = StatsOf(r);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.free_blocks, 1u);
  nitro_region_destroy(r);
}

TEST(Region, DestroyedHandleIsReported) {
  alignas(64) static char mem[4096];
  nitro_region_t* r = nitro_region_create(mem, sizeof(mem), NITRO_REGION_BUMP);
  nitro_region_destroy(r);
  EXPECT_DEATH(nitro_region_alloc(r, 8), "invalid region handle");
}

}  // namespace
