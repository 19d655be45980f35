// The movable heap: objects reached through handles, relocated by a
// compactor so that sparse slabs empty and their pages go back to the kernel
// (abi/include/nitroheap/movable.h is the C API; docs/movable.md the rules).
//
// Self-contained: its own size-classed 64 KiB slabs in an arena it reserves
// itself, out-of-line slab metadata (a bitmap and the owning handle of every
// slot), its own handle table and counters, one lock. Objects larger than
// the biggest class get a mapping of their own and never move.
//
// Concurrency (the argument is in docs/movable.md): nitro_hptr is lock-free
// and a thread's unpinned pointers live until its next quiescent point
// (QSBR). The compactor marks an object "pending", waits for a grace period
// (every online thread passed a quiescent point), then claims it
// ("copying"), copies it and publishes the new address. A thread that asks
// for a pending object cancels the mark; one that asks for a copying object
// waits for the copy (a few microseconds, the compactor waits for nothing
// meanwhile).
#ifndef NITROHEAP_CORE_MOVABLE_H_
#define NITROHEAP_CORE_MOVABLE_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro {
class Contract;
}

namespace nitro::movable {

using Handle = uint64_t;

struct Stats {
  uint64_t live_objects, live_bytes, slabs, slab_bytes, large_bytes, handle_capacity;
  uint64_t objects_moved, bytes_moved, slabs_freed, pages_returned, pinned_skipped,
      busy_skipped, grace_timeouts, compactions, compact_ns, time_budget_stops, pressure_compactions;
};

// 0 when out of memory (errno = ENOMEM).
Handle Allocate(size_t size);
void* Pointer(Handle h);
void* Pin(Handle h);
void Unpin(Handle h);
int Resize(Handle h, size_t size);  // 0, ENOMEM or EBUSY
void Free(Handle h);                 // 0: nothing
size_t UsableSize(Handle h);
void Quiescent();
void Offline();
// Moves at most `budget` bytes; returns the bytes moved. `grace_timeout_ms`:
// how long to wait for the other threads' quiescent points before giving
// up (moving nothing). `time_budget_ns` (0: none): how long it may copy
// after the grace period; past it the objects not yet moved stay, for a
// later compaction (counted in time_budget_stops).
size_t Compact(size_t budget, unsigned grace_timeout_ms, uint64_t time_budget_ns = 0);
// From now on the movable heap's slabs and large objects are charged to
// `contract` (the movable partition's; what it holds already is charged at
// once): its hard limit refuses new slabs (ENOMEM), its soft limit raises
// the pressure signal.
void AttachContract(Contract* contract);
void GetStats(Stats* out);
// By name ("objects_moved", ...), for nitro_ctl; false for an unknown name.
bool StatByName(const char* name, uint64_t* value);
// Every counter's name, in the order of Stats (nitro_ctl, the statistics
// document's "movable_<name>" fields).
struct StatField {
  const char* name;
  uint64_t Stats::*field;
};
extern const StatField kStatFields[];
extern const size_t kStatFieldCount;

// The background thread's hook: compacts with `budget` bytes and
// `budget_us` microseconds of copying (0: no bound) when `interval_ms`
// passed since the last run (0: never), or at once for `pressure` (a heap
// contract's "compact" action; counted in pressure_compactions). Cheap
// when no movable object was ever allocated.
void BackgroundTick(uint64_t now_ms, uint64_t interval_ms, size_t budget, uint64_t budget_us, bool pressure);

// The flight recorder's view (installed by the heap when telemetry runs):
// `due` decides, per allocation and outside every lock, whether to sample
// it (the thread's byte countdown); a sampled object's allocation, every
// move (compaction or nitro_hrealloc) and its free are reported, in that
// order for each object, after the heap lock is released.
struct RecorderHooks {
  bool (*due)(size_t size);
  void (*sampled)(void* p, size_t size, size_t usable);
  void (*moved)(void* from, void* to, size_t size);
  void (*freed)(void* p);
};
void SetRecorderHooks(const RecorderHooks* hooks);

// Size classes (exposed for tests): the slot size serving `size`, or 0 above
// the largest class.
size_t ClassSizeFor(size_t size);
inline constexpr size_t kSlabBytes = size_t{64} << 10;
inline constexpr size_t kMaxClassSize = 8192;

}  // namespace nitro::movable

#endif  // NITROHEAP_CORE_MOVABLE_H_
