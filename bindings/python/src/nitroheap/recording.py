"""Flight recordings (telemetry/flight_recorder.proto): reading and analysis.

    rec = nitroheap.read_flight_recorder("rec.1234.pb")
    rec.process.executable, len(rec.events), rec.stats["live_bytes"]
    for site in rec.top_sites(5): print(site.function, site.bytes)
    print(rec.size_histogram().format())
"""

import bisect
import json
import math
import os
import re

from . import _safe
from ._errors import RecordingError
from ._live import parse_stats_json

try:
    from . import flight_recorder_pb2
except ImportError as e:  # pragma: no cover - only with a broken install
    flight_recorder_pb2 = None
    _PB2_ERROR = e

try:
    from ._native import demangle as _demangle
except ImportError:  # pragma: no cover
    def _demangle(name):
        return name

FORMAT_VERSION = 1
# The largest recording read: 2^20 events (flight_recorder_events' maximum) of
# about 200 bytes each, with their symbols, fit well below it.
MAX_RECORDING_BYTES = 1 << 30

_WIRE_NAMES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "start-group", 4: "end-group",
               5: "32-bit"}

# Frames of allocators (and their wrappers) that top_sites() looks past to
# find the code that asked for memory. Matched against demangled names;
# frames in libnitroheap.so itself are always skipped.
ALLOCATOR_FRAMES = [
    r"^(__libc_)?(malloc|calloc|realloc|reallocarray|free|cfree|posix_memalign|aligned_alloc|"
    r"memalign|valloc|pvalloc|__posix_memalign)$",
    r"^operator new", r"^operator delete", r"^_Zn[wa]", r"^_Zd[la]",
    r"^nitro[_:]", r"^nitro$",
    r"^(_)?Py(Mem|Object)_(Raw)?(Malloc|Calloc|Realloc|New|NewVar|GC_New|GC_NewVar)",
    r"^_PyObject_(GC_)?(Malloc|Calloc|Realloc|New|NewVar)", r"^_PyMem_",
    r"^(strdup|strndup|__strdup|asprintf|vasprintf|open_memstream|getline|getdelim)$",
]
# Library internals that allocate on behalf of their caller (container
# growth, string construction): skipped too, unless nothing else is left.
LIBRARY_FRAMES = [
    r"^(?:[\w:]+[*&]* )?std::[^(]*::_M_",
    r"^(?:[\w:]+[*&]* )?(?:std::)?(?:__new_allocator|allocator|allocator_traits)<",
    r"^(?:[\w:]+[*&]* )?__gnu_cxx::new_allocator<",
]


class Mapping:
    """One loaded object's code segment (the Mapping message)."""
    __slots__ = ("start", "limit", "file_offset", "path", "build_id")

    def __init__(self, msg):
        self.start = msg.start
        self.limit = msg.limit
        self.file_offset = msg.file_offset
        self.path = msg.path
        self.build_id = msg.build_id

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "Mapping(0x%x-0x%x, %r, build_id=%r)" % (self.start, self.limit, self.path, self.build_id)


class RecordedProcess:
    """Process of a recording (the Process message). mappings: the code
    segments of its loaded objects (empty in recordings written before they
    were added)."""
    __slots__ = ("pid", "executable", "command_line", "start_time_ns", "heap_mode", "hardening_mode",
                 "mappings")

    def __init__(self, msg):
        self.pid = msg.pid
        self.executable = msg.executable
        self.command_line = msg.command_line
        self.start_time_ns = msg.start_time_ns
        self.heap_mode = msg.heap_mode
        self.hardening_mode = msg.hardening_mode
        self.mappings = [Mapping(m) for m in msg.mappings]

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.__slots__}
        d["mappings"] = [m.as_dict() for m in self.mappings]
        return d

    def __repr__(self):
        return "RecordedProcess(pid=%d, executable=%r, heap_mode=%r, hardening_mode=%r)" % (
            self.pid, self.executable, self.heap_mode, self.hardening_mode)


