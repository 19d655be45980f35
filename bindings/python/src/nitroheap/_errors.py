"""The exceptions of the nitroheap package."""


class NitroHeapError(Exception):
    """Base class of every error this package raises on purpose."""


class NotActiveError(NitroHeapError):
    """NitroHeap does not serve malloc in this process.

    Either its library is not loaded (start the interpreter with
    LD_PRELOAD=.../libnitroheap.so), or it runs in legacy mode
    (NITROHEAP=legacy), where every call goes to the C library.
    """


class _Message:
    """str() is the message alone, without OSError's "[Errno N] " prefix."""

    def __str__(self):
        return self.strerror if getattr(self, "strerror", None) else Exception.__str__(self)


class ProcessNotFoundError(_Message, NitroHeapError, ProcessLookupError):
    """attach(pid): no process has this pid."""


class NoTelemetryError(_Message, NitroHeapError, ProcessLookupError):
    """attach(pid): the process exists but publishes no statistics segment
    (it does not run NitroHeap, or runs it with telemetry=0)."""


class SegmentFormatError(NitroHeapError):
    """attach(pid): /dev/shm/nitroheap.<pid> is not a segment this reader
    understands (bad magic, an unknown version, or a torn payload)."""


class RecordingError(NitroHeapError, ValueError):
    """read_flight_recorder(path): the file is not a complete FlightRecording."""


NOT_LOADED_HINT = (
    "start the program with NitroHeap preloaded, e.g. "
    "LD_PRELOAD=/path/to/libnitroheap.so python3 ... "
    "(build it with `bazel build //abi:libnitroheap.so`; it is then "
    "bazel-bin/abi/libnitroheap.so), or link it in with malloc = \"//abi:malloc\""
)


# Shown as nitroheap.NotActiveError (not nitroheap._errors....) in tracebacks.
for _cls in (NitroHeapError, NotActiveError, ProcessNotFoundError, NoTelemetryError,
             SegmentFormatError, RecordingError):
    _cls.__module__ = "nitroheap"
del _cls
