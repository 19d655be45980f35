// mallctl as NitroHeap answers it (abi/mallctl.cc): what jemalloc's own
// behaviour cannot show (jemalloc_api_test compares the shared part): the
// one arena, the background thread fixed at start-up, memory actually
// returned by a purge, names NitroHeap does not serve, and bad input.
#include <errno.h>
#include <gtest/gtest.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "nitroheap/mallocx.h"
#include "nitroheap/nitroheap.h"

namespace {

size_t Stat(const char* name) {
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  EXPECT_EQ(mallctl("epoch", &epoch, &len, &epoch, len), 0);
  size_t value = 0;
  len = sizeof(value);
  EXPECT_EQ(mallctl(name, &value, &len, nullptr, 0), 0) << name;
  return value;
}

TEST(MallctlTest, TheStatisticsAreTheHeapReportsFigures) {
  // A block that is not sampled is certain only with sampling off; the
  // statistics count guarded blocks too (jemalloc_api_test, sample_rate=1).
  std::vector<void*> blocks;
  size_t before = Stat("stats.allocated");
  for (int i = 0; i < 16; i++) {
    blocks.push_back(malloc(1 << 20));
    memset(blocks.back(), 1, 1 << 20);
  }
  size_t allocated = Stat("stats.allocated");
  EXPECT_GE(allocated, before + (16u << 20));
  EXPECT_LT(allocated, before + (17u << 20));  // nothing counted twice
  EXPECT_GE(Stat("stats.active"), allocated);
  EXPECT_GE(Stat("stats.mapped"), Stat("stats.active"));
  EXPECT_GE(Stat("stats.resident"), Stat("stats.mapped"));
  EXPECT_GT(Stat("stats.retained"), 0u);  // reserved address space beyond what is committed
  for (void* p : blocks) free(p);
}

// Objects freed into another partition's thread cache are the allocator's,
// not the program's: stats.allocated (and the heap report's "allocated by
// program", the same figure) drops when they are freed, as it does for
// malloc's own cache.
TEST(MallctlTest, APartitionsThreadCachedObjectsAreNotAllocated) {
  nitro_partition_t* part = nitro_partition_for_traits(NITRO_TRAIT_LOW_LATENCY);
  ASSERT_NE(part, nullptr);
  nitro_partition_free(part, nitro_partition_malloc(part, 256));  // the thread's cache exists
  constexpr size_t kObjects = 2000, kSize = 256;
  std::vector<void*> blocks;
  blocks.reserve(kObjects);  // before the first reading: the vector stays live
  size_t before = Stat("stats.allocated");
  for (size_t i = 0; i < kObjects; i++) blocks.push_back(nitro_partition_malloc(part, kSize));
  size_t held = Stat("stats.allocated");
  EXPECT_GE(held, before + kObjects * kSize * 9 / 10);  // a few may be guarded samples
  for (void* p : blocks) nitro_partition_free(part, p);
  // What the thread's cache keeps of them (a few batches; the rest went
  // to the middle layer) counts as cached, not allocated: nothing stays
  // counted but what gtest allocated between the readings.
  EXPECT_LT(Stat("stats.allocated"), before + 4 * kSize);
}

TEST(MallctlTest, APurgeReturnsFreePagesToTheKernel) {
  std::vector<void*> blocks;
  for (int i = 0; i < 32; i++) {
    blocks.push_back(malloc(1 << 20));
    memset(blocks.back(), 1, 1 << 20);
  }
  for (void* p : blocks) free(p);
  size_t mapped = Stat("stats.mapped");
  EXPECT_EQ(mallctl("arena.0.purge", nullptr, nullptr, nullptr, 0), 0);
  // The freed 32 MiB (less what the large-block quarantine holds) went back.
  EXPECT_LT(Stat("stats.mapped") + (16u << 20), mapped);
  EXPECT_EQ(mallctl("arena.1.decay", nullptr, nullptr, nullptr, 0), 0);
  EXPECT_EQ(mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0), 0);
  // Arenas NitroHeap does not have.
  EXPECT_EQ(mallctl("arena.2.purge", nullptr, nullptr, nullptr, 0), ENOENT);
  EXPECT_EQ(mallctl("arena.18446744073709551616.purge", nullptr, nullptr, nullptr, 0), ENOENT);
}

// A successful call leaves errno alone (the name parser uses strtoull).
TEST(MallctlTest, ASuccessfulCallKeepsErrno) {
  size_t value = 0, len = sizeof(value);
  errno = 1234;
  ASSERT_EQ(mallctl("arena.0.purge", nullptr, nullptr, nullptr, 0), 0);
  ASSERT_EQ(mallctl("stats.allocated", &value, &len, nullptr, 0), 0);
  EXPECT_EQ(errno, 1234);
}

TEST(MallctlTest, OneArena) {
  unsigned narenas = 0;
  size_t len = sizeof(narenas);
  ASSERT_EQ(mallctl("arenas.narenas", &narenas, &len, nullptr, 0), 0);
  EXPECT_EQ(narenas, 1u);
  size_t quantum = 0;
  len = sizeof(quantum);
  ASSERT_EQ(mallctl("arenas.quantum", &quantum, &len, nullptr, 0), 0);
  EXPECT_EQ(quantum, 16u);
}

