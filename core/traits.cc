#include "core/traits.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>

#include "core/heap.h"
#include "core/movable.h"

namespace nitro {

Partition* g_trait_partitions[kTraitAll + 1];

namespace {

void NameFor(unsigned traits, char* out, size_t len) {
  static const char* const kNames[] = {"strict", "lowlat", "movable", "sharedrw", "persist", "silent"};
  size_t n = static_cast<size_t>(snprintf(out, len, "traits"));
  for (int i = 0; i < 6 && n < len; i++) {
    if (traits & (1u << i)) n += static_cast<size_t>(snprintf(out + n, len - n, "%c%s", n == 6 ? ':' : '+', kNames[i]));
  }
}

}  // namespace

const char* TraitsRefused(unsigned traits) {
  if ((traits & kTraitMovable) && traits != kTraitMovable) {
    return "NITRO_TRAIT_MOVABLE combines with no other trait (one movable heap serves the process)";
  }
  if ((traits & kTraitSecureStrict) && (traits & kTraitLowLatency)) {
    return "NITRO_TRAIT_SECURE_STRICT and NITRO_TRAIT_LOW_LATENCY conflict (strict checks and "
           "quarantine against no quarantine)";
  }
  return nullptr;
}

PartitionPolicy PolicyForTraits(unsigned traits) {
  PartitionPolicy policy = DefaultPolicy();
  // Never destroyed: guarded samples as malloc's, or more.
  policy.guarded_sample_divisor = 1;
  if (traits & kTraitSecureStrict) {
    policy.strict = true;
    policy.guarded_sample_divisor = kSecureStrictSampleDivisor;
    if (policy.quarantine_bytes < (size_t{4} << 20)) policy.quarantine_bytes = size_t{4} << 20;
  }
  if (traits & kTraitLowLatency) {
    policy.strict = false;
    policy.quarantine_bytes = 0;
    policy.cache_max_bytes *= 4;
  }
  if (traits & kTraitSharedRw) policy.min_align = 64;
  if (traits & kTraitPersistent) {
    policy.decay = false;
    policy.huge_pages = true;
    policy.numa_interleave = true;
  }
  if (traits & kTraitTelemetrySilent) policy.record = false;
  if (traits & kTraitMovable) {
    policy.handles_only = true;
    policy.thread_caches = false;  // it never holds an object of its own
  }
  return policy;
}

Partition* PartitionForTraits(unsigned traits) {
  if (traits & ~static_cast<unsigned>(kTraitAll) || TraitsRefused(traits) != nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  if (traits == 0) return DefaultPartition();
  Partition* p = __atomic_load_n(&g_trait_partitions[traits], __ATOMIC_ACQUIRE);
  if (p != nullptr) return p;
  char name[Partition::kNameMax];
  NameFor(traits, name, sizeof(name));
  p = CreatePartition(name, PolicyForTraits(traits));
  if (p == nullptr && errno == EEXIST) {
    // Another thread is making it: its name is taken just before it is
    // published.
    for (int i = 0; i < 100000; i++) {
      if (Partition* q = __atomic_load_n(&g_trait_partitions[traits], __ATOMIC_ACQUIRE)) return q;
      sched_yield();
    }
    return nullptr;  // errno EEXIST: a partition the program made has the name
  }
  if (p == nullptr) return nullptr;
  if (traits == kTraitMovable) {
    // Its contract is charged with the movable heap's slabs and large
    // objects, and compacts on pressure whatever else it does.
    p->contract().SetActions(p->contract().State().actions | kActionCompact);
    movable::AttachContract(&p->contract());
    InstallMovableRecorder(p);
  }
  __atomic_store_n(&g_trait_partitions[traits], p, __ATOMIC_RELEASE);
  return p;
}

bool IsTraitPartition(const Partition* partition) {
  for (unsigned t = 1; t <= kTraitAll; t++) {
    if (__atomic_load_n(&g_trait_partitions[t], __ATOMIC_ACQUIRE) == partition) return true;
  }
  return false;
}

}  // namespace nitro
