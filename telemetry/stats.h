// Statistics twice: the versioned struct of the public API (nitro_stats_t,
// abi/include/nitroheap/nitroheap.h) for programs, and its JSON form for
// people, telemetry and Python. Both are computed on read from counters kept
// per thread and per partition; neither touches the heap.
#ifndef NITROHEAP_TELEMETRY_STATS_H_
#define NITROHEAP_TELEMETRY_STATS_H_

#include <stddef.h>

#include "nitroheap/nitroheap.h"

namespace nitro {

// Fills every field of *out (version and size included).
void CollectStats(nitro_stats_t* out);
// Writes the JSON document (docs/telemetry.md) into buf, NUL-terminated
// when it fits; returns its length.
// omit: ReportSection bits (core/heap.h) whose keys are left out; "version"
// is always written.
size_t StatsToJson(const nitro_stats_t& st, char* buf, size_t len, unsigned omit = 0);
// Looks a counter up by its name in nitro_counters_t ("live_bytes", ...).
bool CounterByName(const nitro_counters_t& c, const char* name, uint64_t* out);

}  // namespace nitro

#endif  // NITROHEAP_TELEMETRY_STATS_H_
