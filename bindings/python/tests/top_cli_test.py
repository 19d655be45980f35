"""(f) `python3 -m nitroheap top PID --iterations 2` against a live child
prints a partition table and the size classes, twice, and exits; bad input
gives one line on stderr and a non-zero status."""
import os
import re
import subprocess
import unittest

from bindings.python.tests import testlib

testlib.parse_args()


def cli(*args, timeout=60):
    env = testlib.clean_env(PYTHONPATH=testlib.package_parent())
    return subprocess.run([testlib.PY, "-m", "nitroheap"] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


class TopCliTest(unittest.TestCase):

    def test_top_two_iterations(self):
        with testlib.LiveChild("telemetry=1", partition="top_part") as child:
            child.wait_for_segment()
            r = cli("top", str(child.pid), "--iterations", "2", "--interval", "0.3")
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            self.assertEqual(out.count("\x1b[H\x1b[2J"), 2)  # cleared before each refresh
            screens = [s for s in out.split("\x1b[H\x1b[2J") if s]
            self.assertEqual(len(screens), 2)
            for s in screens:
                self.assertIn("NitroHeap top - pid %d" % child.pid, s)
                self.assertIn("PARTITIONS", s)
                self.assertRegex(s, r"\ndefault +[\d,]+ ")
                self.assertRegex(s, r"\ntop_part +64 ")
                self.assertIn("SIZE CLASSES", s)
                self.assertRegex(s, r"\n +size +live objs +live bytes")
                rows = re.findall(r"\n +(\d[\d,]*) +[\d,]+ +[\d.]+ [KMG]?i?B +\d", s)
                self.assertGreater(len(rows), 3, s)
            # The second screen has rates computed from the first.
            self.assertIn("refresh 2/2", screens[1])
            self.assertRegex(screens[1], r"allocations [\d,]+ \([\d,]+/s\)")
            self.assertEqual(child.finish(), 0)

    def test_no_clear_and_class_limit(self):
        with testlib.LiveChild("telemetry=1") as child:
            child.wait_for_segment()
            r = cli("top", str(child.pid), "-n", "1", "--no-clear", "--classes", "3")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("\x1b[", r.stdout)
            self.assertIn("top 3)", r.stdout)

    def test_bad_input(self):
        cases = [
            (["top", "4000000"], "does not exist"),
            (["top", str(os.getpid())], "does not run NitroHeap with telemetry=1"),
        ]
        for args, text in cases:
            r = cli(*args, "--iterations", "1")
            with self.subTest(args=args):
                self.assertEqual(r.returncode, 1)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(text, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
        r = cli("top", "notapid")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid int value", r.stderr)
        r = cli()
        self.assertEqual(r.returncode, 2)
        r = cli("top", "1", "--interval", "0")
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