class Frame:
    """One symbolized return address (the Frame message), plus its demangled name."""
    __slots__ = ("address", "function", "object", "offset", "demangled")

    def __init__(self, address, function="", obj="", offset=0):
        self.address = address
        self.function = function
        self.object = obj
        self.offset = offset
        self.demangled = _demangle(function) if function else ""

    @property
    def label(self):
        """"function+0xoff (object)" or "0xaddress (object)"."""
        where = os.path.basename(self.object) if self.object else "?"
        if self.demangled:
            return "%s+0x%x (%s)" % (self.demangled, self.offset, where)
        return "0x%x (%s)" % (self.address, where)

    @property
    def name(self):
        """The demangled function, or "0xADDRESS (object)" without a symbol."""
        if self.demangled:
            return self.demangled
        if self.object:
            return "0x%x (%s)" % (self.address, os.path.basename(self.object))
        return "0x%x" % self.address

    def __repr__(self):
        return "Frame(0x%x, %r, %r, offset=0x%x)" % (self.address, self.demangled or self.function,
                                                     self.object, self.offset)


class Move:
    """A move of a sampled movable object (an Event message with
    moved_from set): from `moved_from` to `address`, `size` bytes, at
    `time_ns`. The object's own Event already carries its latest address."""
    __slots__ = ("moved_from", "address", "size", "partition", "thread_id", "time_ns")

    def __init__(self, msg):
        self.moved_from = msg.moved_from
        self.address = msg.address
        self.size = msg.requested_size
        self.partition = msg.partition
        self.thread_id = msg.thread_id
        self.time_ns = msg.alloc_time_ns

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "Move(0x%x -> 0x%x, %d bytes)" % (self.moved_from, self.address, self.size)


class Event:
    """One sampled allocation (the Event message)."""
    __slots__ = ("address", "requested_size", "usable_size", "alignment", "partition", "thread_id",
                 "cpu", "alloc_time_ns", "free_time_ns", "stack")

    def __init__(self, msg):
        self.address = msg.address
        self.requested_size = msg.requested_size
        self.usable_size = msg.usable_size
        self.alignment = msg.alignment
        self.partition = msg.partition
        self.thread_id = msg.thread_id
        self.cpu = msg.cpu
        self.alloc_time_ns = msg.alloc_time_ns
        self.free_time_ns = msg.free_time_ns
        self.stack = list(msg.stack)

    @property
    def live(self):
        """True when the object was still allocated at the dump."""
        return self.free_time_ns == 0

    @property
    def lifetime_ns(self):
        """Nanoseconds from allocation to free, or None while live."""
        if self.free_time_ns == 0:
            return None
        return max(0, self.free_time_ns - self.alloc_time_ns)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "Event(0x%x, requested=%d, usable=%d, partition=%r, tid=%d, %s)" % (
            self.address, self.requested_size, self.usable_size, self.partition, self.thread_id,
            "live" if self.live else "lifetime=%dns" % self.lifetime_ns)


class Site:
    """An allocation site aggregated by top_sites()."""
    __slots__ = ("key", "function", "object", "address", "named", "count", "bytes", "live_count",
                 "live_bytes", "estimated_count", "estimated_bytes", "stack", "share")

    def __init__(self, key, frame, stack):
        self.key = key
        self.function = frame.name if frame else "(no stack)"
        self.named = bool(frame and frame.demangled)  # False: function is "0xADDRESS (object)"
        self.object = os.path.basename(frame.object) if frame and frame.object else ""
        self.address = frame.address if frame else 0
        self.count = self.bytes = self.live_count = self.live_bytes = 0
        self.estimated_count = self.estimated_bytes = 0.0
        self.stack = stack
        self.share = 0.0

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__ if k != "key"}

    def __repr__(self):
        return "Site(%r, count=%d, bytes=%d, live_bytes=%d)" % (self.function, self.count, self.bytes,
                                                                self.live_bytes)


