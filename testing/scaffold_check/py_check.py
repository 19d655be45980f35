"""Imports the pybind11 extension and the generated proto module."""
import sys
import unittest

import google.protobuf
import scaffold_ext
from testing.scaffold_check import sample_pb2


class ScaffoldTest(unittest.TestCase):

    def test_interpreter_is_debian(self):
        self.assertEqual(sys.executable, "/usr/bin/python3")
        self.assertTrue(google.protobuf.__file__.startswith("/usr/lib/python3/"),
                        google.protobuf.__file__)

    def test_extension(self):
        self.assertEqual(scaffold_ext.add(2, 3), 5)

    def test_proto(self):
        s = sample_pb2.Sample(name="arena")
        s.size.bytes = 4096
        back = sample_pb2.Sample.FromString(s.SerializeToString())
        self.assertEqual(back.size.bytes, 4096)
        self.assertEqual(back.name, "arena")


if __name__ == "__main__":
    unittest.main()
