// Heap contracts at the engine's level (core/contract.h): the budget's
// state machine, hard and soft limits of partitions, pressure delivery
// under many threads, the process limit, the cgroup v2 reader and the
// contract options. Runs under the system malloc (and --config=tsan).
#include "core/contract.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/partition.h"

namespace nitro {
namespace {

constexpr size_t kBlock = 256 << 10;  // a large block: its pages are charged at once

Partition* NewPartition(const char* name) {
  Partition* p = Partition::Create(name, PartitionConfig{});
  EXPECT_NE(p, nullptr) << name;
  return p;
}

// Bytes one kBlock allocation charges (its pages and guard page).
size_t BlockCharge(Partition* p) {
  size_t before = p->contract().State().use;
  void* b = p->Allocate(kBlock);
  EXPECT_NE(b, nullptr);
  size_t charge = p->contract().State().use - before;
  p->Free(b);
  EXPECT_EQ(p->contract().State().use, before);
  return charge;
}

TEST(Budget, CountsOneCrossingUntilUseFallsBelowTheRearmPoint) {
  constexpr size_t kPage = kPageSize;
  Budget b;
  b.SetLimits(0, 80 * kPage);
  EXPECT_EQ(b.Charge(79 * kPage), ChargeResult::kOk);
  EXPECT_EQ(b.Charge(kPage), ChargeResult::kCrossed);  // reaches the soft limit exactly
  EXPECT_EQ(b.Charge(10 * kPage), ChargeResult::kOk);  // still above: no second crossing
  b.Uncharge(20 * kPage);                              // 70 pages: at the rearm point, not below
  EXPECT_EQ(Budget::RearmPoint(80 * kPage), 70 * kPage);
  EXPECT_EQ(b.Charge(10 * kPage), ChargeResult::kOk);
  b.Uncharge(11 * kPage);                              // 69 pages: below it, armed again
  EXPECT_EQ(b.Charge(11 * kPage), ChargeResult::kCrossed);
  EXPECT_EQ(b.used(), 80 * kPage);
  b.SetLimits(100 * kPage, 80 * kPage);
  EXPECT_EQ(b.Charge(21 * kPage), ChargeResult::kRefused);
  EXPECT_EQ(b.used(), 80 * kPage);  // a refusal changes nothing
  EXPECT_EQ(b.Charge(20 * kPage), ChargeResult::kOk);
}

TEST(Contract, RejectsASoftLimitAboveTheHardOneAndKeepsTheOldLimits) {
  Partition* p = NewPartition("contract-einval");
  EXPECT_EQ(p->contract().SetLimits(size_t{8} << 20, size_t{4} << 20), 0);
  EXPECT_EQ(p->contract().SetLimits(size_t{1} << 20, size_t{2} << 20), EINVAL);
  EXPECT_EQ(p->contract().State().hard_limit, size_t{8} << 20);
  EXPECT_EQ(p->contract().State().soft_limit, size_t{4} << 20);
  EXPECT_EQ(p->contract().SetLimits(0, size_t{2} << 20), 0);  // a soft limit alone
  Partition::Destroy(p);
}

TEST(Contract, HardLimitFailsWithEnomemLeavesOthersAloneAndRecoversAfterFrees) {
  Partition* p = NewPartition("contract-hard");
  Partition* other = NewPartition("contract-other");
  size_t charge = BlockCharge(p);
  ASSERT_GT(charge, kBlock);  // the guard page counts too
  const size_t hard = 10 * charge + charge / 2;
  ASSERT_EQ(p->contract().SetLimits(hard, 0), 0);
  std::vector<void*> blocks;
  for (;;) {
    errno = 0;
    void* b = p->Allocate(kBlock);
    if (b == nullptr) {
      EXPECT_EQ(errno, ENOMEM);
      break;
    }
    blocks.push_back(b);
    ASSERT_LE(blocks.size(), 10u);
  }
  EXPECT_EQ(blocks.size(), 10u);
  EXPECT_LE(p->contract().State().use, hard);
  EXPECT_GE(p->contract().State().refusals, 1u);
  // Small objects need a new slab: refused too, cleanly.
  size_t smalls = 0;
  std::vector<void*> small_blocks;
  while (void* s = p->Allocate(1000)) {
    small_blocks.push_back(s);
    ASSERT_LT(++smalls, size_t{1} << 20);
  }
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_LE(p->contract().State().use, hard);
  // Another partition is not affected.
  void* elsewhere = other->Allocate(4 * kBlock);
  ASSERT_NE(elsewhere, nullptr);
  memset(elsewhere, 1, 4 * kBlock);
  other->Free(elsewhere);
  // Frees make room again: the partition is usable.
  p->Free(blocks.back());
  blocks.pop_back();
  void* again = p->Allocate(kBlock);
  ASSERT_NE(again, nullptr);
  blocks.push_back(again);
  for (void* s : small_blocks) p->Free(s);
  for (void* b : blocks) p->Free(b);
  // Empty slabs the middle layer keeps count until they go back.
  p->ReleaseFreeMemory();
  EXPECT_EQ(p->contract().State().use, 0u);
  Partition::Destroy(p);
  Partition::Destroy(other);
}

TEST(Contract, FreedSmallObjectsMakeRoomForLargeBlocksAgain) {
  Partition* p = NewPartition("contract-drain");
  size_t charge = BlockCharge(p);
  ASSERT_EQ(p->contract().SetLimits(4 * charge, 0), 0);
  std::vector<void*> smalls;
  while (void* s = p->Allocate(1000)) smalls.push_back(s);
  EXPECT_GT(p->contract().State().use, 3 * charge);
  for (void* s : smalls) p->Free(s);
  // Empty slabs the middle layer keeps still count as use; a refused
  // request returns them and retries, so all four blocks fit exactly.
  std::vector<void*> blocks;
  for (int i = 0; i < 4; i++) {
    void* b = p->Allocate(kBlock);
    ASSERT_NE(b, nullptr) << i;
    blocks.push_back(b);
  }
  EXPECT_EQ(p->contract().State().use, 4 * charge);
  for (void* b : blocks) p->Free(b);
  Partition::Destroy(p);
}

struct PressureLog {
  std::atomic<int> calls{0};
  std::atomic<size_t> last_used{0};
  std::atomic<size_t> last_soft{0};
  Partition* partition = nullptr;
  Partition* scratch = nullptr;  // the callback allocates here and in `partition`
};

void OnPressure(::nitro_partition* partition, size_t used, size_t soft, void* ctx) {
  auto* log = static_cast<PressureLog*>(ctx);
  EXPECT_EQ(reinterpret_cast<Partition*>(partition), log->partition);
  log->last_used.store(used);
  log->last_soft.store(soft);
  // Runs outside every allocator lock: allocating in the very partition
  // that crossed (its page heap and class locks) must not deadlock.
  void* a = log->partition->Allocate(100);
  void* b = log->scratch->Allocate(kBlock);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  log->partition->Free(a);
  log->scratch->Free(b);
  log->calls.fetch_add(1);
}

TEST(Contract, SoftLimitCallsBackOncePerCrossingWithHysteresis) {
  Partition* p = NewPartition("contract-soft");
  PressureLog log;
  log.partition = p;
  log.scratch = NewPartition("contract-scratch");
  size_t charge = BlockCharge(p);
  const size_t soft = 8 * charge;  // the 8th block crosses
  ASSERT_EQ(p->contract().SetLimits(0, soft), 0);
  p->contract().SetActions(0);
  p->contract().SetCallback(OnPressure, &log);
  std::vector<void*> blocks;
  for (int i = 0; i < 7; i++) blocks.push_back(p->Allocate(kBlock));
  EXPECT_EQ(log.calls.load(), 0);
  blocks.push_back(p->Allocate(kBlock));
  EXPECT_EQ(log.calls.load(), 1);  // delivered before Allocate returned
  EXPECT_GE(log.last_used.load(), soft);
  EXPECT_EQ(log.last_soft.load(), soft);
  for (int i = 0; i < 4; i++) blocks.push_back(p->Allocate(kBlock));
  EXPECT_EQ(log.calls.load(), 1);  // still above: the same crossing
  // Down to exactly 7 blocks: at 7/8 of the limit, not below it.
  while (blocks.size() > 7) {
    p->Free(blocks.back());
    blocks.pop_back();
  }
  blocks.push_back(p->Allocate(kBlock));
  EXPECT_EQ(log.calls.load(), 1);  // not re-armed: no second signal
  while (blocks.size() > 6) {
    p->Free(blocks.back());
    blocks.pop_back();
  }
  blocks.push_back(p->Allocate(kBlock));
  blocks.push_back(p->Allocate(kBlock));
  EXPECT_EQ(log.calls.load(), 2);  // re-armed below 7/8, crossed again
  ContractState st = p->contract().State();
  EXPECT_EQ(st.crossings, 2u);
  EXPECT_EQ(st.callbacks, 2u);
  EXPECT_NE(st.last_pressure_ns, 0u);
  for (void* b : blocks) p->Free(b);
  Partition::Destroy(p);
  Partition::Destroy(log.scratch);
}

void CountPressure(::nitro_partition*, size_t, size_t, void* ctx) {
  static_cast<std::atomic<int>*>(ctx)->fetch_add(1);
}

// Eight threads push use over the soft limit together, then all free to
// below the rearm point, round after round: each round is exactly one
// crossing, whichever thread's charge makes it, and exactly one callback.
TEST(Contract, ManyThreadsAroundTheSoftLimitGetOneCallbackPerCrossing) {
  Partition* p = NewPartition("contract-threads");
  size_t charge = BlockCharge(p);
  constexpr int kThreads = 8, kRounds = 40, kPerThread = 4;
  const size_t soft = (kThreads * kPerThread - 4) * charge;  // crossed inside the fill phase
  ASSERT_EQ(p->contract().SetLimits(0, soft), 0);
  p->contract().SetActions(0);
  std::atomic<int> calls{0};
  p->contract().SetCallback(CountPressure, &calls);
  std::atomic<int> arrived{0};
  auto barrier = [&](int generation) {
    arrived.fetch_add(1);
    while (arrived.load() < generation * kThreads) std::this_thread::yield();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      int generation = 0;
      std::vector<void*> mine;
      for (int round = 0; round < kRounds; round++) {
        for (int i = 0; i < kPerThread; i++) {
          void* b = p->Allocate(kBlock);
          ASSERT_NE(b, nullptr);
          mine.push_back(b);
        }
        barrier(++generation);
        for (void* b : mine) p->Free(b);
        mine.clear();
        barrier(++generation);
      }
    });
  }
  for (auto& th : threads) th.join();
  ContractState st = p->contract().State();
  EXPECT_EQ(st.crossings, static_cast<uint64_t>(kRounds));
  EXPECT_EQ(calls.load(), kRounds);
  EXPECT_EQ(st.callbacks, static_cast<uint64_t>(kRounds));
  EXPECT_EQ(st.use, 0u);
  Partition::Destroy(p);
}

