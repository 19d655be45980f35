// Google Benchmark microbenchmarks of NitroHeap linked in (malloc =
// "//abi:malloc"). For the comparison with other allocators see
// run_bench.py; these measure NitroHeap's own paths in isolation.
//
//   bazel run //testing/bench:microbench -- --benchmark_filter=MallocFree
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

// malloc + free of one size: the thread-cache fast path for every size class
// up to 128 KiB, and the page heap beyond.
void BM_MallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)->RangeMultiplier(2)->Range(16, 128 << 10)->Arg(24)->Arg(48)->Arg(1 << 20);

// A batch of 64 live objects cycling through 16 small classes: the slab
// retirement pattern of DESIGN.md's pitfalls.
void BM_MallocFreeBatch16Classes(benchmark::State& state) {
  void* obj[64];
  for (auto _ : state) {
    for (int i = 0; i < 64; i++) {
      obj[i] = malloc(16 * (1 + (i & 15)));
      benchmark::DoNotOptimize(obj[i]);
    }
    for (int i = 0; i < 64; i++) free(obj[i]);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_MallocFreeBatch16Classes);

// Cross-thread free: this thread allocates a batch, a second thread frees it
// while this one allocates the next (double-buffered hand-off).
void BM_CrossThreadFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  constexpr int kBatch = 1024;
  std::vector<void*> batch[2] = {std::vector<void*>(kBatch), std::vector<void*>(kBatch)};
  std::mutex mu;
  std::condition_variable cv;
  int ready = -1;     // index of the batch handed to the freeing thread
  bool busy = false;  // the freeing thread holds a batch
  bool stop = false;
  std::thread freer([&] {
    for (;;) {
      int b;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ready >= 0 || stop; });
        if (ready < 0) return;
        b = ready;
        ready = -1;
      }
      for (void* p : batch[b]) free(p);
      {
        std::lock_guard<std::mutex> lock(mu);
        busy = false;
      }
      cv.notify_all();
    }
  });
  int cur = 0;
  for (auto _ : state) {
    for (auto& p : batch[cur]) {
      p = malloc(size);
      benchmark::DoNotOptimize(p);
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !busy; });
    ready = cur;
    busy = true;
    lock.unlock();
    cv.notify_all();
    cur ^= 1;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !busy; });
    stop = true;
  }
  cv.notify_all();
  freer.join();
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_CrossThreadFree)->Arg(32)->Arg(256)->Arg(4096)->UseRealTime();

// realloc growth: one buffer grown by `step` bytes at a time to 64 KiB.
void BM_ReallocGrowth(benchmark::State& state) {
  const size_t step = static_cast<size_t>(state.range(0));
  constexpr size_t kTarget = 64 << 10;
  for (auto _ : state) {
    char* p = nullptr;
    for (size_t n = step; n <= kTarget; n += step) {
      p = static_cast<char*>(realloc(p, n));
      p[n - 1] = 1;
    }
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations() * (kTarget / step));
}
BENCHMARK(BM_ReallocGrowth)->Arg(16)->Arg(256)->Arg(4096);

// Aligned allocation: posix_memalign with 64 and 4096 byte alignment.
void BM_PosixMemalign(benchmark::State& state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    void* p = nullptr;
    if (posix_memalign(&p, align, size) != 0) state.SkipWithError("posix_memalign failed");
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PosixMemalign)->Args({64, 64})->Args({64, 1000})->Args({4096, 4096})->Args({4096, 100000});

}  // namespace

BENCHMARK_MAIN();
