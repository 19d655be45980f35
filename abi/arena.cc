// Partitions as arenas (nitro_partition_reset / nitro_partition_visit in
// include/nitroheap/nitroheap.h).
#include <errno.h>

#include "core/base.h"
#include "core/heap.h"
#include "core/partition.h"
#include "nitroheap/nitroheap.h"

namespace {
// Reset and visit see every object in the partition's slabs, so threads'
// caches of it go first: flushed back for a visit (their objects are free),
// dropped for a reset.
nitro::Partition* Arena(nitro_partition_t* partition, bool flush) {
  auto* p = reinterpret_cast<nitro::Partition*>(partition);
  if (!nitro::ReleaseCachesForArena(p, flush)) {
    errno = EINVAL;
    return nullptr;
  }
  return p;
}
}  // namespace

extern "C" {

NITRO_EXPORT int nitro_partition_reset(nitro_partition_t* partition) {
  nitro::Partition* p = Arena(partition, /*flush=*/false);
  if (p == nullptr) return -1;
  p->Reset();
  return 0;
}

NITRO_EXPORT long nitro_partition_visit(nitro_partition_t* partition, nitro_block_visitor cb,
                                        void* ctx) {
  nitro::Partition* p = cb == nullptr ? nullptr : Arena(partition, /*flush=*/true);
  if (p == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return static_cast<long>(p->Visit([&](void* block, size_t usable) { return cb(block, usable, ctx) != 0; }));
}

}  // extern "C"