// Random traffic from eight threads around the limit: whatever the
// interleaving, every crossing the budget counted is called back once.
TEST(Contract, RandomTrafficCallsBackEveryCountedCrossingExactlyOnce) {
  Partition* p = NewPartition("contract-random");
  size_t charge = BlockCharge(p);
  // Low enough that even one thread alone crosses it (threads on a loaded
  // machine may well run one after the other).
  ASSERT_EQ(p->contract().SetLimits(0, 4 * charge), 0);
  p->contract().SetActions(0);
  std::atomic<int> calls{0};
  p->contract().SetCallback(CountPressure, &calls);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      unsigned seed = 12345u + static_cast<unsigned>(t);
      std::vector<void*> mine;
      for (int i = 0; i < 1500; i++) {
        bool grow = mine.size() < 2 || (mine.size() < 6 && rand_r(&seed) % 2 == 0);
        if (grow) {
          void* b = p->Allocate(kBlock);
          ASSERT_NE(b, nullptr);
          mine.push_back(b);
        } else {
          p->Free(mine.back());
          mine.pop_back();
        }
      }
      for (void* b : mine) p->Free(b);
    });
  }
  for (auto& th : threads) th.join();
  ContractState st = p->contract().State();
  EXPECT_GE(st.crossings, 1u);
  EXPECT_EQ(static_cast<uint64_t>(calls.load()), st.crossings);
  EXPECT_EQ(st.callbacks, st.crossings);
  Partition::Destroy(p);
}

