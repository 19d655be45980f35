// GuardedPool: placement against a guard page, zeroing, alignment, limits,
// misuse reports (double, interior and canary-checked frees) and, with the
// fault handler installed, accesses to freed blocks and guard pages.
#include "core/guarded_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/page_map.h"
#include "core/partition.h"
#include "core/report.h"

namespace nitro {
namespace {

class GuardedPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Neither is ever destroyed: the pool's spans stay in the page map and
    // point at the partition (the fault handler may consult them). So each
    // test, and each repetition of it, gets a name of its own.
    static int serial = 0;
    std::string name = "guarded" + std::to_string(++serial);
    part_ = Partition::Create(name.c_str(), PartitionConfig{});
    ASSERT_NE(part_, nullptr);
    pool_ = new GuardedPool;
    ASSERT_TRUE(pool_->Init(part_));
    ASSERT_TRUE(pool_->initialized());
  }
  static Span* SpanOf(const void* p) { return GlobalPageMap().Get(p); }
  void Free(void* p) { pool_->Free(SpanOf(p), p); }
  // The start of every report: kind, any address, this partition.
  std::string Report(const char* kind) const {
    return std::string("nitroheap: ") + kind + " at 0x[0-9a-f]+ in partition " + part_->name() +
           ": ";
  }

  Partition* part_ = nullptr;
  GuardedPool* pool_ = nullptr;
};

TEST_F(GuardedPoolTest, AllocationsLieAgainstAGuardPageZeroedAndAligned) {
  const size_t sizes[] = {0, 1, 15, 16, 100, 128, 1000, 4095, 4096, 4097, 10000, 16383, 16384};
  const size_t aligns[] = {0, 16, 64, 512, 4096};
  int left = 0, right = 0;
  std::set<Span*> spans;
  for (int round = 0; round < 700; round++) {  // more than kSlots: slots are reused
    size_t size = sizes[round % (sizeof(sizes) / sizeof(sizes[0]))];
    size_t align = aligns[(round / 7) % (sizeof(aligns) / sizeof(aligns[0]))];
    auto* p = static_cast<unsigned char*>(pool_->Allocate(size, align));
    ASSERT_NE(p, nullptr) << size << " " << align;
    auto a = reinterpret_cast<uintptr_t>(p);
    size_t eff_align = std::max<size_t>(align, kMinAlign);
    EXPECT_EQ(a % eff_align, 0u) << size << " " << align;
    size_t need = size == 0 ? 1 : size;
    bool starts_page = a % kPageSize == 0;
    size_t end_gap = RoundUp(a + need, kPageSize) - (a + need);
    // Against the left guard (starts a page) or the right one (ends within
    // the alignment's rounding of a page end, exactly when the size allows).
    EXPECT_TRUE(starts_page || end_gap < eff_align) << size << " " << align;
    if (!starts_page && need % eff_align == 0) {
      EXPECT_EQ(end_gap, 0u) << size << " " << align;
    }
    if (starts_page && end_gap >= eff_align) left++;
    if (!starts_page) right++;
    // The page map knows it.
    Span* s = SpanOf(p);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->state, SpanState::kGuarded);
    EXPECT_EQ(s->partition, part_);
    EXPECT_EQ(s->start, a);
    EXPECT_EQ(s->requested, size);
    EXPECT_EQ(SpanOf(p + need - 1), s);
    spans.insert(s);
    EXPECT_EQ(pool_->UsableSize(s, p), size);
    PointerInfo pi;
    ASSERT_TRUE(Lookup(p, &pi));
    EXPECT_EQ(pi.object_start, p);
    EXPECT_EQ(pi.object_size, size);
    // Zeroed, even where the slot held an earlier block's bytes.
    for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << size << " at " << i;
    memset(p, 0xAB, size);
    EXPECT_EQ(pool_->counts().live, 1u);
    EXPECT_EQ(pool_->counts().live_bytes, size);
    Free(p);
    EXPECT_EQ(pool_->counts().live, 0u);
    EXPECT_EQ(pool_->counts().live_bytes, 0u);
  }
  EXPECT_EQ(pool_->counts().total, 700u);
  EXPECT_EQ(spans.size(), GuardedPool::kSlots) << "every slot is used in turn";
  // The side is random; ~300 chances each (a failure chance of 2^-300).
  EXPECT_GT(left, 0);
  EXPECT_GT(right, 0);
}

