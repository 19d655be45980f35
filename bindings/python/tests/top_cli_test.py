"""(f) `python3 -m nitroheap top PID --iterations 2` against a live child
prints a partition table and the size classes, twice, and exits; bad input
gives one line on stderr and a non-zero status."""
import os
import pty
import re
import select
import subprocess
import time
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()
from nitroheap import cli as nitro_cli  # noqa: E402


def busy_doc():
    """A statistics document with wide numbers: a large, busy process."""
    c = {"allocations": 12345678901, "frees": 12345000000, "live_objects": 987654321,
         "live_bytes": 123 << 30, "live_requested_bytes": 120 << 30, "mapped_bytes": 512 << 30,
         "committed_bytes": 130 << 30, "free_cached_bytes": 3 << 30, "returned_bytes": 77 << 30,
         "quarantine_bytes": 64 << 20, "thread_cache_bytes": 900 << 20, "middle_layer_bytes": 700 << 20,
         "lock_contention": 123456789, "sampled_allocations": 4567890, "slabs": 1234567,
         "slab_objects": 99999999, "slab_free_objects": 1234567}
    doc = dict(c, time_ns=2000000000, heap_mode="nitro", hardening_mode="balanced", threads=640,
               partitions={"default": dict(c), "a_rather_long_partition_name": dict(c), "io": dict(c)})
    doc["size_classes"] = [{"size": 16 * (i + 1) if i < 64 else 4096 * (i - 62), "live_objects": 10000000 + i,
                            "slabs": 100000 + i, "slab_objects": 20000000, "slab_free_objects": 1000,
                            "thread_cache_objects": 123456, "middle_layer_objects": 654321,
                            "allocations": 98765432100} for i in range(88)]
    return doc


def cli(*args, timeout=60):
    env = testlib.clean_env(PYTHONPATH=testlib.package_parent())
    return subprocess.run([testlib.PY, "-m", "nitroheap"] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def run_on_pty(argv, columns, rows, timeout=30):
    """Runs argv with a pseudo-terminal of columns x rows as stdout; returns
    what it printed."""
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = testlib.clean_env(PYTHONPATH=testlib.package_parent(), COLUMNS=None, LINES=None)
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL, env=env, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=timeout)
    os.close(master)
    return out.decode("utf-8", "replace")


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

    def test_render_top_fits_80_by_24(self):
        doc = busy_doc()
        prev = dict(doc, time_ns=1000000000)
        header = {"updates": 123456, "update_time_ns": time.time_ns()}
        wide = nitro_cli.render_top(os.getpid(), doc, header, prev, 2, 5, None)
        self.assertGreater(max(len(x) for x in wide), 80)  # unlimited: the full table
        for width, height in [(80, 24), (100, 30), (60, 20)]:
            lines = nitro_cli.render_top(os.getpid(), doc, header, prev, 2, 5, None, width, height)
            with self.subTest(width=width):
                too_long = [x for x in lines if len(x) > width]
                self.assertEqual(too_long, [], "\n".join(lines))
                self.assertLessEqual(len(lines), height - 1, "\n".join(lines))  # one line for the cursor
                text = "\n".join(lines)
                # What matters most survives: names, live bytes, rates.
                self.assertRegex(text, r"\ndefault +([\d,]+ +)?123 GiB")
                self.assertIn("\na_rather_lo", text)  # cut, not dropped
                if width >= 80:
                    self.assertIn("allocs/s", text)
                self.assertRegex(text, r"\n +size +live objs +live bytes")
                self.assertIn("SIZE CLASSES", text)

    def test_render_top_shows_contracts_in_80_columns(self):
        doc = busy_doc()
        doc.update(memory_limit_hard_limit=8 << 30, memory_limit_soft_limit=7 << 30, memory_limit_use=5 << 30,
                   memory_limit_crossings=2, memory_limit_refusals=1, memory_limit_source="cgroup",
                   memory_limit_last_pressure_ns=1000000000)
        doc["partitions"]["io"].update(contract_hard_limit=600 << 20, contract_soft_limit=500 << 20,
                                       contract_use=550 << 20, contract_crossings=3, contract_callbacks=3,
                                       contract_refusals=7, contract_last_pressure_ns=1500000000)
        header = {"updates": 1, "update_time_ns": time.time_ns()}
        lines = nitro_cli.render_top(os.getpid(), doc, header, None, 1, 1, None, 80, 40)
        text = "\n".join(lines)
        self.assertEqual([x for x in lines if len(x) > 80], [], text)
        self.assertIn("memory limit 8 GiB (cgroup)", text)
        self.assertIn("CONTRACTS (1)", text)
        self.assertRegex(text, r"\nio +550 MiB +600 MiB +500 MiB +3 +3 +7")
        # Partitions without a limit are not listed; no limit, no section.
        plain = "\n".join(nitro_cli.render_top(os.getpid(), busy_doc(), header, None, 1, 1, None, 80, 40))
        self.assertNotIn("CONTRACTS", plain)
        self.assertNotIn("memory limit", plain)

    def test_render_top_shows_movable_heap_in_80_columns(self):
        doc = busy_doc()
        doc.update(movable_live_objects=207517, movable_live_bytes=107 << 20, movable_slabs=1700,
                   movable_compactions=8, movable_compact_ns=2500000000, movable_objects_moved=175880,
                   movable_bytes_moved=90 << 20, movable_slabs_freed=15598, movable_pages_returned=262144,
                   movable_pinned_skipped=3)
        header = {"updates": 1, "update_time_ns": time.time_ns()}
        lines = nitro_cli.render_top(os.getpid(), doc, header, None, 1, 1, None, 80, 40)
        text = "\n".join(lines)
        self.assertEqual([x for x in lines if len(x) > 80], [], text)
        self.assertIn("movable 207,517 objects, 107 MiB in 1,700 slabs", text)
        self.assertIn("compactions 8 (2.50 s)", text)
        self.assertIn("moved 175,880 objects, 90 MiB", text)
        self.assertIn("slabs freed 15,598", text)
        self.assertIn("returned 1 GiB", text)
        self.assertIn("pinned skipped 3", text)
        # A process that never used the movable heap: no line.
        plain = "\n".join(nitro_cli.render_top(os.getpid(), busy_doc(), header, None, 1, 1, None, 80, 40))
        self.assertNotIn("movable", plain)

    def test_top_width_option_and_pty(self):
        with testlib.LiveChild("telemetry=1", partition="top_part") as child:
            child.wait_for_segment()
            r = cli("top", str(child.pid), "-n", "1", "--no-clear", "--width", "80")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([x for x in r.stdout.splitlines() if len(x) > 80], [], r.stdout)
            self.assertIn("PARTITIONS", r.stdout)
            # On a terminal of 80x24, as a person runs it: fits both ways.
            screen = run_on_pty([testlib.PY, "-m", "nitroheap", "top", str(child.pid), "-n", "1"],
                                columns=80, rows=24)
            screen = screen.replace("\x1b[H\x1b[2J", "")
            lines = screen.replace("\r\n", "\n").rstrip("\n").split("\n")
            self.assertEqual([x for x in lines if len(x) > 80], [], screen)
            self.assertLessEqual(len(lines), 23, screen)
            self.assertIn("SIZE CLASSES", screen)
            self.assertEqual(child.finish(), 0)
        r = cli("top", "1", "--width", "10")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--width must be at least 40", r.stderr)

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
