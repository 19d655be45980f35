"""(b) A real flight recording decodes with plain
`protoc --decode=nitroheap.telemetry.FlightRecording telemetry/flight_recorder.proto`:
the file is valid protobuf wire format for the schema, independent of any
Python code."""
import os
import re
import subprocess
import unittest

from bindings.python.tests import testlib

testlib.parse_args()

PROTOC = "/usr/bin/protoc"


class ProtocDecodeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = testlib.tmpdir()
        cls.path, cls.pid, _ = testlib.record_workload(cls.dir, rounds=3000)
        proto = testlib.ARGS["proto"]
        # The .proto's import path is workspace-relative: telemetry/flight_recorder.proto.
        rel = os.path.join("telemetry", "flight_recorder.proto")
        cls.root = proto[:-len(rel)] if proto.endswith(rel) else os.path.dirname(proto)
        cls.rel = rel if proto.endswith(rel) else os.path.basename(proto)

    def decode(self, data_path, message="nitroheap.telemetry.FlightRecording"):
        with open(data_path, "rb") as f:
            return subprocess.run([PROTOC, "--proto_path=" + self.root, "--decode=" + message, self.rel],
                                  stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=60)

    def test_decode(self):
        r = self.decode(self.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout
        self.assertIn("format_version: 1", text)
        self.assertIn("pid: %d" % self.pid, text)
        self.assertIn('heap_mode: "nitro"', text)
        events = text.count("\nevents {")
        self.assertGreater(events, 100)
        self.assertGreater(len(re.findall(r"\n  requested_size: \d+", text)), 100)
        self.assertGreater(len(re.findall(r"\n  free_time_ns: \d+", text)), 0)
        self.assertGreater(len(re.findall(r"\n  stack: \d+", text)), events)
        self.assertIn('function: "make_small_node"', text)
        self.assertIn("sample_interval_bytes: 4096", text)
        self.assertRegex(text, r"\ndump_time_ns: \d+")
        self.assertIn("stats_json: ", text)

    def test_truncated_fails_in_protoc_too(self):
        with open(self.path, "rb") as f:
            data = f.read()
        cut = os.path.join(self.dir, "cut.pb")
        with open(cut, "wb") as f:
            f.write(data[:len(data) - 7])
        r = self.decode(cut)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
