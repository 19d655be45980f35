// Partitions as a program uses them, through the public headers only
// (nitroheap.h, mallocx.h, allocator.hpp), linked with NitroHeap as its
// malloc: thread caches per partition, traits and their effects, typed
// partitions, the mi_heap-style calls, malloc_stats_print, and the C++
// allocator and scoped partition.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nitroheap/allocator.hpp"
#include "nitroheap/mallocx.h"
#include "nitroheap/nitroheap.h"

namespace {

// Allocation and free pairs until `freed` comes back from `alloc`; -1 when
// it does not within `limit` pairs.
template <typename Alloc, typename Release>
int ReuseDistance(void* freed, Alloc alloc, Release release, int limit) {
  for (int i = 0; i < limit; i++) {
    void* p = alloc();
    release(p);
    if (p == freed) return i;
  }
  return -1;
}

TEST(Partitions, FreedMemoryIsNeverReturnedByAnotherPartition) {
  nitro_partition_t* a = nitro_partition_create("isolation-a");
  nitro_partition_t* b = nitro_partition_create("isolation-b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::set<void*> freed_in_a;
  for (int round = 0; round < 4; round++) {
    std::vector<void*> ps;
    for (int i = 0; i < 2000; i++) ps.push_back(nitro_partition_malloc(a, 16 + (i % 64) * 8));
    for (void* p : ps) {
      ASSERT_EQ(nitro_partition_of(p), a);
      freed_in_a.insert(p);
      nitro_partition_free(a, p);
    }
  }
  std::vector<void*> others;
  for (int i = 0; i < 8000; i++) {
    size_t size = 16 + (i % 64) * 8;
    void* from_b = nitro_partition_malloc(b, size);
    void* from_default = malloc(size);
    EXPECT_EQ(freed_in_a.count(from_b), 0u);
    EXPECT_EQ(freed_in_a.count(from_default), 0u);
    EXPECT_EQ(nitro_partition_of(from_b), b);
    others.push_back(from_b);
    others.push_back(from_default);
  }
  for (void* p : others) free(p);  // free() finds each block's partition
  EXPECT_EQ(nitro_partition_destroy(a), 0);
  EXPECT_EQ(nitro_partition_destroy(b), 0);
}

TEST(Partitions, ObjectsFreedByAnyThreadGoBackToTheirPartition) {
  nitro_partition_t* p = nitro_partition_create("cross-thread");
  ASSERT_NE(p, nullptr);
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; i++) blocks.push_back(nitro_partition_malloc(p, 48));
  std::thread t([&] {
    for (void* b : blocks) free(b);  // onto this thread's cache of p
    for (int i = 0; i < 5000; i++) {
      void* q = nitro_partition_malloc(p, 48);
      ASSERT_EQ(nitro_partition_of(q), p);
      free(q);
    }
  });
  t.join();
  // The thread's cache of p was flushed at its exit: p can be destroyed.
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

// Threads keep objects of a partition in their caches while another thread
// destroys it; a partition made afterwards (often in the same slot) must
// never hand out the dead one's memory.
TEST(Partitions, DestroyWhileOtherThreadsCacheItsObjects) {
  constexpr int kThreads = 4;
  std::atomic<nitro_partition_t*> current{nitro_partition_create("dying-0")};
  std::atomic<int> phase{0}, ready{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      for (int round = 0; round < 5; round++) {
        while (phase.load() < 2 * round) std::this_thread::yield();
        nitro_partition_t* part = current.load();
        for (int i = 0; i < 3000; i++) {
          void* q = nitro_partition_malloc(part, 32 + (i % 8) * 16);
          if (nitro_partition_of(q) != part) wrong++;
          nitro_partition_free(part, q);  // stays in this thread's cache
        }
        ready++;
        while (phase.load() < 2 * round + 1) std::this_thread::yield();
      }
    });
  }
  for (int round = 0; round < 5; round++) {
    phase = 2 * round;
    while (ready.load() != kThreads * (round + 1)) std::this_thread::yield();
    ASSERT_EQ(nitro_partition_destroy(current.load()), 0);
    std::string name = "dying-" + std::to_string(round + 1);
    current = nitro_partition_create(name.c_str());
    ASSERT_NE(current.load(), nullptr);
    phase = 2 * round + 1;
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(nitro_partition_destroy(current.load()), 0);
}

TEST(Traits, EachSetNamesOnePartition) {
  nitro_partition_t* silent = nitro_partition_for_traits(NITRO_TRAIT_TELEMETRY_SILENT);
  ASSERT_NE(silent, nullptr);
  EXPECT_EQ(nitro_partition_for_traits(NITRO_TRAIT_TELEMETRY_SILENT), silent);
  nitro_partition_t* both = nitro_partition_for_traits(NITRO_TRAIT_TELEMETRY_SILENT | NITRO_TRAIT_PERSISTENT);
  ASSERT_NE(both, nullptr);
  EXPECT_NE(both, silent);
  EXPECT_STREQ(nitro_partition_name(both), "traits:persist+silent");
  void* d = malloc(10);
  EXPECT_EQ(nitro_partition_for_traits(0), nitro_partition_of(d));
  free(d);
  // Trait partitions live as long as the process.
  errno = 0;
  EXPECT_EQ(nitro_partition_destroy(silent), -1);
  EXPECT_EQ(errno, EINVAL);
  void* p = mallocx(100, NITRO_TRAIT_TELEMETRY_SILENT);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(nitro_partition_of(p), silent);
  void* q = rallocx(p, 5000, NITRO_TRAIT_TELEMETRY_SILENT);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(nitro_partition_of(q), silent);
  EXPECT_EQ(sallocx(q, 0), nallocx(5000, NITRO_TRAIT_TELEMETRY_SILENT));
  dallocx(q, NITRO_TRAIT_TELEMETRY_SILENT);
}

// NITRO_TRAIT_MOVABLE names the movable partition (the one nitro_halloc
// charges and nitro_compact accepts), which the pointer API refuses: a raw
// pointer cannot follow a moved object.
TEST(Traits, MovableNamesTheMovablePartition) {
  nitro_partition_t* movable = nitro_partition_for_traits(NITRO_TRAIT_MOVABLE);
  ASSERT_NE(movable, nullptr);
  EXPECT_EQ(nitro_partition_for_traits(NITRO_TRAIT_MOVABLE), movable);
  EXPECT_STREQ(nitro_partition_name(movable), "traits:movable");
  errno = 0;
  EXPECT_EQ(nitro_partition_malloc(movable, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_partition_calloc(movable, 1, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(nitro_partition_destroy(movable), 0);  // trait partitions live as long as the process
  errno = 0;
  EXPECT_EQ(nitro_partition_for_traits(NITRO_TRAIT_MOVABLE | NITRO_TRAIT_SHARED_RW), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Traits, MovableMallocxAndConflictsAreRefused) {
  errno = 0;
  EXPECT_EQ(nitro_partition_for_traits(NITRO_TRAIT_SECURE_STRICT | NITRO_TRAIT_LOW_LATENCY), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_partition_for_traits(MALLOCX_ZERO), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(mallocx(10, NITRO_TRAIT_MOVABLE), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(mallocx(10, NITRO_TRAIT_SECURE_STRICT | NITRO_TRAIT_LOW_LATENCY), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(mallocx(10, NITRO_TRAIT_PERSISTENT | NITRO_MALLOCX_PARTITION(1)), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Traits, SharedRwObjectsOwnTheirCacheLines) {
  for (size_t size : {1, 8, 24, 63, 64, 65, 100, 200, 1000}) {
    std::vector<char*> ps;
    for (int i = 0; i < 50; i++) {
      auto* p = static_cast<char*>(mallocx(size, NITRO_TRAIT_SHARED_RW));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << size;
      EXPECT_EQ(sallocx(p, 0) % 64, 0u) << size;
      EXPECT_GE(sallocx(p, 0), size);
      ps.push_back(p);
    }
    for (char* p : ps) sdallocx(p, size, NITRO_TRAIT_SHARED_RW);
  }
}

// LOW_LATENCY has no quarantine: a freed object comes back within the few
// objects its thread cache holds; SECURE_STRICT keeps it back far longer.
TEST(Traits, LowLatencyReusesAtOnceSecureStrictWaits) {
  auto low_alloc = [] { return mallocx(64, NITRO_TRAIT_LOW_LATENCY); };
  auto low_free = [](void* p) { dallocx(p, NITRO_TRAIT_LOW_LATENCY); };
  auto strict_alloc = [] { return mallocx(64, NITRO_TRAIT_SECURE_STRICT); };
  auto strict_free = [](void* p) { dallocx(p, NITRO_TRAIT_SECURE_STRICT); };
  void* p = low_alloc();
  low_free(p);
  int low = ReuseDistance(p, low_alloc, low_free, 100000);
  void* s = strict_alloc();
  strict_free(s);
  int strict = ReuseDistance(s, strict_alloc, strict_free, 100000);
  printf("reuse distance (64-byte pairs): LOW_LATENCY %d, SECURE_STRICT %d\n", low, strict);
  ASSERT_GE(low, 0);
  EXPECT_LT(low, 300);
  // SECURE_STRICT holds 4 MiB per thread cache back (at most its class's
  // cache size): many more pairs before the slot comes back.
  EXPECT_TRUE(strict < 0 || strict > 2 * low) << "low latency " << low << ", secure strict " << strict;
}

// A sized free without flags finds the block's partition: a SECURE_STRICT
// block records its exact size, and sdallocx with it is accepted.
TEST(Traits, SizedFreeWithoutFlagsOfATraitBlock) {
  for (size_t size : {1, 20, 100, 1000, 5000, 100000}) {
    void* p = mallocx(size, NITRO_TRAIT_SECURE_STRICT);
    ASSERT_NE(p, nullptr);
    sdallocx(p, size, 0);
    void* q = mallocx(size, NITRO_TRAIT_SHARED_RW);
    ASSERT_NE(q, nullptr);
    sdallocx(q, size, 0);
  }
}

TEST(Traits, SecureStrictZeroesOnAllocAndFree) {
  nitro_partition_t* strict = nitro_partition_for_traits(NITRO_TRAIT_SECURE_STRICT);
  ASSERT_NE(strict, nullptr);
  for (int round = 0; round < 3; round++) {
    std::vector<unsigned char*> ps;
    for (int i = 0; i < 500; i++) {
      auto* p = static_cast<unsigned char*>(nitro_partition_malloc(strict, 100));
      ASSERT_NE(p, nullptr);
      for (int b = 0; b < 100; b++) ASSERT_EQ(p[b], 0) << "byte " << b;
      memset(p, 0xAB, 100);
      ps.push_back(p);
    }
    for (auto* p : ps) nitro_partition_free(strict, p);
  }
}

TEST(Typed, ServesOneSizeAndReportsTheWrongClass) {
  nitro_partition_t* nodes = nitro_partition_create_typed("typed-node", 40);
  ASSERT_NE(nodes, nullptr);
  std::vector<void*> ps;
  for (int i = 0; i < 1000; i++) {
    void* p = nitro_partition_malloc(nodes, 40);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(nitro_partition_of(p), nodes);
    ps.push_back(p);
  }
  EXPECT_NE(nitro_partition_malloc(nodes, 24), nullptr);  // served as a 40-byte object
  errno = 0;
  EXPECT_EQ(nitro_partition_malloc(nodes, 41), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nitro_partition_create_typed("typed-huge", size_t{1} << 20), nullptr);
  EXPECT_EQ(errno, EINVAL);
  for (void* p : ps) nitro_partition_free_typed(nodes, p, 40);
  void* other = malloc(40);
  EXPECT_DEATH(nitro_partition_free_typed(nodes, other, 40), "does not own");
  void* mine = nitro_partition_malloc(nodes, 40);
  EXPECT_DEATH(nitro_partition_free_typed(nodes, mine, 48), "40-byte objects");
  free(other);
}

TEST(PartitionCalls, CallocUsableSizeStrdup) {
  nitro_partition_t* p = nitro_partition_create("mi-heap-calls");
  ASSERT_NE(p, nullptr);
  auto* z = static_cast<unsigned char*>(nitro_partition_calloc(p, 100, 7));
  ASSERT_NE(z, nullptr);
  for (int i = 0; i < 700; i++) ASSERT_EQ(z[i], 0);
  EXPECT_GE(nitro_partition_usable_size(p, z), 700u);
  EXPECT_EQ(nitro_partition_usable_size(nitro_partition_for_traits(0), z), 0u);  // not its block
  EXPECT_EQ(nitro_partition_usable_size(p, nullptr), 0u);
  errno = 0;
  EXPECT_EQ(nitro_partition_calloc(p, SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  char* s = nitro_partition_strdup(p, "partitioned");
  EXPECT_STREQ(s, "partitioned");
  EXPECT_EQ(nitro_partition_of(s), p);
  char* n = nitro_partition_strndup(p, "partitioned", 4);
  EXPECT_STREQ(n, "part");
  nitro_partition_free(p, z);
  nitro_partition_free(p, s);
  nitro_partition_free(p, n);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

void Collect(void* opaque, const char* text) { static_cast<std::string*>(opaque)->append(text); }

TEST(MallocStatsPrint, WritesTheReportThroughTheCallback) {
  std::string out;
  malloc_stats_print(Collect, &out, nullptr);
  EXPECT_NE(out.find("NitroHeap heap report"), std::string::npos) << out;
  EXPECT_NE(out.find("partitions"), std::string::npos) << out;
}

// A JSON document's shape, without a parser: every brace and bracket
// outside strings closes, and the top level is one object.
bool BalancedJson(const std::string& s) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') {
      if (--depth < 0) return false;
      if (depth == 0 && s.find_first_not_of("\n", i + 1) != std::string::npos) return false;
    }
  }
  return depth == 0 && !in_string && !s.empty() && s[0] == '{';
}

std::string StatsPrinted(const char* opts) {
  std::string out;
  malloc_stats_print(Collect, &out, opts);
  return out;
}

// jemalloc's opts: "J" is the statistics JSON (nitro_stats_json's
// document); g, m, a, b, l leave out the general, merged, per-partition,
// per-class and large parts; letters jemalloc has but NitroHeap has no
// section for (x: mutexes, d, e, h) and unknown ones are ignored.
TEST(MallocStatsPrint, OptsSelectJsonAndSections) {
  std::string json = StatsPrinted("J");
  EXPECT_TRUE(BalancedJson(json)) << json.substr(0, 300);
  EXPECT_EQ(json.rfind("{\"version\":", 0), 0u) << json.substr(0, 100);
  for (const char* key : {"\"pid\"", "\"hardening_mode\"", "\"live_bytes\"", "\"partitions\"",
                          "\"default\"", "\"size_classes\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  // The same document as nitro_stats_json's (its keys; counters move).
  std::vector<char> direct(size_t{1} << 20);
  ASSERT_LT(nitro_stats_json(direct.data(), direct.size()), direct.size());
  EXPECT_EQ(json.compare(0, 12, direct.data(), 12), 0) << direct.data();

  std::string no_parts = StatsPrinted("Ja");
  EXPECT_TRUE(BalancedJson(no_parts));
  EXPECT_EQ(no_parts.find("\"partitions\""), std::string::npos);
  EXPECT_NE(no_parts.find("\"size_classes\""), std::string::npos);
  std::string no_bins = StatsPrinted("Jb");
  EXPECT_TRUE(BalancedJson(no_bins));
  EXPECT_EQ(no_bins.find("\"size_classes\""), std::string::npos);
  EXPECT_NE(no_bins.find("\"partitions\""), std::string::npos);
  std::string no_general = StatsPrinted("gJ");
  EXPECT_TRUE(BalancedJson(no_general));
  EXPECT_EQ(no_general.find("\"pid\""), std::string::npos);
  EXPECT_NE(no_general.find("\"live_bytes\""), std::string::npos);
  std::string bare = StatsPrinted("Jgmabl");
  EXPECT_TRUE(BalancedJson(bare)) << bare;
  EXPECT_EQ(bare.find(','), std::string::npos) << bare;  // {"version":N} alone
  // Unknown letters and jemalloc's sections NitroHeap lacks change nothing.
  std::string ignored = StatsPrinted("Jxdeh?z");
  EXPECT_TRUE(BalancedJson(ignored));
  for (const char* key : {"\"pid\"", "\"partitions\"", "\"size_classes\""}) {
    EXPECT_NE(ignored.find(key), std::string::npos) << key;
  }

  // The text report: m leaves the totals out, g the configuration line, l
  // the large line.
  std::string text = StatsPrinted("");
  EXPECT_NE(text.find("allocated by program"), std::string::npos) << text;
  EXPECT_NE(text.find("of which large"), std::string::npos) << text;
  EXPECT_NE(text.find("hardening"), std::string::npos) << text;
  EXPECT_EQ(StatsPrinted("m").find("allocated by program"), std::string::npos);
  EXPECT_EQ(StatsPrinted("g").find("hardening"), std::string::npos);
  std::string no_large = StatsPrinted("l");
  EXPECT_EQ(no_large.find("of which large"), std::string::npos);
  EXPECT_NE(no_large.find("allocated by program"), std::string::npos);
}

struct Node {
  int value;
  Node* next;
};

TEST(Cpp, ScopedPartitionSendsNewMallocAndContainersThere) {
  nitro_partition_t* p = nitro_partition_create("scoped");
  ASSERT_NE(p, nullptr);
  nitro_partition_t* outside = nitro_thread_partition();
  Node* node;
  void* raw;
  std::vector<int>* v;
  {
    nitro::scoped_partition guard(p);
    EXPECT_EQ(nitro_thread_partition(), p);
    node = new Node{1, nullptr};
    raw = malloc(200);
    v = new std::vector<int>(1000, 7);
    {
      nitro::scoped_partition inner(nullptr);  // nested: back to the default
      void* d = malloc(200);
      EXPECT_NE(nitro_partition_of(d), p);
      free(d);
    }
    EXPECT_EQ(nitro_thread_partition(), p);
  }
  EXPECT_EQ(nitro_thread_partition(), outside);
  EXPECT_EQ(nitro_partition_of(node), p);
  EXPECT_EQ(nitro_partition_of(raw), p);
  EXPECT_EQ(nitro_partition_of(v), p);
  EXPECT_EQ(nitro_partition_of(v->data()), p);
  void* after = malloc(200);
  EXPECT_NE(nitro_partition_of(after), p);
  // Freed outside the scope, by the owner's partition.
  delete node;
  free(raw);
  delete v;
  free(after);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

TEST(Cpp, PartitionAllocatorOverAPartitionOrATraitSet) {
  nitro_partition_t* p = nitro_partition_create("stl");
  ASSERT_NE(p, nullptr);
  {
    std::vector<long, nitro::partition_allocator<long>> v{nitro::partition_allocator<long>(p)};
    for (long i = 0; i < 10000; i++) v.push_back(i);
    EXPECT_EQ(nitro_partition_of(v.data()), p);
    auto low = nitro::partition_allocator<int>::for_traits(NITRO_TRAIT_LOW_LATENCY);
    std::vector<int, nitro::partition_allocator<int>> w(100, 3, low);
    EXPECT_EQ(nitro_partition_of(w.data()), nitro_partition_for_traits(NITRO_TRAIT_LOW_LATENCY));
    EXPECT_THROW(nitro::partition_allocator<int>::for_traits(NITRO_TRAIT_MOVABLE), std::bad_alloc);
  }
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

}  // namespace
