"""Statistics of this process, partitions, and attaching to other processes."""

import errno
import json
import os
import stat
import struct
import threading
import time

from . import _safe
from ._errors import (NOT_LOADED_HINT, NitroHeapError, NoTelemetryError,
                      NotActiveError, ProcessNotFoundError, SegmentFormatError)

try:
    from . import _native
    _NATIVE_ERROR = None
except ImportError as e:  # pragma: no cover - only with a broken build
    _native = None
    _NATIVE_ERROR = e

SHM_DIR = "/dev/shm"
SHM_MAGIC = b"NITROHP\0"
SHM_VERSION = 1
SHM_HEADER_SIZE = 64
# struct nitro_shm_header (telemetry/shm_layout.h), little-endian x86-64/arm64.
_HEADER = struct.Struct("<8sIIQQQIIQ8s")
assert _HEADER.size == SHM_HEADER_SIZE


# ---- this process ------------------------------------------------------------

def _require_native():
    if _native is None:
        raise NitroHeapError("the nitroheap._native extension failed to load: %s" % _NATIVE_ERROR)
    return _native


def _active_or_raise(what):
    native = _require_native()
    state = native.is_active()
    if state < 0:
        raise NotActiveError(
            "%s: NitroHeap does not serve this process (its symbols, e.g. "
            "nitro_is_active, are not loaded); %s" % (what, NOT_LOADED_HINT))
    if state == 0:
        raise NotActiveError(
            "%s: NitroHeap is loaded but runs in legacy mode (heap_mode=%r, "
            "e.g. NITROHEAP=legacy): malloc goes to the C library; unset "
            "NITROHEAP or set NITROHEAP=nitro" % (what, native.heap_mode()))
    return native


def _unavailable(e, what):
    return NotActiveError("%s: %s; %s" % (what, e, NOT_LOADED_HINT))


def is_loaded():
    """True when NitroHeap's library is loaded in this process (any mode)."""
    return _native is not None and _native.is_active() >= 0


def is_active():
    """True when NitroHeap serves malloc in this process (mode "nitro")."""
    return _native is not None and _native.is_active() == 1


def heap_mode():
    """"nitro", "legacy", or None when NitroHeap is not loaded."""
    return None if _native is None else _native.heap_mode()


def _unique_pairs(pairs):
    """json object hook: the engine does not require partition names to be
    unique, so a repeated key is kept as "name#2", "name#3", ... instead of
    silently replacing the first one."""
    out = {}
    suffixes = {}
    for k, v in pairs:
        out[_safe.unique_name(k, out, suffixes)] = v
    return out


def parse_stats_json(raw):
    """Parses a statistics document (bytes or str) as stats() does; raises
    ValueError for anything that is not JSON (RecursionError included)."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def stats():
    """The statistics of this process, as a dict (the nitro_stats_json document).

    Raises NotActiveError when NitroHeap does not serve the process.
    """
    native = _active_or_raise("nitroheap.stats()")
    try:
        raw = native.stats_json()
    except native.Unavailable as e:
        raise _unavailable(e, "nitroheap.stats()") from None
    try:
        return parse_stats_json(raw)
    except ValueError as e:
        raise NitroHeapError("nitro_stats_json returned malformed JSON: %s" % e) from None


def stats_json():
    """The raw JSON document of nitro_stats_json(), as str."""
    native = _active_or_raise("nitroheap.stats_json()")
    return native.stats_json().decode("utf-8", "replace")


def ctl(name, value=None, *, write=False):
    """nitro_ctl: read `name` (int or str); with write=True (or a value), write it.

    ctl("stats.live_bytes") -> int; ctl("opt.profile_rate") -> int;
    ctl("version") -> str; ctl("heap.release", write=True);
    ctl("flight_recorder.dump", "/tmp/rec.pb"); an int is written as a
    uint64_t: ctl("contract.db.hard", 600 << 20), ctl("opt.memory_limit", 0).
    Raises OSError (ENOENT: unknown name, EINVAL, EPERM) from nitro_ctl.
    """
    native = _active_or_raise("nitroheap.ctl(%r)" % name)
    if write or value is not None:
        native.ctl_write(name, value)
        return None
    return native.ctl_read(name)


def dump_flight_recording(path):
    """Writes this process's flight recording (nitro_flight_recorder_dump)."""
    native = _active_or_raise("nitroheap.dump_flight_recording()")
    native.flight_recorder_dump(os.fspath(path))


