"""A flight recording as a pprof heap profile (profile.proto, gzip-compressed),
the format NitroHeap's heap_profile= writes, for `go tool pprof` and the
viewers built on it:

    data = nitroheap.recording_to_pprof(nitroheap.read_flight_recorder("rec.pb"))

The samples are the recording's events with NitroHeap's own frames dropped,
weighted as in the engine (one sample stands for 1/P allocations, P the
chance that an allocation of its size is sampled); locations point at the
recording's mappings (with build IDs) when it has them, so pprof can also
symbolize from the binaries.
"""

import gzip
import os
import re

# NitroHeap's own frames at the top of a stack (as named in a recording):
# the preload library, namespace nitro, the allocation entry points.
_OWN_FRAME = re.compile(
    r"^(?:nitro[_:]|(?:__libc_)?(?:malloc|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|"
    r"memalign|valloc|pvalloc|mallocx|rallocx|xallocx)$|operator new|_Zn[wa])")

SAMPLE_TYPES = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_varint(field, n):
    return _varint(field << 3) + _varint(n) if n else b""


def _field_bytes(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _packed(field, values):
    return _field_bytes(field, b"".join(_varint(v) for v in values)) if values else b""


class _Strings:
    def __init__(self):
        self.index = {"": 0}
        self.table = [""]

    def __call__(self, s):
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


def _is_own_frame(rec, address):
    f = rec.frame(address)
    if f.object and os.path.basename(f.object).startswith("libnitroheap"):
        return True
    name = f.demangled or f.function
    return bool(name) and _OWN_FRAME.search(name) is not None


def recording_to_pprof(rec, default_sample_type="alloc_space"):
    """The gzip-compressed pprof profile of a Recording, as bytes."""
    if default_sample_type not in SAMPLE_TYPES:
        raise ValueError("default_sample_type must be one of %s" % ", ".join(SAMPLE_TYPES))
    strings = _Strings()
    for s in ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "count", "bytes"):
        strings(s)
    default_type = strings(default_sample_type)
    mappings = rec.process.mappings
    own = {}
    stacks = []
    for e in rec.events:
        stack = list(e.stack)
        first = 0
        while first < len(stack):
            a = stack[first]
            if a not in own:
                own[a] = _is_own_frame(rec, a)
            if not own[a]:
                break
            first += 1
        stacks.append(stack[first:])
    addresses = sorted({a for s in stacks for a in s})
    location_id = {a: i + 1 for i, a in enumerate(addresses)}

    def mapping_of(pc):
        for i, m in enumerate(mappings):
            if m.start <= pc < m.limit:
                return i + 1
        return 0

    out = bytearray()
    vt = lambda t, u: _field_varint(1, strings(t)) + _field_varint(2, strings(u))  # noqa: E731
    for t, u in (("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"),
                 ("inuse_space", "bytes")):
        out += _field_bytes(1, vt(t, u))
    for e, stack in zip(rec.events, stacks):
        w = rec.weight(e)
        objects = int(w + 0.5)
        nbytes = int(w * (e.requested_size or e.usable_size) + 0.5)
        values = [objects, nbytes, objects if e.live else 0, nbytes if e.live else 0]
        out += _field_bytes(2, _packed(1, [location_id[a] for a in stack]) + _packed(2, values))
    unnamed = set()
    functions = {}
    locations = []
    for a in addresses:
        f = rec.frame(a)
        m = mapping_of(a - 1)
        loc = _field_varint(1, location_id[a]) + _field_varint(2, m) + _field_varint(3, a - 1)
        if f.function:
            name = strings(f.demangled or f.function)
            if name not in functions:
                functions[name] = (strings(f.function), strings(f.object or ""))
            loc += _field_bytes(4, _field_varint(1, name))
        elif m:
            unnamed.add(m)
        locations.append(loc)
    for i, m in enumerate(mappings, 1):
        out += _field_bytes(3, _field_varint(1, i) + _field_varint(2, m.start) + _field_varint(3, m.limit)
                            + _field_varint(4, m.file_offset) + _field_varint(5, strings(m.path))
                            + _field_varint(6, strings(m.build_id)) + _field_varint(7, 0 if i in unnamed else 1))
    for loc in locations:
        out += _field_bytes(4, loc)
    for name, (system_name, filename) in functions.items():
        out += _field_bytes(5, _field_varint(1, name) + _field_varint(2, name) + _field_varint(3, system_name)
                            + _field_varint(4, filename))
    for s in strings.table:
        out += _field_bytes(6, s.encode("utf-8"))
    out += _field_varint(9, rec.dump_time_ns)
    out += _field_bytes(11, vt("alloc_space", "bytes"))
    out += _field_varint(12, rec.sample_interval_bytes)
    out += _field_varint(14, default_type)
    return gzip.compress(bytes(out), mtime=0)
