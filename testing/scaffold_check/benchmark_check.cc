#include <cstdlib>

#include "benchmark/benchmark.h"

static void BM_MallocFree(benchmark::State& state) {
  for (auto _ : state) {
    void* p = std::malloc(64);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_MallocFree);
