// e^-x without libm, for the flight recorder's sample weights.
#ifndef NITRO_TELEMETRY_EXP_NEG_H_
#define NITRO_TELEMETRY_EXP_NEG_H_

#include <stdint.h>
#include <string.h>

namespace nitro::telemetry {

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
  memcpy(&scale, &bits, sizeof(scale));
  return sum * scale;
}

}  // namespace nitro::telemetry

#endif  // NITRO_TELEMETRY_EXP_NEG_H_