TEST(Contract, ReleaseActionReturnsFreePagesOnACrossing) {
  Partition* p = NewPartition("contract-release");
  size_t charge = BlockCharge(p);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(p->Allocate(kBlock));
  for (int i = 0; i < 6; i++) {
    p->Free(blocks.back());
    blocks.pop_back();
  }
  // Freed large runs: in the quarantine or free and committed, not released.
  ASSERT_EQ(p->contract().SetLimits(0, 4 * charge), 0);
  p->contract().SetActions(kActionRelease);
  size_t released_before = p->Stats().pages.released_total_bytes;
  blocks.push_back(p->Allocate(kBlock));
  blocks.push_back(p->Allocate(kBlock));  // the 4th: the crossing
  EXPECT_EQ(p->contract().State().crossings, 1u);
  EXPECT_GT(p->Stats().pages.released_total_bytes, released_before);
  for (void* b : blocks) p->Free(b);
  Partition::Destroy(p);
}

TEST(ProcessLimit, RefusesPastTheLimitInAnyPartitionAndCountsIt) {
  Partition* p = NewPartition("limit-a");
  size_t charge = BlockCharge(p);
  ProcessLimitState before = GetProcessLimit();
  // Four blocks fit; the fourth passes 7/8 of the limit (the pressure point).
  SetProcessLimit(before.use + 4 * charge + charge / 2, 0, LimitSource::kApi);
  EXPECT_EQ(GetProcessLimit().source, LimitSource::kApi);
  EXPECT_EQ(GetProcessLimit().pressure_point, GetProcessLimit().limit - GetProcessLimit().limit / 8);
  void* a = p->Allocate(kBlock);
  void* b = p->Allocate(kBlock);
  void* c = p->Allocate(kBlock);
  void* e = p->Allocate(kBlock);
  ASSERT_TRUE(a && b && c && e);
  errno = 0;
  EXPECT_EQ(p->Allocate(kBlock), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  Partition* q = NewPartition("limit-b");
  EXPECT_EQ(q->Allocate(kBlock), nullptr);  // the limit is the process's
  EXPECT_EQ(GetProcessLimit().refusals, before.refusals + 2);  // one each: nothing cached to retry with
  EXPECT_GE(GetProcessLimit().crossings, before.crossings + 1);
  p->Free(c);
  void* d = q->Allocate(kBlock);
  EXPECT_NE(d, nullptr);
  q->Free(d);
  SetProcessLimit(0, 0, LimitSource::kApi);
  EXPECT_EQ(GetProcessLimit().source, LimitSource::kNone);
  p->Free(a);
  p->Free(b);
  p->Free(e);
  Partition::Destroy(p);
  Partition::Destroy(q);
}

// ---- the cgroup v2 reader, on a fake tree ----

class FakeCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = std::string(tmp ? tmp : "/tmp") + "/fake_cgroup_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    Mkdir(root_);
    Mkdir(root_ + "/sys");
  }
  static void Mkdir(const std::string& d) { mkdir(d.c_str(), 0700); }
  static void Write(const std::string& path, const std::string& text) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  CgroupLimits Read() { return ReadCgroupLimits((root_ + "/cgroup").c_str(), (root_ + "/sys").c_str()); }
  std::string root_;
};

