"""(e) nitroheap inside the interpreter it observes.

Subprocesses run /usr/bin/python3 with PYTHONPATH = the package's directory in
the runfiles (testlib.package_parent()) and LD_PRELOAD=libnitroheap.so, or
without it, or with NITROHEAP=legacy. Also: the extension does not carry a
malloc of its own and imports with and without the preload."""
import json
import os
import subprocess
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()

STATS_AND_PARTITION = r'''
import json, nitroheap
out = {"active": nitroheap.is_active(), "mode": nitroheap.heap_mode()}
s = nitroheap.stats()
out["keys"] = sorted(s)
out["live_bytes"] = s["live_bytes"]
out["mapped_bytes"] = s["mapped_bytes"]
out["partitions_before"] = sorted(s["partitions"])
out["classes"] = len(s["size_classes"])
with nitroheap.Partition("py_test") as p:
    out["name"] = p.name
    addrs = [p.malloc(1000) for _ in range(100)]
    p.write(addrs[0], b"hello")
    out["read_back"] = p.read(addrs[0], 5).decode()
    out["distinct"] = len(set(addrs))
    out["owned"] = all(nitroheap._live._native.owns(a) for a in addrs)
    during = nitroheap.stats()["partitions"]["py_test"]
    out["during"] = during
    out["partition_stats"] = p.stats()["live_objects"]
    nitroheap.ctl("contract.py_test.hard", 1 << 30)
    nitroheap.ctl("contract.py_test.soft", 1 << 29)
    try:
        nitroheap.ctl("contract.py_test.soft", 2 << 30)
    except OSError as e:
        out["soft_above_hard_errno"] = e.errno
    c = nitroheap.stats()["partitions"]["py_test"]
    out["contract"] = {k: c["contract_" + k] for k in nitroheap.CONTRACT_FIELDS}
    for a in addrs[:60]:
        p.free(a)
    out["after_free"] = nitroheap.stats()["partitions"]["py_test"]["live_objects"]
    try:
        p.free(12345)
    except ValueError as e:
        out["bad_free"] = str(e)
out["after_destroy"] = "py_test" in nitroheap.stats()["partitions"]
try:
    p.malloc(10)
except nitroheap.NitroHeapError as e:
    out["destroyed_error"] = str(e)
try:
    nitroheap.Partition("default")
except ValueError as e:
    out["dup_default"] = str(e)
a = nitroheap.Partition("dup")
try:
    nitroheap.Partition("dup")
except ValueError as e:
    out["dup_again"] = str(e)
a.malloc(100)
parts = nitroheap.stats()["partitions"]
out["dup_keys"] = sorted(k for k in parts if k.startswith("dup"))
out["dup_live"] = parts["dup"]["live_objects"]
a.destroy()
out["dup_after_destroy"] = nitroheap.Partition("dup").name
out["ctl_live"] = nitroheap.ctl("stats.live_bytes")
out["ctl_version"] = nitroheap.ctl("version")
out["ctl_opt"] = nitroheap.ctl("opt.profile_rate")
try:
    nitroheap.ctl("no.such.name")
except OSError as e:
    out["ctl_unknown_errno"] = e.errno
out["json_same_keys"] = sorted(json.loads(nitroheap.stats_json())) == out["keys"]
print(json.dumps(out))
'''

NOT_ACTIVE = r'''
import json, nitroheap
out = {"loaded": nitroheap.is_loaded(), "active": nitroheap.is_active(), "mode": nitroheap.heap_mode()}
for name, call in (("stats", nitroheap.stats), ("partition", lambda: nitroheap.Partition("x")),
                   ("ctl", lambda: nitroheap.ctl("version")),
                   ("dump", lambda: nitroheap.dump_flight_recording("/nonexistent/x.pb"))):
    try:
        call()
        out[name] = "no error"
    except nitroheap.NotActiveError as e:
        out[name] = "NotActiveError: " + str(e)
print(json.dumps(out))
'''

