// Heap contracts seen from C++: operator new throws std::bad_alloc past a
// hard limit (the default partition's, or the process's), the nothrow form
// returns null, and the heap works again once the limit is lifted or
// memory is freed. Linked with malloc = "//abi:malloc".
#include <errno.h>
#include <stdlib.h>

#include <atomic>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

// The compiler may drop a new whose block is only deleted: these are not.
char* NewArray(size_t n) {
  char* volatile p = new char[n];
  return p;
}

nitro_partition_t* DefaultPartition() {
  void* volatile p = malloc(64);
  nitro_partition_t* d = nitro_partition_of(p);
  free(p);
  return d;
}

uint64_t Use(const char* partition) {
  char name[64];
  snprintf(name, sizeof(name), "contract.%s.use", partition);
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(nitro_ctl(name, &v, &len, nullptr, 0), 0);
  return v;
}

TEST(ContractCxx, DefaultPartitionHardLimitThrowsBadAllocAndRecovers) {
  nitro_partition_t* def = DefaultPartition();
  ASSERT_NE(def, nullptr);
  ASSERT_STREQ(nitro_partition_name(def), "default");
  uint64_t use = Use("default");
  ASSERT_EQ(nitro_partition_set_limit(def, use + (size_t{32} << 20), 0), 0);
  std::vector<char*> kept;
  kept.push_back(NewArray(size_t{16} << 20));
  EXPECT_THROW(NewArray(size_t{32} << 20), std::bad_alloc);
  char* volatile q = new (std::nothrow) char[size_t{32} << 20];
  EXPECT_EQ(q, nullptr);
  errno = 0;
  void* volatile m = malloc(size_t{32} << 20);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // Another partition is not affected.
  nitro_partition_t* other = nitro_partition_create("cxx-other");
  void* o = nitro_partition_malloc(other, size_t{32} << 20);
  EXPECT_NE(o, nullptr);
  nitro_partition_free(other, o);
  nitro_partition_destroy(other);
  // After the free the same request fits.
  delete[] kept.back();
  kept.pop_back();
  char* fits = nullptr;
  EXPECT_NO_THROW(fits = NewArray(size_t{24} << 20));
  delete[] fits;
  ASSERT_EQ(nitro_partition_set_limit(def, 0, 0), 0);
}

TEST(ContractCxx, ProcessLimitThrowsBadAlloc) {
  ASSERT_EQ(nitro_set_memory_limit(1), 0);
  bool threw = false;
  try {
    NewArray(size_t{64} << 20);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  ASSERT_EQ(nitro_set_memory_limit(0), 0);
  EXPECT_TRUE(threw);
  char* p = nullptr;
  EXPECT_NO_THROW(p = NewArray(size_t{64} << 20));
  delete[] p;
}

void CountPressure(nitro_partition_t*, size_t, size_t, void* ctx) {
  static_cast<std::atomic<int>*>(ctx)->fetch_add(1);
}

// The malloc path under eight threads: all fill past the default
// partition's soft limit, then all free below 7/8 of it, round after round.
// Each round is one crossing and one callback, whichever thread crosses.
TEST(ContractCxx, EightThreadsThroughMallocGetOneCallbackPerCrossing) {
  constexpr size_t kBlock = 256 << 10;  // large: no thread cache in between
  constexpr int kThreads = 8, kRounds = 20, kPerThread = 4;
  nitro_partition_t* def = DefaultPartition();
  uint64_t base = Use("default");
  void* volatile probe = malloc(kBlock);
  uint64_t charge = Use("default") - base;
  free(probe);
  ASSERT_GT(charge, kBlock);
  std::atomic<int> calls{0};
  ASSERT_EQ(nitro_partition_on_pressure(def, CountPressure, &calls), 0);
  ASSERT_EQ(nitro_partition_set_limit(def, 0, base + (kThreads * kPerThread - 2) * charge), 0);
  uint64_t crossings_before = 0;
  {
    uint64_t v = 0;
    size_t len = sizeof(v);
    ASSERT_EQ(nitro_ctl("contract.default.crossings", &v, &len, nullptr, 0), 0);
    crossings_before = v;
  }
  std::atomic<int> arrived{0};
  auto barrier = [&](int generation) {
    arrived.fetch_add(1);
    while (arrived.load() < generation * kThreads) std::this_thread::yield();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      int generation = 0;
      void* mine[kPerThread];
      for (int round = 0; round < kRounds; round++) {
        for (void*& b : mine) {
          void* volatile p = malloc(kBlock);
          b = p;
        }
        barrier(++generation);
        for (void* b : mine) free(b);
        barrier(++generation);
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(nitro_partition_set_limit(def, 0, 0), 0);
  ASSERT_EQ(nitro_partition_on_pressure(def, nullptr, nullptr), 0);
  uint64_t crossings = 0;
  size_t len = sizeof(crossings);
  ASSERT_EQ(nitro_ctl("contract.default.crossings", &crossings, &len, nullptr, 0), 0);
  EXPECT_EQ(crossings - crossings_before, static_cast<uint64_t>(kRounds));
  EXPECT_EQ(calls.load(), kRounds);
}

}  // namespace
