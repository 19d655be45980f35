#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

TEST(Scaffold, ThreadsAreRaceFree) {
  std::mutex mu;
  long guarded = 0;
  std::atomic<long> counter{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(mu);
        ++guarded;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter.load(), 40000);
  EXPECT_EQ(guarded, 40000);
}
