// The movable-allocation API (nitroheap/movable.h): thin calls into the
// movable heap (core/movable.h). Traits are checked here: NITRO_TRAIT_MOVABLE
// (or 0) names the movable partition, whose contract the heap charges.
#include "nitroheap/movable.h"

#include <errno.h>
#include <string.h>

#include <atomic>

#include "core/base.h"
#include "core/contract.h"
#include "core/heap.h"
#include "core/movable.h"
#include "core/traits.h"

namespace {

std::atomic<bool> g_partition_made{false};

// The movable partition exists from the first nitro_halloc on (under
// NITROHEAP=legacy there are no partitions: the heap works without one).
NITRO_NOINLINE void MakeMovablePartition() {
  nitro::EnsureStarted();
  if (nitro::Mode() == nitro::HeapMode::kNitro) nitro::PartitionForTraits(nitro::kTraitMovable);
  g_partition_made.store(true, std::memory_order_release);
}

// Compared, never dereferenced: any pointer may come in.
bool IsMovablePartition(nitro_partition_t* partition) {
  nitro::EnsureStarted();
  return nitro::Mode() == nitro::HeapMode::kNitro &&
         reinterpret_cast<nitro::Partition*>(partition) == nitro::PartitionForTraits(nitro::kTraitMovable);
}

}  // namespace

extern "C" {

NITRO_EXPORT nitro_handle_t nitro_halloc(size_t size, int traits) {
  if (traits != 0 && traits != NITRO_TRAIT_MOVABLE) {
    errno = EINVAL;
    return NITRO_HANDLE_NULL;
  }
  if (NITRO_UNLIKELY(!g_partition_made.load(std::memory_order_acquire))) MakeMovablePartition();
  nitro::ContractScope scope;  // a soft-limit crossing is signalled after the allocation
  nitro_handle_t h = nitro::movable::Allocate(size);
  // A hard limit's refusal is ENOMEM here (malloc's retry after flushing
  // its caches has nothing to flush in the movable heap).
  if (h == NITRO_HANDLE_NULL) nitro::TakeLimitRefusal();
  return h;
}

NITRO_EXPORT void* nitro_hptr(nitro_handle_t h) { return nitro::movable::Pointer(h); }
NITRO_EXPORT void* nitro_hpin(nitro_handle_t h) { return nitro::movable::Pin(h); }
NITRO_EXPORT void nitro_hunpin(nitro_handle_t h) { nitro::movable::Unpin(h); }
NITRO_EXPORT int nitro_hrealloc(nitro_handle_t h, size_t size) {
  nitro::ContractScope scope;
  return nitro::movable::Resize(h, size);
}
NITRO_EXPORT void nitro_hfree(nitro_handle_t h) { nitro::movable::Free(h); }
NITRO_EXPORT size_t nitro_hsize(nitro_handle_t h) { return nitro::movable::UsableSize(h); }
NITRO_EXPORT void nitro_quiescent(void) { nitro::movable::Quiescent(); }
NITRO_EXPORT void nitro_thread_offline(void) { nitro::movable::Offline(); }

NITRO_EXPORT size_t nitro_compact(nitro_partition_t* partition, size_t budget) {
  if (partition != nullptr && !IsMovablePartition(partition)) {
    errno = EINVAL;  // only the movable partition has a movable heap
    return 0;
  }
  // On demand the caller may wait for the other threads' quiescent points
  // up to a second; no time budget (`budget` bounds the bytes).
  return nitro::movable::Compact(budget, 1000);
}

NITRO_EXPORT void nitro_movable_stats_snapshot(nitro_movable_stats_t* out) {
  if (out == nullptr) return;
  nitro::movable::Stats s;
  nitro::movable::GetStats(&s);
  static_assert(sizeof(s) == sizeof(*out), "the C struct mirrors the engine's");
  memcpy(out, &s, sizeof(s));
}

}  // extern "C"
