"""(g) Heap profiles that `go tool pprof` reads (Debian's golang-go, run
offline: HOME, GOPATH, GOCACHE and PPROF_TMPDIR in the test's temporary
directory, GOFLAGS=-mod=mod, GOPROXY=off).

profile_workload (tests/profile_workload.cc) allocates from three functions
that are in its .symtab only; it runs under LD_PRELOAD=libnitroheap.so and,
as profile_workload_linked, with NitroHeap linked in (malloc =
"//abi:malloc"). Checked: pprof names the three functions and no NitroHeap
frame; mappings carry the binary's path and GNU build ID, and a stripped
binary's profile is symbolized from the unstripped binary at that path;
periodic and signal profiles are distinct numbered files beside the exit
dump; `python3 -m nitroheap pprof` converts a recording; an unwritable
output directory is said at start-up, once, in one line.
"""
import gzip
import os
import re
import shutil
import signal
import struct
import subprocess
import unittest

from bindings.python.tests import testlib

EXTRA = {}
for _a in list(testlib.sys.argv[1:]):
    for _k in ("profile_workload", "profile_workload_linked"):
        if _a.startswith("--%s=" % _k):
            EXTRA[_k] = os.path.abspath(_a.split("=", 1)[1])
            testlib.sys.argv.remove(_a)
testlib.parse_args()
nitroheap = testlib.import_nitroheap()

SITES = ("workload_small_node", "workload_text_buffer", "workload_big_block")
# What NitroHeap's own frames are called, linked in or preloaded.
OWN_FRAME = re.compile(r"nitro::|nitro_|\bmalloc\b|\bcalloc\b|operator new|SampleSlow|FlightRecorder|"
                       r"libnitroheap")
GO = shutil.which("go") or "/usr/bin/go"


def build_id(path):
    """The GNU build ID of an ELF file, in hex (from its NT_GNU_BUILD_ID note)."""
    with open(path, "rb") as f:
        data = f.read()
    i = data.find(struct.pack("<III", 4, 20, 3) + b"GNU\0")
    assert i >= 0, "%s has no 20-byte GNU build ID note" % path
    return data[i + 16:i + 36].hex()


class PprofTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(GO):
            raise AssertionError("go is not installed (Debian golang-go: run tools/install_deps.sh)")
        cls.dir = testlib.tmpdir()
        cls.go_env = testlib.clean_env(HOME=os.path.join(cls.dir, "home"), GOPATH=os.path.join(cls.dir, "gopath"),
                                       GOCACHE=os.path.join(cls.dir, "gocache"), GOFLAGS="-mod=mod",
                                       GOPROXY="off", PPROF_TMPDIR=os.path.join(cls.dir, "pproftmp"),
                                       PPROF_BINARY_PATH=os.path.join(cls.dir, "nobinaries"))

    # ---- helpers --------------------------------------------------------

    def subdir(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        return d

    def run_workload(self, linked, options, args=(), exe=None):
        """Runs profile_workload (preloaded or linked in); returns (pid, stderr lines)."""
        if exe is None:
            exe = EXTRA["profile_workload_linked" if linked else "profile_workload"]
        env = testlib.clean_env(NITROHEAP_OPTIONS=options)
        if not linked:
            env["LD_PRELOAD"] = testlib.ARGS["lib"]
        p = subprocess.run([exe] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("done", p.stdout)
        return p, p.stderr.splitlines()

    def pprof(self, profile, *flags, env=None):
        r = subprocess.run([GO, "tool", "pprof"] + list(flags) + [profile], env=env or self.go_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "go tool pprof %s: %s" % (" ".join(flags), r.stderr))
        return r.stdout

    def top_functions(self, profile, env=None):
        """The function column of `pprof -top -symbolize=local`, and the whole output."""
        out = self.pprof(profile, "-top", "-symbolize=local", "-nodecount=1000", env=env)
        names = []
        for line in out.splitlines():
            m = re.match(r"\s*\S+\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(.*)$", line)
            if m:
                names.append(m.group(1))
        return names, out

    def assertNamesSitesNotNitroHeap(self, profile, sample_type, env=None):
        names, out = self.top_functions(profile, env)
        for site in SITES:
            self.assertTrue(any(site in n for n in names), "%s missing from pprof -top:\n%s" % (site, out))
        own = [n for n in names if OWN_FRAME.search(n)]
        self.assertEqual(own, [], "NitroHeap frames in pprof -top:\n%s" % out)
        self.assertIn("Type: %s" % sample_type, out)

    def assertMapsBinary(self, profile, exe):
        raw = self.pprof(profile, "-raw", "-symbolize=none")
        mappings = raw[raw.index("Mappings"):]
        self.assertIn(build_id(exe), mappings, mappings)
        self.assertIn(os.path.realpath(exe), mappings, mappings)

    def assertGzipProfile(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:2], b"\x1f\x8b", "%s is not gzip-compressed" % path)
        gzip.decompress(data)  # a complete member, CRC checked

    # ---- at exit ----------------------------------------------------------

    def check_exit_profile(self, linked):
        d = self.subdir("exit_linked" if linked else "exit_preload")
        self.run_workload(linked, "heap_profile=%s/heap.%%p.pb.gz,profile_rate=4096" % d)
        [name] = os.listdir(d)
        self.assertTrue(re.match(r"heap\.\d+\.pb\.gz$", name), name)
        path = os.path.join(d, name)
        self.assertGzipProfile(path)
        # At exit the view is what was allocated (the heap is mostly freed).
        self.assertNamesSitesNotNitroHeap(path, "alloc_space")
        self.assertMapsBinary(path, EXTRA["profile_workload_linked" if linked else "profile_workload"])

    def test_exit_profile_preloaded(self):
        self.check_exit_profile(linked=False)

    def test_exit_profile_linked_in(self):
        self.check_exit_profile(linked=True)

    def test_stripped_binary_symbolized_from_the_mapping(self):
        d = self.subdir("stripped")
        exe = os.path.join(d, "profile_workload")
        subprocess.run(["strip", "--strip-all", "-o", exe, EXTRA["profile_workload"]], check=True)
        self.run_workload(False, "heap_profile=%s/heap.pb.gz,profile_rate=4096" % d, exe=exe)
        path = os.path.join(d, "heap.pb.gz")
        # Nothing in the stripped binary names the sites...
        bare = self.pprof(path, "-top", "-symbolize=none", "-nodecount=1000")
        for site in SITES:
            self.assertNotIn(site, bare)
        self.assertMapsBinary(path, exe)
        # ...the unstripped binary at the mapping's path does: pprof maps the
        # addresses into it with the mapping's start and file offset. (It is
        # put at the same path: pprof 1.19 reads no build ID from these
        # gold-linked binaries, so its PPROF_BINARY_PATH search by build ID
        # refuses every candidate as a "build-id mismatch".)
        shutil.copy(EXTRA["profile_workload"], exe)
        self.assertNamesSitesNotNitroHeap(path, "alloc_space")

    # ---- numbered profiles ---------------------------------------------------

    def test_periodic_profiles_are_distinct_files(self):
        d = self.subdir("periodic")
        self.run_workload(True, "profile_prefix=%s/run,heap_profile_interval=2M,profile_rate=4096" % d,
                          args=["--phases", "4", "--periodic", d])
        names = sorted(os.listdir(d))
        pattern = re.compile(r"run\.(\d+)\.(\d+)\.heap\.pb\.gz$")
        matched = [pattern.match(n) for n in names]
        self.assertTrue(all(matched), names)
        self.assertEqual(len({m.group(1) for m in matched}), 1, names)  # one process
        seqs = sorted(int(m.group(2)) for m in matched)
        self.assertGreaterEqual(len(seqs), 4, names)
        self.assertEqual(seqs, list(range(len(seqs))), names)
        for n in names:
            self.assertGzipProfile(os.path.join(d, n))
        # Mid-run profiles show the live heap.
        self.assertNamesSitesNotNitroHeap(os.path.join(d, names[-1]), "inuse_space")

    def test_signal_and_exit_write_distinct_files(self):
        d = self.subdir("signal")
        sig = int(signal.SIGUSR1)
        self.run_workload(False, "flight_recorder_signal=%d,profile_prefix=%s/sig,heap_profile=%s/exit.pb.gz,"
                                 "flight_recorder=%s/exit.rec.pb,profile_rate=4096" % (sig, d, d, d),
                          args=["--signal", str(sig), d])
        names = sorted(os.listdir(d))
        self.assertEqual(len(names), 4, names)
        self.assertIn("exit.pb.gz", names)
        self.assertIn("exit.rec.pb", names)
        numbered = [n for n in names if n.startswith("sig.")]
        self.assertEqual(len(numbered), 2, names)
        pid = numbered[0].split(".")[1]
        self.assertEqual(sorted(numbered), ["sig.%s.0.heap.pb.gz" % pid, "sig.%s.0.rec.pb" % pid])
        self.assertNamesSitesNotNitroHeap(os.path.join(d, "sig.%s.0.heap.pb.gz" % pid), "inuse_space")
        self.assertNamesSitesNotNitroHeap(os.path.join(d, "exit.pb.gz"), "alloc_space")
        early = nitroheap.read_flight_recorder(os.path.join(d, "sig.%s.0.rec.pb" % pid))
        late = nitroheap.read_flight_recorder(os.path.join(d, "exit.rec.pb"))
        self.assertLess(early.dump_time_ns, late.dump_time_ns)
        self.assertLessEqual(len(early.events), len(late.events))

    # ---- a recording, converted -----------------------------------------------

    def check_converted(self, linked):
        d = self.subdir("convert_linked" if linked else "convert_preload")
        self.run_workload(linked, "flight_recorder=%s/rec.pb,profile_rate=4096" % d)
        rec_path, out = os.path.join(d, "rec.pb"), os.path.join(d, "rec.pb.gz")
        rec = nitroheap.read_flight_recorder(rec_path)
        exe = EXTRA["profile_workload_linked" if linked else "profile_workload"]
        self.assertIn(build_id(exe), [m.build_id for m in rec.process.mappings])
        r = subprocess.run([testlib.PY, "-m", "nitroheap", "pprof", rec_path, "-o", out],
                           env=testlib.clean_env(PYTHONPATH=testlib.package_parent()),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("go tool pprof", r.stdout)
        self.assertGzipProfile(out)
        self.assertNamesSitesNotNitroHeap(out, "alloc_space")
        self.assertMapsBinary(out, exe)

    def test_converted_recording_preloaded(self):
        self.check_converted(linked=False)

    def test_converted_recording_linked_in(self):
        self.check_converted(linked=True)

    def test_converted_recording_without_mappings(self):
        # A recording written before Process.mappings existed still converts:
        # no mappings, functions named from its frames.
        d = self.subdir("convert_old")
        self.run_workload(False, "flight_recorder=%s/rec.pb,profile_rate=4096" % d)
        from telemetry import flight_recorder_pb2
        with open(os.path.join(d, "rec.pb"), "rb") as f:
            msg = flight_recorder_pb2.FlightRecording.FromString(f.read())
        self.assertGreater(len(msg.process.mappings), 0)
        del msg.process.mappings[:]
        rec = nitroheap.parse_flight_recorder(msg.SerializeToString(), "old.pb")
        self.assertEqual(rec.process.mappings, [])
        out = os.path.join(d, "old.pb.gz")
        with open(out, "wb") as f:
            f.write(nitroheap.recording_to_pprof(rec))
        self.assertNamesSitesNotNitroHeap(out, "alloc_space")

    def test_report_names_a_pprof_file(self):
        d = self.subdir("report")
        self.run_workload(True, "heap_profile=%s/heap.pb.gz,profile_rate=4096" % d)
        path = os.path.join(d, "heap.pb.gz")
        with open(path, "rb") as f:
            raw = gzip.decompress(f.read())
        for data, name in ((None, path), (raw, os.path.join(d, "heap.pb"))):
            if data is not None:
                with open(name, "wb") as f:
                    f.write(data)
            r = subprocess.run([testlib.PY, "-m", "nitroheap", "report", name],
                               env=testlib.clean_env(PYTHONPATH=testlib.package_parent()),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertIn("pprof", r.stderr)
            self.assertIn("go tool pprof %s" % name, r.stderr)

    # ---- a bad output directory -------------------------------------------------

    def test_bad_directory_said_at_start_once(self):
        missing = os.path.join(self.dir, "no", "such", "dir")
        _, lines = self.run_workload(False, "heap_profile=%s/heap.%%p.pb.gz,profile_rate=4096" % missing)
        said = [line for line in lines if "nitroheap" in line]
        self.assertEqual(len(said), 1, lines)
        # Before the program's first line: at start-up, not at exit.
        self.assertLess(lines.index(said[0]), lines.index("profile_workload: started"), lines)
        self.assertIn("heap_profile=%s/heap." % missing, said[0])
        self.assertNotIn("%p", said[0])
        self.assertIn("No such file or directory", said[0])


if __name__ == "__main__":
    unittest.main()