TEST_F(FakeCgroup, TakesTheTightestLimitOnThePathToTheRoot) {
  Write(root_ + "/cgroup", "12:memory:/ignored/v1\n0::/app.slice/worker\n");
  Mkdir(root_ + "/sys/app.slice");
  Mkdir(root_ + "/sys/app.slice/worker");
  Write(root_ + "/sys/app.slice/memory.max", "1073741824\n");
  Write(root_ + "/sys/app.slice/memory.high", "max\n");
  Write(root_ + "/sys/app.slice/worker/memory.max", "max\n");
  Write(root_ + "/sys/app.slice/worker/memory.high", "536870912\n");
  CgroupLimits cg = Read();
  EXPECT_TRUE(cg.found);
  EXPECT_EQ(cg.max, size_t{1} << 30);  // the parent's: the child says max
  EXPECT_EQ(cg.high, size_t{1} << 29);
}

TEST_F(FakeCgroup, NoLimitWhenEveryLevelSaysMaxOrHasNoFile) {
  Write(root_ + "/cgroup", "0::/\n");
  Write(root_ + "/sys/memory.max", "max\n");
  CgroupLimits cg = Read();
  EXPECT_TRUE(cg.found);
  EXPECT_EQ(cg.max, 0u);
  EXPECT_EQ(cg.high, 0u);
  Write(root_ + "/sys/memory.max", "268435456\n");
  EXPECT_EQ(Read().max, size_t{256} << 20);  // "0::/" is the root itself
}

TEST_F(FakeCgroup, IgnoresCgroupV1OnlyMissingAndMalformedFiles) {
  Write(root_ + "/cgroup", "4:memory:/docker/abc\n1:cpu:/\n");
  EXPECT_FALSE(Read().found);  // no "0::" line: not in a v2 hierarchy
  Write(root_ + "/cgroup", "0::/gone\n");
  CgroupLimits cg = Read();  // the directory does not exist
  EXPECT_EQ(cg.max, 0u);
  Mkdir(root_ + "/sys/bad");
  Write(root_ + "/cgroup", "0::/bad\n");
  Write(root_ + "/sys/bad/memory.max", "lots\n");
  EXPECT_EQ(Read().max, 0u);
  EXPECT_FALSE(ReadCgroupLimits((root_ + "/absent").c_str(), root_.c_str()).found);
}

// ---- options ----

void Collect(const char* message, void* ctx) { static_cast<std::vector<std::string>*>(ctx)->push_back(message); }

