// Stress through the real malloc/free/new/delete symbols with NitroHeap
// linked in: 16 threads on a 2-core machine pass blocks around a ring, each
// thread checking and freeing what its neighbour allocated, with C++
// containers churning alongside. The engine-level twin of this test
// (core/heap_concurrency_test) runs under --config=tsan.
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

constexpr int kThreads = 16;
constexpr int kRounds = 40;
constexpr int kPerRound = 400;

struct Mailbox {
  std::mutex mu;
  std::vector<std::pair<unsigned char*, size_t>> blocks;
};

unsigned char Pattern(const unsigned char* p, size_t i) {
  return static_cast<unsigned char>((reinterpret_cast<uintptr_t>(p) >> 4) + i * 31);
}

TEST(CrossThreadStress, RingOfThreadsFreesItsNeighboursBlocks) {
  ASSERT_EQ(nitro_is_active(), 1);
  std::vector<Mailbox> boxes(kThreads);
  std::atomic<long> verified{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      unsigned seed = 1000u + static_cast<unsigned>(t);
      std::map<int, std::string> churn;
      for (int round = 0; round < kRounds; round++) {
        std::vector<std::pair<unsigned char*, size_t>> mine;
        for (int i = 0; i < kPerRound; i++) {
          seed = seed * 1664525u + 1013904223u;
          size_t size = (seed >> 28) == 0 ? 1 + (seed >> 8) % 400000 : 1 + (seed >> 12) % 2048;
          auto* p = static_cast<unsigned char*>((seed & 3) == 0 ? calloc(1, size) : malloc(size));
          if (p == nullptr) {
            errors++;
            continue;
          }
          for (size_t k = 0; k < size; k += 61) p[k] = Pattern(p, k);
          p[size - 1] = Pattern(p, size - 1);
          mine.emplace_back(p, size);
          churn[static_cast<int>(seed % 512)] = std::string(seed % 300, 'a' + t % 26);
        }
        {
          Mailbox& next = boxes[(t + 1) % kThreads];
          std::lock_guard<std::mutex> g(next.mu);
          next.blocks.insert(next.blocks.end(), mine.begin(), mine.end());
        }
        std::vector<std::pair<unsigned char*, size_t>> theirs;
        {
          std::lock_guard<std::mutex> g(boxes[t].mu);
          theirs.swap(boxes[t].blocks);
        }
        for (auto& [p, size] : theirs) {
          bool ok = malloc_usable_size(p) >= size && p[size - 1] == Pattern(p, size - 1);
          for (size_t k = 0; k < size && ok; k += 61) ok = p[k] == Pattern(p, k);
          if (!ok) errors++;
          if (size % 3 == 0) {
            // Contents survive a realloc on a thread that did not allocate.
            unsigned char last = p[size - 1], first = p[0];
            p = static_cast<unsigned char*>(realloc(p, size + 100));
            if (p == nullptr || p[size - 1] != last || p[0] != first) errors++;
          }
          free(p);
          verified++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& box : boxes) {
    for (auto& [p, size] : box.blocks) {
      free(p);
      verified++;
    }
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(verified.load(), long{kThreads} * kRounds * kPerRound);
}

}  // namespace
