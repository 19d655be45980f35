// The document store on movable allocations, linked with NitroHeap: most
// documents deleted, compaction gives their memory back while every
// remaining document reads the same; stores on several threads with a
// compactor running beside them.
#include "testing/movable_store/doc_store.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nitroheap/movable.h"

namespace docstore {
namespace {

std::string Value(int i, int version = 0) {
  std::string v;
  size_t len = 20 + (i * 7919) % 400;
  for (size_t j = 0; j < len; j++) v.push_back(static_cast<char>('a' + (i + version + j) % 26));
  return v;
}

uint64_t Stat(const char* name) {
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(nitro_ctl((std::string("stats.movable.") + name).c_str(), &v, &len, nullptr, 0), 0);
  return v;
}

TEST(DocStoreTest, DeletesThenCompactionReturnsMemory) {
  DocStore store;
  constexpr int kDocs = 50000;
  for (int i = 0; i < kDocs; i++) ASSERT_TRUE(store.Put("doc-" + std::to_string(i), Value(i)));
  EXPECT_EQ(store.size(), static_cast<size_t>(kDocs));
  std::mt19937 rng(3);
  std::vector<int> kept;
  for (int i = 0; i < kDocs; i++) {
    if (rng() % 10 == 0) kept.push_back(i); else ASSERT_TRUE(store.Erase("doc-" + std::to_string(i)));
  }
  EXPECT_FALSE(store.Erase("doc-nothing"));
  uint64_t slabs = Stat("slabs"), pages = Stat("pages_returned");
  nitro_quiescent();
  EXPECT_GT(DocStore::Compact(), 0u);
  EXPECT_LT(Stat("slabs"), slabs / 3) << "the survivors fill a fraction of the slabs";
  EXPECT_GT(Stat("pages_returned"), pages);
  std::string v;
  for (int i : kept) {
    ASSERT_TRUE(store.Get("doc-" + std::to_string(i), &v));
    ASSERT_EQ(v, Value(i)) << i;
  }
  EXPECT_FALSE(store.Get("doc-" + std::to_string(kDocs), &v));
  // Overwrite, append (may move), view in place (pinned).
  int k = kept[0];
  ASSERT_TRUE(store.Put("doc-" + std::to_string(k), "short"));
  ASSERT_TRUE(store.Append("doc-" + std::to_string(k), std::string(3000, 'x')));
  ASSERT_TRUE(store.Get("doc-" + std::to_string(k), &v));
  EXPECT_EQ(v, "short" + std::string(3000, 'x'));
  size_t seen = 0;
  EXPECT_TRUE(store.View("doc-" + std::to_string(kept[1]), [&](std::string_view value) {
    DocStore::Compact();  // pinned: stays put while we look
    seen = value.size();
    EXPECT_EQ(value, Value(kept[1]));
  }));
  EXPECT_EQ(seen, Value(kept[1]).size());
}

TEST(DocStoreTest, StoresOnThreadsWhileCompacting) {
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  nitro_thread_offline();  // this thread only waits from here on
  std::thread compactor([&] {
    while (!done.load()) {
      DocStore::Compact();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; t++) {
    threads.emplace_back([&, t] {
      DocStore store;
      std::mt19937 rng(t + 10);
      std::vector<int> version(2000, -1);
      for (int op = 0; op < 40000; op++) {
        int i = rng() % 2000;
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        std::string v;
        if (version[i] >= 0 && (!store.Get(key, &v) || v != Value(i, version[i]))) bad++;
        if (rng() % 3 == 0) {
          store.Erase(key);
          version[i] = -1;
        } else {
          version[i] = op;
          store.Put(key, Value(i, op));
        }
        nitro_quiescent();  // between requests
      }
      nitro_thread_offline();
    });
  }
  for (auto& th : threads) th.join();
  done.store(true);
  compactor.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace docstore
