"""(c) nitroheap.attach(pid): a live Python child under LD_PRELOAD (telemetry=1)
allocates in a loop; its statistics move between two reads; its segment goes
away when it exits normally; clear errors for a missing process, a process
without NitroHeap, a stale segment, and a segment of another layout."""
import os
import struct
import time
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()


def unused_pid():
    pid = 4_000_000  # above the kernel's default pid_max (4194304 is the hard limit)
    while pid > 1000:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 7919
    raise AssertionError("no unused pid")


class AttachLiveTest(unittest.TestCase):

    def test_counters_move_and_segment_goes_at_exit(self):
        with testlib.LiveChild("telemetry=1", partition="child_part") as child:
            seg = child.wait_for_segment()
            view = nitroheap.attach(child.pid)
            self.assertEqual(view.pid, child.pid)
            first = view.stats()
            h1 = view.header()
            time.sleep(0.3)
            second = view.stats()
            h2 = view.header()
            # The document.
            self.assertEqual(first["version"], 1)
            self.assertEqual(first["pid"], child.pid)
            self.assertEqual(first["heap_mode"], "nitro")
            for k in nitroheap.COUNTERS:
                self.assertIn(k, first)
            self.assertEqual(len(first["size_classes"]), 88)
            # The counters moved.
            self.assertGreater(second["allocations"], first["allocations"])
            self.assertGreater(second["frees"], first["frees"])
            self.assertGreater(second["time_ns"], first["time_ns"])
            self.assertGreater(h2["sequence"], h1["sequence"])
            self.assertEqual(h2["sequence"] % 2, 0)
            self.assertGreater(h2["updates"], h1["updates"])
            self.assertEqual(h2["pid"], child.pid)
            # Partitions.
            parts = second["partitions"]
            self.assertIn("default", parts)
            self.assertGreater(parts["default"]["live_bytes"], 0)
            self.assertGreater(parts["default"]["mapped_bytes"], 0)
            self.assertIn("child_part", parts)
            self.assertGreaterEqual(parts["child_part"]["live_objects"], 64)
            self.assertGreaterEqual(parts["child_part"]["live_bytes"], 64 * 4000)
            self.assertEqual(h2["payload_capacity"], 512 * 1024 - 64)
            self.assertEqual(h2["header_size"], 64)
            self.assertLess(abs(time.time_ns() - h2["update_time_ns"]), 5 * 10**9)
            # Many reads while the child writes: every one is consistent JSON.
            for _ in range(200):
                self.assertEqual(view.stats()["pid"], child.pid)
            # The pure-Python seqlock reader sees the same segment.
            py = nitroheap.read_segment(seg, use_native=False)
            self.assertEqual(py["status"], "ok")
            self.assertEqual(py["pid"], child.pid)
            self.assertIn(b'"partitions"', py["payload"])
            self.assertEqual(nitroheap.Attached(child.pid, use_native=False).stats()["pid"], child.pid)
            # Clean exit: NitroHeap removes the segment.
            self.assertEqual(child.finish(), 0)
            self.assertFalse(os.path.exists(seg), "segment %s left after a clean exit" % seg)
            with self.assertRaises(nitroheap.ProcessNotFoundError):
                view.stats()

    def test_killed_child_leaves_stale_segment(self):
        with testlib.LiveChild("telemetry=1") as child:
            seg = child.wait_for_segment()
            child.kill()
            self.assertTrue(os.path.exists(seg))  # nobody could remove it
            with self.assertRaises(ProcessLookupError) as cm:
                nitroheap.attach(child.pid)
            self.assertIsInstance(cm.exception, nitroheap.ProcessNotFoundError)
            self.assertIn("stale", str(cm.exception))

    def test_telemetry_off_has_no_segment(self):
        with testlib.LiveChild("telemetry=0") as child:
            time.sleep(0.3)
            self.assertFalse(os.path.exists(nitroheap.segment_path(child.pid)))
            with self.assertRaises(nitroheap.NoTelemetryError) as cm:
                nitroheap.attach(child.pid)
            self.assertIn("telemetry=1", str(cm.exception))


class AttachErrorsTest(unittest.TestCase):

    def test_nonexistent_pid(self):
        pid = unused_pid()
        with self.assertRaises(ProcessLookupError) as cm:
            nitroheap.attach(pid)
        self.assertIsInstance(cm.exception, nitroheap.ProcessNotFoundError)
        self.assertIsInstance(cm.exception, nitroheap.NitroHeapError)
        self.assertIn("process %d does not exist" % pid, str(cm.exception))

    def test_self_without_nitroheap(self):
        # This test process is a plain /usr/bin/python3: no NitroHeap, no segment.
        self.assertFalse(nitroheap.is_loaded())
        with self.assertRaises(ProcessLookupError) as cm:
            nitroheap.attach(os.getpid())
        self.assertIsInstance(cm.exception, nitroheap.NoTelemetryError)
        msg = str(cm.exception)
        self.assertIn("exists", msg)
        self.assertIn("does not run NitroHeap with telemetry=1", msg)

    def fake_segment(self, header, payload=b""):
        path = nitroheap.segment_path(os.getpid())
        with open(path, "wb") as f:
            f.write(header + payload)
        self.addCleanup(os.unlink, path)
        return path

    def header(self, magic=b"NITROHP\0", version=1, header_size=64, seq=2, payload_len=2):
        return struct.pack("<8sIIQQQIIQ8s", magic, version, header_size, os.getpid(), seq,
                           time.time_ns(), 4096, payload_len, 1, b"\0" * 8)

    def test_bad_magic(self):
        self.fake_segment(self.header(magic=b"GARBAGE\0"), b"{}")
        for native in (True, False):
            with self.assertRaises(nitroheap.SegmentFormatError) as cm:
                nitroheap.Attached(os.getpid(), use_native=native)
            self.assertIn("bad magic", str(cm.exception))

    def test_bad_version(self):
        self.fake_segment(self.header(version=7), b"{}")
        for native in (True, False):
            with self.assertRaises(nitroheap.SegmentFormatError) as cm:
                nitroheap.Attached(os.getpid(), use_native=native)
            self.assertIn("version 7", str(cm.exception))

    def test_short_file(self):
        self.fake_segment(b"NITROHP\0")
        with self.assertRaises(nitroheap.SegmentFormatError):
            nitroheap.attach(os.getpid())

    def test_writer_stuck_mid_update(self):
        self.fake_segment(self.header(seq=3), b"{}")  # odd: being written, forever
        t0 = time.monotonic()
        with self.assertRaises(nitroheap.SegmentFormatError) as cm:
            nitroheap.attach(os.getpid(), timeout_s=0.2)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("consistent", str(cm.exception))

    def test_valid_fake_segment(self):
        # A reader must ignore header bytes it does not know (reserved[]), and
        # accept a larger header_size from a later minor revision.
        body = b'{"version":1,"pid":%d,"partitions":{}}' % os.getpid()
        h = bytearray(self.header(header_size=64, payload_len=len(body)))
        h[56:64] = b"\xff" * 8
        self.fake_segment(bytes(h), body)
        self.assertEqual(nitroheap.attach(os.getpid()).stats()["pid"], os.getpid())
        self.assertEqual(nitroheap.Attached(os.getpid(), use_native=False).stats()["pid"], os.getpid())


if __name__ == "__main__":
    unittest.main(verbosity=2)
