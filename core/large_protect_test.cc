// The large-block protection budget (core/large_protect.h) under a clock the
// test moves by hand.
#include "core/large_protect.h"

#include <gtest/gtest.h>

namespace nitro {
namespace {

LargeProtectBudget Budget(bool every, uint32_t burst, uint32_t per_second, uint32_t sample) {
  LargeProtectBudget b;
  b.Init(LargeProtectConfig{every, burst, per_second, sample}, /*seed=*/12345);
  return b;
}

// Frees among `n` frees all at `now_ms` that get `kind` (by default what a
// token gives: the block's first MiB).
int Protected(LargeProtectBudget* b, uint64_t now_ms, int n,
              LargeProtection kind = LargeProtection::kFirstMiB) {
  int count = 0;
  for (int i = 0; i < n; i++) count += b->ShouldProtect(now_ms) == kind ? 1 : 0;
  return count;
}

TEST(LargeProtect, StrictProtectsEveryBlock) {
  LargeProtectBudget b = Budget(true, 0, 0, 0);
  EXPECT_EQ(Protected(&b, 1000, 10000, LargeProtection::kWhole), 10000);
}

TEST(LargeProtect, StartsFullThenStopsWithoutSampling) {
  LargeProtectBudget b = Budget(false, 64, 256, 0);
  // A process's first frees are all protected, at any clock value.
  EXPECT_EQ(Protected(&b, 5000000, 64), 64);
  EXPECT_EQ(Protected(&b, 5000000, 1000), 0);
}

TEST(LargeProtect, RefillsByTimeUpToTheBurst) {
  LargeProtectBudget b = Budget(false, 64, 256, 0);
  EXPECT_EQ(Protected(&b, 1000, 100), 64);
  // 256 a second: 25 tokens in 100 ms (25.6, the fraction is kept).
  EXPECT_EQ(Protected(&b, 1100, 100), 25);
  EXPECT_EQ(Protected(&b, 1200, 100), 26);  // 0.6 + 25.6
  // A long idle time fills the bucket, never past the burst.
  EXPECT_EQ(Protected(&b, 1000000, 1000), 64);
}

TEST(LargeProtect, RareFreesAreAllProtected) {
  // One free every 10 ms is 100 a second, below the rate: every one.
  LargeProtectBudget b = Budget(false, 4, 256, 0);
  int count = 0;
  for (uint64_t t = 0; t < 100000; t += 10) count += b.ShouldProtect(t) == LargeProtection::kFirstMiB ? 1 : 0;
  EXPECT_EQ(count, 10000);
}

TEST(LargeProtect, FrequentFreesAreBoundedByTheRate) {
  // 1000 frees every millisecond for 10 s: the burst, then 256 a second.
  LargeProtectBudget b = Budget(false, 64, 256, 0);
  int count = 0;
  for (uint64_t t = 1; t <= 10000; t++) count += Protected(&b, t, 1000);
  // The full bucket at 1 ms, then 0.256 tokens for each of 9999 ms.
  EXPECT_EQ(count, 64 + 9999 * 256 / 1000);
}

TEST(LargeProtect, BeyondTheBudgetOneInSampleAtRandomHasItsHeadClosed) {
  LargeProtectBudget b = Budget(false, 0, 0, 256);
  int head = 0, more = 0;
  for (int i = 0; i < 256000; i++) {
    LargeProtection p = b.ShouldProtect(1);
    head += p == LargeProtection::kHead;
    more += p == LargeProtection::kFirstMiB || p == LargeProtection::kWhole;
  }
  // 1000 expected; xorshift from a fixed seed is deterministic, and far
  // inside these bounds.
  EXPECT_GT(head, 800);
  EXPECT_LT(head, 1200);
  EXPECT_EQ(more, 0);
}

TEST(LargeProtect, TokensCloseFirstMiBsAndTheCoinOnlyHeads) {
  LargeProtectBudget b = Budget(false, 3, 0, 1);  // a coin that always picks
  EXPECT_EQ(Protected(&b, 1, 3), 3);
  EXPECT_EQ(Protected(&b, 1, 5, LargeProtection::kHead), 5);
}

TEST(LargeProtect, ZeroEverywhereProtectsNothing) {
  LargeProtectBudget b = Budget(false, 0, 0, 0);
  EXPECT_EQ(Protected(&b, 1, 1000, LargeProtection::kNone), 1000);
  EXPECT_EQ(Protected(&b, 100000, 1000, LargeProtection::kNone), 1000);
}

TEST(LargeProtect, ClockGoingBackIsIgnored) {
  LargeProtectBudget b = Budget(false, 2, 1000, 0);
  EXPECT_EQ(Protected(&b, 5000, 10), 2);
  EXPECT_EQ(Protected(&b, 4000, 10), 0);  // no refill from a clock that went back
  EXPECT_EQ(Protected(&b, 5001, 10), 1);
}

}  // namespace
}  // namespace nitro
