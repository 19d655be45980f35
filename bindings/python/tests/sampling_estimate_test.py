"""The flight recorder's samples are a Poisson process over allocated bytes:
an allocation of s bytes is sampled with probability 1 - e^(-s/rate), the
probability every reader divides by (nitroheap.Recording.weight, pprof's
heap profiles). So the bytes the samples stand for match the bytes the
program allocated, for blocks below, at and above the rate.

alloc_workload fixed SIZE COUNT allocates and frees COUNT blocks of SIZE
under LD_PRELOAD=libnitroheap.so with profile_rate=64K. Until 2026-12-02 the
distance to the next sample was uniform in [0, 2 rate): blocks of twice the
rate were all sampled, and their bytes came out 16% high (4 rates: 2%).
"""
import math
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()

RATE = 64 * 1024


class SamplingEstimateTest(unittest.TestCase):

    def estimate(self, size, count):
        d = testlib.tmpdir()
        path, _, out = testlib.record_workload(
            d, rounds="fixed", profile_rate=RATE, extra_args=(str(size), str(count)),
            extra_options=",flight_recorder_events=65536,sample_rate=0")
        self.assertIn("done fixed", out)
        rec = nitroheap.read_flight_recorder(path)
        self.assertEqual(rec.dropped_events, 0)
        events = [e for e in rec.events if e.requested_size == size]
        return len(events), sum(rec.weight(e) * size for e in events)

    def check(self, size, count):
        p = -math.expm1(-size / RATE)
        samples, estimate = self.estimate(size, count)
        # The estimate's relative standard deviation is sqrt((1 - p) / (p n));
        # four of them is a bound that a correct sampler misses about once in
        # 16,000 runs.
        sd = math.sqrt((1 - p) / (p * count))
        ratio = estimate / (size * count)
        self.assertLess(abs(ratio - 1), 4 * sd + 0.002,
                        "size %d: %d samples of %d (expected %.0f), estimate/true %.4f (sd %.4f)"
                        % (size, samples, count, p * count, ratio, sd))
        self.assertLess(abs(samples - p * count), 4 * math.sqrt(count * p * (1 - p)) + 1,
                        "size %d: %d samples of %d, expected %.0f" % (size, samples, count, p * count))

    def test_quarter_rate(self):
        self.check(RATE // 4, 24000)

    def test_at_the_rate(self):
        self.check(RATE, 6000)

    def test_twice_the_rate(self):
        self.check(2 * RATE, 3000)

    def test_four_times_the_rate(self):
        self.check(4 * RATE, 3000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
