// The movable-allocation API (nitroheap/movable.h): thin calls into the
// movable heap (core/movable.h). Traits are checked here: the movable heap
// is the one place NITRO_TRAIT_MOVABLE leads to today.
#include "nitroheap/movable.h"

#include <errno.h>
#include <string.h>

#include "core/base.h"
#include "core/movable.h"

extern "C" {

NITRO_EXPORT nitro_handle_t nitro_halloc(size_t size, int traits) {
  if (traits != 0 && traits != NITRO_TRAIT_MOVABLE) {
    errno = EINVAL;
    return NITRO_HANDLE_NULL;
  }
  return nitro::movable::Allocate(size);
}

NITRO_EXPORT void* nitro_hptr(nitro_handle_t h) { return nitro::movable::Pointer(h); }
NITRO_EXPORT void* nitro_hpin(nitro_handle_t h) { return nitro::movable::Pin(h); }
NITRO_EXPORT void nitro_hunpin(nitro_handle_t h) { nitro::movable::Unpin(h); }
NITRO_EXPORT int nitro_hrealloc(nitro_handle_t h, size_t size) { return nitro::movable::Resize(h, size); }
NITRO_EXPORT void nitro_hfree(nitro_handle_t h) { nitro::movable::Free(h); }
NITRO_EXPORT size_t nitro_hsize(nitro_handle_t h) { return nitro::movable::UsableSize(h); }
NITRO_EXPORT void nitro_quiescent(void) { nitro::movable::Quiescent(); }
NITRO_EXPORT void nitro_thread_offline(void) { nitro::movable::Offline(); }

NITRO_EXPORT size_t nitro_compact(nitro_partition_t* partition, size_t budget) {
  if (partition != nullptr) {
    errno = EINVAL;  // no partition has a movable heap yet
    return 0;
  }
  // On demand the caller may wait for the other threads' quiescent points
  // up to a second.
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
