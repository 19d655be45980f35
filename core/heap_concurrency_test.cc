// Threads racing through the process heap's entry points: producers allocate
// and fill blocks, consumers on other threads check and free them (remote
// frees through the thread caches and the middle layer), with more threads
// than cores. Runs under --config=tsan too.
#include <gtest/gtest.h>
#include <string.h>

#include <atomic>
#include <set>
#include <mutex>
#include <deque>
#include <thread>
#include <vector>
#include <condition_variable>

#include "core/central_free_list.h"
#include "core/heap.h"
#include "core/page_map.h"

namespace nitro {
namespace {

struct Block {
  unsigned char* p;
  size_t size;
  unsigned char tag;
};

class Queue {
 public:
  void Push(Block b) {
    std::lock_guard<std::mutex> g(mu_);
    q_.push_back(b);
    cv_.notify_one();
  }
  bool Pop(Block* b) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return !q_.empty() || done_; });
    if (q_.empty()) return false;
    *b = q_.front();
    q_.pop_front();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> g(mu_);
    done_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> q_;
  bool done_ = false;
};

size_t SizeFor(uint32_t r) {
  // Mostly small, some medium, a few large.
  uint32_t kind = r % 100;
  if (kind < 80) return 1 + r % 512;
  if (kind < 97) return 512 + r % 40000;
  return 130000 + r % 600000;
}

TEST(HeapConcurrency, CrossThreadFreesKeepContents) {
  constexpr int kPairs = 4;  // 8 threads on a 2-core machine
  constexpr int kPerProducer = 20000;
  std::vector<Queue> queues(kPairs);
  std::atomic<long> checked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kPairs; t++) {
    threads.emplace_back([&, t] {
      uint32_t r = 12345u + t;
      for (int i = 0; i < kPerProducer; i++) {
        r = r * 1103515245u + 12345u;
        size_t size = SizeFor(r >> 8);
        auto* p = static_cast<unsigned char*>(Malloc(size));
        ASSERT_NE(p, nullptr);
        unsigned char tag = static_cast<unsigned char>(r);
        memset(p, tag, size);
        queues[t].Push(Block{p, size, tag});
      }
      queues[t].Close();
    });
    threads.emplace_back([&, t] {
      Block b;
      while (queues[t].Pop(&b)) {
        ASSERT_EQ(b.p[0], b.tag);
        ASSERT_EQ(b.p[b.size / 2], b.tag);
        ASSERT_EQ(b.p[b.size - 1], b.tag);
        ASSERT_GE(UsableSize(b.p), b.size);
        // Half are freed here, half after a realloc on this thread.
        if (b.tag & 1) {
          auto* q = static_cast<unsigned char*>(Reallocate(b.p, b.size * 2));
          ASSERT_EQ(q[b.size - 1], b.tag);
          Free(q);
        } else {
          Free(b.p);
        }
        checked.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(checked.load(), long{kPairs} * kPerProducer);
}

TEST(HeapConcurrency, ThreadExitReturnsItsCache) {
  EnsureStarted();
  size_t threads_before = GetHeapStats().threads;
  for (int round = 0; round < 8; round++) {
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; t++) {
      ts.emplace_back([] {
        std::vector<void*> v;
        for (int i = 0; i < 3000; i++) v.push_back(Malloc(16 + (i % 64) * 16));
        for (void* p : v) Free(p);
      });
    }
    for (auto& th : ts) th.join();
  }
  HeapStats st = GetHeapStats();
  EXPECT_EQ(st.threads, threads_before);
}

// Two threads allocating one class at the same time carve slabs of their
// own (CentralFreeList's cache affinity): no slab holds objects of both,
// so neither thread's malloc/free writes the cache lines of the other's
// free flags. Before, both carved the front slab in turns. A new partition
// each round: the default one holds batches of exited threads, which any
// thread takes before carving (objects freed by the earlier tests). Both
// threads live until both are done: an exiting thread's slabs go to the
// others (ThreadCache::GiveUpSlabs).
TEST(HeapConcurrency, ThreadsAllocatingTogetherGetSlabsOfTheirOwn) {
  EnsureStarted();
  constexpr size_t kSize = 208;
  // Each thread calls into the class fewer than kSlabLease / 2 times, so
  // neither's claim can lapse while it waits for a core (2 cores, a loaded
  // machine): the other cannot make kSlabLease calls alone.
  const int kObjects = static_cast<int>(CentralFreeList::kSlabLease / 2 - 1) *
                       static_cast<int>(kSizeClasses.info(kSizeClasses.ClassFor(kSize)).batch);
  for (int round = 0; round < 5; round++) {
    Partition* part = CreatePartition("slab-affinity", DefaultPolicy());
    ASSERT_NE(part, nullptr);
    std::vector<void*> objs[2];
    std::atomic<int> ready{0}, done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; t++) {
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 2) std::this_thread::yield();
        for (int i = 0; i < kObjects; i++) objs[t].push_back(PartitionMalloc(part, kSize));
        done.fetch_add(1);
        while (done.load() < 2) std::this_thread::yield();
      });
    }
    for (auto& th : ts) th.join();
    std::set<Span*> slabs[2];
    for (int t = 0; t < 2; t++) {
      for (void* p : objs[t]) {
        ASSERT_NE(p, nullptr);
        slabs[t].insert(GlobalPageMap().Get(p));
      }
    }
    EXPECT_GT(slabs[0].size(), 1u);
    for (Span* s : slabs[0]) EXPECT_EQ(slabs[1].count(s), 0u) << "round " << round << ": a slab of both threads";
    for (auto& v : objs) {
      for (void* p : v) PartitionFree(part, p);
    }
    DestroyPartition(part);
  }
}

TEST(HeapConcurrency, AllThreadsSharingTheSameClasses) {
  constexpr int kThreads = 8;
  std::vector<std::thread> ts;
  std::vector<void*> shared(kThreads * 1000);
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 1000; i++) {
        shared[t * 1000 + i] = Calloc(1, 48);
      }
    });
  }
  for (auto& th : ts) th.join();
  ts.clear();
  // Every thread frees the blocks another thread made.
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      int victim = (t + 1) % kThreads;
      for (int i = 0; i < 1000; i++) {
        auto* p = static_cast<unsigned char*>(shared[victim * 1000 + i]);
        for (int k = 0; k < 48; k++) ASSERT_EQ(p[k], 0);
        Free(p);
      }
    });
  }
  for (auto& th : ts) th.join();
}

}  // namespace
}  // namespace nitro
