// Traits: a caller tags an allocation (NITRO_TRAIT_* in nitroheap.h) and
// the trait set names one partition per process, made on first use, whose
// policy fits (docs/architecture.md, "Partitions and traits").
#ifndef NITROHEAP_CORE_TRAITS_H_
#define NITROHEAP_CORE_TRAITS_H_

#include "core/partition.h"

namespace nitro {

// One bit per trait, in the order of nitroheap.h's flag bits 14-19.
enum Trait : unsigned {
  kTraitSecureStrict = 1u << 0,    // strict checks, zero on alloc and free
  kTraitLowLatency = 1u << 1,      // larger caches, no quarantine
  kTraitMovable = 1u << 2,         // the movable heap's partition (handles only; alone)
  kTraitSharedRw = 1u << 3,        // objects on their own cache lines
  kTraitPersistent = 1u << 4,      // huge pages, no decay
  kTraitTelemetrySilent = 1u << 5, // never sampled into the flight recorder
  kTraitAll = (1u << 6) - 1,
};

// SECURE_STRICT's "more guarded sampling": its partition guards one
// allocation in sample_rate / this.
inline constexpr uint32_t kSecureStrictSampleDivisor = 16;

// Why a trait set cannot name a partition (EINVAL), or nullptr.
const char* TraitsRefused(unsigned traits);
// The policy of a trait set's partition: the process's, changed by each trait.
PartitionPolicy PolicyForTraits(unsigned traits);
// The partition a trait set names (traits 0: the default partition); made on
// first use, never destroyed. nullptr with errno EINVAL (TraitsRefused) or
// ENOMEM.
Partition* PartitionForTraits(unsigned traits);
// True for a partition some trait set names (it cannot be destroyed).
bool IsTraitPartition(const Partition* partition);

// The partitions trait sets name, by trait bits, each published once with a
// release store when made (never for 0, nor for a set TraitsRefused names).
extern Partition* g_trait_partitions[kTraitAll + 1];
// The partition of a trait set already made, or nullptr (not yet made,
// refused, or traits 0): one acquire load, the fast paths' lookup
// (abi/mallocx.cc); PartitionForTraits makes it.
NITRO_ALWAYS_INLINE Partition* TraitPartitionMade(unsigned traits) {
  return __atomic_load_n(&g_trait_partitions[traits & kTraitAll], __ATOMIC_ACQUIRE);
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_TRAITS_H_
