// Elementary functions without libm, which the preload library does not
// link: the flight recorder's sample weights and its sampling distance.
#ifndef NITRO_CORE_FAST_MATH_H_
#define NITRO_CORE_FAST_MATH_H_

#include <stdint.h>

namespace nitro {

// e^-x for x >= 0, without libm (which the preload library does not link):
// e^-x = 2^-(x log2 e), the integer part in the exponent's bits, the rest by
// a series. It runs for every flight-recorder sample, where a block larger
// than profile_rate is sampled nearly always: the loops it had before (a
// 19-term series with a division per term, one halving per unit of the
// exponent) were a third of a sample's own time in `workloads large_cycle`.
inline double ExpNeg(double x) {
  // e^-40 is below half a unit in the last place of 1: 1 - e^-x is 1.
  if (!(x < 40)) return 0;
  if (x <= 0) return 1;  // a weight's x is a size over a rate: never below 0
  double y = x * 1.4426950408889634;  // log2(e)
  int whole = static_cast<int>(y);
  double t = (y - whole) * 0.6931471805599453;  // back to base e, in [0, ln 2)
  // e^-t by Horner over 1/k!, k <= 13: the first term left out is below
  // ln2^14/14! = 5.5e-14 (relative to e^-t >= 1/2).
  static constexpr double kInverseFactorial[] = {
      1.0,
      1.0,
      1.0 / 2,
      1.0 / 6,
      1.0 / 24,
      1.0 / 120,
      1.0 / 720,
      1.0 / 5040,
      1.0 / 40320,
      1.0 / 362880,
      1.0 / 3628800,
      1.0 / 39916800,
      1.0 / 479001600,
      1.0 / 6227020800.0,
  };
  double sum = kInverseFactorial[13];
  for (int k = 12; k >= 0; k--) sum = sum * -t + kInverseFactorial[k];
  // 2^-whole, whole in [0, 57]: a normal double's exponent field.
  uint64_t bits = static_cast<uint64_t>(1023 - whole) << 52;
  double scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));  // a register move, even under -fno-builtin
  return sum * scale;
}

// -ln(u) for u uniform in (0, 1], u made of the top 53 bits of `random`: an
// exponentially distributed variate of mean 1. The flight recorder's
// countdown to its next sample is this times profile_rate, so that samples
// form a Poisson process over allocated bytes, as every reader's weight,
// 1 / (1 - e^(-size/rate)), assumes. ln u = e ln 2 + ln m with u = m 2^e,
// m in [1/sqrt2, sqrt2), and ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t|
// below 0.172: the series to t^15 leaves under 1e-13.
inline double NegLogUniform(uint64_t random) {
  uint64_t top = (random >> 11) + 1;  // 1 .. 2^53: u = top / 2^53
  double u = static_cast<double>(top) * (1.0 / 9007199254740992.0);
  uint64_t bits;
  __builtin_memcpy(&bits, &u, sizeof(bits));
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;  // u is normal: 2^-53 <= u <= 1
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  __builtin_memcpy(&m, &bits, sizeof(m));  // in [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  double t = (m - 1) / (m + 1);
  double t2 = t * t;
  double series = 1.0 / 15;
  for (int k = 13; k >= 1; k -= 2) series = series * t2 + 1.0 / k;
  double ln = e * 0.6931471805599453 + 2 * t * series;
  return -ln;
}

}  // namespace nitro

#endif  // NITRO_CORE_FAST_MATH_H_
