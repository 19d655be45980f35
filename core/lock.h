// A futex-backed mutex that never allocates, can be reset in a fork child,
// and counts how often it was contended (a statistic, not a tuning knob).
//
// Every lock has a rank: the place it takes in the one order in which the
// engine nests its locks, lowest outermost. The fork handler
// (core/lock_registry.h) takes every lock in that order, so that no thread
// holds one at the moment of fork. With the lock_audit option, taking a lock
// the registry does not know, or one of lower rank than a lock already held,
// aborts: that is how a test catches a lock added without registering it.
#ifndef NITROHEAP_CORE_LOCK_H_
#define NITROHEAP_CORE_LOCK_H_

#include <atomic>
#include <stdint.h>

#include "core/base.h"

namespace nitro {

enum class LockRank : uint8_t {
  // Region heaps (core/region.h) first: their code takes no other lock, and
  // an error callback run from a region misuse may take any other.
  kRegionTable = 0,   // creating and destroying thread-safe regions
  kRegion,            // one region heap
  kLibcResolve,   // dlsym of the C library's malloc (which may call malloc)
  kHeapInit,          // process-heap start-up
  kThreadRegistry,    // the list of thread caches
  kPartitionTable,    // creating, destroying and walking partitions
  kPartition,         // a partition's class lists, then large blocks, then pages
  kGuardedPool,       // the guarded sampling pool (held across mprotect)
  kZeroRegion,        // strict mode's malloc(0) region
  kFlightRecorder,    // telemetry's sample ring
  kPageMap,           // page-map leaves
  kMetaPool,          // every metadata pool's free list
  kMetaArena,         // the metadata arena below the pools
  kMovableHeap,       // the movable heap's handles and slabs (core/movable.cc): takes no other lock
  kCount
};
const char* LockRankName(LockRank rank);

class SpinLock;
// Set when the lock_audit option is on; the auditor answers "is this lock
// one the fork handler takes?".
extern bool g_lock_audit;
void SetLockAuditor(bool (*registered)(const SpinLock* lock));
void AuditLock(const SpinLock* lock);
void AuditUnlock(const SpinLock* lock);
// A fork child: the locks the forking thread took were reset, not unlocked.
void AuditResetAfterFork();

class SpinLock {
 public:
  constexpr explicit SpinLock(LockRank rank) : rank_(rank) {}
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() {
    if (NITRO_UNLIKELY(g_lock_audit)) AuditLock(this);
    int expected = kUnlocked;
    if (NITRO_LIKELY(state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                                     std::memory_order_relaxed))) {
      return;
    }
    LockSlow();
  }
  bool TryLock() {
    int expected = kUnlocked;
    bool ok = state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                             std::memory_order_relaxed);
    if (ok && NITRO_UNLIKELY(g_lock_audit)) AuditLock(this);
    return ok;
  }
  void Unlock() {
    if (NITRO_UNLIKELY(g_lock_audit)) AuditUnlock(this);
    if (NITRO_UNLIKELY(state_.exchange(kUnlocked, std::memory_order_release) == kSleeper)) {
      Wake();
    }
  }
  // Only for a fork child, where the thread that held the lock is gone.
  void ResetAfterFork() { state_.store(kUnlocked, std::memory_order_relaxed); }
  uint64_t contended() const { return contended_.load(std::memory_order_relaxed); }
  LockRank rank() const { return rank_; }

 private:
  static constexpr int kUnlocked = 0, kLocked = 1, kSleeper = 2;
  void LockSlow();
  void Wake();

  std::atomic<int> state_{kUnlocked};
  LockRank rank_;
  std::atomic<uint64_t> contended_{0};
};

class LockGuard {
 public:
  explicit LockGuard(SpinLock& l) : lock_(l) { lock_.Lock(); }
  ~LockGuard() { lock_.Unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_LOCK_H_
