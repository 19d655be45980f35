// NitroHeap's own extension API (include/nitroheap/nitroheap.h).
#include "nitroheap/nitroheap.h"

#include <errno.h>

#include "core/heap.h"
#include "core/partition.h"

using nitro::Partition;

namespace {
Partition* ToPartition(nitro_partition_t* p) { return reinterpret_cast<Partition*>(p); }
}  // namespace

extern "C" {

NITRO_EXPORT int nitro_is_active(void) { return nitro::Mode() == nitro::HeapMode::kNitro; }

NITRO_EXPORT const char* nitro_heap_mode(void) {
  return nitro::Mode() == nitro::HeapMode::kNitro ? "nitro" : "legacy";
}

NITRO_EXPORT int nitro_owns(const void* p) {
  nitro::PointerInfo info;
  return nitro::Lookup(p, &info) ? 1 : 0;
}

NITRO_EXPORT nitro_partition_t* nitro_partition_create(const char* name) {
  nitro::EnsureStarted();
  Partition* p = Partition::Create(name, nitro::PartitionConfig{});
  if (p == nullptr) errno = ENOMEM;
  return reinterpret_cast<nitro_partition_t*>(p);
}

NITRO_EXPORT int nitro_partition_destroy(nitro_partition_t* partition) {
  Partition* p = ToPartition(partition);
  if (p == nullptr || p == nitro::DefaultPartition()) {
    errno = EINVAL;
    return -1;
  }
  Partition::Destroy(p);
  return 0;
}

NITRO_EXPORT const char* nitro_partition_name(const nitro_partition_t* partition) {
  return reinterpret_cast<const Partition*>(partition)->name();
}

NITRO_EXPORT void* nitro_partition_malloc(nitro_partition_t* partition, size_t size) {
  return ToPartition(partition)->Allocate(size);
}

NITRO_EXPORT void* nitro_partition_aligned_alloc(nitro_partition_t* partition, size_t align,
                                                 size_t size) {
  if (!nitro::IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return ToPartition(partition)->Allocate(size, align);
}

NITRO_EXPORT void* nitro_partition_realloc(nitro_partition_t* partition, void* p, size_t size) {
  return ToPartition(partition)->Reallocate(p, size);
}

NITRO_EXPORT void nitro_partition_free(nitro_partition_t* partition, void* p) {
  ToPartition(partition)->Free(p);
}

NITRO_EXPORT nitro_partition_t* nitro_partition_of(const void* p) {
  nitro::PointerInfo info;
  if (!nitro::Lookup(p, &info)) return nullptr;
  return reinterpret_cast<nitro_partition_t*>(info.partition);
}

NITRO_EXPORT size_t nitro_release_free_memory(void) {
  size_t released = 0;
  Partition::ForEach([&released](Partition* p) { released += p->ReleaseFreeMemory(); });
  return released;
}

NITRO_EXPORT void nitro_stats_print(void) { nitro::PrintHeapReport(2); }

}  // extern "C"
