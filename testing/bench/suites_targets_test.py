#!/usr/bin/python3
"""The external suites' target checks (testing/bench/suites.py), as
run_bench.py puts them in its table: each target PASSes or FAILs on the
right side of its limit, a suite that does not run leaves its targets *not
measured* (None, never a PASS), and an unknown suite is refused. Pure
functions and the not-run paths only: no benchmark runs."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling  # noqa: E402
import suites  # noqa: E402

LIMITS = {"time_geomean": 1.00, "time_row": 1.30, "mem_geomean": 1.10}


class MimallocBenchChecks(unittest.TestCase):
    def test_met_when_every_ratio_is_within_its_limit(self):
        checks = suites.mb_checks({"cfrac": 0.9, "espresso": 1.1}, 0.995, 1.10, LIMITS)
        self.assertEqual([c[1] for c in checks], [True, True, True])
        self.assertIn("worst: espresso 1.10", checks[1][2])

    def test_each_target_fails_on_its_own(self):
        checks = suites.mb_checks({"cfrac": 1.31, "espresso": 0.5}, 1.001, 1.11, LIMITS)
        self.assertEqual([c[1] for c in checks], [False, False, False])
        self.assertEqual(checks[1][2], "over: cfrac 1.31")
        self.assertEqual(checks[0][2], "1.001")

    def test_no_ratio_is_not_a_pass(self):
        checks = suites.mb_checks({}, None, None, LIMITS)
        self.assertEqual([c[1] for c in checks], [None, None, None])

    def test_limits_come_from_the_caller(self):
        checks = suites.mb_checks({"cfrac": 1.2}, 1.2, 1.2, {"time_geomean": 1.25, "time_row": 1.1,
                                                              "mem_geomean": 1.3})
        self.assertEqual([c[1] for c in checks], [True, False, True])
        self.assertIn("<= 1.25", checks[0][0])


class ProfiledPrograms(unittest.TestCase):
    def test_the_slowest_over_the_limit_against_their_fastest_peer(self):
        ratios = {"a": 1.2, "b": 3.0, "c": 1.5, "d": 2.0, "e": 1.4}
        times = {n: {"glibc": [2.0], "tcmalloc": [1.0, 1.2, 0.8], "nitroheap": [9.0]} for n in ratios}
        times["d"]["glibc"] = [0.5]
        got = suites.mb_profiled(ratios, times, LIMITS)
        self.assertEqual([g[0] for g in got], ["b", "d", "c"][:suites.MB_PROFILED])
        self.assertEqual(dict((g[0], g[2]) for g in got)["d"], "glibc")
        self.assertEqual(dict((g[0], g[2]) for g in got)["b"], "tcmalloc")

    def test_none_over_the_limit_none_profiled(self):
        self.assertEqual(suites.mb_profiled({"a": 1.3, "b": 0.9}, {}, LIMITS), [])


class RedisChecks(unittest.TestCase):
    def test_throughput_at_least_and_rss_at_most_jemallocs(self):
        meds = {"small rps": {"jemalloc": 100.0, "nitroheap": 100.0},
                "4KiB rps": {"jemalloc": 100.0, "nitroheap": 99.9},
                "RSS after FLUSHALL MiB": {"jemalloc": 10.0, "nitroheap": 10.1}}
        self.assertEqual([c[1] for c in suites.redis_checks(meds)], [True, False, False])
        meds["RSS after FLUSHALL MiB"]["nitroheap"] = 9.0
        self.assertTrue(suites.redis_checks(meds)[2][1])

    def test_a_missing_median_is_not_measured(self):
        meds = {"small rps": {"jemalloc": 100.0, "nitroheap": None}}
        self.assertEqual([c[1] for c in suites.redis_checks(meds)], [None, None, None])


class ScalingGap(unittest.TestCase):
    """The retention target's explanation: each side of the ratio against the
    best peer's, and the profile asked of the fastest peer at the most threads."""
    ALLOCS = [("glibc", None), ("jemalloc", "/lib/je.so"), ("nitroheap", "/lib/nh.so")]
    COUNTS = [1, 32]
    # ops per run; walls chosen for per-thread throughputs (M ops/s):
    # glibc 10 -> 1 (0.1), jemalloc 5 -> 1.5 (0.3), nitroheap 20 -> 1.2 (0.06).
    OPS = {(a, t): 1000000 * t for a in ("glibc", "jemalloc", "nitroheap") for t in (1, 32)}
    WALLS = {("glibc", 1): [0.1], ("glibc", 32): [1.0], ("jemalloc", 1): [0.2], ("jemalloc", 32): [1 / 1.5],
             ("nitroheap", 1): [0.05], ("nitroheap", 32): [1 / 1.2]}

    def test_each_side_of_the_ratio_and_the_fastest_peer_are_named(self):
        runs = [(a, l or "", None) for a, l in self.ALLOCS]
        _, verdict = scaling.report(runs, self.COUNTS, self.WALLS, self.WALLS, self.OPS, 1)
        self.assertEqual(verdict[1], "jemalloc")
        self.assertEqual(verdict[3], "MISSED")
        asked = []

        def profiler(title, argv, stdin_path, a, b):
            asked.append((title, argv, a, b))
            return ["profile lines"]
        lines = suites.scaling_gap(self.ALLOCS, "/bin/workloads", self.COUNTS, 1.0, self.WALLS, self.OPS,
                                   verdict, profiler)
        text = "\n".join(lines)
        self.assertIn("NitroHeap's: 1.20 / 20.00 = 0.060", text)
        self.assertIn("jemalloc's (the best peer's retention): 1.50 / 5.00 = 0.300", text)
        self.assertIn("At T=1 NitroHeap does 4.00x jemalloc's throughput, at T=32 0.80x", text)
        self.assertIn("the fastest peer at T=32 is jemalloc", text)
        self.assertEqual(len(asked), 1)
        self.assertEqual(asked[0][1], ["/bin/workloads", "scaling", "--threads=32", "--scale=1"])
        self.assertEqual(asked[0][2], ("nitroheap", "NitroHeap", "/lib/nh.so"))
        self.assertEqual(asked[0][3], ("jemalloc", "jemalloc", "/lib/je.so"))
        self.assertEqual(lines[-1], "profile lines")

    def test_without_a_profiler_only_the_ratios(self):
        verdict = (0.06, "jemalloc", 0.3, "MISSED")
        lines = suites.scaling_gap(self.ALLOCS, "/bin/workloads", self.COUNTS, 1.0, self.WALLS, self.OPS,
                                   verdict, None)
        self.assertEqual(len(lines), 2)


