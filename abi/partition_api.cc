// The partition calls beyond create/malloc/free (extension.cc): what users
// of mimalloc's mi_heap_* expect (calloc, usable size, strdup), typed
// partitions, traits, and the thread's current partition
// (include/nitroheap/nitroheap.h; allocator.hpp builds on these).
#include <errno.h>
#include <string.h>

#include "core/heap.h"
#include "core/partition.h"
#include "core/report.h"
#include "core/traits.h"
#include "nitroheap/nitroheap.h"

using nitro::Partition;

namespace {
Partition* ToPartition(nitro_partition_t* p) { return reinterpret_cast<Partition*>(p); }
nitro_partition_t* ToHandle(Partition* p) { return reinterpret_cast<nitro_partition_t*>(p); }

// The trait bits of a flag word (NITRO_TRAIT_*), or ~0u when it holds
// anything else.
unsigned TraitBits(int flags) {
  unsigned bits = static_cast<unsigned>(flags);
  unsigned traits = (bits >> 14) & 0x3f;
  if ((bits & ~((0x3fu << 14) | 0x80u)) != 0 || (traits != 0 && (bits & 0x80u) == 0)) return ~0u;
  return traits;
}
}  // namespace

extern "C" {

NITRO_EXPORT void* nitro_partition_calloc(nitro_partition_t* partition, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return nitro::AllocateIn(ToPartition(partition), total, 0, true);
}

NITRO_EXPORT size_t nitro_partition_usable_size(nitro_partition_t* partition, const void* p) {
  if (p == nullptr || nitro::PartitionOf(p) != ToPartition(partition)) return 0;
  return nitro::UsableSize(p);
}

NITRO_EXPORT char* nitro_partition_strndup(nitro_partition_t* partition, const char* s, size_t n) {
  size_t len = strnlen(s, n);
  auto* copy = static_cast<char*>(nitro::AllocateIn(ToPartition(partition), len + 1, 0, false));
  if (copy == nullptr) return nullptr;
  memcpy(copy, s, len);
  copy[len] = '\0';
  return copy;
}

NITRO_EXPORT char* nitro_partition_strdup(nitro_partition_t* partition, const char* s) {
  return nitro_partition_strndup(partition, s, SIZE_MAX);
}

NITRO_EXPORT nitro_partition_t* nitro_partition_create_typed(const char* name, size_t object_size) {
  if (object_size == 0) {
    errno = EINVAL;
    return nullptr;
  }
  nitro::EnsureStarted();
  nitro::PartitionPolicy policy = nitro::DefaultPolicy();
  policy.object_size = static_cast<uint32_t>(object_size > UINT32_MAX ? UINT32_MAX : object_size);
  return ToHandle(nitro::CreatePartition(name, policy));
}

NITRO_EXPORT void nitro_partition_free_typed(nitro_partition_t* partition, void* p, size_t size) {
  Partition* part = ToPartition(partition);
  if (p != nullptr && (part->policy().object_size == 0 || size != part->policy().object_size)) {
    nitro::ReportMisuse(nitro::misuse::kSizeMismatch, p, part->name(),
                        "nitro_partition_free_typed: partition %s holds %u-byte objects, not %zu-byte ones",
                        part->name(), part->policy().object_size, size);
  }
  nitro::PartitionFree(part, p);
}

NITRO_EXPORT nitro_partition_t* nitro_partition_for_traits(int flags) {
  unsigned traits = TraitBits(flags);
  if (traits == ~0u) {
    errno = EINVAL;
    return nullptr;
  }
  nitro::EnsureStarted();
  return ToHandle(nitro::PartitionForTraits(traits));
}

NITRO_EXPORT nitro_partition_t* nitro_set_thread_partition(nitro_partition_t* partition) {
  nitro::EnsureStarted();
  return ToHandle(nitro::SetThreadPartition(ToPartition(partition)));
}

NITRO_EXPORT nitro_partition_t* nitro_thread_partition(void) {
  return ToHandle(nitro::ThreadPartition());
}

}  // extern "C"
