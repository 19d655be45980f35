#include "core/fast_math.h"

#include <math.h>

#include "gtest/gtest.h"

namespace nitro {
namespace {

// The flight recorder weighs a sample of `size` bytes by
// 1 / (1 - e^-(size/rate)): for a small request the weight is large and
// 1 - e^-x loses digits, so ExpNeg must be accurate near 0 as well.
TEST(ExpNegTest, MatchesLibmOverTheRangeTheRecorderUses) {
  for (double x = 0; x < 40; x += 0.001) {
    double want = exp(-x);
    double got = ExpNeg(x);
    EXPECT_NEAR(got, want, want * 1e-12) << "x=" << x;
  }
  // From 40 on it answers 0, which the weight cannot tell from e^-x.
  for (double x = 40; x < 45; x += 0.001) {
    EXPECT_EQ(ExpNeg(x), 0.0);
    EXPECT_EQ(1.0 - exp(-x), 1.0) << "x=" << x;
  }
  for (double x = 1e-9; x < 1e-2; x *= 1.7) {
    // The weight itself, where the subtraction cancels.
    double want = 1.0 / -expm1(-x);
    double got = 1.0 / (1.0 - ExpNeg(x));
    EXPECT_NEAR(got, want, want * 1e-6) << "x=" << x;
  }
}

TEST(ExpNegTest, EdgesAreDefined) {
  EXPECT_EQ(ExpNeg(0), 1.0);
  EXPECT_EQ(ExpNeg(-3), 1.0);  // not a weight's argument: clamped, not garbage
  EXPECT_EQ(ExpNeg(40), 0.0);
  EXPECT_EQ(ExpNeg(1e300), 0.0);
  EXPECT_EQ(ExpNeg(INFINITY), 0.0);
  EXPECT_EQ(ExpNeg(NAN), 0.0);
  // Decreasing: a larger block never weighs more than a smaller one.
  double last = 2;
  for (double x = 0; x < 40; x += 0.0137) {
    double v = ExpNeg(x);
    EXPECT_LE(v, last) << "x=" << x;
    last = v;
  }
}

// The sampling distance: -ln(u) for u in (0, 1] from 64 random bits.
TEST(NegLogUniformTest, MatchesLibmAcrossTheRange) {
  // u = top / 2^53 for top from 1 up: every binade, and m on both sides of sqrt 2.
  for (uint64_t top = 1; top <= (uint64_t{1} << 53); top = top < 1000 ? top + 1 : top + top / 997 + 1) {
    uint64_t random = (top - 1) << 11;
    double u = static_cast<double>(top) / 9007199254740992.0;
    double want = -log(u);
    EXPECT_NEAR(NegLogUniform(random), want, 1e-12 * (want > 1 ? want : 1)) << "top=" << top;
  }
  EXPECT_EQ(NegLogUniform(~uint64_t{0}), 0.0);  // u = 1
  EXPECT_NEAR(NegLogUniform(0), 53 * log(2.0), 1e-12);  // u = 2^-53, the largest distance
  // The low 11 bits do not matter.
  EXPECT_EQ(NegLogUniform(uint64_t{12345} << 11), NegLogUniform((uint64_t{12345} << 11) | 0x7ff));
}

// Over many random words its mean is 1 and its tail e^-x: what makes the
// flight recorder's samples a Poisson process over bytes.
TEST(NegLogUniformTest, IsExponentialWithMeanOne) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  const int n = 1000000;
  double sum = 0;
  int above1 = 0, above3 = 0;
  for (int i = 0; i < n; i++) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    double x = NegLogUniform(state);
    ASSERT_GE(x, 0.0);
    sum += x;
    above1 += x > 1;
    above3 += x > 3;
  }
  EXPECT_NEAR(sum / n, 1.0, 0.005);  // sd of the mean: 0.001
  EXPECT_NEAR(above1 / double(n), exp(-1.0), 0.002);
  EXPECT_NEAR(above3 / double(n), exp(-3.0), 0.001);
}

}  // namespace
}  // namespace nitro
