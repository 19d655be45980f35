// Telemetry for the process heap: the flight recorder (a ring of sampled
// allocations with their stacks and lifetimes), its protobuf and pprof
// exports, and the live-statistics segment in shared memory. Hooked into
// core/heap.h's TelemetryHooks at start-up; nothing here allocates through
// the heap: scratch memory comes from mmap.
#ifndef NITROHEAP_TELEMETRY_RUNTIME_H_
#define NITROHEAP_TELEMETRY_RUNTIME_H_

namespace nitro::telemetry {

// Registers the hooks (idempotent). Called from a constructor of this
// library and from the first use of the C API.
void Install();
// "%p" in path becomes the pid. Return 0 or an errno value.
int DumpFlightRecording(const char* path);
int DumpHeapProfile(const char* path);

}  // namespace nitro::telemetry

#endif  // NITROHEAP_TELEMETRY_RUNTIME_H_
