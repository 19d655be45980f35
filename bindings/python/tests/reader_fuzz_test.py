"""(g) Fuzz of the readers of untrusted input, from real inputs.

Segments: a real statistics segment, read from a live child under
LD_PRELOAD=libnitroheap.so (telemetry=1, a partition with escapes in its
name), is mutated (byte flips, header fields at extremes, payload_length past
the file, truncations, JSON-level damage: hostile values, names with terminal
escapes, bidi overrides and lone surrogates, duplicate keys by the thousand,
nesting 10000 deep, numbers past 64 bits) and written to
/dev/shm/nitroheap.<this pid>; FIFOs, directories, links, sockets, sparse
2 GiB and empty files are put there too. For each, Attached(pid).stats() with
the native reader and with the pure-Python one may only return a clean
document or raise a NitroHeapError, within HANG_S, and both must come to
the same result there and in read_segment(); an accepted document has only
printable strings and non-negative 64-bit counters, and is rendered the way
`top` and `stats` render it. The costliest valid documents that fit the
largest segment a reader accepts are read within HANG_S too.

Recordings: a real flight recording of alloc_workload is mutated (bytes:
flips, cuts, insertions, splices; protobuf: fields at extremes, hostile
names, stats_json replaced by the hostile documents above) and given to
parse_flight_recorder; what parses is put through everything `report` uses
(summary, top_sites, both histograms, cli.report_lines). Only RecordingError
(a NitroHeapError) may come out.

CLI: `stats`, `top` and `report` as subprocesses on a few hostile inputs:
one-line errors with exit status 1, no traceback, no ESC or other control
character on either stream.

The seed is printed; NITROHEAP_FUZZ_SEED=N replays or varies a run
(bazel test --test_env=NITROHEAP_FUZZ_SEED=N), NITROHEAP_FUZZ_ITERATIONS=N
sets the number of segment iterations (recordings get 30% as many).
Inputs that fail are saved to $TEST_UNDECLARED_OUTPUTS_DIR.
"""
import faulthandler
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import traceback
import unittest

from bindings.python.tests import testlib

testlib.parse_args()
nitroheap = testlib.import_nitroheap()
from nitroheap import cli as nh_cli  # noqa: E402
from nitroheap._safe import printable  # noqa: E402

pb2 = nitroheap.recording.flight_recorder_pb2

SEED = int(os.environ.get("NITROHEAP_FUZZ_SEED") or "20240611", 0)
SEGMENT_ITERATIONS = int(os.environ.get("NITROHEAP_FUZZ_ITERATIONS") or 2000)
RECORDING_ITERATIONS = max(1, SEGMENT_ITERATIONS * 3 // 10)
HANG_S = 3.0          # every reader call returns within this (a hang is a failure)
READ_TIMEOUT_S = 0.05  # the readers' seqlock timeout
MAX_FAILURES = 12      # reported in detail; the count covers all of them
U64 = (1 << 64) - 1

_HEADER = struct.Struct("<8sIIQQQIIQ8s")
# (name, offset, struct code) of the header fields (telemetry/shm_layout.h).
HEADER_FIELDS = [("version", 8, "I"), ("header_size", 12, "I"), ("pid", 16, "Q"), ("sequence", 24, "Q"),
                 ("update_time_ns", 32, "Q"), ("payload_capacity", 40, "I"), ("payload_length", 44, "I"),
                 ("updates", 48, "Q"), ("reserved", 56, "Q")]
# What no string of an accepted document may contain: C0 (tab and newline
# too), DEL, C1, line/paragraph separators, bidi marks, embeddings,
# overrides and isolates, and lone surrogates (which cannot be written to a
# UTF-8 terminal at all).
BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Text for a terminal (printable(..., keep_newlines=True)): newlines and tabs stay.
BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                            "\ud800-\udfff]")
INT_FIELDS = ("version", "pid", "time_ns", "threads") + nitroheap.COUNTERS
MAX_SEGMENT = nitroheap._live.MAX_SEGMENT_BYTES  # the native reader's bound is the same


class Hang(BaseException):
    """Raised by SIGALRM in a call that runs past HANG_S (BaseException: the
    code under test must not be able to swallow it)."""


def _on_alarm(signum, frame):
    raise Hang()


# ---- hostile material ----------------------------------------------------------

class Raw(str):
    """JSON text emitted as is (NaN, 1e999, 400-digit numbers, deep nesting)."""


class Pairs(list):
    """A JSON object as (key, value) pairs: duplicate keys allowed."""


_PLAIN = (int, float, str, bool, type(None))  # exact types: Raw is a str, Pairs a list


def enc(v, ascii_only=True):
    """JSON text of v, with Raw and Pairs; non-ASCII raw when not ascii_only."""
    if type(v) is dict and all(type(x) in _PLAIN for x in v.values()):
        return json.dumps(v, ensure_ascii=ascii_only)  # the common case, at C speed
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return "{" + ",".join(json.dumps(k, ensure_ascii=ascii_only) + ":" + enc(x, ascii_only)
                              for k, x in v) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=ascii_only) + ":" + enc(x, ascii_only)
                              for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(enc(x, ascii_only) for x in v) + "]"
    return json.dumps(v, ensure_ascii=ascii_only)


STRING_PIECES = [
    "\x1b[2J", "\x1b[H", "\x1b]0;owned\x07", "\x1b[31m", "\x9b2J", "\x9b", "\x85", "\x7f", "\x00",
    "\t", "\n", "\r", "\x08", "\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u2028", "\u2029",
    "\ud800", "\udc9b", "\udfff", "\udc1b", "\ufeff", "\uffff", "\U0001f4a9", "e\u0301", "%s%n%x",
    "\\", "\"", "#2", "default", "a" * 70, "\u00e9" * 40, "x" * 5000, "",
]
INT_EXTREMES = [0, 1, -1, -2**63, 2**31, 2**32 - 1, 2**63, U64, U64 + 1, 2**100]
RAW_NUMBERS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e308", "-0", "-0.0", "0.5", "1.0",
               "1E3", "1" + "0" * 400, "9" * 4301, "-" + "9" * 30]