class Histogram:
    """Counts of a quantity in bins [edges[i], edges[i+1])."""

    def __init__(self, edges, counts, sums, unit, title, excluded=0, excluded_label="", outside=0):
        self.edges = edges
        self.counts = counts
        self.sums = sums          # sum of the quantity (bytes, ns) per bin
        self.unit = unit          # "bytes" or "ns"
        self.title = title
        self.excluded = excluded  # events not counted (e.g. still live, for lifetimes)
        self.excluded_label = excluded_label
        self.outside = outside    # values outside the edges (explicit bins only)

    @property
    def total(self):
        return sum(self.counts)

    def rows(self):
        """[(low, high, count), ...]; high may be math.inf."""
        return [(self.edges[i], self.edges[i + 1], self.counts[i]) for i in range(len(self.counts))]

    def __iter__(self):
        return iter(self.rows())

    def __len__(self):
        return len(self.counts)

    def label(self, i):
        lo, hi = self.edges[i], self.edges[i + 1]
        fmt = format_bytes if self.unit == "bytes" else format_duration
        if math.isinf(hi):
            return ">= %s" % fmt(lo)
        return "%s - %s" % (fmt(lo), fmt(hi))

    def nonempty_range(self):
        """(lo, hi): the bins between the first and last non-empty ones."""
        lo, hi = 0, len(self.counts)
        while lo < hi and self.counts[lo] == 0:
            lo += 1
        while hi > lo and self.counts[hi - 1] == 0:
            hi -= 1
        return lo, hi

    def format(self, width=40):
        """A text rendering with one bar per bin."""
        lines = [self.title]
        peak = max(self.counts) if self.counts else 0
        labels = [self.label(i) for i in range(len(self.counts))]
        lw = max([len(x) for x in labels] + [5])
        # Empty bins at both ends are left out.
        lo, hi = self.nonempty_range()
        if lo == hi:
            lines.append("  (no events)")
        for i in range(lo, hi):
            c = self.counts[i]
            bar = "#" * (int(round(width * c / peak)) if peak else 0)
            lines.append(("  %-*s %7d %s" % (lw, labels[i], c, bar)).rstrip())
        if self.excluded:
            lines.append("  (%d %s not counted)" % (self.excluded, self.excluded_label))
        return "\n".join(lines)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "Histogram(%r, %d bins, total=%d)" % (self.title, len(self.counts), self.total)


def format_bytes(n):
    if n is None:
        return "-"
    if isinstance(n, float) and math.isinf(n):
        return "inf"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return "%d B" % n
            return ("%.1f %s" % (n, unit)).replace(".0 ", " ")
        n /= 1024.0
    return "%d" % n


def format_duration(ns):
    if ns is None:
        return "-"
    if isinstance(ns, float) and math.isinf(ns):
        return "inf"
    ns = float(ns)
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= div:
            v = ns / div
            return ("%.3g %s" % (v, unit)) if v < 1000 or unit != "s" else "%d s" % v
    return "%d ns" % ns


def _log_edges(lo, hi, n):
    lo = max(lo, 1)
    hi = max(hi, lo + 1)
    ratio = (hi / lo) ** (1.0 / n)
    edges = [lo * ratio ** i for i in range(n)] + [hi]
    edges = sorted(set(int(math.floor(e)) for e in edges[:-1])) + [int(math.ceil(hi)) + 1]
    edges[0] = 0
    return edges


def _histogram(values, weights, bins, default_edges, unit, title, excluded=0, excluded_label=""):
    if bins is None:
        edges = list(default_edges)
    elif isinstance(bins, int):
        if bins < 1:
            raise ValueError("bins must be >= 1")
        if values:
            edges = _log_edges(min(values), max(values), bins)
        else:
            edges = [0, 1]
    else:
        edges = list(bins)
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("bin edges must be at least 2, strictly increasing")
    counts = [0] * (len(edges) - 1)
    sums = [0] * (len(edges) - 1)
    outside = 0
    for v, w in zip(values, weights):
        i = bisect.bisect_right(edges, v) - 1
        if 0 <= i < len(counts):
            counts[i] += 1
            sums[i] += w
        else:
            outside += 1
    return Histogram(edges, counts, sums, unit, title, excluded, excluded_label, outside)