TEST_F(GuardedPoolTest, RefusesWhatDoesNotFitASlot) {
  EXPECT_EQ(pool_->Allocate(GuardedPool::kDataPages * kPageSize + 1, 0), nullptr);
  EXPECT_EQ(pool_->Allocate(size_t{1} << 20, 0), nullptr);
  EXPECT_EQ(pool_->Allocate(64, 2 * kPageSize), nullptr);
  EXPECT_EQ(pool_->counts().total, 0u);
  EXPECT_EQ(pool_->counts().live, 0u);
  void* whole = pool_->Allocate(GuardedPool::kDataPages * kPageSize, 0);
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(whole) % kPageSize, 0u);
  void* paged = pool_->Allocate(64, kPageSize);
  ASSERT_NE(paged, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(paged) % kPageSize, 0u);
  EXPECT_EQ(pool_->counts().live, 2u);
  Free(whole);
  Free(paged);
}

TEST_F(GuardedPoolTest, RefusesWhenEverySlotIsLiveAndReusesTheFreedOne) {
  std::vector<void*> blocks;
  std::set<Span*> spans;
  for (size_t i = 0; i < GuardedPool::kSlots; i++) {
    void* p = pool_->Allocate(32, 0);
    ASSERT_NE(p, nullptr) << i;
    blocks.push_back(p);
    spans.insert(SpanOf(p));
  }
  EXPECT_EQ(spans.size(), GuardedPool::kSlots);
  EXPECT_EQ(pool_->counts().live, GuardedPool::kSlots);
  EXPECT_EQ(pool_->counts().live_bytes, 32 * GuardedPool::kSlots);
  EXPECT_EQ(pool_->Allocate(32, 0), nullptr);
  EXPECT_EQ(pool_->Allocate(0, 0), nullptr);
  Span* freed_slot = SpanOf(blocks[100]);
  Free(blocks[100]);
  void* again = pool_->Allocate(48, 0);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(SpanOf(again), freed_slot);
  blocks[100] = again;
  EXPECT_EQ(pool_->Allocate(32, 0), nullptr);
  EXPECT_EQ(pool_->counts().total, GuardedPool::kSlots + 1);
  for (void* p : blocks) Free(p);
  EXPECT_EQ(pool_->counts().live, 0u);
  EXPECT_EQ(pool_->counts().live_bytes, 0u);
}