def hostile_string(rng):
    return "".join(rng.choice(STRING_PIECES) for _ in range(rng.randint(1, 4))) + rng.choice(("", "p", "name"))


def deep(rng, depth=None, array=None):
    """JSON nested `depth` deep (arrays or objects)."""
    if depth is None:
        depth = rng.choice((7, 50, 999, 1200, 10000))
    if array is None:
        array = rng.random() < 0.5
    if array:
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def hostile_value(rng):
    r = rng.randrange(10)
    if r < 3:
        return rng.choice(INT_EXTREMES)
    if r < 5:
        return Raw(rng.choice(RAW_NUMBERS))
    if r == 5:
        return hostile_string(rng)
    if r == 6:
        return rng.choice([True, False, None, 1.5, 0.0, "", "12", [], {}, [1, "a"], {"a": 1}, {"size": 1}])
    if r == 7:
        return deep(rng)
    if r == 8:
        return Pairs([("a", 1), ("a", hostile_string(rng)), (hostile_string(rng), -1)])
    return rng.choice([[rng.choice(INT_EXTREMES)] * 3, {hostile_string(rng): 1}, [hostile_string(rng)]])


def mutate_doc(rng, doc):
    """A hostile variant of a statistics document (a dict, modified): the
    JSON payload as bytes."""
    parts = doc.get("partitions") if isinstance(doc.get("partitions"), dict) else {}
    classes = doc.get("size_classes") if isinstance(doc.get("size_classes"), list) else []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(15)
        if op == 0:  # a top-level field (a known one, most often)
            key = rng.choice(list(INT_FIELDS) + ["heap_mode", "hardening_mode", "partitions", "size_classes",
                                                 hostile_string(rng)])
            doc[key] = hostile_value(rng)
        elif op == 1 and parts:  # a counter of a partition
            p = parts[rng.choice(list(parts))]
            if isinstance(p, dict):
                p[rng.choice(list(nitroheap.COUNTERS) + [hostile_string(rng)])] = hostile_value(rng)
        elif op == 2 and classes:  # a field of a size class
            c = rng.choice(classes)
            if isinstance(c, dict):
                c[rng.choice(list(nitroheap.CLASS_FIELDS) + [hostile_string(rng)])] = hostile_value(rng)
        elif op == 3 and parts:  # a partition with a hostile name
            model = rng.choice(list(parts.values()))
            parts[hostile_string(rng)] = dict(model) if isinstance(model, dict) else model
        elif op == 4 and parts:  # a partition renamed (order kept)
            victim = rng.choice(list(parts))
            name = hostile_string(rng)
            doc["partitions"] = parts = {(name if k == victim else k): v for k, v in parts.items()}
        elif op == 5:  # partitions or size_classes of the wrong shape
            doc[rng.choice(("partitions", "size_classes"))] = hostile_value(rng)
        elif op == 6 and classes:  # one size class of the wrong shape
            classes[rng.randrange(len(classes))] = hostile_value(rng)
        elif op == 7:  # a few duplicate keys
            where = rng.choice(("top", "partitions", "class"))
            if where == "top":
                items = Pairs(doc.items())
                k = rng.choice([k for k, _ in items])
                items.insert(rng.randrange(len(items) + 1), (k, rng.choice((doc[k], hostile_value(rng)))))
                return finish(rng, items)
            if where == "partitions" and parts:
                items = Pairs(parts.items())
                k = rng.choice([k for k, _ in items])
                items += [(k, parts[k])] * rng.randint(1, 5) + [(k + "#2", parts[k])]
                doc["partitions"] = items
            elif classes:
                i = rng.randrange(len(classes))
                if isinstance(classes[i], dict):
                    classes[i] = Pairs(list(classes[i].items()) + [("size", hostile_value(rng))])
        elif op == 8:  # duplicate names by the thousand (each renamed "name#N")
            n = rng.choices((500, 2000, 10000), (6, 3, 1))[0]
            if rng.random() < 0.5:
                names = ["p"] * n
            else:  # distinct, but the same once cut to the 64 characters a name keeps
                names = ["q" * 64 + str(i) for i in range(n)]
            counters = {"live_bytes": 1}
            doc["partitions"] = Pairs((nm, counters) for nm in names)
        elif op == 9:  # deep nesting somewhere
            target = rng.choice(("top", "partition", "class"))
            if target == "partition" and parts:
                parts[rng.choice(list(parts))] = deep(rng)
            elif target == "class" and classes:
                classes[rng.randrange(len(classes))] = deep(rng)
            else:
                doc[rng.choice(("extra", "partitions", "size_classes", "allocations"))] = deep(rng)
        elif op == 10 and parts:  # hostile key inside a counter object
            p = parts[rng.choice(list(parts))]
            if isinstance(p, dict):
                p[hostile_string(rng)] = rng.choice((1, hostile_value(rng)))
        elif op == 11:  # the mode strings
            doc[rng.choice(("heap_mode", "hardening_mode"))] = rng.choice((hostile_string(rng), hostile_value(rng)))
        elif op == 12 and doc:  # a field removed
            doc.pop(rng.choice(list(doc)), None)
        elif op == 13:  # not an object at all
            return rng.choice((b"[]", b"null", b"1", b'"x"', b"{}", b"", b" ", b"{", b"[" * 100000,
                               enc(deep(rng, 10000)).encode()))
        elif op == 14:  # unknown fields: kept, made printable, bounded depth
            doc[hostile_string(rng)] = rng.choice(({"nested": [hostile_string(rng), {"k": 1.5}]},
                                                    [[[[[[["seven"]]]]]]], hostile_string(rng)))
    return finish(rng, doc)


def finish(rng, doc):
    """Encodes a mutated document, sometimes with raw non-ASCII (invalid
    UTF-8 for a lone surrogate) or damage at the text level."""
    ascii_only = rng.random() < 0.7
    data = enc(doc, ascii_only).encode("utf-8", "surrogatepass")
    r = rng.random()
    if r < 0.03:
        data = b"\xef\xbb\xbf" + data                 # a BOM
    elif r < 0.05:
        data = data + b"\0" * rng.randint(1, 16)      # NUL padding inside payload_length
    elif r < 0.07:
        data = enc(doc).encode("utf-16")              # another encoding
    elif r < 0.09:
        data = data + b" trailing"
    return data