# The schema on the wire, for validation before protobuf sees the bytes:
# message -> {field: (name, kind)}; kind: "u" varint, "s" string (UTF-8),
# "p" packed varints (or one unpacked varint), or a message name.
_SCHEMA = {
    "FlightRecording": {1: ("format_version", "u"), 2: ("process", "Process"), 3: ("options", "Option"),
                        4: ("stats_json", "s"), 5: ("events", "Event"), 6: ("frames", "Frame"),
                        7: ("sample_interval_bytes", "u"), 8: ("dropped_events", "u"),
                        9: ("dump_time_ns", "u")},
    "Process": {1: ("pid", "u"), 2: ("executable", "s"), 3: ("command_line", "s"),
                4: ("start_time_ns", "u"), 5: ("heap_mode", "s"), 6: ("hardening_mode", "s"),
                7: ("mappings", "Mapping")},
    "Mapping": {1: ("start", "u"), 2: ("limit", "u"), 3: ("file_offset", "u"), 4: ("path", "s"),
                5: ("build_id", "s")},
    "Option": {1: ("name", "s"), 2: ("value", "s")},
    "Event": {1: ("address", "u"), 2: ("requested_size", "u"), 3: ("usable_size", "u"),
              4: ("alignment", "u"), 5: ("partition", "s"), 6: ("thread_id", "u"), 7: ("cpu", "u"),
              8: ("alloc_time_ns", "u"), 9: ("free_time_ns", "u"), 10: ("stack", "p"),
              11: ("moved_from", "u")},
    "Frame": {1: ("address", "u"), 2: ("function", "s"), 3: ("object", "s"), 4: ("offset", "u")},
}
_SINGULAR_TOP = (1, 2, 4, 7, 8, 9)


class _WireError(Exception):
    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind  # "truncated", "corrupt" or "foreign"


def _read_varint(data, pos, end):
    result = shift = 0
    while True:
        if pos >= end:
            raise _WireError("truncated", "a varint runs past the end of its %s at byte %d"
                             % ("file" if end == len(data) else "enclosing message", pos))
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("corrupt", "a varint longer than 10 bytes at byte %d" % pos)


def _walk(data, pos, end, message, top, info):
    """Checks one message's fields in data[pos:end]; raises _WireError."""
    fields = _SCHEMA[message]
    last = 0
    while pos < end:
        start = pos
        key, pos = _read_varint(data, pos, end)
        field, wire = key >> 3, key & 7
        spec = fields.get(field)
        if spec is None:
            if top:
                raise _WireError("foreign", "byte %d holds field %d (%s), which FlightRecording does "
                                 "not have" % (start, field, _WIRE_NAMES.get(wire, "wire type %d" % wire)))
            # A nested field this reader does not know (a newer writer): skip it.
            if wire == 0:
                _, pos = _read_varint(data, pos, end)
            elif wire == 2:
                n, pos = _read_varint(data, pos, end)
                pos += n
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                raise _WireError("corrupt", "byte %d: %s field %d has invalid wire type %d"
                                 % (start, message, field, wire))
            if pos > end:
                raise _WireError("truncated", "%s field %d at byte %d runs past its end" % (message, field, start))
            continue
        name, kind = spec
        want = 0 if kind == "u" else 2
        if kind == "p" and wire == 0:
            want = 0
        if wire != want:
            raise _WireError("foreign" if top else "corrupt",
                             "field %d (%s.%s) at byte %d is %s, expected %s"
                             % (field, message, name, start, _WIRE_NAMES.get(wire, "wire type %d" % wire),
                                _WIRE_NAMES[want]))
        if top:
            if field < last:
                raise _WireError("corrupt", "field %d (%s) at byte %d comes after field %d; a recording is "
                                 "written in field order (two files concatenated?)" % (field, name, start, last))
            if field == last and field in _SINGULAR_TOP:
                raise _WireError("corrupt", "field %d (%s) repeated at byte %d" % (field, name, start))
            info["seen"].add(field)
        last = field
        if wire == 0:
            value, pos = _read_varint(data, pos, end)
            if top and field == 1:
                info["format_version"] = value
            continue
        n, pos = _read_varint(data, pos, end)
        if pos + n > end:
            raise _WireError("truncated", "field %d (%s.%s) at byte %d needs %d bytes, %d are left"
                             % (field, message, name, start, n, end - pos))
        if kind == "s":
            try:
                bytes(data[pos:pos + n]).decode("utf-8")
            except UnicodeDecodeError:
                raise _WireError("corrupt", "field %s.%s at byte %d is not valid UTF-8"
                                 % (message, name, start)) from None
        elif kind == "p":
            p = pos
            while p < pos + n:
                _, p = _read_varint(data, p, pos + n)
        else:
            _walk(data, pos, pos + n, kind, False, info)
        pos += n
    return pos


