"""Reading what another user may have written, and printing it.

Segments in /dev/shm and recordings can come from anybody on the machine:
every byte of them is input. Files are opened without following a final
link and without blocking (a FIFO at the path would hang the reader),
accepted only as regular files of a bounded size, and read, never mapped
(a file truncated under a mapping kills the reader with SIGBUS). Text from
them reaches a terminal only through printable().
"""

import errno
import os
import re
import stat

from ._errors import SegmentFormatError

_FILE_TYPES = (
    (stat.S_ISFIFO, "fifo"), (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link"),
)


def file_type(mode):
    for test, name in _FILE_TYPES:
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "other"


class UnsafeFileError(OSError):
    """The path names something a reader must not read: a link, a FIFO, a
    device, a directory, or a file larger than the reader's bound."""


def open_regular(path, max_bytes, follow_links=False):
    """Opens `path` read-only for reading at most `max_bytes`: (fd, stat).

    Raises UnsafeFileError (an OSError) for a symbolic link (unless
    follow_links: a path the user named, not one derived from a pid),
    anything that is not a regular file, or a larger file; other OSErrors as
    open() raises them (FileNotFoundError, PermissionError)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFileError(errno.ELOOP, "%s is a symbolic link; it is not followed" % path) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "%s is a directory" % path)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(errno.EINVAL, "%s is a %s, not a regular file" % (path, file_type(st.st_mode)))
        if st.st_size > max_bytes:
            raise UnsafeFileError(errno.EFBIG, "%s is %d bytes, more than the %d this reader accepts"
                                  % (path, st.st_size, max_bytes))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path, max_bytes, follow_links=False):
    """The whole content of a regular file of at most max_bytes (see open_regular)."""
    fd, _ = open_regular(path, max_bytes, follow_links)
    try:
        chunks = []
        left = max_bytes + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise UnsafeFileError(errno.EFBIG, "%s grew past the %d bytes this reader accepts" % (path, max_bytes))
    return data


def read_exact(fd, n, offset):
    """n bytes at offset, or None when the file is shorter (it may shrink
    while we read)."""
    out = b""
    while len(out) < n:
        b = os.pread(fd, n - len(out), offset + len(out))
        if not b:
            return None
        out += b
    return out


# Lone surrogates (\ud800-\udfff, from JSON escapes such as "\ud800") too:
# they cannot be written to a UTF-8 stream at all (UnicodeEncodeError), or
# come out as raw bytes (0x9b is CSI) under errors="surrogateescape".
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                          r"\ud800-\udfff]")
_UNPRINTABLE_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                              r"\ud800-\udfff]")


def _escape(m):
    c = m.group(0)
    return "\\x%02x" % ord(c) if ord(c) < 0x100 else "\\u%04x" % ord(c)


def printable(text, keep_newlines=False):
    """`text` with control characters (C0, C1, DEL, bidirectional overrides,
    line separators, lone surrogates) written as visible escapes such as
    \\x1b, so that text from a segment or a recording cannot move the cursor,
    recolour, retitle or rewrite the terminal. Newlines (and tabs) stay when
    keep_newlines."""
    if not isinstance(text, str):
        text = str(text)
    pattern = _UNPRINTABLE if keep_newlines else _UNPRINTABLE_ALL
    return pattern.sub(_escape, text)


# ---- the statistics document -----------------------------------------------------

_STRING_FIELDS = ("heap_mode", "hardening_mode", "memory_limit_source")
# Every top-level number of the document (nitro_stats_json, telemetry/stats.cc).
_COUNTER_FIELDS = frozenset((
    "version", "pid", "time_ns", "threads",
    "allocations", "frees", "live_objects", "live_bytes", "live_requested_bytes",
    "mapped_bytes", "committed_bytes", "returned_bytes", "free_cached_bytes", "slabs",
    "slab_objects", "slab_free_objects", "thread_cache_bytes", "middle_layer_bytes",
    "remote_free_backlog", "quarantine_bytes", "lock_contention", "sampled_allocations",
    "memory_limit_hard_limit", "memory_limit_soft_limit", "memory_limit_use", "memory_limit_crossings",
    "memory_limit_callbacks", "memory_limit_refusals", "memory_limit_last_pressure_ns",
    # The movable heap (MOVABLE_FIELDS in __init__.py).
    "movable_live_objects", "movable_live_bytes", "movable_slabs", "movable_slab_bytes",
    "movable_large_bytes", "movable_handle_capacity", "movable_objects_moved", "movable_bytes_moved",
    "movable_slabs_freed", "movable_pages_returned", "movable_pinned_skipped", "movable_busy_skipped",
    "movable_grace_timeouts", "movable_compactions", "movable_compact_ns", "movable_time_budget_stops",
    "movable_pressure_compactions",
))
_MAX_DEPTH = 6
_MAX_COUNTER = (1 << 64) - 1  # the writer's counters are uint64_t


def _counter(value, where):
    # Bounded: a 400-digit "counter" passes as an int but breaks float() in
    # every formatter (OverflowError).
    if type(value) is not int or not 0 <= value <= _MAX_COUNTER:
        raise SegmentFormatError("%s: expected a non-negative integer (64 bits), found %s"
                                 % (where, printable(repr(value)[:40])))
    return value


def unique_name(name, taken, next_suffix):
    """`name`, or "name#2", "name#3", ... : the first one not in `taken`.
    next_suffix ({name: n}, kept by the caller across calls) remembers
    where the search for each name stopped, so that N copies of one name
    cost O(N), not O(N^2) (a hostile segment holds ~100000 of them)."""
    if name not in taken:
        return name
    n = next_suffix.get(name, 2)
    while "%s#%d" % (name, n) in taken:
        n += 1
    next_suffix[name] = n + 1
    return "%s#%d" % (name, n)


def _counters(obj, where):
    if not isinstance(obj, dict):
        raise SegmentFormatError("%s: expected an object of counters, found %s" % (where, type(obj).__name__))
    return {printable(k): _counter(v, "%s.%s" % (where, printable(k))) for k, v in obj.items()}


def _unknown(value, where, depth):
    # Fields a newer writer may add: kept, with their text made printable.
    if depth > _MAX_DEPTH:
        raise SegmentFormatError("%s: nested deeper than %d levels" % (where, _MAX_DEPTH))
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_unknown(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        return {printable(k): _unknown(v, "%s.%s" % (where, printable(k)), depth + 1) for k, v in value.items()}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise SegmentFormatError("%s: not a finite number" % where)
    return value


def validate_stats(doc, where, error=SegmentFormatError):
    """Checks a statistics document's shape and types (every counter, at the
    top level too, an int from 0 to 2^64-1, partitions an object of counter
    objects, size_classes a list of them) and returns it with every string
    made printable.
    Raises `error` (SegmentFormatError) naming the first field that is wrong."""
    try:
        return _validate_stats(doc, where)
    except SegmentFormatError as e:
        if error is SegmentFormatError:
            raise
        raise error(str(e)) from None


def _validate_stats(doc, where):
    if not isinstance(doc, dict):
        raise SegmentFormatError("%s: the statistics document is a %s, not an object" % (where, type(doc).__name__))
    out = {}
    for key, value in doc.items():
        name = printable(key)
        field = "%s: field %s" % (where, name)
        if key in _STRING_FIELDS:
            if not isinstance(value, str):
                raise SegmentFormatError("%s: expected a string" % field)
            out[name] = printable(value)[:64]
        elif key == "partitions":
            if not isinstance(value, dict):
                raise SegmentFormatError("%s: expected an object" % field)
            parts = {}
            suffixes = {}
            for pname, counters in value.items():
                clean = unique_name(printable(pname)[:64], parts, suffixes)
                parts[clean] = _counters(counters, "%s[%s]" % (field, clean))
            out[name] = parts
        elif key == "size_classes":
            if not isinstance(value, list):
                raise SegmentFormatError("%s: expected a list" % field)
            out[name] = [_counters(c, "%s[%d]" % (field, i)) for i, c in enumerate(value)]
        elif key in _COUNTER_FIELDS:
            out[name] = _counter(value, field)
        else:
            out[name] = _unknown(value, field, 1)
    return out


def write_atomic(path, data, mode=0o600):
    """Writes `data` (bytes) to `path` as NitroHeap's own output files are
    written (telemetry/runtime.cc, WriteFile): into a new file created with
    O_EXCL|O_NOFOLLOW in the same directory, with exactly `mode`, then
    renamed over the path. A link planted at the path is replaced, never
    written through."""
    path = os.fspath(path)
    directory, base = os.path.split(path)
    if not base:
        raise IsADirectoryError(errno.EISDIR, "%s names a directory" % path)
    for attempt in range(64):
        tmp = os.path.join(directory, ".%s.%d.%s.tmp" % (base, os.getpid(), os.urandom(4).hex()))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "cannot create a temporary file next to %s" % path)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
