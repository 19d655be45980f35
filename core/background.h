// The background thread ("nitroheap-bg"): returns idle memory on time and
// runs telemetry's periodic tick, even when the program makes no calls.
//
// This object is the thread's only owner. It starts the thread on first
// need; it stops and joins it at exit before anything the thread touches is
// torn down; in a fork child, where the thread does not exist, it forgets it
// so that the child starts its own on first need; and it lets the thread end
// by itself once the program's own threads are gone (main left through
// pthread_exit): a process is never kept alive by its allocator.
#ifndef NITROHEAP_CORE_BACKGROUND_H_
#define NITROHEAP_CORE_BACKGROUND_H_

#include <pthread.h>

#include <atomic>

namespace nitro {

class BackgroundThread {
 public:
  using Tick = void (*)();
  // `tick` runs every period on the thread; the period is
  // period_ms() at the time of each sleep.
  constexpr BackgroundThread(Tick tick, unsigned (*period_ms)(), bool (*should_end)())
      : tick_(tick), period_ms_(period_ms), should_end_(should_end) {}

  // Starts the thread if it is not running and has not been stopped.
  void MaybeStart() {
    if (state_.load(std::memory_order_relaxed) != kIdle) return;
    StartSlow();
  }
  // Stops the thread and waits for it to end (not when called on the thread
  // itself). No thread starts afterwards.
  void Stop();
  // Wakes the thread early (it re-checks should_end).
  void Wake();
  // In a fork child: the thread was not copied.
  void ForgetAfterFork();
  bool running() const { return state_.load(std::memory_order_acquire) == kRunning; }

 private:
  enum State : int { kIdle = 0, kRunning = 1, kStopped = 2 };
  void StartSlow();
  static void* Main(void* self);
  void Sleep(unsigned ms);

  Tick tick_;
  unsigned (*period_ms_)();
  bool (*should_end_)();
  std::atomic<int> state_{kIdle};
  std::atomic<int> wake_{0};  // futex word
  pthread_t thread_{};
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_BACKGROUND_H_