def _check_wire(data, path):
    """Walks the whole file against the schema before protobuf parses it, so
    that damage gets a precise message (and the C++ protobuf runtime never
    logs to stderr about it). Returns {"seen": fields, "format_version": v}."""
    info = {"seen": set(), "format_version": None}
    try:
        _walk(memoryview(data), 0, len(data), "FlightRecording", True, info)
    except _WireError as e:
        version = info["format_version"]
        if e.kind == "foreign" and version is not None and 1 < version < 256:
            # A newer format with fields this reader does not know.
            raise RecordingError("%s: flight recording format_version %d is not supported (this reader "
                                 "knows version %d): %s" % (path, version, FORMAT_VERSION, e)) from None
        if e.kind == "foreign" or not info["seen"] or version not in (None, FORMAT_VERSION):
            raise RecordingError("%s is not a NitroHeap flight recording: %s" % (path, e)) from None
        raise RecordingError("%s is %s: %s" % (path, e.kind, e)) from None
    return info


class Recording:
    """A decoded flight recording.

    Attributes: format_version, process (RecordedProcess), options (dict),
    stats (dict, the statistics at the dump), events (list of Event: the
    sampled allocations), moves (list of Move: moves of sampled movable
    objects, in the order made),
    frames (dict address -> Frame), sample_interval_bytes, dropped_events,
    dump_time_ns, message (the flight_recorder_pb2.FlightRecording), path.
    """

    def __init__(self, message, path="<memory>", allocator_frames=None):
        self.message = message
        self.path = path
        self.format_version = message.format_version
        self.process = RecordedProcess(message.process)
        self.options = {o.name: o.value for o in message.options}
        if message.stats_json:
            try:
                stats = parse_stats_json(message.stats_json)
            except ValueError as e:
                raise RecordingError("%s: stats_json is not valid JSON: %s" % (path, e)) from None
            self.stats = _safe.validate_stats(stats, "%s: stats_json" % path, RecordingError)
        else:
            self.stats = {}
        self.events = [Event(e) for e in message.events if not e.moved_from]
        self.moves = [Move(e) for e in message.events if e.moved_from]
        self.frames = {f.address: Frame(f.address, f.function, f.object, f.offset) for f in message.frames}
        self.sample_interval_bytes = message.sample_interval_bytes
        self.dropped_events = message.dropped_events
        self.dump_time_ns = message.dump_time_ns
        alloc = ALLOCATOR_FRAMES if allocator_frames is None else allocator_frames
        self._allocator_re = re.compile("|".join("(?:%s)" % p for p in alloc)) if alloc else None
        self._library_re = re.compile("|".join("(?:%s)" % p for p in LIBRARY_FRAMES))
        self._skip_cache = {}

    # ---- frames ---------------------------------------------------------

    def frame(self, address):
        f = self.frames.get(address)
        if f is None:
            f = Frame(address)
            self.frames[address] = f
        return f

    def _frame_kind(self, address):
        """0: the program's code, 1: a library internal, 2: an allocator."""
        kind = self._skip_cache.get(address)
        if kind is None:
            f = self.frame(address)
            name = f.demangled or f.function
            kind = 0
            if f.object and os.path.basename(f.object).startswith("libnitroheap"):
                kind = 2
            elif name and self._allocator_re is not None and self._allocator_re.search(name):
                kind = 2
            elif name and self._library_re.search(name):
                kind = 1
            self._skip_cache[address] = kind
        return kind

    def is_allocator_frame(self, address):
        """True for frames of an allocator (or of NitroHeap itself)."""
        return self._frame_kind(address) == 2

    def site_frame(self, event):
        """The frame top_sites() charges the event to: the first frame that is
        neither an allocator's nor a library internal's; else the first that
        is not an allocator's; else the outermost frame. None without a stack."""
        if not event.stack:
            return None
        fallback = None
        for a in event.stack:
            kind = self._frame_kind(a)
            if kind == 0:
                return self.frame(a)
            if kind == 1 and fallback is None:
                fallback = a
        return self.frame(fallback if fallback is not None else event.stack[-1])

    def stack_names(self, event, limit=None):
        names = [self.frame(a).name for a in event.stack]
        return names[:limit] if limit else names

    # ---- sampling weights ------------------------------------------------

    def weight(self, event):
        """How many allocations one sample of this size stands for (1/P(sampled))."""
        rate = self.sample_interval_bytes
        size = event.requested_size or event.usable_size
        if not rate or not size:
            return 1.0
        p = -math.expm1(-float(size) / float(rate))
        return 1.0 / p if p > 0 else 1.0

    # ---- analysis --------------------------------------------------------

    @property
    def live_events(self):
        return [e for e in self.events if e.live]

    @property
    def freed_events(self):
        return [e for e in self.events if not e.live]

    def summary(self):
        ev = self.events
        freed = [e for e in ev if not e.live]
        times = [e.alloc_time_ns for e in ev if e.alloc_time_ns]
        return {
            "events": len(ev),
            "freed": len(freed),
            "live": len(ev) - len(freed),
            "sampled_bytes": sum(e.requested_size for e in ev),
            "live_sampled_bytes": sum(e.requested_size for e in ev if e.live),
            "estimated_bytes": sum(self.weight(e) * e.requested_size for e in ev),
            "threads": len(set(e.thread_id for e in ev)),
            "partitions": sorted(set(e.partition for e in ev)),
            "first_alloc_ns": min(times) if times else 0,
            "last_alloc_ns": max(times) if times else 0,
            "dropped_events": self.dropped_events,
            "sample_interval_bytes": self.sample_interval_bytes,
        }

    _BY = {"bytes", "count", "live_bytes", "live_count", "estimated_bytes", "estimated_count"}

    def top_sites(self, n=10, by="bytes", group="function", live_only=False):
        """The allocation sites with the most sampled memory.

        by: "bytes" (sampled requested bytes), "count", "live_bytes",
            "live_count", "estimated_bytes" or "estimated_count" (scaled by
            the sampling probability, like pprof).
        group: "function" (the first non-allocator frame's function),
            "site" (that frame's return address) or "stack" (the whole stack).
        Returns a list of Site, largest first.
        """
        if by not in self._BY:
            raise ValueError("by must be one of %s" % ", ".join(sorted(self._BY)))
        if group not in ("function", "site", "stack"):
            raise ValueError("group must be 'function', 'site' or 'stack'")
        sites = {}
        for e in self.events:
            if live_only and not e.live:
                continue
            f = self.site_frame(e)
            if group == "stack":
                key = tuple(e.stack)
            elif group == "site":
                key = f.address if f else None
            else:
                key = (f.name, os.path.basename(f.object)) if f else None
            s = sites.get(key)
            if s is None:
                s = sites[key] = Site(key, f, self.stack_names(e, 8))
            w = self.weight(e)
            s.count += 1
            s.bytes += e.requested_size
            s.estimated_count += w
            s.estimated_bytes += w * e.requested_size
            if e.live:
                s.live_count += 1
                s.live_bytes += e.requested_size
        ranked = sorted(sites.values(), key=lambda s: (-getattr(s, by), s.function))
        total = sum(getattr(s, by) for s in ranked) or 1
        for s in ranked:
            s.share = getattr(s, by) / total
        return ranked[:n] if n else ranked

    DEFAULT_SIZE_EDGES = [0] + [2 ** i for i in range(3, 21)] + [math.inf]
    DEFAULT_LIFETIME_EDGES = [0, 10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7, 10 ** 8, 10 ** 9,
                              10 ** 10, 10 ** 11, math.inf]

    def size_histogram(self, bins=None, live_only=False):
        """Histogram of requested sizes of the sampled allocations.

        bins: None (powers of two, 8 B to 1 MiB, then open-ended), an int
        (that many logarithmic bins over the data), or a list of edges.
        """
        ev = [e for e in self.events if e.live or not live_only]
        return _histogram([e.requested_size for e in ev], [e.requested_size for e in ev], bins,
                          self.DEFAULT_SIZE_EDGES, "bytes",
                          "Requested size of %d sampled allocations" % len(ev))

    def lifetime_histogram(self, bins=None):
        """Histogram of lifetimes (free - alloc) of the sampled allocations freed
        before the dump; live ones are reported in .excluded.

        bins: None (decades from 1 us to 100 s), an int (logarithmic bins
        over the data), or a list of edges in nanoseconds.
        """
        freed = [e for e in self.events if not e.live]
        values = [e.lifetime_ns for e in freed]
        return _histogram(values, values, bins, self.DEFAULT_LIFETIME_EDGES, "ns",
                          "Lifetime of %d sampled allocations freed before the dump" % len(freed),
                          excluded=len(self.events) - len(freed), excluded_label="still live at the dump")

    def __repr__(self):
        return "<nitroheap.Recording %s: pid %d, %d events, %d frames>" % (
            self.path, self.process.pid, len(self.events), len(self.frames))