# The movable heap's counters in nitroheap.stats() (and the same numbers by
# nitro_ctl): 4000 movable objects, 90% freed, compacted.
MOVABLE = r'''
import ctypes, json, nitroheap
lib = ctypes.CDLL(None)
lib.nitro_halloc.restype = ctypes.c_uint64
lib.nitro_halloc.argtypes = [ctypes.c_size_t, ctypes.c_int]
lib.nitro_hfree.argtypes = [ctypes.c_uint64]
lib.nitro_hptr.restype = ctypes.c_void_p
lib.nitro_hptr.argtypes = [ctypes.c_uint64]
lib.nitro_compact.restype = ctypes.c_size_t
lib.nitro_compact.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
out = {"before": {k: nitroheap.stats()["movable_" + k] for k in nitroheap.MOVABLE_FIELDS}}
handles = [lib.nitro_halloc(200, 0) for _ in range(4000)]
for i, h in enumerate(handles):
    ctypes.memset(lib.nitro_hptr(h), i % 251, 200)
live = handles[::10]
for i, h in enumerate(handles):
    if i % 10:
        lib.nitro_hfree(h)
lib.nitro_hpin.restype = ctypes.c_void_p
lib.nitro_hpin.argtypes = [ctypes.c_uint64]
lib.nitro_hunpin.argtypes = [ctypes.c_uint64]
lib.nitro_hpin(live[-1])  # in the last, sparsest slab: compaction skips it
out["moved_bytes"] = lib.nitro_compact(None, (1 << 64) - 1)
lib.nitro_hunpin(live[-1])
s = nitroheap.stats()
out["after"] = {k: s["movable_" + k] for k in nitroheap.MOVABLE_FIELDS}
out["ctl"] = {k: nitroheap.ctl("stats.movable." + k) for k in ("objects_moved", "slabs_freed", "live_objects")}
out["intact"] = all(ctypes.string_at(lib.nitro_hptr(h), 200) == bytes([(i * 10) % 251]) * 200
                    for i, h in enumerate(live))
print(json.dumps(out))
'''