class NotRun(unittest.TestCase):
    def test_every_suite_lists_its_targets_unmeasured_with_the_reason(self):
        for name, count in (("mimalloc-bench", 3), ("redis", 3), ("scaling", 1)):
            checks = suites.not_run_checks(name, "no sources", LIMITS)
            self.assertEqual(len(checks), count, name)
            for target, ok, measured in checks:
                self.assertIsNone(ok, target)
                self.assertEqual(measured, "not run: no sources")

    def test_scaling_without_the_workloads_binary(self):
        lines, failures, checks = suites.run_suites(["scaling"], "/nonexistent.so", "/nonexistent", 1, True,
                                                    workloads="/nonexistent/workloads")
        self.assertEqual(failures, [])
        self.assertEqual([(c[0], c[1]) for c in checks], [(suites.SCALING_TARGET, None)])
        self.assertTrue(any("Not run" in l for l in lines))

    def test_mimalloc_bench_without_sources(self):
        old_env, old_cache = os.environ.get("NITRO_MIMALLOC_BENCH_SRC"), suites.CACHE
        os.environ["NITRO_MIMALLOC_BENCH_SRC"] = "/nonexistent"
        suites.CACHE = "/nonexistent/cache"
        try:
            lines, failures, checks = suites.run_suites(["mimalloc-bench"], "/nonexistent.so", "/nonexistent",
                                                        1, True)
        finally:
            suites.CACHE = old_cache
            if old_env is None:
                del os.environ["NITRO_MIMALLOC_BENCH_SRC"]
            else:
                os.environ["NITRO_MIMALLOC_BENCH_SRC"] = old_env
        self.assertEqual(failures, [])
        self.assertEqual([c[1] for c in checks], [None, None, None])
        self.assertTrue(all(c[2].startswith("not run: ") for c in checks))

    def test_an_unknown_suite_is_refused_before_anything_runs(self):
        with self.assertRaises(ValueError) as e:
            suites.run_suites(["redis", "bogus"], "/nonexistent.so", "/nonexistent", 1, True)
        self.assertIn("bogus", str(e.exception))


if __name__ == "__main__":
    unittest.main()
