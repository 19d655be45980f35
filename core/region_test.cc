// The region heap engine (core/region.h) under threads, also run with
// --config=tsan: blocks handed out concurrently never overlap, and the
// free-list kind is whole again after every block is freed.
#include "core/region.h"

#include <stdlib.h>
#include <string.h>

#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace nitro {
namespace {

TEST(RegionEngine, ThreadsNeverShareABlock) {
  for (RegionKind kind : {RegionKind::kBump, RegionKind::kFreeList}) {
    const size_t bytes = 8 << 20;
    void* mem = aligned_alloc(4096, bytes);
    Region* r = Region::Create(mem, bytes, kind, /*thread_safe=*/true);
    ASSERT_NE(r, nullptr);
    std::vector<std::thread> threads;
    std::vector<int> bad(4, 0);
    for (int t = 0; t < 4; t++) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(t);
        std::vector<std::pair<unsigned char*, size_t>> mine;
        for (int i = 0; i < 4000; i++) {
          if (mine.size() < 32 && (rng() & 1)) {
            size_t n = 1 + rng() % 500;
            auto* p = static_cast<unsigned char*>(r->Allocate(n, rng() % 8 == 0 ? 64 : kMinAlign));
            if (p == nullptr) continue;
            memset(p, t + 1, n);
            mine.push_back({p, n});
          } else if (!mine.empty()) {
            auto [p, n] = mine.back();
            mine.pop_back();
            for (size_t j = 0; j < n; j++) bad[t] += p[j] != t + 1;
            r->Free(p);
          }
        }
        for (auto& [p, n] : mine) r->Free(p);
      });
    }
    for (auto& th : threads) th.join();
    for (int b : bad) EXPECT_EQ(b, 0);
    RegionStats s = r->Stats();
    EXPECT_EQ(s.live_blocks, 0u);
    EXPECT_EQ(s.live_bytes, 0u);
    if (kind == RegionKind::kFreeList) {
      EXPECT_EQ(s.free_blocks, 1u);
      EXPECT_EQ(s.free, s.capacity);
    }
    EXPECT_TRUE(r->Validate());
    r->Destroy();
    free(mem);
  }
}

TEST(RegionEngine, ResizeInPlace) {
  alignas(64) static char mem[64 << 10];
  Region* r = Region::Create(mem, sizeof(mem), RegionKind::kFreeList, false);
  void* a = r->Allocate(100, kMinAlign);
  void* b = r->Allocate(100, kMinAlign);
  EXPECT_EQ(r->ResizeInPlace(a, 500), nullptr);  // b is in the way
  EXPECT_EQ(r->ResizeInPlace(b, 5000), b);      // the free rest follows b
  EXPECT_EQ(r->UsableSize(b), 5008u);
  r->Free(b);
  EXPECT_EQ(r->ResizeInPlace(a, 500), a);
  EXPECT_TRUE(r->IsLiveBlock(a));
  EXPECT_FALSE(r->IsLiveBlock(static_cast<char*>(a) + 16));
  r->Free(a);
  EXPECT_FALSE(r->IsLiveBlock(a));
  r->Destroy();
}

}  // namespace
}  // namespace nitro
