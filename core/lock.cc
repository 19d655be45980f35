#include "core/lock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace nitro {

void SpinLock::LockSlow() {
  contended_.fetch_add(1, std::memory_order_relaxed);
  // Spin briefly: critical sections are short. Then sleep on the futex.
  for (int i = 0; i < 64; i++) {
    int expected = kUnlocked;
    if (state_.load(std::memory_order_relaxed) == kUnlocked &&
        state_.compare_exchange_weak(expected, kLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return;
    }
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  int saved = errno;
  while (state_.exchange(kSleeper, std::memory_order_acquire) != kUnlocked) {
    syscall(SYS_futex, reinterpret_cast<int*>(&state_), FUTEX_WAIT_PRIVATE, kSleeper, nullptr,
            nullptr, 0);
  }
  errno = saved;
}

void SpinLock::Wake() {
  int saved = errno;
  syscall(SYS_futex, reinterpret_cast<int*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  errno = saved;
}

}  // namespace nitro

namespace nitro {

bool g_lock_audit = false;

namespace {

bool (*g_lock_registered)(const SpinLock*) = nullptr;
// Locks of each rank this thread holds (audit mode only).
__thread uint16_t tls_held[static_cast<int>(LockRank::kCount)] __attribute__((tls_model("initial-exec")));

}  // namespace

const char* LockRankName(LockRank rank) {
  static const char* const kNames[] = {
      "region-table", "region",       "libc-resolve", "heap-init",     "thread-registry", "partition-table", "partition",
      "guarded-pool", "zero-region",   "flight-recorder", "page-map",        "meta-pool",
      "meta-arena",   "movable-heap"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(LockRank::kCount),
                "a name for every rank");
  int r = static_cast<int>(rank);
  return r >= 0 && r < static_cast<int>(LockRank::kCount) ? kNames[r] : "?";
}

void SetLockAuditor(bool (*registered)(const SpinLock* lock)) { g_lock_registered = registered; }

void AuditLock(const SpinLock* lock) {
  int r = static_cast<int>(lock->rank());
  if (r < 0 || r >= static_cast<int>(LockRank::kCount)) {
    Fatal("lock audit: lock %p has no valid rank", static_cast<const void*>(lock));
  }
  if (g_lock_registered != nullptr && !g_lock_registered(lock)) {
    Fatal("lock audit: lock %p (rank %s) is not registered, so fork would not take it",
          static_cast<const void*>(lock), LockRankName(lock->rank()));
  }
  for (int higher = r + 1; higher < static_cast<int>(LockRank::kCount); higher++) {
    if (tls_held[higher] != 0) {
      Fatal("lock audit: taking a %s lock while holding a %s lock (ranks out of order)",
            LockRankName(lock->rank()), LockRankName(static_cast<LockRank>(higher)));
    }
  }
  tls_held[r]++;
}

void AuditUnlock(const SpinLock* lock) {
  int r = static_cast<int>(lock->rank());
  if (r >= 0 && r < static_cast<int>(LockRank::kCount) && tls_held[r] != 0) tls_held[r]--;
}

void AuditResetAfterFork() {
  for (uint16_t& n : tls_held) n = 0;
}

}  // namespace nitro
