// Heaps over a fixed region (include/nitroheap/region.h): thin calls into
// core/region.h.
#include "nitroheap/region.h"

#include <errno.h>

#include "core/base.h"
#include "core/region.h"

using nitro::Region;
using nitro::RegionKind;

namespace {
Region* R(nitro_region_t* handle) { return Region::FromHandle(handle); }
}  // namespace

extern "C" {

NITRO_EXPORT nitro_region_t* nitro_region_create(void* memory, size_t length, int kind) {
  int base = kind & ~NITRO_REGION_SINGLE_THREADED;
  if (base != NITRO_REGION_BUMP && base != NITRO_REGION_FREE_LIST) {
    errno = EINVAL;
    return nullptr;
  }
  static_assert(NITRO_REGION_HEADER_BYTES == Region::kMaxHeaderBytes, "one header size");
  static_assert(NITRO_REGION_MIN_BYTES == Region::kMinBytes, "one minimum size");
  return reinterpret_cast<nitro_region_t*>(Region::Create(
      memory, length, static_cast<RegionKind>(base), (kind & NITRO_REGION_SINGLE_THREADED) == 0));
}

NITRO_EXPORT void* nitro_region_alloc(nitro_region_t* region, size_t size) {
  return R(region)->Allocate(size, nitro::kMinAlign);
}

NITRO_EXPORT void* nitro_region_aligned_alloc(nitro_region_t* region, size_t align, size_t size) {
  Region* r = R(region);
  if (!nitro::IsPowerOfTwo(align) || align > nitro::kMaxRequest) {
    errno = EINVAL;
    return nullptr;
  }
  return r->Allocate(size, align < nitro::kMinAlign ? nitro::kMinAlign : align);
}

NITRO_EXPORT void nitro_region_free(nitro_region_t* region, void* p) { R(region)->Free(p); }

NITRO_EXPORT void* nitro_region_realloc(nitro_region_t* region, void* p, size_t size) {
  return R(region)->Reallocate(p, size);
}

NITRO_EXPORT size_t nitro_region_usable_size(nitro_region_t* region, const void* p) {
  return R(region)->UsableSize(p);
}

NITRO_EXPORT void nitro_region_reset(nitro_region_t* region) { R(region)->Reset(); }

NITRO_EXPORT int nitro_region_stats(nitro_region_t* region, nitro_region_stats_t* out) {
  Region* r = R(region);
  if (out == nullptr) {
    errno = EINVAL;
    return -1;
  }
  nitro::RegionStats s = r->Stats();
  out->kind = static_cast<int>(s.kind);
  out->capacity = s.capacity;
  out->used = s.used;
  out->free = s.free;
  out->largest_free = s.largest_free;
  out->live_blocks = s.live_blocks;
  out->live_bytes = s.live_bytes;
  out->free_blocks = s.free_blocks;
  out->fragmentation = s.fragmentation;
  out->allocations = s.allocations;
  out->frees = s.frees;
  out->failures = s.failures;
  out->resets = s.resets;
  return 0;
}

NITRO_EXPORT size_t nitro_region_visit(nitro_region_t* region, nitro_region_visit_fn cb, void* ctx) {
  return R(region)->Visit([&](void* block, size_t usable, bool in_use) {
    if (cb != nullptr) cb(block, usable, in_use ? 1 : 0, ctx);
  });
}

NITRO_EXPORT void nitro_region_destroy(nitro_region_t* region) { R(region)->Destroy(); }

}  // extern "C"