class InProcessTest(unittest.TestCase):

    def run_json(self, code, env):
        r = testlib.run_py(code, env)
        self.assertEqual(r.returncode, 0, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        return json.loads(r.stdout.strip().splitlines()[-1])

    def test_stats_and_partition_preloaded(self):
        out = self.run_json(STATS_AND_PARTITION, testlib.preload_env())
        self.assertTrue(out["active"])
        self.assertEqual(out["mode"], "nitro")
        for k in ("live_bytes", "mapped_bytes", "partitions", "size_classes", "version", "pid", "time_ns",
                  "heap_mode", "hardening_mode", "threads") + nitroheap.COUNTERS:
            self.assertIn(k, out["keys"])
        self.assertGreater(out["live_bytes"], 0)
        self.assertGreater(out["mapped_bytes"], 0)
        self.assertIn("default", out["partitions_before"])
        self.assertNotIn("py_test", out["partitions_before"])
        self.assertEqual(out["classes"], 88)
        self.assertEqual(out["name"], "py_test")
        self.assertEqual(out["read_back"], "hello")
        self.assertEqual(out["distinct"], 100)
        self.assertTrue(out["owned"])
        during = out["during"]
        self.assertEqual(during["live_objects"], 100)
        self.assertGreaterEqual(during["live_bytes"], 100 * 1000)
        self.assertGreaterEqual(during["allocations"], 100)
        self.assertGreater(during["mapped_bytes"], 0)
        self.assertEqual(out["partition_stats"], 100)
        self.assertEqual(out["after_free"], 40)
        self.assertIn("not a live allocation", out["bad_free"])
        self.assertFalse(out["after_destroy"])
        self.assertIn("destroyed", out["destroyed_error"])
        self.assertIn("already exists", out["dup_default"])
        self.assertIn("already exists", out["dup_again"])
        self.assertEqual(out["dup_keys"], ["dup"])
        self.assertEqual(out["dup_live"], 1)
        self.assertEqual(out["dup_after_destroy"], "dup")
        self.assertGreater(out["ctl_live"], 0)
        self.assertIn("nitroheap", out["ctl_version"])
        self.assertEqual(out["ctl_opt"], 512 * 1024)
        self.assertEqual(out["ctl_unknown_errno"], 2)  # ENOENT
        self.assertTrue(out["json_same_keys"])
        for k in nitroheap.CONTRACT_FIELDS:
            self.assertIn("memory_limit_" + k, out["keys"])
        self.assertIn("memory_limit_source", out["keys"])
        contract = out["contract"]
        self.assertEqual(contract["hard_limit"], 1 << 30)
        self.assertEqual(contract["soft_limit"], 1 << 29)
        self.assertGreater(contract["use"], 100 * 1000)  # the slabs of 100 live 1000-byte objects
        self.assertEqual(contract["crossings"], 0)
        self.assertEqual(out["soft_above_hard_errno"], 22)  # EINVAL: the limits stay

    def test_movable_stats(self):
        # No background compaction: this one compacts when it says so.
        out = self.run_json(MOVABLE, testlib.preload_env("compact_interval_ms=0"))
        before, after = out["before"], out["after"]
        self.assertEqual(set(before), set(nitroheap.MOVABLE_FIELDS))
        self.assertEqual(before["live_objects"], 0)
        self.assertEqual(after["live_objects"], 400)
        self.assertEqual(after["live_bytes"], 400 * 208)  # the 208-byte class
        self.assertGreater(after["objects_moved"], 0)
        self.assertEqual(after["bytes_moved"], out["moved_bytes"])
        self.assertEqual(after["bytes_moved"], after["objects_moved"] * 208)
        self.assertGreater(after["slabs_freed"], 0)
        self.assertGreaterEqual(after["pages_returned"], after["slabs_freed"] * 16)  # 64 KiB slabs
        self.assertEqual(after["pinned_skipped"], 1)
        self.assertGreaterEqual(after["compactions"], 1)
        self.assertGreater(after["compact_ns"], 0)
        self.assertEqual(after["handle_capacity"], 4000)
        # nitro_ctl reads the same counters (nothing ran in between).
        for k, v in out["ctl"].items():
            self.assertEqual(v, after[k], k)
        self.assertTrue(out["intact"])

    def test_not_preloaded(self):
        out = self.run_json(NOT_ACTIVE, testlib.clean_env(PYTHONPATH=testlib.package_parent()))
        self.assertFalse(out["loaded"])
        self.assertFalse(out["active"])
        self.assertIsNone(out["mode"])
        for k in ("stats", "partition", "ctl", "dump"):
            self.assertTrue(out[k].startswith("NotActiveError: "), out[k])
            self.assertIn("LD_PRELOAD=", out[k])

    def test_legacy_mode(self):
        out = self.run_json(NOT_ACTIVE, testlib.preload_env(NITROHEAP="legacy"))
        self.assertTrue(out["loaded"])
        self.assertFalse(out["active"])
        self.assertEqual(out["mode"], "legacy")
        for k in ("stats", "partition", "ctl", "dump"):
            self.assertTrue(out[k].startswith("NotActiveError: "), out[k])
            self.assertIn("legacy", out[k])

    def test_this_process(self):
        # The test runner itself is a plain interpreter.
        with self.assertRaises(nitroheap.NotActiveError):
            nitroheap.stats()
        with self.assertRaises(nitroheap.NotActiveError):
            nitroheap.Partition("nope")

    def test_dump_from_python(self):
        d = testlib.tmpdir()
        rec_path = os.path.join(d, "py.%p.pb")
        code = ("import nitroheap, os\nx=[bytearray(3000) for _ in range(3000)]\n"
                "nitroheap.dump_flight_recording(%r)\nprint(os.getpid())" % rec_path)
        r = testlib.run_py(code, testlib.preload_env("profile_rate=4096", PYTHONMALLOC="malloc"))
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(r.stdout.strip())
        rec = nitroheap.read_flight_recorder(rec_path.replace("%p", str(pid)))
        self.assertEqual(rec.process.pid, pid)
        self.assertGreater(len(rec.events), 100)
        self.assertTrue(rec.top_sites(3))
        # A path that cannot be written: OSError with the errno.
        code = "import nitroheap\ntry:\n  nitroheap.dump_flight_recording('/nonexistent/dir/x.pb')\n" \
               "except OSError as e:\n  print(e.errno)"
        r = testlib.run_py(code, testlib.preload_env())
        self.assertEqual(r.stdout.strip(), "2", r.stderr)

    def test_import_everywhere_and_no_malloc_inside(self):
        so = os.path.join(testlib.package_parent(), "nitroheap", "_native.so")
        syms = subprocess.run(["nm", "-D", "--defined-only", so], stdout=subprocess.PIPE, text=True,
                              timeout=60).stdout.split()
        for forbidden in ("malloc", "free", "calloc", "realloc", "nitro_is_active", "nitro_stats_json"):
            self.assertNotIn(forbidden, syms)
        dyn = subprocess.run(["readelf", "-d", "-l", so], stdout=subprocess.PIPE, text=True, timeout=60).stdout
        self.assertNotIn("STATIC_TLS", dyn)
        self.assertNotIn("libnitroheap", dyn)
        code = "import nitroheap, nitroheap.cli, nitroheap.recording; print(nitroheap.is_active())"
        for env, want in ((testlib.clean_env(PYTHONPATH=testlib.package_parent()), "False"),
                          (testlib.preload_env(), "True")):
            r = testlib.run_py(code, env)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, want), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