TEST(MallctlTest, TheBackgroundThreadIsFixedAtStartUp) {
  bool running = false;
  size_t len = sizeof(running);
  ASSERT_EQ(mallctl("background_thread", &running, &len, nullptr, 0), 0);
  // Asking for the state it is in succeeds (redis does at start-up); a
  // change is refused, not ignored.
  bool same = running, other = !running;
  EXPECT_EQ(mallctl("background_thread", nullptr, nullptr, &same, sizeof(same)), 0);
  EXPECT_EQ(mallctl("background_thread", nullptr, nullptr, &other, sizeof(other)), EPERM);
  EXPECT_EQ(mallctl("background_thread", nullptr, nullptr, &other, 4), EINVAL);
}

TEST(MallctlTest, TheEpochAdvancesOnEachWrite) {
  uint64_t e0 = 0, e1 = 0, one = 1;
  size_t len = sizeof(e0);
  ASSERT_EQ(mallctl("epoch", &e0, &len, nullptr, 0), 0);
  ASSERT_EQ(mallctl("epoch", &e1, &len, &one, sizeof(one)), 0);
  EXPECT_EQ(e1, e0 + 1);
}

TEST(MallctlTest, NamesNitroHeapDoesNotServeAreUnknown) {
  size_t value = 0, len = sizeof(value);
  for (const char* name : {"version", "opt.narenas", "arenas.create", "thread.arena", "stats.metadata",
                           "stats.arenas.0.pactive", "arena.0.extent_hooks", "tcache.create", "prof.dump",
                           "stats", "stats.", ".allocated", "stats.allocated.", "stats..allocated",
                           "stats.allocatedx", "arena.-1.purge", "arena. 0.purge", "arena.0x.purge", "arena..purge",
                           "arena.0", ""}) {
    EXPECT_EQ(mallctl(name, &value, &len, nullptr, 0), ENOENT) << '"' << name << '"';
  }
  EXPECT_EQ(mallctl(nullptr, &value, &len, nullptr, 0), EINVAL);
}

TEST(MallctlTest, MibsCarryTheArenaIndex) {
  size_t mib[4], miblen = 4;
  ASSERT_EQ(mallctlnametomib("arena.0.decay", mib, &miblen), 0);
  EXPECT_EQ(miblen, 3u);
  mib[1] = 4096;
  EXPECT_EQ(mallctlbymib(mib, miblen, nullptr, nullptr, nullptr, 0), 0);
  mib[1] = 3;
  EXPECT_EQ(mallctlbymib(mib, miblen, nullptr, nullptr, nullptr, 0), ENOENT);
  // A MIB that is not one: out-of-range entry, wrong length, null.
  size_t forged[3] = {1000, 0, 0};
  EXPECT_EQ(mallctlbymib(forged, 3, nullptr, nullptr, nullptr, 0), ENOENT);
  miblen = 4;
  ASSERT_EQ(mallctlnametomib("stats.active", mib, &miblen), 0);
  size_t value = 0, len = sizeof(value);
  EXPECT_EQ(mallctlbymib(mib, 3, &value, &len, nullptr, 0), ENOENT);
  EXPECT_EQ(mallctlbymib(mib, 2, &value, &len, nullptr, 0), 0);
  EXPECT_GT(value, 0u);
  EXPECT_EQ(mallctlbymib(nullptr, 2, &value, &len, nullptr, 0), EINVAL);
  EXPECT_EQ(mallctlnametomib("stats.active", nullptr, &miblen), EINVAL);
  EXPECT_EQ(mallctlnametomib("stats.active", mib, nullptr), EINVAL);
  EXPECT_EQ(mallctlnametomib("no.such.name", mib, &miblen), ENOENT);
}

TEST(MallctlTest, ActionsTakeNoValue) {
  size_t value = 0, len = sizeof(value);
  EXPECT_EQ(mallctl("thread.tcache.flush", &value, &len, nullptr, 0), EPERM);
  EXPECT_EQ(mallctl("thread.tcache.flush", nullptr, nullptr, &value, sizeof(value)), EPERM);
  EXPECT_EQ(mallctl("arena.0.purge", nullptr, nullptr, &value, sizeof(value)), EPERM);
  EXPECT_EQ(mallctl("thread.allocated", nullptr, nullptr, &value, sizeof(value)), EPERM);
  EXPECT_EQ(mallctl("arenas.narenas", nullptr, nullptr, &value, sizeof(value)), EPERM);
}

// Under NITROHEAP=legacy the C library serves malloc: mallctl has nothing
// to report and says so (run only by mallctl_legacy_test).
TEST(MallctlLegacyTest, AnswersEnosys) {
  ASSERT_EQ(nitro_is_active(), 0);
  size_t value = 0, len = sizeof(value);
  EXPECT_EQ(mallctl("stats.allocated", &value, &len, nullptr, 0), ENOSYS);
  EXPECT_EQ(mallctl("arena.0.purge", nullptr, nullptr, nullptr, 0), ENOSYS);
  EXPECT_EQ(mallctl("no.such.name", &value, &len, nullptr, 0), ENOENT);
  size_t mib[3], miblen = 3;
  ASSERT_EQ(mallctlnametomib("stats.allocated", mib, &miblen), 0);
  EXPECT_EQ(mallctlbymib(mib, miblen, &value, &len, nullptr, 0), ENOSYS);
}

}  // namespace