# ---- segments ---------------------------------------------------------------------

def pack_header(pid, seq, update_ns, capacity, length, updates, version=1, header_size=64,
                magic=b"NITROHP\0", reserved=b"\0" * 8):
    return _HEADER.pack(magic, version, header_size, pid, seq, update_ns, capacity, length, updates, reserved)


def doc_problems(doc):
    """What is wrong with a document Attached.stats() returned (a list)."""
    problems = []

    def walk(v, where):
        if isinstance(v, str):
            if BAD_CHARS.search(v):
                problems.append("%s: control character in %r" % (where, v[:80]))
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k, where + " key")
                walk(x, "%s.%s" % (where, ascii(k)[:40]))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, "%s[%d]" % (where, i))
        elif isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            problems.append("%s: %r" % (where, v))

    def counter(v, where):
        if type(v) is not int or not 0 <= v <= U64:
            problems.append("%s: %r is not a non-negative 64-bit int" % (where, v if not isinstance(v, int)
                                                                         else "%d-bit int" % v.bit_length()))

    if not isinstance(doc, dict):
        return ["document is a %s" % type(doc).__name__]
    walk(doc, "doc")
    for k in INT_FIELDS:  # (fields a newer writer may add are kept as they are, text made printable)
        if k in doc:
            counter(doc[k], k)
    for k in ("heap_mode", "hardening_mode"):
        if k in doc and not isinstance(doc[k], str):
            problems.append("%s is a %s" % (k, type(doc[k]).__name__))
    if "partitions" in doc:
        if not isinstance(doc["partitions"], dict):
            problems.append("partitions is a %s" % type(doc["partitions"]).__name__)
        else:
            for name, c in doc["partitions"].items():
                if not isinstance(c, dict):
                    problems.append("partition %r is a %s" % (name, type(c).__name__))
                    continue
                for f, v in c.items():
                    counter(v, "partitions[%r].%s" % (name, f))
    if "size_classes" in doc:
        if not isinstance(doc["size_classes"], list):
            problems.append("size_classes is a %s" % type(doc["size_classes"]).__name__)
        else:
            for i, c in enumerate(doc["size_classes"]):
                if not isinstance(c, dict):
                    problems.append("size_classes[%d] is a %s" % (i, type(c).__name__))
                    continue
                for f, v in c.items():
                    counter(v, "size_classes[%d].%s" % (i, f))
    return problems


class FuzzBase(unittest.TestCase):
    slowest = {}  # call -> (seconds, the slowest case)

    @classmethod
    def setUpClass(cls):
        cls.old_alarm = signal.signal(signal.SIGALRM, _on_alarm)

    @classmethod
    def tearDownClass(cls):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, cls.old_alarm)
        print("reader_fuzz_test: slowest calls so far: %s" % "; ".join(
            "%s %.2f s (%s)" % (call, t, case) for call, (t, case) in sorted(FuzzBase.slowest.items())),
            file=sys.stderr)

    def setUp(self):
        self.failures = []
        self.failure_count = 0
        self.saved = 0
        # A hang that SIGALRM cannot break (in C code): all stacks, then exit.
        faulthandler.dump_traceback_later(240, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def record_failure(self, ctx, what, data=None):
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append("%s: %s" % (ctx, what))
        out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if out and data is not None and self.saved < MAX_FAILURES:
            self.saved += 1
            name = re.sub(r"[^\w.-]+", "_", ctx)[:100] + ".bin"
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)

    def report_failures(self, what):
        if self.failure_count:
            self.fail("%d failure(s) in %s (seed %d; replay with --test_env=NITROHEAP_FUZZ_SEED=%d):\n\n%s"
                      % (self.failure_count, what, SEED, SEED, "\n\n".join(self.failures)))

    def guarded(self, ctx, call, fn, allowed, data=None, bound=HANG_S):
        """(result, None) or (None, an allowed exception) from fn(); any other
        exception or a call that takes `bound` seconds or more is recorded as
        a failure (and gives (None, None))."""
        ctx = "%s, %s" % (ctx, call)
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, bound)
        try:
            try:
                return fn(), None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                elapsed = time.monotonic() - t0
                if elapsed > FuzzBase.slowest.get(call, (0.0,))[0]:
                    FuzzBase.slowest[call] = (elapsed, ctx)
                if elapsed >= bound:
                    self.record_failure(ctx, "took %.1f s (bound %.0f s)" % (elapsed, bound), data)
        except allowed as e:
            return None, e
        except Hang:
            self.record_failure(ctx, "did not return within %.0f s:\n%s" % (bound, traceback.format_exc()), data)
        except Exception as e:
            self.record_failure(ctx, "%s escaped: %s\n%s" % (type(e).__name__, printable(str(e))[:300],
                                                             traceback.format_exc()), data)
        return None, None