// Allocate and Free open and close a slot's pages outside the pool's lock;
// the slot is the thread's meanwhile. Threads sampling at once, all but a
// few slots held live so that they contend for the same ones, must never
// share a slot (each writes its own pattern over the whole block and finds
// it intact), must get pages that read as zero (a slot is reused only once
// its pages are closed), and the counts must come out exact.
TEST_F(GuardedPoolTest, ThreadsOpeningAndClosingSlotsAtOnceNeverShareOne) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 400;
  constexpr size_t kFreeSlots = 3;
  std::vector<void*> held;
  for (size_t i = 0; i < GuardedPool::kSlots - kFreeSlots; i++) {
    held.push_back(pool_->Allocate(16, 0));
    ASSERT_NE(held.back(), nullptr);
  }
  std::atomic<bool> done{false};
  std::atomic<size_t> served{0}, faults{0};
  auto worker = [&](int t) {
    uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(t + 1);
    for (int r = 0; r < kRounds; r++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t size = 1 + x % (GuardedPool::kDataPages * kPageSize);
      auto* p = static_cast<unsigned char*>(pool_->Allocate(size, 0));
      if (p == nullptr) continue;  // every slot busy or live: allowed, not counted
      served.fetch_add(1, std::memory_order_relaxed);
      bool zero = true;
      for (size_t i = 0; i < size; i++) zero &= p[i] == 0;
      if (!zero) faults.fetch_add(1, std::memory_order_relaxed);
      memset(p, 0x40 + t, size);
      std::this_thread::yield();
      for (size_t i = 0; i < size; i++) {
        if (p[i] != 0x40 + t) {
          faults.fetch_add(1, std::memory_order_relaxed);
          break;
        }
      }
      EXPECT_EQ(pool_->UsableSize(SpanOf(p), p), size);
      Free(p);
    }
  };
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) {
      GuardedPool::Counts c = pool_->counts();
      if (c.live > c.total || c.live > GuardedPool::kSlots) faults.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(faults.load(), 0u);
  EXPECT_GT(served.load(), static_cast<size_t>(kRounds));
  EXPECT_EQ(pool_->counts().live, held.size());
  EXPECT_EQ(pool_->counts().live_bytes, 16 * held.size());
  EXPECT_EQ(pool_->counts().total, served.load() + held.size());
  for (void* p : held) Free(p);
  // Every slot is usable again: none was left busy.
  std::vector<void*> all;
  for (size_t i = 0; i < GuardedPool::kSlots; i++) {
    void* p = pool_->Allocate(8, 0);
    ASSERT_NE(p, nullptr) << i;
    all.push_back(p);
  }
  for (void* p : all) Free(p);
}

TEST_F(GuardedPoolTest, UsableSizeAndResize) {
  auto* p = static_cast<char*>(pool_->Allocate(1000, 0));
  ASSERT_NE(p, nullptr);
  Span* s = SpanOf(p);
  EXPECT_EQ(pool_->UsableSize(s, p), 1000u);
  pool_->Resize(s, 600);
  EXPECT_EQ(pool_->UsableSize(s, p), 600u);
  EXPECT_EQ(s->requested, 600u);
  EXPECT_EQ(pool_->counts().live_bytes, 600u);
  pool_->Resize(s, 2000);  // only ever smaller
  EXPECT_EQ(pool_->UsableSize(s, p), 600u);
  EXPECT_DEATH(pool_->UsableSize(s, p + 1),
               Report("invalid free") +
                   "malloc_usable_size of a pointer that is not the start of a guarded "
                   "allocation \\(600 bytes at 0x[0-9a-f]+\\)");
  void* z = pool_->Allocate(0, 0);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(pool_->UsableSize(SpanOf(z), z), 0u);
  Free(z);
  Free(p);
}

TEST_F(GuardedPoolTest, DoubleAndInteriorFreesAreReported) {
  auto* p = static_cast<char*>(pool_->Allocate(64, 0));
  auto* q = static_cast<char*>(pool_->Allocate(64, 0));
  ASSERT_TRUE(p && q);
  Span* ps = SpanOf(p);
  Free(p);
  EXPECT_DEATH(pool_->Free(ps, p),
               Report("double free") + "free of a guarded allocation of 64 bytes, already freed");
  EXPECT_DEATH(pool_->Free(ps, p + 16),
               Report("invalid free") +
                   "free of a pointer into a guarded slot that holds no live allocation");
  EXPECT_DEATH(Free(q + 1),
               Report("invalid free") +
                   "free of a pointer that is not the start of a guarded allocation \\(64 bytes");
  // None of it changed the parent's pool.
  EXPECT_EQ(pool_->counts().live, 1u);
  Free(q);
  EXPECT_EQ(pool_->counts().live, 0u);
}

