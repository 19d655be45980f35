// ReturningMetaPool (span descriptors): empty chunks go back whole, and in
// a chunk still in use every page whose descriptors are all free goes back
// (two ReleaseEmpty calls in a row, as the reclaimer's ticks), while the
// live descriptors keep their contents; returned pages' slots come back,
// zero, once the chunk has no other room. Residency is read with mincore.
#include "core/meta_pool.h"

#include <gtest/gtest.h>
#include <stdint.h>
#include <sys/mman.h>

#include <set>
#include <vector>

namespace nitro {
namespace {

// 448 bytes, like a Span: slots straddle page boundaries.
struct Descriptor {
  uint64_t words[56];
};
constexpr size_t kSlot = 448;
constexpr size_t kChunkBytes = size_t{64} << 10;
constexpr size_t kPerChunk = kChunkBytes / kSlot;

bool Resident(const void* p) {
  unsigned char v = 0;
  uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~(kPageSize - 1);
  return mincore(reinterpret_cast<void*>(page), kPageSize, &v) == 0 && (v & 1);
}

size_t ResidentPages(const std::vector<Descriptor*>& objs) {
  std::set<uintptr_t> pages;
  for (Descriptor* d : objs) {
    uintptr_t a = reinterpret_cast<uintptr_t>(d);
    if (Resident(d)) pages.insert(a / kPageSize);
  }
  return pages.size();
}

TEST(ReturningMetaPool, PagesOfAChunkInUseGoBackAndComeBackZero) {
  static ReturningMetaPool<Descriptor> pool;  // its areas are never unmapped
  const size_t n = 4 * kPerChunk;
  std::vector<Descriptor*> all;
  for (size_t i = 0; i < n; i++) {
    Descriptor* d = pool.New();
    ASSERT_NE(d, nullptr);
    for (uint64_t& w : d->words) w = i + 1;
    all.push_back(d);
  }
  const size_t full = pool.committed_bytes();
  EXPECT_GE(full, 4 * (kChunkBytes - kPageSize));
  EXPECT_EQ(ResidentPages(all) * kPageSize, full);

  // Keep one descriptor in every 40 (a few per chunk), free the rest.
  std::vector<Descriptor*> kept, freed;
  for (size_t i = 0; i < n; i++) (i % 40 == 0 ? kept : freed).push_back(all[i]);
  for (Descriptor* d : freed) pool.Delete(d);
  EXPECT_EQ(pool.committed_bytes(), full);
  EXPECT_EQ(pool.ReleaseEmpty(), 0u) << "the first call only marks pages idle";
  size_t released = pool.ReleaseEmpty();
  EXPECT_GT(released, 0u);
  EXPECT_EQ(pool.committed_bytes(), full - released);
  // A kept descriptor holds (straddles) at most two pages.
  EXPECT_LE(pool.committed_bytes(), 2 * kept.size() * kPageSize);
  EXPECT_LE(ResidentPages(all) * kPageSize, pool.committed_bytes());
  for (size_t k = 0; k < kept.size(); k++) {
    EXPECT_TRUE(Resident(kept[k]));
    for (uint64_t w : kept[k]->words) ASSERT_EQ(w, k * 40 + 1) << "a live descriptor lost its contents";
  }

  // Taken again: every slot once, none a kept one, all zero.
  std::set<Descriptor*> live(kept.begin(), kept.end());
  std::vector<Descriptor*> again;
  for (size_t i = 0; i < freed.size(); i++) {
    Descriptor* d = pool.New();
    ASSERT_NE(d, nullptr);
    ASSERT_TRUE(live.insert(d).second) << "a slot handed out twice";
    for (uint64_t w : d->words) ASSERT_EQ(w, 0u);
    for (uint64_t& w : d->words) w = 7;
    again.push_back(d);
  }
  // The returned pages' slots were reused before any new chunk was made.
  std::set<Descriptor*> original(all.begin(), all.end());
  for (Descriptor* d : again) EXPECT_TRUE(original.count(d)) << "a new chunk while slots were free";
  EXPECT_EQ(pool.committed_bytes(), full);

  // Everything freed: whole chunks go back.
  for (Descriptor* d : again) pool.Delete(d);
  for (Descriptor* d : kept) pool.Delete(d);
  pool.ReleaseEmpty();
  pool.ReleaseEmpty();
  EXPECT_EQ(pool.committed_bytes(), 0u);
  EXPECT_EQ(ResidentPages(all), 0u);
  EXPECT_EQ(pool.in_use(), 0u);
}

// With `now` (malloc_trim), pages and chunks go back at the first call.
// A chunk's last page ends with a tail too short for a slot (146 slots of
// 448 bytes leave 128 bytes of 64 KiB): no slot beyond the last will ever
// touch it, so it goes back like any other page once its slots are free.
TEST(ReturningMetaPool, TheLastPageOfAChunkInUseGoesBackToo) {
  static ReturningMetaPool<Descriptor> pool;
  std::vector<Descriptor*> all;
  for (size_t i = 0; i < kPerChunk; i++) {
    all.push_back(pool.New());
    ASSERT_NE(all.back(), nullptr);
    all.back()->words[0] = i + 1;
  }
  Descriptor* last = all.back();
  ASSERT_TRUE(Resident(last));
  for (size_t i = 1; i < kPerChunk; i++) pool.Delete(all[i]);  // the first stays
  pool.ReleaseEmpty();
  pool.ReleaseEmpty();
  EXPECT_FALSE(Resident(last)) << "the chunk's last page stayed";
  EXPECT_EQ(pool.committed_bytes(), kPageSize) << "only the first slot's page is left";
  EXPECT_EQ(all[0]->words[0], 1u);
  pool.Delete(all[0]);
}

// Repack moves an object that is alone on its page onto a page holding
// other live objects (none becomes resident for it), keeps its bytes, and
// the page it left goes back; an object sharing its page stays.
TEST(ReturningMetaPool, RepackMovesALoneObjectOntoAPageOfLiveOnes) {
  static ReturningMetaPool<Descriptor> pool;
  std::vector<Descriptor*> all;
  for (size_t i = 0; i < kPerChunk; i++) {
    all.push_back(pool.New());
    ASSERT_NE(all.back(), nullptr);
    for (uint64_t& w : all.back()->words) w = i + 1;
  }
  // Keep the first two (they share page 0) and one on page 12, alone.
  Descriptor* lone = all[12 * kPageSize / kSlot + 1];
  for (Descriptor* d : all) {
    if (d != all[0] && d != all[1] && d != lone) pool.Delete(d);
  }
  EXPECT_EQ(pool.Repack(all[1]), all[1]) << "shares its page: stays";
  const uint64_t word = lone->words[0];
  Descriptor* moved = pool.Repack(lone);
  ASSERT_NE(moved, lone);
  uintptr_t page0 = reinterpret_cast<uintptr_t>(all[0]) / kPageSize;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(moved) / kPageSize, page0);
  EXPECT_EQ((reinterpret_cast<uintptr_t>(moved) + sizeof(Descriptor) - 1) / kPageSize, page0);
  for (uint64_t w : moved->words) EXPECT_EQ(w, word);
  pool.Delete(lone);  // the caller's part, once nothing refers to it
  pool.ReleaseEmpty();
  pool.ReleaseEmpty();
  EXPECT_EQ(pool.committed_bytes(), kPageSize);
  EXPECT_FALSE(Resident(lone));
  pool.Delete(all[0]);
  pool.Delete(all[1]);
  pool.Delete(moved);
}

TEST(ReturningMetaPool, ReleaseNowSkipsTheIdleTick) {
  static ReturningMetaPool<Descriptor> pool;
  std::vector<Descriptor*> all;
  for (size_t i = 0; i < 2 * kPerChunk; i++) all.push_back(pool.New());
  for (size_t i = 1; i < all.size(); i++) pool.Delete(all[i]);
  EXPECT_GT(pool.ReleaseEmpty(/*now=*/true), 0u);
  EXPECT_LE(pool.committed_bytes(), 2 * kPageSize);
  pool.Delete(all[0]);
  pool.ReleaseEmpty(/*now=*/true);
  EXPECT_EQ(pool.committed_bytes(), 0u);
}

}  // namespace
}  // namespace nitro