def parse_flight_recorder(data, path="<bytes>", allocator_frames=None):
    """Decodes a FlightRecording from bytes; see read_flight_recorder."""
    if flight_recorder_pb2 is None:  # pragma: no cover
        raise RecordingError("reading flight recordings needs Google protobuf for Python (Debian: "
                             "python3-protobuf, with /usr/bin/python3): %s" % _PB2_ERROR)
    if not data:
        raise RecordingError("%s is empty (0 bytes): not a flight recording" % path)
    data = bytes(data)
    if data[:2] == b"\x1f\x8b":
        raise RecordingError("%s is not a NitroHeap flight recording: it is gzip-compressed, as pprof profiles "
                             "are (heap_profile=, nitro_heap_profile_dump); open it with: go tool pprof %s"
                             % (path, path))
    if data[:1] == b"\x0a":
        # FlightRecording starts with format_version (field 1, a varint);
        # profile.proto starts with sample_type (field 1, a message).
        raise RecordingError("%s is not a NitroHeap flight recording: it looks like an uncompressed pprof "
                             "profile (profile.proto); open it with: go tool pprof %s" % (path, path))
    info = _check_wire(data, path)
    seen = info["seen"]
    if 1 not in seen:
        raise RecordingError("%s is not a NitroHeap flight recording: it has no format_version field" % path)
    if info["format_version"] != FORMAT_VERSION:
        raise RecordingError("%s: flight recording format_version %d is not supported (this reader "
                             "knows version %d)" % (path, info["format_version"], FORMAT_VERSION))
    msg = flight_recorder_pb2.FlightRecording()
    try:
        msg.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError and friends
        raise RecordingError("%s is corrupt: protobuf cannot decode it (%s)" % (path, e)) from None
    if 2 not in seen:
        raise RecordingError("%s is not a complete flight recording: the process field is missing" % path)
    if 9 not in seen or msg.dump_time_ns == 0:
        raise RecordingError("%s is truncated: dump_time_ns, the field written last, is missing "
                             "(%d bytes, %d events survived)" % (path, len(data), len(msg.events)))
    return Recording(msg, path, allocator_frames)


def read_flight_recorder(path, allocator_frames=None):
    """Reads a flight recording file (nitro_flight_recorder_dump, or
    NITROHEAP_OPTIONS=flight_recorder=PATH) into a Recording.

    Raises RecordingError for an empty, truncated or corrupt file, or a file
    that is not a FlightRecording; OSError when it cannot be read, and for a
    FIFO, a device or a file over MAX_RECORDING_BYTES (nothing that could
    hang or exhaust the reader is opened or read). A symbolic link is
    followed: the caller named this path.
    """
    path = os.fspath(path)
    data = _safe.read_regular(path, MAX_RECORDING_BYTES, follow_links=True)
    return parse_flight_recorder(data, path, allocator_frames)
