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
