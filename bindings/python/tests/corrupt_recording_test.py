"""(d) Damaged and foreign files raise nitroheap.RecordingError with a clear
message (never a crash or a silently empty Recording): truncations at every
kind of position, random bytes, an empty file, valid protobuf of other
messages (a Process, an Event, a pprof profile from nitro_heap_profile_dump),
two recordings concatenated, and a bad format_version."""
import os
import random
import subprocess
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()
pb2 = nitroheap.recording.flight_recorder_pb2


class CorruptRecordingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = testlib.tmpdir()
        cls.path, cls.pid, _ = testlib.record_workload(cls.dir, rounds=1500)
        with open(cls.path, "rb") as f:
            cls.data = f.read()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertBad(self, data, *fragments, name="bad.pb"):
        path = self.write(name, data)
        with self.assertRaises(nitroheap.RecordingError) as cm:
            nitroheap.read_flight_recorder(path)
        msg = str(cm.exception)
        self.assertIn(path, msg)
        for frag in fragments:
            self.assertIn(frag, msg)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertIsInstance(cm.exception, nitroheap.NitroHeapError)
        return msg

    def test_original_is_good(self):
        rec = nitroheap.read_flight_recorder(self.path)
        self.assertGreater(len(rec.events), 10)

    def test_empty(self):
        self.assertBad(b"", "empty")

    def test_truncated_everywhere(self):
        # Every prefix length in a coarse sweep, plus the last 20 bytes one by one.
        n = len(self.data)
        cuts = sorted(set(list(range(1, n, max(1, n // 300))) + list(range(max(1, n - 20), n))))
        for cut in cuts:
            with self.subTest(cut=cut):
                msg = self.assertBad(self.data[:cut], name="cut.pb")
                self.assertTrue("truncated" in msg or "corrupt" in msg, msg)

    def test_random_bytes(self):
        rng = random.Random(1234)
        for i in range(200):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
            with self.subTest(i=i):
                self.assertBad(data, name="random.pb")

    def test_flipped_bytes(self):
        # Damage inside the file: every outcome but a crash is acceptable, and a
        # damaged file that still parses must still be a complete recording.
        rng = random.Random(99)
        for i in range(100):
            data = bytearray(self.data)
            for _ in range(3):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path = self.write("flipped.pb", bytes(data))
            with self.subTest(i=i):
                try:
                    rec = nitroheap.read_flight_recorder(path)
                except nitroheap.RecordingError:
                    continue
                self.assertEqual(rec.format_version, 1)
                self.assertNotEqual(rec.dump_time_ns, 0)
                rec.top_sites(3)
                rec.size_histogram()
                rec.lifetime_histogram()

    def test_other_messages(self):
        proc = pb2.Process(pid=1234, executable="/bin/true", command_line="true", heap_mode="nitro")
        self.assertBad(proc.SerializeToString(), "not a NitroHeap flight recording", name="process.pb")
        event = pb2.Event(address=0x1000, requested_size=16, usable_size=16, partition="default",
                          alloc_time_ns=1, stack=[1, 2, 3])
        self.assertBad(event.SerializeToString(), name="event.pb")
        frame = pb2.Frame(address=5, function="main", object="/bin/x", offset=3)
        self.assertBad(frame.SerializeToString(), name="frame.pb")

    def test_pprof_profile(self):
        # A real pprof profile written by nitro_heap_profile_dump in a preloaded Python.
        prof = os.path.join(self.dir, "heap.pprof")
        code = "import nitroheap; x=[bytearray(5000) for _ in range(500)]; nitroheap.dump_heap_profile(%r)" % prof
        r = testlib.run_py(code, testlib.preload_env("profile_rate=4096"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(prof, "rb") as f:
            data = f.read()
        self.assertGreater(len(data), 10)
        self.assertBad(data, "not a NitroHeap flight recording", name="pprof.pb")

    def test_concatenated(self):
        self.assertBad(self.data + self.data, "field order", name="twice.pb")

    def test_wrong_version(self):
        msg = pb2.FlightRecording.FromString(self.data)
        msg.format_version = 2
        self.assertBad(msg.SerializeToString(), "format_version 2 is not supported", name="v2.pb")

    def test_newer_format_with_new_fields(self):
        # A version-2 writer that adds a top-level field 10.
        msg = pb2.FlightRecording.FromString(self.data)
        msg.format_version = 2
        data = msg.SerializeToString() + b"\x50\x01"  # field 10, varint 1
        self.assertBad(data, "format_version 2 is not supported", name="v2new.pb")

    def test_missing_trailer(self):
        msg = pb2.FlightRecording.FromString(self.data)
        msg.dump_time_ns = 0
        self.assertBad(msg.SerializeToString(), "truncated", name="notrailer.pb")

    def test_bad_stats_json(self):
        msg = pb2.FlightRecording.FromString(self.data)
        msg.stats_json = "{not json"
        self.assertBad(msg.SerializeToString(), "stats_json", name="badjson.pb")

    def test_not_a_file(self):
        with self.assertRaises(FileNotFoundError):
            nitroheap.read_flight_recorder(os.path.join(self.dir, "absent.pb"))
        with self.assertRaises(IsADirectoryError):
            nitroheap.read_flight_recorder(self.dir)

    def test_cli_one_line_errors(self):
        env = testlib.clean_env(PYTHONPATH=testlib.package_parent())
        for name, data in (("empty.pb", b""), ("junk.pb", os.urandom(300)),
                           ("half.pb", self.data[:len(self.data) // 3])):
            path = self.write(name, data)
            r = subprocess.run([testlib.PY, "-m", "nitroheap", "report", path], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            with self.subTest(name=name):
                self.assertEqual(r.returncode, 1)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertTrue(r.stderr.startswith("nitroheap report: error: "), r.stderr)
                self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
