// The lock registry: every lock of the engine and of telemetry, each with its
// rank (core/lock.h). It answers the one question fork asks — which locks,
// in which order — in one place: pthread_atfork's handlers take every
// registered lock in rank order before fork, release them in the parent and
// reset them in the child.
//
// A lock is registered by the component that owns it, once, before it can be
// contended across a fork. Partitions register as one group (their locks are
// many and come and go with them).
#ifndef NITROHEAP_CORE_LOCK_REGISTRY_H_
#define NITROHEAP_CORE_LOCK_REGISTRY_H_

#include "core/lock.h"

namespace nitro {

struct LockGroup {
  LockRank rank;
  void (*lock_all)();
  void (*unlock_all)();
  void (*reset_all)();
  bool (*owns)(const SpinLock* lock);
};

// Idempotent. A lock of a global object (it must outlive the process).
void RegisterLock(SpinLock* lock);
// `group` must outlive the process.
void RegisterLockGroup(const LockGroup* group);
bool IsRegisteredLock(const SpinLock* lock);

// The fork handlers' three steps.
void AcquireAllLocks();
void ReleaseAllLocks();
void ResetAllLocksInChild();

}  // namespace nitro

#endif  // NITROHEAP_CORE_LOCK_REGISTRY_H_
