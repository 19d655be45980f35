"""NitroHeap's observability from Python.

In this process (NitroHeap preloaded, LD_PRELOAD=.../libnitroheap.so):
    nitroheap.stats()                    -> dict, the nitro_stats_json document
    nitroheap.Partition("cache")         -> a private partition (.malloc/.free/.destroy)
    nitroheap.ctl("stats.live_bytes")    -> nitro_ctl
    nitroheap.dump_flight_recording(path), nitroheap.dump_heap_profile(path)

Another process (read-only, through /dev/shm/nitroheap.<pid>):
    nitroheap.attach(pid).stats()

Files:
    nitroheap.read_flight_recorder(path) -> Recording (.events, .process, .stats,
                                            .top_sites(), .size_histogram(), ...)

Command line: python3 -m nitroheap top PID | report FILE [--html OUT] | stats [PID]

The extension (nitroheap._native) never links NitroHeap: it finds the
serving allocator's functions with dlsym(RTLD_DEFAULT), so this package
imports with or without NitroHeap loaded.
"""

from ._errors import (NitroHeapError, NoTelemetryError, NotActiveError,
                      ProcessNotFoundError, RecordingError, SegmentFormatError)
from ._live import (Attached, Partition, attach, ctl, dump_flight_recording,
                    dump_heap_profile, heap_mode, is_active, is_loaded,
                    parse_stats_json, read_segment, release_free_memory, segment_path, stats,
                    stats_json)
from .recording import (ALLOCATOR_FRAMES, LIBRARY_FRAMES, Event, Frame, Histogram, Mapping, Move,
                        RecordedProcess, Recording, Site, parse_flight_recorder,
                        read_flight_recorder)
from ._pprof import recording_to_pprof

__version__ = "1.0"

# The counters of nitro_counters_t, in the order of the JSON document.
COUNTERS = (
    "allocations", "frees", "live_objects", "live_bytes", "live_requested_bytes",
    "mapped_bytes", "committed_bytes", "returned_bytes", "free_cached_bytes", "slabs",
    "slab_objects", "slab_free_objects", "thread_cache_bytes", "middle_layer_bytes",
    "remote_free_backlog", "quarantine_bytes", "lock_contention", "sampled_allocations",
)
# Heap contracts: each partition's object has "contract_<field>" and the
# document "memory_limit_<field>" (the process limit; soft_limit is its
# pressure point) plus "memory_limit_source" (none, cgroup, option, api).
CONTRACT_FIELDS = ("hard_limit", "soft_limit", "use", "crossings", "callbacks", "refusals", "last_pressure_ns")
# The movable heap (nitroheap/movable.h): the document has "movable_<field>"
# for each of these (nitro_movable_stats_t; also nitro_ctl
# "stats.movable.<field>").
MOVABLE_FIELDS = (
    "live_objects", "live_bytes", "slabs", "slab_bytes", "large_bytes", "handle_capacity",
    "objects_moved", "bytes_moved", "slabs_freed", "pages_returned", "pinned_skipped",
    "busy_skipped", "grace_timeouts", "compactions", "compact_ns", "time_budget_stops",
    "pressure_compactions",
)
# The fields of each size_classes entry.
CLASS_FIELDS = (
    "size", "allocations", "frees", "live_objects", "slabs", "slab_objects",
    "slab_free_objects", "thread_cache_objects", "middle_layer_objects",
)

__all__ = [
    "ALLOCATOR_FRAMES", "Attached", "LIBRARY_FRAMES", "CLASS_FIELDS", "COUNTERS", "Event", "Frame", "Histogram",
    "MOVABLE_FIELDS", "Mapping", "Move", "NitroHeapError", "NoTelemetryError", "NotActiveError", "Partition", "ProcessNotFoundError",
    "RecordedProcess", "Recording", "RecordingError", "SegmentFormatError", "Site", "attach",
    "ctl", "dump_flight_recording", "dump_heap_profile", "heap_mode", "is_active", "is_loaded",
    "parse_flight_recorder", "parse_stats_json", "read_flight_recorder", "read_segment", "recording_to_pprof",
    "release_free_memory", "segment_path", "stats", "stats_json",
]