def dump_heap_profile(path):
    """Writes a gzip-compressed pprof heap profile of the sampled allocations
    (nitro_heap_profile_dump); `go tool pprof PATH` reads it."""
    native = _active_or_raise("nitroheap.dump_heap_profile()")
    native.heap_profile_dump(os.fspath(path))


def release_free_memory():
    """Returns free memory of every partition to the kernel; bytes released."""
    return _active_or_raise("nitroheap.release_free_memory()").release_free_memory()


class Partition:
    """A private NitroHeap partition (nitro_partition_create).

    Its memory lives in its own address space and shows up in
    stats()["partitions"][name]. Addresses are plain ints; the object keeps
    the set of live ones, so free() of anything else raises ValueError
    instead of aborting the process. destroy() (or leaving a `with` block)
    unmaps everything the partition holds; a Partition that is merely
    garbage-collected is not destroyed (its memory stays valid).
    """

    MAX_NAME = 31

    def __init__(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError("partition name must be a non-empty str")
        encoded = name.encode("utf-8")
        if len(encoded) > self.MAX_NAME or b"\0" in encoded:
            raise ValueError("partition name %r: at most %d bytes, no NUL" % (name, self.MAX_NAME))
        native = _active_or_raise("nitroheap.Partition(%r)" % name)
        # Statistics are keyed by name, so the engine refuses a second
        # partition of the same name (EEXIST).
        self._native = native
        self._lock = threading.Lock()
        self._live = {}
        try:
            self._handle = native.partition_create(name)
        except FileExistsError:
            raise ValueError("a partition named %r already exists (partition names are unique)"
                             % name) from None
        self._name = native.partition_name(self._handle)

    @property
    def name(self):
        return self._name

    @property
    def destroyed(self):
        return self._handle is None

    @property
    def live(self):
        """{address: size} of the allocations made and not yet freed."""
        with self._lock:
            return dict(self._live)

    def _handle_or_raise(self):
        if self._handle is None:
            raise NitroHeapError("partition %r was destroyed" % self._name)
        return self._handle

    def malloc(self, size):
        """Allocates `size` bytes; returns the address as an int."""
        size = int(size)
        if size < 0:
            raise ValueError("size must be >= 0")
        with self._lock:
            addr = self._native.partition_malloc(self._handle_or_raise(), size)
            self._live[addr] = size
        return addr

    def free(self, address):
        """Frees an address this partition returned."""
        with self._lock:
            handle = self._handle_or_raise()
            if address not in self._live:
                raise ValueError("0x%x is not a live allocation of partition %r" % (address, self._name))
            del self._live[address]
            self._native.partition_free(handle, address)

    def _check_range(self, address, offset, n):
        size = self._live.get(address)
        if size is None:
            raise ValueError("0x%x is not a live allocation of partition %r" % (address, self._name))
        if offset < 0 or n < 0 or offset + n > size:
            raise ValueError("range [%d, %d) outside the %d-byte allocation" % (offset, offset + n, size))

    def write(self, address, data, offset=0):
        """Copies bytes into an allocation of this partition."""
        data = bytes(data)
        with self._lock:
            self._handle_or_raise()
            self._check_range(address, offset, len(data))
            self._native.write(address + offset, data)

    def read(self, address, n=None, offset=0):
        """Reads bytes from an allocation of this partition."""
        with self._lock:
            self._handle_or_raise()
            if n is None:
                n = self._live.get(address, 0) - offset
            self._check_range(address, offset, n)
            return self._native.read(address + offset, n)

    def stats(self):
        """This partition's counters from stats()["partitions"]."""
        self._handle_or_raise()
        parts = stats().get("partitions", {})
        if self._name not in parts:
            raise NitroHeapError("partition %r is not in the statistics (at most %d partitions are reported)"
                                 % (self._name, self._native.STATS_MAX_PARTITIONS))
        return parts[self._name]

    def destroy(self):
        """Unmaps everything the partition holds (idempotent)."""
        with self._lock:
            if self._handle is None:
                return
            handle, self._handle = self._handle, None
            self._live.clear()
            self._native.partition_destroy(handle)

    close = destroy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def __repr__(self):
        state = "destroyed" if self._handle is None else "%d live allocations" % len(self._live)
        return "<nitroheap.Partition %r, %s>" % (self._name, state)


# ---- other processes -----------------------------------------------------------

def segment_path(pid):
    return os.path.join(SHM_DIR, "nitroheap.%d" % pid)


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The largest segment a reader looks at: twice version 1's 512 KiB. As in
# native.cc (kMaxSegmentBytes), bounded by time: parsing and validating a
# hostile payload of this size takes under half a second (16 MiB: over 5 s).
MAX_SEGMENT_BYTES = 1 << 20


def _read_segment_python(path, timeout_s):
    """The reader of the native extension (native.cc, ShmRead) in pure
    Python, with the same checks and the same result (used when the
    extension is missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return {"status": "not_regular", "file_type": "symbolic link"}
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return {"status": "not_regular", "file_type": _safe.file_type(st.st_mode),
                    "owner_uid": st.st_uid, "file_mode": st.st_mode & 0o7777}
        return _read_segment_fd(fd, st, timeout_s)
    finally:
        os.close(fd)


def _read_segment_fd(fd, st, timeout_s):
    size = st.st_size
    out = {"file_size": size, "owner_uid": st.st_uid, "file_mode": st.st_mode & 0o7777}
    if size > MAX_SEGMENT_BYTES:
        out["status"] = "too_large"
        return out
    if size < SHM_HEADER_SIZE:
        out["status"] = "short"
        return out
    raw = _safe.read_exact(fd, SHM_HEADER_SIZE, 0)
    if raw is None:
        out["status"] = "short"
        return out
    magic, version, header_size = _HEADER.unpack(raw)[:3]
    if magic != SHM_MAGIC:
        out.update(status="bad_magic", magic=magic)
        return out
    out["version"] = version
    if version != SHM_VERSION:
        out["status"] = "bad_version"
        return out
    if header_size < SHM_HEADER_SIZE or header_size > size:
        out.update(status="bad_version", header_size=header_size)
        return out
    room = size - header_size
    deadline = time.monotonic() + max(timeout_s, 0)
    retries = 0
    status = "busy"
    fields = None
    payload = b""
    while True:
        raw = _safe.read_exact(fd, SHM_HEADER_SIZE, 0)
        if raw is None:
            status = "short"
            break
        (_, _, _, pid, seq1, update_ns, capacity, length, updates, _) = _HEADER.unpack(raw)
        if seq1 % 2 == 0:
            fields = (pid, seq1, update_ns, capacity, length, updates)
            if length > room or length > capacity:
                seq2 = _safe.read_exact(fd, 8, 24)
                if seq2 is not None and struct.unpack("<Q", seq2)[0] == seq1:
                    status = "corrupt"
                    break
            else:
                payload = _safe.read_exact(fd, length, header_size)
                seq2 = _safe.read_exact(fd, 8, 24)
                if payload is not None and seq2 is not None and struct.unpack("<Q", seq2)[0] == seq1:
                    status = "ok" if length else "empty"
                    break
        if time.monotonic() > deadline:
            break
        retries += 1
        time.sleep(0.00002 if retries < 100 else 0.001)
    out.update(status=status, retries=retries)
    if status in ("ok", "empty", "corrupt"):
        pid, seq1, update_ns, capacity, length, updates = fields
        out.update(pid=pid, sequence=seq1, update_time_ns=update_ns, updates=updates,
                   payload_capacity=capacity, payload_length=length, header_size=header_size)
    if status == "ok":
        out["payload"] = payload
    return out


def read_segment(path, timeout_s=1.0, use_native=True):
    """Reads a statistics segment with the seqlock protocol; returns the
    reader's dict (status, header fields, payload)."""
    if use_native and _native is not None:
        return _native.shm_read(os.fspath(path), float(timeout_s))
    return _read_segment_python(os.fspath(path), float(timeout_s))


class Attached:
    """A view of another process's live statistics (/dev/shm/nitroheap.<pid>).

    Every call reads the segment afresh: nothing is kept mapped, so a process
    that exits (and removes its segment) is noticed at the next call.
    """

    def __init__(self, pid, timeout_s=1.0, use_native=True):
        self.pid = int(pid)
        self.path = segment_path(self.pid)
        self.timeout_s = timeout_s
        self.use_native = use_native
        self.last_header = None
        self._read()  # fail now, not at the first stats()

    def _read(self):
        pid = self.pid
        exists = _process_exists(pid)
        try:
            seg = read_segment(self.path, self.timeout_s, self.use_native)
        except FileNotFoundError:
            if not exists or not _process_exists(pid):
                raise ProcessNotFoundError(errno.ESRCH, "process %d does not exist" % pid) from None
            raise NoTelemetryError(
                errno.ENOENT,
                "process %d exists but has no statistics segment %s: it does not run "
                "NitroHeap with telemetry=1 (start it with LD_PRELOAD=.../libnitroheap.so; "
                "telemetry=1 is the default of NITROHEAP_OPTIONS), or NitroHeap has not "
                "published yet" % (pid, self.path)) from None
        except PermissionError as e:
            raise NitroHeapError(
                "cannot read %s: %s (a segment is readable only by its owner: run as the "
                "process's user, or as root)" % (self.path, e.strerror)) from None
        except OSError as e:
            raise NitroHeapError("cannot read %s: %s" % (self.path, e.strerror or e)) from None
        if not exists:
            raise ProcessNotFoundError(
                errno.ESRCH, "process %d does not exist (a stale segment %s is left from a "
                "process that did not exit normally)" % (pid, self.path))
        status = seg.get("status")
        if status == "not_regular":
            raise SegmentFormatError("%s is a %s, not a statistics segment (not read)"
                                     % (self.path, seg.get("file_type", "?")))
        if status == "too_large":
            raise SegmentFormatError("%s is %d bytes, more than a segment can be (%d); not read"
                                     % (self.path, seg.get("file_size", 0), MAX_SEGMENT_BYTES))
        self._check_owner(seg)
        if status == "short":
            raise SegmentFormatError("%s is %d bytes, shorter than its %d-byte header"
                                     % (self.path, seg.get("file_size", 0), SHM_HEADER_SIZE))
        if status == "bad_magic":
            raise SegmentFormatError("%s: bad magic %r (expected %r): not a NitroHeap statistics segment"
                                     % (self.path, seg.get("magic"), SHM_MAGIC))
        if status == "bad_version":
            raise SegmentFormatError("%s: segment layout version %s (header size %s) is not supported "
                                     "by this reader (version %d); update the nitroheap package"
                                     % (self.path, seg.get("version"), seg.get("header_size", "?"),
                                        SHM_VERSION))
        if status == "busy":
            raise SegmentFormatError("%s: the writer did not leave a consistent payload within %.1f s"
                                     % (self.path, self.timeout_s))
        if status == "corrupt":
            raise SegmentFormatError("%s: header fields contradict the file (payload %d of capacity %d "
                                     "in a %d-byte file)" % (self.path, seg.get("payload_length", 0),
                                                             seg.get("payload_capacity", 0),
                                                             seg.get("file_size", 0)))
        if status == "empty":
            raise NoTelemetryError(errno.EAGAIN, "process %d has a segment but has not published "
                                   "statistics yet (or they did not fit)" % pid)
        if seg.get("pid") not in (None, pid):
            raise SegmentFormatError("%s belongs to pid %s, not %d" % (self.path, seg.get("pid"), pid))
        self.last_header = {k: v for k, v in seg.items() if k != "payload"}
        return seg

    def _check_owner(self, seg):
        """A segment is the process's own only if the process's user owns it
        and nobody else can write it: anybody can create a file at a free
        name in /dev/shm, for instance for a process running with
        telemetry=0."""
        uid = seg.get("owner_uid")
        if uid is None:
            return
        try:
            process_uid = os.stat("/proc/%d" % self.pid).st_uid
        except OSError:
            process_uid = None  # gone, or in another pid namespace: the pid check follows
        if process_uid is not None and uid != process_uid:
            raise SegmentFormatError("%s is owned by uid %d, but process %d runs as uid %d: not its "
                                     "segment (not read)" % (self.path, uid, self.pid, process_uid))
        if seg.get("file_mode", 0) & 0o022:
            raise SegmentFormatError("%s is writable by other users (mode %04o): not read"
                                     % (self.path, seg.get("file_mode", 0)))

    def header(self):
        """The segment's header fields (sequence, update_time_ns, updates, ...)."""
        seg = self._read()
        return {k: v for k, v in seg.items() if k != "payload"}

    def stats_json(self):
        """The raw payload as str (not validated: parse it with stats())."""
        return self._read()["payload"].decode("utf-8", "replace")

    def stats(self):
        """The process's statistics, as a dict (the same document as stats())."""
        seg = self._read()
        try:
            doc = parse_stats_json(seg["payload"])
        except ValueError as e:
            raise SegmentFormatError("%s: payload is not valid JSON: %s" % (self.path, e)) from None
        return _safe.validate_stats(doc, self.path)

    def __repr__(self):
        return "<nitroheap.Attached pid=%d %s>" % (self.pid, self.path)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def attach(pid, timeout_s=1.0):
    """Attaches to the live statistics of process `pid` (read-only, no ptrace).

    Raises ProcessNotFoundError (a ProcessLookupError) when no such process
    exists, NoTelemetryError (also a ProcessLookupError) when it exists but
    publishes no segment, SegmentFormatError for a segment of another layout.
    """
    return Attached(pid, timeout_s)
