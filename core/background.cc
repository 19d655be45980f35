#include "core/background.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace nitro {

void BackgroundThread::StartSlow() {
  int expected = kIdle;
  if (!state_.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) return;
  int saved = errno;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  // Created with every signal blocked, so that none is ever delivered to it
  // (the mask is inherited; the caller's is restored at once).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  wake_.store(0, std::memory_order_relaxed);
  int rc = pthread_create(&thread_, &attr, Main, this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc == 0) {
    pthread_setname_np(thread_, "nitroheap-bg");
  } else {
    // No thread (a process that must stay single-threaded, or out of
    // resources): memory is still returned on calls; never retried.
    state_.store(kStopped, std::memory_order_release);
  }
  errno = saved;
}

void BackgroundThread::Wake() {
  wake_.store(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<int*>(&wake_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void BackgroundThread::Stop() {
  int prev = state_.exchange(kStopped, std::memory_order_acq_rel);
  if (prev != kRunning) return;  // never started, ended by itself, or stopped already
  int saved = errno;
  Wake();
  if (!pthread_equal(pthread_self(), thread_)) {
    // Bounded: exit() called from a signal handler that interrupted this
    // thread inside the allocator would otherwise wait forever for a lock
    // the handler's thread holds. Nothing is unmapped after Stop, so a
    // thread still running then touches nothing that is gone.
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    if (pthread_timedjoin_np(thread_, nullptr, &deadline) != 0) pthread_detach(thread_);
  }
  errno = saved;
}

void BackgroundThread::ForgetAfterFork() {
  if (state_.load(std::memory_order_relaxed) == kRunning) state_.store(kIdle, std::memory_order_relaxed);
  wake_.store(0, std::memory_order_relaxed);
}

void BackgroundThread::Sleep(unsigned ms) {
  struct timespec ts = {static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000L)};
  // Returns at the timeout, on Wake(), or spuriously: the caller re-checks.
  syscall(SYS_futex, reinterpret_cast<int*>(&wake_), FUTEX_WAIT_PRIVATE, 0, &ts, nullptr, 0);
  wake_.store(0, std::memory_order_relaxed);
}

void* BackgroundThread::Main(void* arg) {
  auto* self = static_cast<BackgroundThread*>(arg);
  for (;;) {
    self->Sleep(self->period_ms_());
    if (self->state_.load(std::memory_order_acquire) != kRunning) break;
    if (self->should_end_()) {
      // The program's threads are gone. Ending here lets the process exit
      // (glibc exits when its last thread does). If the program still
      // allocates later, the thread starts again.
      int expected = kRunning;
      if (self->state_.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel)) {
        pthread_detach(pthread_self());
        return nullptr;
      }
      break;  // Stop() won the race: it joins us
    }
    self->tick_();
  }
  return nullptr;
}

}  // namespace nitro