TEST(ContractOptions, ParsesHardSoftAndActionsPerPartition) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("contract.db=600M, contract.db.soft=500M,contract.db.actions=release+quarantine,"
                         "contract.cache.soft=64M,contract.cache.actions=none,memory_limit=2G",
                         &o, nullptr, Collect, &errors),
            0);
  EXPECT_TRUE(errors.empty()) << errors[0];
  EXPECT_STREQ(o.contracts[0].partition, "db");
  EXPECT_EQ(o.contracts[0].hard, size_t{600} << 20);
  EXPECT_EQ(o.contracts[0].soft, size_t{500} << 20);
  EXPECT_EQ(o.contracts[0].actions, kActionRelease | kActionQuarantine);
  Options m;
  EXPECT_EQ(ParseOptions("contract.store.soft=1M,contract.store.actions=compact+release", &m, nullptr, Collect,
                         &errors),
            0);
  EXPECT_EQ(m.contracts[0].actions, kActionCompact | kActionRelease);
  EXPECT_STREQ(o.contracts[1].partition, "cache");
  EXPECT_EQ(o.contracts[1].hard, 0u);
  EXPECT_EQ(o.contracts[1].soft, size_t{64} << 20);
  EXPECT_EQ(o.contracts[1].actions, 0u);
  EXPECT_EQ(o.memory_limit, size_t{2} << 30);
  Options d;
  EXPECT_EQ(d.memory_limit, kMemoryLimitFromCgroup);
  EXPECT_EQ(ParseOptions("memory_limit=0", &d, nullptr, Collect, &errors), 0);
  EXPECT_EQ(d.memory_limit, 0u);
  EXPECT_EQ(ParseOptions("memory_limit=cgroup", &d, nullptr, Collect, &errors), 0);
  EXPECT_EQ(d.memory_limit, kMemoryLimitFromCgroup);
}

TEST(ContractOptions, ReportsBadValuesOneLineEachAndKeepsTheContract) {
  Options o;
  std::vector<std::string> errors;
  int n = ParseOptions("contract.db=600M,contract.db.soft=700M,contract.=1M,contract.x=lots,"
                       "contract.x.actions=release+nap,memory_limit=huge,contract.y=100T",
                       &o, nullptr, Collect, &errors);
  EXPECT_EQ(n, 6);
  ASSERT_EQ(errors.size(), 6u);
  EXPECT_NE(errors[0].find("soft limit"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("above the hard limit"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("partition name"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("malformed value 'lots'"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("release, caches, quarantine"), std::string::npos) << errors[3];
  EXPECT_NE(errors[4].find("memory_limit"), std::string::npos) << errors[4];
  EXPECT_NE(errors[4].find(", or cgroup"), std::string::npos) << errors[4];
  EXPECT_NE(errors[5].find("out of range"), std::string::npos) << errors[5];
  for (const std::string& e : errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_STREQ(o.contracts[0].partition, "db");
  EXPECT_EQ(o.contracts[0].hard, size_t{600} << 20);
  EXPECT_EQ(o.contracts[0].soft, 0u);  // the refused value left it unset
  EXPECT_EQ(o.contracts[1].partition[0], '\0');  // nothing for x or y
  EXPECT_EQ(o.memory_limit, kMemoryLimitFromCgroup);
  errors.clear();
  o = Options{};
  std::string many;
  for (int i = 0; i < kMaxContractOptions + 1; i++) many += "contract.p" + std::to_string(i) + "=1M,";
  EXPECT_EQ(ParseOptions(many.c_str(), &o, nullptr, Collect, &errors), 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("at most"), std::string::npos) << errors[0];
}

TEST(ContractOptions, APartitionCreatedWithAConfiguredNameTakesItsContract) {
  Options o;
  ASSERT_EQ(ParseOptions("contract.configured=4M,contract.configured.soft=3M,contract.configured.actions=caches,"
                         "memory_limit=0",
                         &o, nullptr, nullptr, nullptr),
            0);
  ApplyContractOptions(o);
  Partition* p = NewPartition("configured");
  Partition* q = NewPartition("unconfigured");
  ContractState st = p->contract().State();
  EXPECT_EQ(st.hard_limit, size_t{4} << 20);
  EXPECT_EQ(st.soft_limit, size_t{3} << 20);
  EXPECT_EQ(st.actions, static_cast<uint32_t>(kActionCaches));
  EXPECT_EQ(q->contract().State().hard_limit, 0u);
  EXPECT_EQ(q->contract().State().actions, kDefaultContractActions);
  EXPECT_EQ(GetProcessLimit().limit, 0u);
  Partition::Destroy(p);
  Partition::Destroy(q);
  Options none;
  none.memory_limit = 0;
  ApplyContractOptions(none);  // back to no contracts and no process limit
}

}  // namespace
}  // namespace nitro