TEST_F(GuardedPoolTest, CanaryCatchesAWritePastTheEndAtFree) {
  pool_->set_canary(0x5A);
  auto* p = static_cast<unsigned char*>(pool_->Allocate(100, 0));
  ASSERT_NE(p, nullptr);
  uintptr_t slack_end = RoundUp(reinterpret_cast<uintptr_t>(p) + 100, kPageSize);
  ASSERT_GT(slack_end, reinterpret_cast<uintptr_t>(p) + 100) << "no slack to write into";
  for (uintptr_t b = reinterpret_cast<uintptr_t>(p) + 100; b < slack_end; b++) {
    ASSERT_EQ(*reinterpret_cast<unsigned char*>(b), 0x5A);
  }
  for (int i = 0; i < 100; i++) EXPECT_EQ(p[i], 0);
  memset(p, 0xFF, 100);  // all of the block is the caller's
  Free(p);               // no report

  auto* q = static_cast<unsigned char*>(pool_->Allocate(100, 0));
  ASSERT_NE(q, nullptr);
  q[100] = 0;  // one byte past the end, on the same page
  EXPECT_DEATH(Free(q), Report("heap buffer overflow") +
                            "the 100-byte guarded object at 0x[0-9a-f]+ was written past its end "
                            "\\(canary at offset 100\\)");
  q[100] = 0x5A;

  // After a shrink the bytes given up become canary too.
  Span* s = SpanOf(q);
  pool_->Resize(s, 60);
  EXPECT_EQ(q[80], 0x5A);
  q[80] = 1;
  EXPECT_DEATH(Free(q), Report("heap buffer overflow") +
                            "the 60-byte guarded object at 0x[0-9a-f]+ was written past its end "
                            "\\(canary at offset 80\\)");
  q[80] = 0x5A;
  Free(q);
  EXPECT_EQ(pool_->counts().live, 0u);
}

// A freed slot keeps no memory: Free remaps it (one system call, counted by
// testing/bench:guarded_syscalls_test), so its pages are no longer resident.
TEST_F(GuardedPoolTest, FreedSlotKeepsNoResidentPage) {
  constexpr size_t kBytes = GuardedPool::kDataPages * kPageSize;
  auto* p = static_cast<unsigned char*>(pool_->Allocate(kBytes, 0));
  ASSERT_NE(p, nullptr);
  memset(p, 0xCD, kBytes);
  unsigned char resident[GuardedPool::kDataPages];
  ASSERT_EQ(mincore(p, kBytes, resident), 0);
  for (unsigned char r : resident) EXPECT_TRUE(r & 1) << "written, so resident";
  Free(p);
  ASSERT_EQ(mincore(p, kBytes, resident), 0) << "still mapped (PROT_NONE), not unmapped";
  for (unsigned char r : resident) EXPECT_FALSE(r & 1) << "given back at free";
}

// Stack captures remember the run of stack pages they read (core/report.cc):
// a walk through frames on several pages finds the same frames every time.
NITRO_NOINLINE int CaptureThroughBigFrames(int depth, uintptr_t* frames) {
  volatile char pad[3 * 4096];  // each frame on pages of its own
  pad[0] = static_cast<char>(depth);
  int n = depth == 0 ? CaptureStack(frames, kMaxFrames, 0) : CaptureThroughBigFrames(depth - 1, frames);
  return n + pad[0] - static_cast<char>(depth);  // keeps the frame (no tail call)
}

TEST(CaptureStackTest, FramesOnManyPagesAreFoundEveryTime) {
  uintptr_t frames[2][kMaxFrames];
  int n[2];
  for (int i = 0; i < 2; i++) n[i] = CaptureThroughBigFrames(4, frames[i]);
  EXPECT_GE(n[0], 7) << "five CaptureThroughBigFrames frames, the test body's and gtest's";
  ASSERT_EQ(n[0], n[1]);
  // Frame 5 returns into the test body, where the compiler may have made
  // two call sites of the loop; every other frame is the same.
  for (int i = 0; i < n[0]; i++) {
    if (i == 5) continue;
    EXPECT_EQ(frames[0][i], frames[1][i]) << "frame " << i;
  }
}