class SegmentFuzzTest(FuzzBase):
    vanished = 0  # cases made again: somebody else removed the segment (see check())

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        print("reader_fuzz_test: seed %d (set NITROHEAP_FUZZ_SEED to change), %d segment and %d recording "
              "iterations" % (SEED, SEGMENT_ITERATIONS, RECORDING_ITERATIONS), file=sys.stderr)
        # A real segment: a live child with a partition whose name has escapes
        # (the engine writes it as JSON; the reader must make it printable).
        with testlib.LiveChild("telemetry=1", partition="fz\x1b[2J\u202e\x7f\u009b") as child:
            path = child.wait_for_segment()
            seg = nitroheap.read_segment(path, 2.0)
            assert seg["status"] == "ok", seg
            cls.child_doc = nitroheap.Attached(child.pid).stats()
        cls.pid = os.getpid()
        cls.path = nitroheap.segment_path(cls.pid)
        cls.payload = seg["payload"]
        cls.capacity = seg["payload_capacity"]
        cls.update_ns = seg["update_time_ns"]
        cls.updates = seg["updates"]
        cls.seq = seg["sequence"]
        cls.doc_text = cls.payload.decode("utf-8")
        cls.tmp = testlib.tmpdir()
        assert cls.seq % 2 == 0 and len(cls.payload) <= cls.capacity

    def setUp(self):
        super().setUp()
        self.addCleanup(self.clear_path)

    # ---- writing what the readers find ---------------------------------------

    def clear_path(self, path=None):
        path = path or self.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def write_file(self, data, mode=0o600, path=None):
        path = path or self.path
        self.clear_path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def segment(self, payload, capacity=None, length=None, **header):
        """A whole segment file: header, payload, zeros up to the capacity."""
        capacity = self.capacity if capacity is None else capacity
        if len(payload) > capacity:
            capacity = len(payload)
        fields = dict(pid=self.pid, seq=self.seq, update_ns=self.update_ns, capacity=capacity,
                      length=len(payload) if length is None else length, updates=self.updates)
        fields.update(header)
        return pack_header(**fields) + payload + b"\0" * (capacity - len(payload))

    # ---- one case ----------------------------------------------------------------

    def check(self, ctx, make, data=None, render=True):
        """make() puts a case at self.path, then _check_once() reads it.

        A NitroHeap process in another PID namespace (a sandboxed test of
        another Bazel server) may remove /dev/shm/nitroheap.<this pid> at any
        moment: this pid does not exist there (docs/telemetry.md, "Known
        problems"). When the path is gone after the check, what the check
        found is dropped and the case is made and checked again."""
        for _ in range(5):
            make()
            before = (list(self.failures), self.failure_count)
            self._check_once(ctx, data, render)
            if os.path.lexists(self.path):
                return
            self.failures, self.failure_count = before
            SegmentFuzzTest.vanished += 1
        self.fail("%s: %s was removed by somebody else 5 times while it was read" % (ctx, self.path))

    def _check_once(self, ctx, data, render):
        """Runs both readers on whatever is at self.path now; with render,
        `top` and `stats` on what they accept (unless it has thousands of
        partitions: formatting such a screen takes seconds, and that is
        `top`, not a reader, whose time is what is bounded here)."""
        pid = self.pid
        outcomes = []
        for native in (True, False):
            c = "%s, %s reader" % (ctx, "native" if native else "Python")
            doc, err = self.guarded(c, "Attached().stats()",
                                    lambda: nitroheap.Attached(pid, timeout_s=READ_TIMEOUT_S,
                                                               use_native=native).stats(),
                                    nitroheap.NitroHeapError, data)
            outcomes.append(doc if doc is not None else (type(err).__name__, str(err)) if err else None)
        if outcomes[0] != outcomes[1] and None not in outcomes:
            self.record_failure(ctx, "Attached.stats() differs between the native and the Python reader: %s"
                                % "; ".join(printable(repr(o))[:300] for o in outcomes), data)
        doc = outcomes[0] if isinstance(outcomes[0], dict) else outcomes[1]
        if isinstance(doc, dict):
            for p in doc_problems(doc)[:3]:
                self.record_failure(ctx, "accepted document: " + p, data)
        parts = doc.get("partitions") if isinstance(doc, dict) else None
        if render and isinstance(doc, dict) and not (isinstance(parts, dict) and len(parts) > 2000):
            # What `top` (both screens) and `stats` do with an accepted document.
            header = {"updates": self.updates, "update_time_ns": self.update_ns}

            def render():
                lines = nh_cli.render_top(pid, doc, header, None, 1, 2, None)
                lines += nh_cli.render_top(pid, doc, header, doc, 2, 2, 5)
                text = printable("\n".join(lines), keep_newlines=True)
                text.encode("utf-8")
                json.dumps(doc).encode("ascii")  # `stats` (which indents: the same checks, slower)
                return text
            # Rendering 40000 partitions takes a while: a looser bound.
            text, _ = self.guarded(ctx, "render_top", render, (), data, bound=4 * HANG_S)
            bad = BAD_TEXT.search(text) if text is not None else None
            if bad:
                self.record_failure(ctx, "top screen has a control character %r: %r" % (
                    bad.group(0), text[max(0, bad.start() - 60):bad.end() + 20]), data)
        # The two readers agree, field by field (retries aside).
        results = []
        for native in (True, False):
            seg, err = self.guarded(ctx, "read_segment(use_native=%s)" % native,
                                    lambda: nitroheap.read_segment(self.path, READ_TIMEOUT_S, use_native=native),
                                    OSError, data)
            if seg is not None:
                seg = {k: v for k, v in seg.items() if k != "retries"}
            elif err is not None:
                seg = {"status": "OSError", "errno": err.errno}
            results.append(seg)
        if None not in results and results[0] != results[1]:
            diff = {k: (results[0].get(k), results[1].get(k)) for k in set(results[0]) | set(results[1])
                    if results[0].get(k) != results[1].get(k) and k != "payload"}
            self.record_failure(ctx, "native and Python readers disagree: status %s vs %s; %s"
                                % (results[0].get("status"), results[1].get("status"), diff), data)
        return results

    # ---- the cases -----------------------------------------------------------------

    def test_0_real_segment(self):
        """The unmodified segment reads the same with both readers."""
        data = self.segment(self.payload)
        for native in (True, False):
            for _ in range(5):
                self.write_file(data)
                try:
                    doc = nitroheap.Attached(self.pid, use_native=native).stats()
                    break
                except nitroheap.NoTelemetryError:
                    if os.path.lexists(self.path):
                        raise  # not removed by somebody else (see check())
            self.assertEqual(doc_problems(doc), [])
            self.assertEqual(len(doc["size_classes"]), 88)
            names = list(doc["partitions"])
            self.assertIn("fz\\x1b[2J\\u202e\\x7f\\x9b", names)
        self.check("real segment", lambda: self.write_file(data))
        self.report_failures("the real segment")

    def test_1_files_that_are_not_segments(self):
        good = self.segment(self.payload)
        other = os.path.join(self.tmp, "elsewhere")
        self.write_file(good, path=other)
        cases = []

        def fifo():
            self.clear_path()
            os.mkfifo(self.path, 0o600)

        def directory():
            self.clear_path()
            os.mkdir(self.path, 0o700)
            with open(os.path.join(self.path, "x"), "wb") as f:
                f.write(good)

        def link(target):
            def make():
                self.clear_path()
                os.symlink(target, self.path)
            return make

        def sparse(size, head=b""):
            def make():
                self.write_file(head)
                os.truncate(self.path, size)
            return make

        def sock():
            self.clear_path()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.path)
            self.addCleanup(s.close)

        def mode(m):
            return lambda: self.write_file(good, mode=m)

        big_header = self.segment(b"")[:64]
        cases = [
            ("fifo", fifo), ("directory", directory), ("symlink to a valid segment", link(other)),
            ("dangling symlink", link(os.path.join(self.tmp, "absent"))), ("symlink to a directory", link(self.tmp)),
            ("symlink to a fifo", link("/dev/null")),
            ("sparse 2 GiB", sparse(2 << 30)), ("sparse 2 GiB with a header", sparse(2 << 30, big_header)),
            ("sparse, the largest size + 1", sparse(MAX_SEGMENT + 1, big_header)),
            ("sparse, the largest size, payload_length the largest",
             sparse(MAX_SEGMENT, pack_header(self.pid, 2, 1, MAX_SEGMENT - 64, MAX_SEGMENT - 64, 1))),
            ("zero-length", lambda: self.write_file(b"")), ("63 bytes", lambda: self.write_file(good[:63])),
            ("header only", lambda: self.write_file(good[:64])),
            ("unix socket", sock), ("world-writable", mode(0o666)), ("mode 000", mode(0o000)),
            ("setuid bits", mode(0o4700)),
        ]
        for i, (name, make) in enumerate(cases):
            self.check("file case %d (%s)" % (i, name), make)
        self.report_failures("files that are not segments")

    def test_2_fixed_hostile_documents(self):
        """Hostile documents every run covers, whatever the seed."""
        base = json.loads(self.doc_text)
        parts = base["partitions"]
        default = parts["default"]

        def with_(**kw):
            d = json.loads(self.doc_text)
            d.update(kw)
            return enc(d).encode("utf-8", "surrogatepass")

        cases = [
            ("allocations a string", with_(allocations="12")),
            ("threads a string", with_(threads="x")),
            ("time_ns a list", with_(time_ns=[1])),
            ("live_bytes 2^64", with_(live_bytes=2**64)),
            ("live_bytes 400 digits", with_(live_bytes=Raw("1" + "0" * 400))),
            ("live_bytes 5000 digits", with_(live_bytes=Raw("1" * 5000))),
            ("mapped_bytes NaN", with_(mapped_bytes=Raw("NaN"))),
            ("mapped_bytes 1e999", with_(mapped_bytes=Raw("1e999"))),
            ("frees -1", with_(frees=-1)),
            ("frees true", with_(frees=True)),
            ("frees 1.5", with_(frees=1.5)),
            ("heap_mode escapes", with_(heap_mode="\x1b]0;x\x07\x1b[2J\u202e")),
            ("partition name escapes", with_(partitions={"\x1b[2J\x9b\u202e\u2066\x00\n": default})),
            ("partition name lone surrogate", with_(partitions={"\ud800": default, "\udc9b": default})),
            ("partition name raw surrogate",
             enc(dict(base, partitions={"\ud800": default}), False).encode("utf-8", "surrogatepass")),
            ("partition counter a string", with_(partitions={"p": dict(default, live_bytes="x")})),
            ("partition counter 2^64", with_(partitions={"p": dict(default, live_bytes=2**64)})),
            ("size class size 2^70", with_(size_classes=[dict(base["size_classes"][0], size=2**70)])),
            ("size class an int", with_(size_classes=[1])),
            ("partitions a list", with_(partitions=[default])),
            ("deep array 10000", with_(extra=deep(None, 10000, True))),
            ("deep object 10000", with_(partitions=deep(None, 10000, False))),
            ("document deep 10000", enc(deep(None, 10000, True)).encode()),
            ("document deep 990", ("[" * 990 + "]" * 990).encode()),
            ("unknown field depth 7", with_(extra=[[[[[[["x"]]]]]]])),
            ("duplicate top-level keys", enc(Pairs(list(base.items()) + [("allocations", -1)])).encode()),
            ("duplicate partition names", with_(partitions=Pairs([("p", default), ("p", default), ("p#2", default)]))),
            ("40000 duplicate partition names", with_(partitions=Pairs([("p", {"live_bytes": 1})] * 40000))),
            ("40000 duplicate top-level keys", enc(Pairs(list(base.items()) + [("k", 1)] * 40000)).encode()),
            ("20000 names equal in 64 characters",
             with_(partitions=Pairs(("n" * 64 + str(i), {"slabs": 1}) for i in range(20000)))),
            ("invalid UTF-8", self.payload.replace(b"default", b"def\x9bult")),
            ("raw ESC in a string", self.doc_text.replace("default", "def\x1bult").encode()),
            ("UTF-16", self.doc_text.encode("utf-16")),
            ("empty object", b"{}"), ("null", b"null"), ("array", b"[]"),
        ]
        # The costliest valid documents that fit the largest segment a
        # reader accepts (MAX_SEGMENT_BYTES): read, parsed and validated
        # within the hang bound too.
        room = MAX_SEGMENT - 64
        n = (room - 20) // 8
        cases.append(("largest segment: small objects", b'{"extra":[' + b'{"a":1},' * (n - 1) + b'{"a":1}]}'))
        n = (room - 40) // 21
        cases.append(("largest segment: partitions",
                      b'{"partitions":{' + b",".join(b'"%06d":{"slabs":1}' % i for i in range(n)) + b"}}"))
        n = (room - 20) // 11
        cases.append(("largest segment: escapes", b'{"extra":[' + b'"\\u001bxx",' * (n - 1) + b'"x"]}'))
        for name, payload in cases[-3:]:
            assert room - 100 < len(payload) <= room, (name, len(payload), room)
        for i, (name, payload) in enumerate(cases):
            data = self.segment(payload)
            large = len(payload) > 100000
            self.check("fixed case %d (%s)" % (i, name), lambda: self.write_file(data), None if large else payload,
                       render=not large)
        self.report_failures("fixed hostile documents")

    def test_3_random_mutations(self):
        rng = random.Random(SEED)
        base = self.segment(self.payload)
        hlen = len(self.payload)
        counts, seconds = {}, {}
        t0 = time.monotonic()
        for it in range(SEGMENT_ITERATIONS):
            kind = rng.choices(("header_flips", "payload_flips", "header_extreme", "length_past_file",
                                "truncation", "json", "garbage"), (12, 14, 14, 6, 8, 42, 4))[0]
            counts[kind] = counts.get(kind, 0) + 1
            t_it = time.monotonic()
            if kind == "json":
                payload = mutate_doc(rng, json.loads(self.doc_text))
                compact = rng.random() < 0.5
                data = self.segment(payload, capacity=len(payload) if compact else None)
            elif kind == "garbage":
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
                data = self.segment(payload)
            else:
                data = bytearray(base)
                if kind == "header_flips":
                    for _ in range(rng.randint(1, 4)):
                        off = rng.randrange(64)
                        if off in (24, 25) and rng.random() < 0.8:
                            continue  # an odd sequence costs two timeouts; keep them to a few
                        data[off] = rng.randrange(256)
                elif kind == "payload_flips":
                    for _ in range(rng.randint(1, 8)):
                        data[64 + rng.randrange(hlen)] = rng.randrange(256)
                elif kind == "header_extreme":
                    for _ in range(rng.randint(1, 2)):
                        name, off, code = rng.choice(HEADER_FIELDS)
                        top = U64 if code == "Q" else 0xFFFFFFFF
                        v = rng.choice((0, 1, 2, 3, 63, 64, 65, hlen - 1, hlen + 1, len(data), len(data) - 63,
                                        2**31, 0xFFFFFFFF, top, top - 1, 2**63 & top, self.capacity + 1))
                        if name == "sequence" and v % 2 and rng.random() < 0.7:
                            v -= 1
                        struct.pack_into("<" + code, data, off, v & top)
                elif kind == "length_past_file":
                    room = len(data) - 64
                    length = room + rng.choice((1, 2, 64, 4096, 0xFFFFFFFF - room))
                    struct.pack_into("<I", data, 44, min(length, 0xFFFFFFFF))
                    struct.pack_into("<I", data, 40, rng.choice((min(length, 0xFFFFFFFF), 0xFFFFFFFF, self.capacity)))
                    if rng.random() < 0.3:
                        struct.pack_into("<I", data, 12, rng.choice((len(data), len(data) - 1, 0xFFFFFFFF, 65)))
                elif kind == "truncation":
                    cut = rng.choice((rng.randrange(65), 64 + rng.randrange(hlen + 1), rng.randrange(len(data))))
                    del data[cut:]
                data = bytes(data)
                payload = data
            self.check("segment iteration %d (%s)" % (it, kind), lambda: self.write_file(data), data)
            seconds[kind] = seconds.get(kind, 0.0) + time.monotonic() - t_it
            if self.failure_count >= 3 * MAX_FAILURES:
                break
        print("reader_fuzz_test: %d segment iterations in %.1f s: %s; segment removed by somebody else "
              "(and the case made again): %d times" % (
                  it + 1, time.monotonic() - t0, ", ".join("%s %d (%.1f s)" % (k, counts[k], seconds[k])
                                                           for k in sorted(counts)), SegmentFuzzTest.vanished),
              file=sys.stderr)
        self.report_failures("random segment mutations")


