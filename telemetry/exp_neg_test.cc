#include "telemetry/exp_neg.h"

#include <math.h>

#include "gtest/gtest.h"

namespace nitro::telemetry {
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

}  // namespace
}  // namespace nitro::telemetry
