// PageMap on a private instance (the addresses are only numbers to it), and
// the global map's view of a partition's memory.
#include "core/page_map.h"

#include <gtest/gtest.h>
#include <stdint.h>

#include <memory>

#include "core/partition.h"

namespace nitro {
namespace {

constexpr uintptr_t kGiB = uintptr_t{1} << 30;

const void* Addr(uintptr_t a) { return reinterpret_cast<const void*>(a); }

class PageMapTest : public ::testing::Test {
 protected:
  // 1 MiB of root, zero: no leaves.
  std::unique_ptr<PageMap> map_ = std::make_unique<PageMap>();
  Span a_{}, b_{};
};

TEST_F(PageMapTest, UnmappedAndNonCanonicalAddressesHaveNoSpan) {
  EXPECT_EQ(map_->Get(nullptr), nullptr);
  EXPECT_EQ(map_->Get(Addr(0x1000)), nullptr);
  EXPECT_EQ(map_->Get(Addr(0x7f0000001000)), nullptr);
  EXPECT_EQ(map_->Get(Addr((uintptr_t{1} << kAddressBits) - 1)), nullptr);
  // Beyond 47 bits: never looked up in the root (it would be out of bounds).
  EXPECT_EQ(map_->Get(Addr(uintptr_t{1} << kAddressBits)), nullptr);
  EXPECT_EQ(map_->Get(Addr(0xffff800000000000)), nullptr);
  EXPECT_EQ(map_->Get(Addr(~uintptr_t{0})), nullptr);
  // Even with every leaf near the top of the address space in place.
  ASSERT_TRUE(map_->Ensure((uintptr_t{1} << kAddressBits) - kGiB, kGiB));
  EXPECT_EQ(map_->Get(Addr((uintptr_t{1} << kAddressBits) - 1)), nullptr);
  EXPECT_EQ(map_->Get(Addr((uintptr_t{1} << kAddressBits) + 0x1000)), nullptr);
  EXPECT_EQ(map_->Get(Addr(0xffffffffffff0000)), nullptr);
}

// The fast paths' lookup has no test of its own: an address without a
// span (no leaf for its GiB, or no entry in the leaf) gets none(), a span
// on which every fast-path check fails, and a set entry its span, far
// addresses included (they find a lower address's, which FastFreeObject
// then refuses: fast_path_test).
TEST_F(PageMapTest, FastLookupGivesTheSpanOrNone) {
  const Span* none = map_->none();
  EXPECT_EQ(none->FastFreeClass(), 0);
  EXPECT_EQ(none->FastFreeWordOf(), 0u);
  EXPECT_EQ(none->index_bound, 0u);
  EXPECT_EQ(none->requested_sizes, nullptr);
  EXPECT_EQ(map_->GetUnlessFar(nullptr), none);
  EXPECT_EQ(map_->GetUnlessFar(Addr(0x7f0000001000)), none);
  EXPECT_EQ(map_->GetUnlessFar(Addr(~uintptr_t{0})), none);
  const uintptr_t start = 0x7f1234560000;
  ASSERT_TRUE(map_->Ensure(start, 4 * kPageSize));
  EXPECT_EQ(map_->GetUnlessFar(Addr(start)), none);  // a leaf, no entry yet
  map_->Set(start + kPageSize, 2, &a_);
  EXPECT_EQ(map_->GetUnlessFar(Addr(start)), none);
  EXPECT_EQ(map_->GetUnlessFar(Addr(start + kPageSize + 5)), &a_);
  EXPECT_EQ(map_->GetUnlessFar(Addr(start + 3 * kPageSize - 1)), &a_);
  EXPECT_EQ(map_->GetUnlessFar(Addr(start + 3 * kPageSize)), none);
  EXPECT_EQ(map_->GetUnlessFar(Addr((uintptr_t{1} << kAddressBits) + start + kPageSize)), &a_);
  map_->Set(start + kPageSize, 2, nullptr);
  EXPECT_EQ(map_->GetUnlessFar(Addr(start + kPageSize)), none);
  EXPECT_EQ(map_->Get(Addr(start + kPageSize)), nullptr);
  // The global map's none() stays zero: nothing ever writes it.
  EXPECT_EQ(GlobalPageMap().none()->FastFreeWordOf(), 0u);
  EXPECT_EQ(GlobalPageMap().none()->index_bound, 0u);
}

// Free's guesses (ClassHint): one per page number modulo a GiB of pages,
// zero until set, returned to the kernel (zero again) with the entries of
// a range that covers whole pages of guesses, and only then.
TEST_F(PageMapTest, ClassGuessesArePerPageSharedAGibApartAndReturnedWithTheirRange) {
  const uintptr_t start = 0x7f1234000000;  // 32 MiB aligned
  EXPECT_EQ(map_->ClassHint(Addr(start)), 0u);
  map_->SetClassHint(Addr(start + 5), 640);
  map_->SetClassHint(Addr(start + kPageSize), 64);
  EXPECT_EQ(map_->ClassHint(Addr(start)), 640u);
  EXPECT_EQ(map_->ClassHint(Addr(start + kPageSize - 1)), 640u);
  EXPECT_EQ(map_->ClassHint(Addr(start + kPageSize)), 64u);
  EXPECT_EQ(map_->ClassHint(Addr(start + 2 * kPageSize)), 0u);
  EXPECT_EQ(map_->ClassHint(Addr(start + kGiB)), 640u) << "pages a GiB apart share a guess";
  EXPECT_EQ(map_->ClassHint(Addr(start - 3 * kGiB + kPageSize)), 64u);
  const uintptr_t span = PageMap::kHintPageSpan;  // 8 MiB of address space a page of guesses
  ASSERT_TRUE(map_->Ensure(start - span, 4 * span));
  map_->SetClassHint(Addr(start + span), 128);
  // Less than a page of guesses, or a range that only straddles one: kept.
  map_->Clear(start, start + span - kPageSize);
  map_->Clear(start - span / 2, start + span / 2);
  EXPECT_EQ(map_->ClassHint(Addr(start)), 640u);
  EXPECT_EQ(map_->ClassHint(Addr(start + kPageSize)), 64u);
  // The whole page: returned, and only that page.
  map_->Clear(start, start + span);
  EXPECT_EQ(map_->ClassHint(Addr(start)), 0u);
  EXPECT_EQ(map_->ClassHint(Addr(start + kPageSize)), 0u);
  EXPECT_EQ(map_->ClassHint(Addr(start + span)), 128u);
  map_->SetClassHint(Addr(start), 192);
  map_->ReleaseClear(start - span, start + span + kPageSize);
  EXPECT_EQ(map_->ClassHint(Addr(start)), 0u);
  EXPECT_EQ(map_->ClassHint(Addr(start + span)), 128u);
  // A range of a GiB or more covers every guess.
  map_->SetClassHint(Addr(start + 3 * span), 256);
  ASSERT_TRUE(map_->Ensure(start + 4 * kGiB, kGiB));
  map_->ReleaseClear(start + 4 * kGiB, start + 5 * kGiB);
  EXPECT_EQ(map_->ClassHint(Addr(start + span)), 0u);
  EXPECT_EQ(map_->ClassHint(Addr(start + 3 * span)), 0u);
}

TEST_F(PageMapTest, EnsureRefusesRangesBeyondTheAddressSpace) {
  EXPECT_FALSE(map_->Ensure((uintptr_t{1} << kAddressBits) - kPageSize, 2 * kPageSize));
  EXPECT_FALSE(map_->Ensure(uintptr_t{1} << kAddressBits, kPageSize));
  EXPECT_TRUE(map_->Ensure((uintptr_t{1} << kAddressBits) - kPageSize, kPageSize));
}

TEST_F(PageMapTest, SetThenGetCoversExactlyThePages) {
  const uintptr_t start = 0x7f1234560000;
  ASSERT_TRUE(map_->Ensure(start, 10 * kPageSize));
  // A leaf alone points nowhere yet.
  EXPECT_EQ(map_->Get(Addr(start)), nullptr);
  map_->Set(start, 10, &a_);
  for (uintptr_t off = 0; off < 10 * kPageSize; off += 512) {
    EXPECT_EQ(map_->Get(Addr(start + off)), &a_) << off;
  }
  EXPECT_EQ(map_->Get(Addr(start + 10 * kPageSize - 1)), &a_);
  EXPECT_EQ(map_->Get(Addr(start - 1)), nullptr);
  EXPECT_EQ(map_->Get(Addr(start + 10 * kPageSize)), nullptr);
  // Neighbouring runs keep their own spans.
  map_->Set(start + 10 * kPageSize, 1, &b_);
  EXPECT_EQ(map_->Get(Addr(start + 10 * kPageSize)), &b_);
  EXPECT_EQ(map_->Get(Addr(start + 10 * kPageSize - 1)), &a_);
  // The same page offset in another GiB is another leaf entirely.
  EXPECT_EQ(map_->Get(Addr(start + kGiB)), nullptr);
}

TEST_F(PageMapTest, RangesAcrossLeavesGetEveryLeaf) {
  const uintptr_t start = 5 * kGiB - 3 * kPageSize;
  ASSERT_TRUE(map_->Ensure(start, 6 * kPageSize));
  map_->Set(start, 6, &a_);
  for (int i = 0; i < 6; i++) EXPECT_EQ(map_->Get(Addr(start + i * kPageSize)), &a_) << i;
  EXPECT_EQ(map_->Get(Addr(start + 6 * kPageSize)), nullptr);
  EXPECT_EQ(map_->Get(Addr(start - kPageSize)), nullptr);
  // Ensure is idempotent: the leaves and their entries stay.
  ASSERT_TRUE(map_->Ensure(start, 6 * kPageSize));
  ASSERT_TRUE(map_->Ensure(4 * kGiB, 2 * kGiB));
  EXPECT_EQ(map_->Get(Addr(start)), &a_);
  EXPECT_EQ(map_->Get(Addr(start + 5 * kPageSize)), &a_);
}

// Set writes leaf by leaf: runs that end on a leaf's last page, start on
// its first, or cover a whole leaf and more, the address space's last page
// included, get exactly their pages.
TEST_F(PageMapTest, SetCoversRunsEndingAndStartingAtLeafEdges) {
  const uintptr_t top = uintptr_t{1} << kAddressBits;
  ASSERT_TRUE(map_->Ensure(top - kGiB, kGiB));
  map_->Set(top - kPageSize, 1, &a_);
  EXPECT_EQ(map_->Get(Addr(top - 1)), &a_);
  EXPECT_EQ(map_->Get(Addr(top - kPageSize - 1)), nullptr);
  map_->Set(top - 3 * kPageSize, 2, &b_);
  EXPECT_EQ(map_->Get(Addr(top - 3 * kPageSize)), &b_);
  EXPECT_EQ(map_->Get(Addr(top - 2 * kPageSize)), &b_);
  EXPECT_EQ(map_->Get(Addr(top - kPageSize)), &a_);
  // A leaf and a page on either side: three leaves.
  const uintptr_t start = 8 * kGiB - kPageSize;
  const size_t pages = kGiB / kPageSize + 2;
  ASSERT_TRUE(map_->Ensure(start - kPageSize, (pages + 2) * kPageSize));
  map_->Set(start, pages, &a_);
  for (uintptr_t a = start; a < start + pages * kPageSize; a += 64 * kPageSize) {
    ASSERT_EQ(map_->Get(Addr(a)), &a_) << std::hex << a;
  }
  EXPECT_EQ(map_->Get(Addr(8 * kGiB)), &a_);
  EXPECT_EQ(map_->Get(Addr(9 * kGiB - 1)), &a_);
  EXPECT_EQ(map_->Get(Addr(9 * kGiB)), &a_);
  EXPECT_EQ(map_->Get(Addr(start + pages * kPageSize - 1)), &a_);
  EXPECT_EQ(map_->Get(Addr(start + pages * kPageSize)), nullptr);
  EXPECT_EQ(map_->Get(Addr(start - 1)), nullptr);
  // A run inside one leaf, starting on its first page.
  map_->Set(8 * kGiB, 3, &b_);
  EXPECT_EQ(map_->Get(Addr(8 * kGiB - 1)), &a_);
  EXPECT_EQ(map_->Get(Addr(8 * kGiB + 3 * kPageSize - 1)), &b_);
  EXPECT_EQ(map_->Get(Addr(8 * kGiB + 3 * kPageSize)), &a_);
}

TEST_F(PageMapTest, SetEndsPointsOnlyTheFirstAndLastPage) {
  const uintptr_t start = 0x7e0000000000;
  ASSERT_TRUE(map_->Ensure(start, 20 * kPageSize));
  a_.start = start;
  a_.pages = 8;
  map_->SetEnds(&a_);
  EXPECT_EQ(map_->Get(Addr(start)), &a_);
  EXPECT_EQ(map_->Get(Addr(start + 8 * kPageSize - 1)), &a_);
  for (int i = 1; i < 7; i++) EXPECT_EQ(map_->Get(Addr(start + i * kPageSize)), nullptr) << i;
  EXPECT_EQ(map_->Get(Addr(start + 8 * kPageSize)), nullptr);
  // A one-page run has one end.
  b_.start = start + 10 * kPageSize;
  b_.pages = 1;
  map_->SetEnds(&b_);
  EXPECT_EQ(map_->Get(Addr(b_.start)), &b_);
  EXPECT_EQ(map_->Get(Addr(b_.start - 1)), nullptr);
  EXPECT_EQ(map_->Get(Addr(b_.start + kPageSize)), nullptr);
}

TEST_F(PageMapTest, SetToNullClears) {
  const uintptr_t start = 0x600000000000;
  ASSERT_TRUE(map_->Ensure(start, 4 * kPageSize));
  map_->Set(start, 4, &a_);
  map_->Set(start + kPageSize, 2, nullptr);
  EXPECT_EQ(map_->Get(Addr(start)), &a_);
  EXPECT_EQ(map_->Get(Addr(start + kPageSize)), nullptr);
  EXPECT_EQ(map_->Get(Addr(start + 3 * kPageSize - 1)), nullptr);
  EXPECT_EQ(map_->Get(Addr(start + 3 * kPageSize)), &a_);
  map_->Set(start, 4, nullptr);
  for (int i = 0; i < 4; i++) EXPECT_EQ(map_->Get(Addr(start + i * kPageSize)), nullptr) << i;
}

TEST(GlobalPageMap, KnowsEveryPageOfAPartitionsBlocks) {
  Partition* p = Partition::Create("page_map_test", PartitionConfig{});
  ASSERT_NE(p, nullptr);
  char* small = static_cast<char*>(p->Allocate(100));
  char* large = static_cast<char*>(p->Allocate(300 * 1024));  // above kMaxSmallSize
  ASSERT_TRUE(small && large);
  Span* ss = GlobalPageMap().Get(small);
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(ss->state, SpanState::kSlab);
  EXPECT_EQ(ss->partition, p);
  for (uintptr_t a = ss->start; a < ss->end(); a += kPageSize)
    EXPECT_EQ(GlobalPageMap().Get(Addr(a)), ss);
  Span* ls = GlobalPageMap().Get(large);
  ASSERT_NE(ls, nullptr);
  EXPECT_EQ(ls->state, SpanState::kLarge);
  EXPECT_EQ(ls->start, reinterpret_cast<uintptr_t>(large));
  EXPECT_EQ(GlobalPageMap().Get(large + 300 * 1024 - 1), ls);
  p->Free(large);
  p->Free(small);
  Partition::Destroy(p);
  // Destroy clears the partition's pages.
  EXPECT_EQ(GlobalPageMap().Get(small), nullptr);
  EXPECT_EQ(GlobalPageMap().Get(large), nullptr);
}

}  // namespace
}  // namespace nitro