# ---- recordings ----------------------------------------------------------------

class RecordingFuzzTest(FuzzBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = testlib.tmpdir()
        cls.path, _, _ = testlib.record_workload(cls.dir, rounds=1200)
        with open(cls.path, "rb") as f:
            cls.data = f.read()
        cls.msg = pb2.FlightRecording.FromString(cls.data)
        assert len(cls.msg.events) > 20, len(cls.msg.events)

    def exercise(self, ctx, data):
        """parse_flight_recorder, then everything `report` does."""
        rec, err = self.guarded(ctx, "parse_flight_recorder",
                                lambda: nitroheap.parse_flight_recorder(data, "fuzz.pb"),
                                nitroheap.NitroHeapError, data)
        if rec is None:
            return None

        def analyse():
            rec.summary()
            for by in ("bytes", "count", "live_bytes", "estimated_bytes"):
                rec.top_sites(10, by=by)
            rec.top_sites(5, group="stack", live_only=True)
            rec.top_sites(5, group="site")
            rec.size_histogram().format()
            rec.lifetime_histogram().format()
            rec.size_histogram(bins=8).format()
            lines = nh_cli.report_lines(rec)
            lines += nh_cli.report_lines(rec, 3, "estimated_count", "stack")
            text = printable("\n".join(lines), keep_newlines=True)
            text.encode("utf-8")
            return text
        text, _ = self.guarded(ctx, "report", analyse, nitroheap.NitroHeapError, data)
        bad = BAD_TEXT.search(text) if text is not None else None
        if bad:
            self.record_failure(ctx, "report has a control character %r: %r" % (
                bad.group(0), text[max(0, bad.start() - 60):bad.end() + 20]), data)
        if rec.stats:
            for p in doc_problems(rec.stats)[:3]:
                self.record_failure(ctx, "accepted stats_json: " + p, data)
        return rec

    def test_0_real_recording(self):
        rec = self.exercise("real recording", self.data)
        self.assertIsNotNone(rec)
        self.report_failures("the real recording")

    def mutate_message(self, rng):
        m = pb2.FlightRecording()
        m.CopyFrom(self.msg)
        for _ in range(rng.choice((1, 1, 2, 3))):
            op = rng.randrange(12)
            if op == 0 and m.events:
                e = rng.choice(m.events)
                f = rng.choice(("address", "requested_size", "usable_size", "alignment", "thread_id",
                                "alloc_time_ns", "free_time_ns"))
                setattr(e, f, rng.choice((0, 1, 2**32, 2**63, U64, U64 - 1)))
            elif op == 1 and m.events:
                e = rng.choice(m.events)
                e.cpu = rng.choice((-2**31, -1, 2**31 - 1))
                e.free_time_ns, e.alloc_time_ns = rng.choice(((1, U64), (U64, 0), (1, 1), (0, 0)))
            elif op == 2 and m.events:
                e = rng.choice(m.events)
                del e.stack[:]
                e.stack.extend(rng.choice(([], [U64], [0] * 3, list(range(1, 2000)), [rng.randrange(2**64)])))
            elif op == 3 and m.frames:
                fr = rng.choice(m.frames)
                fr.function = rng.choice((self.hostile_text(rng), "_Z" + self.hostile_text(rng),
                                          "_ZN" + "1a" * 3000 + "E", "_Z1fPFPFPFPFvEEEE" * 50, "_Z" + "S_" * 500,
                                          "_ZSt" + "I" * 2000, "operator new" + self.hostile_text(rng)))
                fr.object = rng.choice((self.hostile_text(rng), "/", "", "/lib/libnitroheap.so\x1b[2J"))
                fr.offset = rng.choice((0, U64))
                fr.address = rng.choice((fr.address, 0, U64))
            elif op == 4:
                p = m.process
                p.pid = rng.choice((0, 2**32 - 1))
                p.executable, p.command_line, p.heap_mode, p.hardening_mode = (
                    self.hostile_text(rng) for _ in range(4))
                p.start_time_ns = rng.choice((0, 1, U64, min(U64, m.dump_time_ns + 1)))
            elif op == 5:
                o = m.options.add()
                o.name, o.value = self.hostile_text(rng), self.hostile_text(rng)
            elif op == 6:
                m.sample_interval_bytes = rng.choice((0, 1, 2, 2**32, U64))
                m.dropped_events = rng.choice((0, U64))
            elif op == 7:
                m.dump_time_ns = rng.choice((1, 2**62, U64))
            elif op == 8:  # hostile statistics document
                doc = json.loads(self.msg.stats_json)
                raw = mutate_doc(rng, doc)
                try:
                    m.stats_json = raw.decode("utf-8")
                except UnicodeDecodeError:
                    m.stats_json = raw.decode("latin-1")
            elif op == 9 and m.events:
                e = rng.choice(m.events)
                e.partition = self.hostile_text(rng)
            elif op == 10 and m.events:  # many copies of one event
                e = rng.choice(m.events)
                for _ in range(rng.choice((10, 500))):
                    m.events.add().CopyFrom(e)
            elif op == 11:
                m.stats_json = rng.choice(("", "{}", "[]", "null", "1", '{"allocations":"x"}',
                                           '{"live_bytes":1' + "0" * 400 + "}", '{"a":NaN}', "[" * 10000))
        if rng.random() < 0.1:
            return self.with_unknown_process_fields(m, rng)
        return m.SerializeToString()

    @staticmethod
    def with_unknown_process_fields(m, rng):
        """Fields a newer writer might add inside Process (a reader skips
        them), or ones of invalid wire types (a reader rejects them)."""
        def varint(n):
            out = bytearray()
            while True:
                out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
                n >>= 7
                if not n:
                    return bytes(out)
        extra = rng.choice((b"\x78\x05", b"\x82\x01\x02hi", b"\x85\x01abcd", b"\x81\x01abcdefgh",
                            b"\x83\x01", b"\x86\x01", b"\x82\x01\xff\xff\x03", b"\x78" + b"\xff" * 11))
        process = m.process.SerializeToString() + extra
        rest = pb2.FlightRecording()
        rest.CopyFrom(m)
        rest.ClearField("process")
        rest.format_version = 0  # written by hand below, before the process
        return (b"\x08" + varint(m.format_version) + b"\x12" + varint(len(process)) + process
                + rest.SerializeToString())

    @staticmethod
    def hostile_text(rng):
        # Protobuf strings are valid UTF-8: no lone surrogates here.
        s = hostile_string(rng)
        return s.encode("utf-8", "replace").decode("utf-8") if any(
            "\ud800" <= c <= "\udfff" for c in s) else s

    def test_1_random_mutations(self):
        rng = random.Random(SEED ^ 0x5EED)
        data0 = self.data
        counts = {}
        t0 = time.monotonic()
        for it in range(RECORDING_ITERATIONS):
            kind = rng.choices(("flips", "truncation", "insertion", "deletion", "splice", "protobuf"),
                               (15, 8, 8, 6, 5, 58))[0]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "protobuf":
                data = self.mutate_message(rng)
            else:
                data = bytearray(data0)
                n = len(data)
                if kind == "flips":
                    for _ in range(rng.randint(1, 8)):
                        data[rng.randrange(n)] = rng.randrange(256)
                elif kind == "truncation":
                    del data[rng.randrange(n):]
                elif kind == "insertion":
                    at = rng.randrange(n + 1)
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
                elif kind == "deletion":
                    at = rng.randrange(n)
                    del data[at:at + rng.randint(1, 64)]
                else:
                    a = rng.randrange(n)
                    b = min(n, a + rng.randint(1, 512))
                    at = rng.randrange(n + 1)
                    data[at:at] = data[a:b]
                data = bytes(data)
            self.exercise("recording iteration %d (%s)" % (it, kind), data)
            if self.failure_count >= 3 * MAX_FAILURES:
                break
        print("reader_fuzz_test: %d recording iterations in %.1f s: %s" % (
            it + 1, time.monotonic() - t0, counts), file=sys.stderr)
        self.report_failures("random recording mutations")

    def test_2_read_flight_recorder_files(self):
        """Files that are not recordings: RecordingError or OSError, never a hang."""
        d = testlib.tmpdir()
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        sparse = os.path.join(d, "sparse")
        with open(sparse, "wb"):
            pass
        os.truncate(sparse, 2 << 30)
        empty = os.path.join(d, "empty")
        open(empty, "wb").close()
        for path in (fifo, sparse, empty, d, "/dev/null", "/dev/zero"):
            self.guarded(path, "read_flight_recorder", lambda: nitroheap.read_flight_recorder(path),
                         (nitroheap.NitroHeapError, OSError))
        self.report_failures("recording files")


# ---- the command line ------------------------------------------------------------

def cli(*args, timeout=30):
    env = testlib.clean_env(PYTHONPATH=testlib.package_parent())
    return subprocess.run([testlib.PY, "-m", "nitroheap"] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


class CliFuzzTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = testlib.tmpdir()
        cls.rec_path, _, _ = testlib.record_workload(cls.dir, rounds=300)
        with open(cls.rec_path, "rb") as f:
            cls.rec = f.read()
        cls.msg = pb2.FlightRecording.FromString(cls.rec)
        cls.pid = os.getpid()
        cls.seg_path = nitroheap.segment_path(cls.pid)

    def tearDown(self):
        try:
            os.unlink(self.seg_path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            os.rmdir(self.seg_path)

    def check_streams(self, r, ctx, exit_status):
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        self.assertNotIn(b"\x1b", r.stdout, ctx)
        self.assertNotIn(b"\x1b", r.stderr, ctx)
        self.assertNotIn("Traceback", err, ctx)
        for name, raw, text in (("stdout", r.stdout, out), ("stderr", r.stderr, err)):
            raw.decode("utf-8")  # strict: no raw C1 bytes from surrogateescape
            self.assertIsNone(BAD_TEXT.search(text), "%s: control character on %s: %r" % (ctx, name, text[:2000]))
        self.assertEqual(r.returncode, exit_status, "%s: exit %d; stderr: %s" % (ctx, r.returncode, err[-2000:]))
        if exit_status == 1:
            self.assertEqual(len(err.strip().splitlines()), 1, "%s: %s" % (ctx, err))
            self.assertRegex(err, r"^nitroheap (report|stats|top): error: ", ctx)

    def recording(self, **changes):
        m = pb2.FlightRecording()
        m.CopyFrom(self.msg)
        for k, v in changes.items():
            if k == "function":
                for f in m.frames:
                    f.function = v
            elif k == "partition":
                for e in m.events:
                    e.partition = v
            elif k == "executable":
                m.process.executable = v
            else:
                setattr(m, k, v)
        return m.SerializeToString()

    def test_report(self):
        d = testlib.tmpdir()
        fifo = os.path.join(d, "fifo.pb")
        os.mkfifo(fifo)
        sparse = os.path.join(d, "sparse.pb")
        open(sparse, "wb").close()
        os.truncate(sparse, 2 << 30)
        hostile = "\x1b[2J\x1b]0;owned\x07\x9b31m\u202e\u2066\x00\x7f"
        cases = [
            ("empty", b"", 1), ("junk", bytes(range(256)) * 3, 1), ("truncated", self.rec[:len(self.rec) // 2], 1),
            ("stats_json counter a string", self.recording(stats_json='{"allocations":"x","live_bytes":"y"}'), 1),
            ("stats_json 400-digit counter", self.recording(stats_json='{"live_bytes":1%s}' % ("0" * 400)), 1),
            ("stats_json deep", self.recording(stats_json="[" * 10000 + "]" * 10000), 1),
            ("stats_json hostile partition",
             self.recording(stats_json=json.dumps({"partitions": {hostile + "\ud800": {"live_bytes": 1}}})), 0),
            ("hostile names", self.recording(function=hostile, partition=hostile, executable=hostile), 0),
        ]
        for name, data, status in cases:
            path = os.path.join(d, re.sub(r"\W+", "_", name) + ".pb")
            with open(path, "wb") as f:
                f.write(data)
            self.check_streams(cli("report", path), "report " + name, status)
        for name, path in (("fifo", fifo), ("sparse 2 GiB", sparse), ("directory", d), ("/dev/zero", "/dev/zero")):
            self.check_streams(cli("report", path), "report " + name, 1)

    def write_segment(self, payload, seq=2):
        self.tearDown()
        data = pack_header(self.pid, seq, time.time_ns(), len(payload), len(payload), 1) + payload
        fd = os.open(self.seg_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.close(fd)

    def test_stats_and_top(self):
        counters = {k: 1 for k in nitroheap.COUNTERS}
        hostile = "\x1b[2J\x1b]0;owned\x07\x9b31m\u202e\u2066\x7f\n\u2028"
        good = {"version": 1, "pid": self.pid, "time_ns": time.time_ns(), "heap_mode": "nitro",
                "hardening_mode": "balanced", "threads": 1, **counters}
        cases = [
            ("hostile partition names",
             enc(dict(good, heap_mode=hostile, partitions={hostile: counters, "\ud800": counters,
                                                           "\udc9b": counters})).encode(), 0),
            ("threads a string", enc(dict(good, threads="x")).encode(), 1),
            ("time_ns a string", enc(dict(good, time_ns="x")).encode(), 1),
            ("live_bytes 400 digits", enc(dict(good, live_bytes=Raw("1" + "0" * 400))).encode(), 1),
            ("size class counter 2^64", enc(dict(good, size_classes=[dict(size=16, live_objects=2**64, slabs=1)])
                                            ).encode(), 1),
            ("20000 duplicate partition names",
             enc(dict(good, partitions=Pairs([("p", {"slabs": 1})] * 20000))).encode(), 0),
            ("deep", b"[" * 10000 + b"]" * 10000, 1),
            ("not UTF-8", b'{"heap_mode":"\x1b\x9b"}', 1),
        ]
        top = ("top", str(self.pid), "-n", "1", "--no-clear")
        for i, (name, payload, status) in enumerate(cases):
            make = lambda: self.write_segment(payload)  # noqa: E731
            if i % 2 == 0:  # (`stats` only prints JSON: half of them are enough)
                self.check_streams(self.cli_on_segment(make, "stats", str(self.pid), "--classes"), "stats " + name,
                                   status)
            self.check_streams(self.cli_on_segment(make, *top), "top " + name, status)
        # Not a segment at all.
        self.check_streams(self.cli_on_segment(lambda: self.write_segment(b"{}", seq=3), *top), "top odd sequence", 1)

        def fifo():
            self.tearDown()
            os.mkfifo(self.seg_path, 0o600)
        self.check_streams(self.cli_on_segment(fifo, "stats", str(self.pid)), "stats fifo", 1)
        self.check_streams(self.cli_on_segment(fifo, *top), "top fifo", 1)

    def cli_on_segment(self, make, *args):
        """cli(*args) after make() put a segment in place; again when it was
        removed meanwhile by somebody else (see SegmentFuzzTest.check)."""
        for _ in range(5):
            make()
            r = cli(*args)
            if os.path.lexists(self.seg_path):
                return r
        self.fail("%s was removed by somebody else 5 times" % self.seg_path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
