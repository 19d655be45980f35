// Counters checked exactly on known workloads.
#include "telemetry/stats.h"

#include <gtest/gtest.h>
#include <string.h>

#include <string>
#include <thread>
#include <vector>

#include "core/heap.h"
#include "core/partition.h"

namespace nitro {
namespace {

const nitro_counters_t* PartitionCounters(const nitro_stats_t& st, const char* name) {
  for (uint32_t i = 0; i < st.partition_count; i++) {
    if (strcmp(st.partitions[i].name, name) == 0) return &st.partitions[i].counters;
  }
  return nullptr;
}

TEST(Stats, PartitionCountersAreExact) {
  Partition* p = Partition::Create("stats_exact", PartitionConfig{});
  ASSERT_NE(p, nullptr);
  std::vector<void*> small, large;
  for (int i = 0; i < 1000; i++) small.push_back(p->Allocate(100));  // the 112-byte class
  for (int i = 0; i < 3; i++) large.push_back(p->Allocate(300000));
  nitro_stats_t st;
  CollectStats(&st);
  const nitro_counters_t* c = PartitionCounters(st, "stats_exact");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->allocations, 1003u);
  EXPECT_EQ(c->frees, 0u);
  EXPECT_EQ(c->live_objects, 1003u);
  EXPECT_EQ(c->live_bytes, 1000u * 112 + 3u * RoundUp(300000, kPageSize));
  // Small objects: the middle of the 112-byte class's sizes (97..112); large: exact.
  EXPECT_EQ(c->live_requested_bytes, 1000u * ((97 + 112) / 2) + 3u * 300000);
  EXPECT_GE(c->committed_bytes, c->live_bytes);
  // Regions grow from 64 MiB: the first one holds all of this.
  EXPECT_EQ(c->mapped_bytes, size_t{64} << 20);
  for (int i = 0; i < 500; i++) p->Free(small[i]);
  p->Free(large[0]);
  CollectStats(&st);
  c = PartitionCounters(st, "stats_exact");
  EXPECT_EQ(c->allocations, 1003u);
  EXPECT_EQ(c->frees, 501u);
  EXPECT_EQ(c->live_objects, 502u);
  EXPECT_EQ(c->live_bytes, 500u * 112 + 2u * RoundUp(300000, kPageSize));
  EXPECT_GT(c->quarantine_bytes, 0u);  // the freed large run waits, protected
  EXPECT_GT(c->slab_free_objects, 0u);
  for (size_t i = 500; i < small.size(); i++) p->Free(small[i]);
  p->Free(large[1]);
  p->Free(large[2]);
  CollectStats(&st);
  c = PartitionCounters(st, "stats_exact");
  EXPECT_EQ(c->live_objects, 0u);
  EXPECT_EQ(c->live_bytes, 0u);
  Partition::Destroy(p);
}

TEST(Stats, DefaultPartitionCountsPerClassAcrossThreads) {
  EnsureStarted();
  nitro_stats_t before;
  CollectStats(&before);
  GuardedPoolCounts gb = GuardedCounts();
  const int cls = kSizeClasses.ClassFor(200);  // the 208-byte class
  std::thread t([] {
    std::vector<void*> v;
    for (int i = 0; i < 5000; i++) v.push_back(Malloc(200));
    for (int i = 0; i < 2000; i++) Free(v[i]);
    // The rest stay live; the thread exits and its counts must survive.
    static std::vector<void*> keep;
    keep.assign(v.begin() + 2000, v.end());
  });
  t.join();
  nitro_stats_t after;
  CollectStats(&after);
  GuardedPoolCounts ga = GuardedCounts();
  const nitro_class_stats_t& b = before.classes[cls - 1];
  const nitro_class_stats_t& a = after.classes[cls - 1];
  EXPECT_EQ(a.size, 208u);
  // Allocations sampled into the guarded pool (sample_rate) count there.
  EXPECT_EQ(a.allocations - b.allocations + (ga.allocations - gb.allocations), 5000u);
  EXPECT_EQ(a.frees - b.frees + (ga.frees - gb.frees), 2000u);
  EXPECT_EQ(a.live_objects - b.live_objects + (ga.live_objects - gb.live_objects), 3000u);
  // One of the allocations may have been sampled into the guarded pool
  // (sample_rate): it is counted there, with its requested size.
  EXPECT_EQ(after.total.live_objects - before.total.live_objects, 3000u);
  uint64_t live_bytes = after.total.live_bytes - before.total.live_bytes;
  EXPECT_LE(live_bytes, 3000u * 208);
  EXPECT_GE(live_bytes, 3000u * 208 - 8 * (after.total.sampled_allocations - before.total.sampled_allocations));
}

TEST(Stats, JsonHasEveryCounterAndPartition) {
  EnsureStarted();
  Partition* p = Partition::Create("json \"quoted\"", PartitionConfig{});
  nitro_stats_t st;
  CollectStats(&st);
  size_t need = StatsToJson(st, nullptr, 0);
  std::string json(need + 1, '\0');
  EXPECT_EQ(StatsToJson(st, &json[0], json.size()), need);
  json.resize(need);
  for (const char* key : {"\"live_bytes\":", "\"mapped_bytes\":", "\"partitions\":{", "\"default\":{",
                          "\"json \\\"quoted\\\"\":{", "\"size_classes\":[{\"size\":16,",
                          "\"remote_free_backlog\":", "\"hardening_mode\":\"balanced\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json.substr(0, 400);
  }
  EXPECT_EQ(json.back(), '}');
  // A short buffer gets a truncated, NUL-terminated prefix and the full length.
  char small[32];
  EXPECT_EQ(StatsToJson(st, small, sizeof(small)), need);
  EXPECT_EQ(strlen(small), sizeof(small) - 1);
  Partition::Destroy(p);
}

TEST(Stats, JsonNamesAreValidUtf8WhateverTheBytes) {
  EnsureStarted();
  // Latin-1 bytes, a truncated sequence, an overlong '/', a surrogate, DEL,
  // then valid two-, three- and four-byte sequences.
  Partition* p = Partition::Create("a\xe9" "b\xe2\x82" "c\xc0\xaf\xed\xa0\x80\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                                   PartitionConfig{});
  ASSERT_NE(p, nullptr);
  nitro_stats_t st;
  CollectStats(&st);
  std::string json(StatsToJson(st, nullptr, 0) + 1, '\0');
  json.resize(StatsToJson(st, &json[0], json.size()));
  const char* expected =
      "\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\u007f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":{";
  EXPECT_NE(json.find(expected), std::string::npos) << json.substr(0, 600);
  Partition::Destroy(p);
}

TEST(Stats, CounterNames) {
  nitro_counters_t c;
  memset(&c, 0, sizeof(c));
  c.quarantine_bytes = 42;
  uint64_t v = 0;
  EXPECT_TRUE(CounterByName(c, "quarantine_bytes", &v));
  EXPECT_EQ(v, 42u);
  EXPECT_FALSE(CounterByName(c, "no_such_counter", &v));
}

}  // namespace
}  // namespace nitro

namespace nitro {
namespace {

TEST(Stats, IdleBatchesGoBackByAge) {
  EnsureStarted();
  std::thread t([] {
    std::vector<void*> v;
    for (int i = 0; i < 20000; i++) v.push_back(Malloc(48));
    for (void* p : v) Free(p);
  });
  t.join();  // the exiting thread's cache went to the middle layer in batches
  nitro_stats_t st;
  CollectStats(&st);
  const nitro_counters_t* c = PartitionCounters(st, "default");
  ASSERT_NE(c, nullptr);
  uint64_t slabs_before = c->slabs;
  EXPECT_GT(c->middle_layer_bytes, 0u);
  // Everything was stamped before the end of time: all of it goes.
  DefaultPartition()->ReleaseIdleObjects(UINT64_MAX);
  CollectStats(&st);
  c = PartitionCounters(st, "default");
  EXPECT_EQ(c->middle_layer_bytes, 0u);
  EXPECT_LT(c->slabs, slabs_before);
}

}  // namespace
}  // namespace nitro
