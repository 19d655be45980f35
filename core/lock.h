// A futex-backed mutex that never allocates, can be reset in a fork child,
// and counts how often it was contended (a statistic, not a tuning knob).
#ifndef NITROHEAP_CORE_LOCK_H_
#define NITROHEAP_CORE_LOCK_H_

#include <atomic>
#include <stdint.h>

#include "core/base.h"

namespace nitro {

class SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() {
    int expected = kUnlocked;
    if (NITRO_LIKELY(state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                                     std::memory_order_relaxed))) {
      return;
    }
    LockSlow();
  }
  bool TryLock() {
    int expected = kUnlocked;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void Unlock() {
    if (NITRO_UNLIKELY(state_.exchange(kUnlocked, std::memory_order_release) == kSleeper)) {
      Wake();
    }
  }
  // Only for a fork child, where the thread that held the lock is gone.
  void ResetAfterFork() { state_.store(kUnlocked, std::memory_order_relaxed); }
  uint64_t contended() const { return contended_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kUnlocked = 0, kLocked = 1, kSleeper = 2;
  void LockSlow();
  void Wake();

  std::atomic<int> state_{kUnlocked};
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