// A sampled block's stacks are taken at malloc and again at free, from
// frames at other depths; when the two first frames are on different pages,
// each walk still finds its pages known after the first time (it was one
// kernel read per walk: four system calls per sample instead of two).
NITRO_NOINLINE int CaptureOnePageDeeper(uintptr_t* frames) {
  volatile char pad[4096];  // this capture's first frame a page below the caller's
  pad[0] = 1;
  return CaptureStack(frames, kMaxFrames, 0) + pad[0] - 1;
}

TEST(CaptureStackTest, WalksFromTwoDepthsReadThroughTheKernelOnlyAtFirst) {
  uintptr_t frames[kMaxFrames];
  auto both = [&frames] {
    int shallow = CaptureStack(frames, kMaxFrames, 0);
    int deep = CaptureOnePageDeeper(frames);
    return shallow >= 2 && deep > shallow;
  };
  for (int i = 0; i < 3; i++) ASSERT_TRUE(both());
  uint64_t before = StackWalkKernelReads();
  for (int i = 0; i < 100; i++) ASSERT_TRUE(both());
  EXPECT_EQ(StackWalkKernelReads() - before, 0u);
}

// A stack the program unmapped is never trusted: a fiber's walk made its
// pages known, the fiber's stack is unmapped, and a later walk on another
// stack meets a frame pointer into it (as code built without frame pointers
// may leave one). That walk asks the kernel, which says the page is gone,
// and stops there instead of faulting.
struct FiberWalk {
  ucontext_t main_ctx, fiber_ctx;
  uintptr_t fake_fp = 0;  // B's caller frame pointer, or 0
  uintptr_t seen_fp = 0;  // A's frame, on the stack that is unmapped later
  int frames = 0;
};
FiberWalk g_fiber;

NITRO_NOINLINE int CaptureWithCallerFp(uintptr_t caller_fp) {
  auto* fp = static_cast<uintptr_t*>(__builtin_frame_address(0));
  uintptr_t saved = fp[0];
  if (caller_fp != 0) fp[0] = caller_fp;
  uintptr_t frames[kMaxFrames];
  int n = CaptureStack(frames, kMaxFrames, 0);
  fp[0] = saved;
  return n;
}

void FiberBody() {
  g_fiber.seen_fp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  g_fiber.frames = CaptureWithCallerFp(g_fiber.fake_fp);
  swapcontext(&g_fiber.fiber_ctx, &g_fiber.main_ctx);
}

void RunFiber(char* stack, size_t size, uintptr_t fake_fp) {
  g_fiber.fake_fp = fake_fp;
  ASSERT_EQ(getcontext(&g_fiber.fiber_ctx), 0);
  g_fiber.fiber_ctx.uc_stack.ss_sp = stack;
  g_fiber.fiber_ctx.uc_stack.ss_size = size;
  g_fiber.fiber_ctx.uc_link = nullptr;
  makecontext(&g_fiber.fiber_ctx, FiberBody, 0);
  ASSERT_EQ(swapcontext(&g_fiber.main_ctx, &g_fiber.fiber_ctx), 0);
}

TEST(CaptureStackTest, PagesOfAnUnmappedStackAreNotTrusted) {
  EXPECT_EXIT(
      {
        constexpr size_t kHalf = 128 << 10;
        auto* region = static_cast<char*>(
            mmap(nullptr, 2 * kHalf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        if (region == MAP_FAILED) _exit(2);
        // Fiber A on the upper half: its walk reads (and may remember) its pages.
        RunFiber(region + kHalf, kHalf, 0);
        if (g_fiber.frames < 1) _exit(3);
        uintptr_t stale = RoundDown(g_fiber.seen_fp, 16);
        munmap(region + kHalf, kHalf);
        // Fiber B on the lower half, below A's page and within a walk's
        // reach: its caller's frame pointer leads into A's unmapped page.
        RunFiber(region, kHalf, stale);
        _exit(g_fiber.frames >= 1 ? 0 : 4);
      },
      ::testing::ExitedWithCode(0), "");
}

// The fault handler turns a fault in the pool into a report, then lets the
// process die of the signal.
class GuardedPoolFaultTest : public GuardedPoolTest {
 protected:
  void SetUp() override {
    GuardedPoolTest::SetUp();
    InstallFaultHandler();
    RegisterFaultPools(pool_, nullptr);
  }
  void TearDown() override { RegisterFaultPools(nullptr, nullptr); }
  static NITRO_NOINLINE void Read(const void* p) { (void)*static_cast<const volatile char*>(p); }
};

TEST_F(GuardedPoolFaultTest, AccessAfterFreeFaultsAndIsReported) {
  auto* p = static_cast<char*>(pool_->Allocate(64, 0));
  ASSERT_NE(p, nullptr);
  p[10] = 1;
  Read(p + 10);  // fine while live
  Free(p);
  // The process dies of the fault itself, after the report.
  EXPECT_EXIT(Read(p + 10), ::testing::KilledBySignal(SIGSEGV),
              Report("use after free") +
                  "offset 10 in a freed guarded allocation of 64 bytes at "
                  "0x[0-9a-f]+.*freed by thread");
  EXPECT_DEATH(p[0] = 2, Report("use after free") + "offset 0 in a freed guarded allocation");
}

// A slot gets its span at its first use: one never used is in no span, and
// a fault in it (a wild pointer) is still reported, as such.
TEST_F(GuardedPoolFaultTest, AFaultInASlotNeverUsedIsReportedAsAWildAccess) {
  auto* p = static_cast<char*>(pool_->Allocate(64, 0));
  ASSERT_NE(p, nullptr);
  auto* last = reinterpret_cast<char*>(RoundDown(reinterpret_cast<uintptr_t>(p), kPageSize) +
                                       (GuardedPool::kSlots - 1) * GuardedPool::kStride);
  EXPECT_EQ(SpanOf(p)->state, SpanState::kGuarded);
  EXPECT_EQ(SpanOf(last), nullptr) << "a slot never used has no span";
  EXPECT_DEATH(Read(last), Report("fault") + "in guarded slot 255, which has held no allocation yet");
  Free(p);
}

TEST_F(GuardedPoolFaultTest, GuardPagesCatchOverflowAndUnderflow) {
  // A whole-slot block touches both guards, whichever side it was put on.
  auto* p = static_cast<char*>(pool_->Allocate(GuardedPool::kDataPages * kPageSize, 0));
  ASSERT_NE(p, nullptr);
  Read(p);
  Read(p + GuardedPool::kDataPages * kPageSize - 1);
  EXPECT_DEATH(Read(p + GuardedPool::kDataPages * kPageSize),
               Report("heap buffer overflow") +
                   "0 bytes past the end of a guarded allocation of 16384 bytes");
  EXPECT_DEATH(Read(p - 1), Report("heap buffer underflow") +
                                "1 bytes before a guarded allocation of 16384 bytes");
  Free(p);
}

TEST_F(GuardedPoolFaultTest, FaultsOutsideThePoolAreNotClaimed) {
  // A fault the pool does not own is passed on to the handler installed
  // before: ThreadSanitizer's own under --config=tsan, else the default
  // action, which kills with the signal.
  volatile uintptr_t unmapped = 16;
#if defined(__SANITIZE_THREAD__)
  EXPECT_DEATH(Read(reinterpret_cast<void*>(unmapped)), "ThreadSanitizer: SEGV on unknown address");
#else
  EXPECT_EXIT(Read(reinterpret_cast<void*>(unmapped)), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

}  // namespace
}  // namespace nitro
