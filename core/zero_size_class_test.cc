// kZeroSizeClass (core/size_class.h): malloc(0) through the process heap's
// own entry points gets a distinct object of 0 usable bytes in a PROT_NONE
// slab; double frees are reported; realloc moves it; a slab that goes back
// to the page heap is read/write again for whatever class reuses it.
// Accessibility is probed with process_vm_readv/writev, which fail with
// EFAULT on a PROT_NONE page instead of faulting.
#include <gtest/gtest.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "core/heap.h"
#include "core/page_map.h"
#include "core/size_class.h"
#include "core/span.h"

namespace nitro {
namespace {

bool Readable(const void* p) {
  char byte;
  struct iovec local = {&byte, 1};
  struct iovec remote = {const_cast<void*>(p), 1};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1;
}

bool Writable(void* p) {
  char byte = 0x5a;
  struct iovec local = {&byte, 1};
  struct iovec remote = {p, 1};
  return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == 1;
}

const Span* SpanOf(const void* p) { return GlobalPageMap().Get(p); }

bool IsZeroSizeObject(const void* p) {
  const Span* s = SpanOf(p);
  return s != nullptr && s->state == SpanState::kSlab && s->size_class == kZeroSizeClass;
}

TEST(ZeroSizeClass, TheTableSendsOnlySizeZeroThere) {
  EXPECT_EQ(kSizeClasses.ClassFor(0), kZeroSizeClass);
  EXPECT_EQ(kSizeClasses.size(kZeroSizeClass), 0u);
  EXPECT_EQ(kSizeClasses.stride(kZeroSizeClass), kMinAlign);
  EXPECT_EQ(kSizeClasses.info(kZeroSizeClass).slab_pages, 1u);
  EXPECT_EQ(kSizeClasses.info(kZeroSizeClass).capacity, kPageSize / kMinAlign);
  for (size_t size = 1; size <= kMaxSmallSize; size++) {
    ASSERT_NE(kSizeClasses.ClassFor(size), kZeroSizeClass) << size;
  }
  // Aligned requests for 0 bytes get an ordinary class.
  for (size_t align = 32; align <= kPageSize; align *= 2) {
    int c = kSizeClasses.ClassForAligned(0, align);
    ASSERT_NE(c, 0) << align;
    ASSERT_NE(c, kZeroSizeClass) << align;
    EXPECT_EQ(kSizeClasses.size(c) % align, 0u) << align;
  }
}

TEST(ZeroSizeClass, MallocZeroGivesDistinctObjectsWithNoAccessibleByte) {
  std::vector<void*> v;
  for (int i = 0; i < 1000; i++) {
    void* p = Malloc(0);
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(IsZeroSizeObject(p)) << p;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kMinAlign, 0u);
    EXPECT_EQ(UsableSize(p), 0u);
    EXPECT_FALSE(Readable(p)) << p;
    EXPECT_FALSE(Writable(p)) << p;
    v.push_back(p);
  }
  std::vector<void*> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "two malloc(0) returned one pointer";
  for (void* p : v) Free(p);
}

TEST(ZeroSizeClass, CallocAndSizedFreeOfZero) {
  void* a = Calloc(0, 100);
  void* b = Calloc(100, 0);
  ASSERT_TRUE(IsZeroSizeObject(a));
  ASSERT_TRUE(IsZeroSizeObject(b));
  EXPECT_NE(a, b);
  EXPECT_EQ(UsableSize(a), 0u);
  FreeSized(a, 0, 0);  // the size it was made with
  Free(b);
}

TEST(ZeroSizeClass, ReallocFromAndToZero) {
  void* p = Malloc(0);
  ASSERT_TRUE(IsZeroSizeObject(p));
  // From 0: a new ordinary block (nothing to copy).
  auto* q = static_cast<unsigned char*>(Reallocate(p, 100));
  ASSERT_NE(q, nullptr);
  ASSERT_FALSE(IsZeroSizeObject(q));
  EXPECT_GE(UsableSize(q), 100u);
  memset(q, 7, 100);
  // To 0 with the natural alignment: freed, nullptr (glibc's rule).
  EXPECT_EQ(Reallocate(q, 0), nullptr);
  // realloc(nullptr, 0) is malloc(0).
  void* z = Reallocate(nullptr, 0);
  ASSERT_TRUE(IsZeroSizeObject(z));
  // 0 to 0 with an alignment kept: the block stays.
  EXPECT_EQ(Reallocate(z, 0, kMinAlign), z);
  Free(z);
}

TEST(ZeroSizeClass, AlignedZeroGetsAnOrdinaryBlock) {
  for (size_t align = 32; align <= kPageSize; align *= 2) {
    void* p = AllocateAligned(align, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(IsZeroSizeObject(p));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    EXPECT_GE(UsableSize(p), 1u);
    EXPECT_TRUE(Writable(p));
    FreeSized(p, 0, align);
  }
}

TEST(ZeroSizeClassDeathTest, DoubleFreeIsReported) {
  EXPECT_DEATH(
      {
        void* p = Malloc(0);
        Free(p);
        Free(p);
      },
      "double free");
  EXPECT_DEATH(
      {
        void* p = Malloc(0);
        Free(p);
        UsableSize(p);
      },
      "already free");
}

TEST(ZeroSizeClass, ManyThreadsFreeingEachOthersObjects) {
  constexpr int kThreads = 4;
  constexpr int kEach = 5000;
  std::vector<std::vector<void*>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kEach; i++) made[t].push_back(Malloc(0));
    });
  }
  for (auto& th : threads) th.join();
  std::vector<void*> all;
  for (auto& v : made) all.insert(all.end(), v.begin(), v.end());
  for (void* p : all) ASSERT_TRUE(IsZeroSizeObject(p)) << p;
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  for (size_t i = 0; i < all.size(); i += 97) EXPECT_FALSE(Readable(all[i]));
  // Each thread frees another thread's objects (remote frees).
  threads.clear();
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&made, t] {
      for (void* p : made[(t + 1) % kThreads]) Free(p);
    });
  }
  for (auto& th : threads) th.join();
}

// A partition of its own, so that its page heap holds nothing else: its
// zero-size slabs go back to the page heap, which reuses their pages for
// another class; those pages must be read/write again.
TEST(ZeroSizeClass, RetiredSlabsAreWritableWhenReused) {
  Partition* part = CreatePartition("zero-reuse", DefaultPolicy());
  ASSERT_NE(part, nullptr);
  if (part->strict()) GTEST_SKIP() << "strict partitions serve 0 bytes with canaries";
  const size_t per_slab = kSizeClasses.info(kZeroSizeClass).capacity;
  std::vector<void*> zero;
  for (size_t i = 0; i < 8 * per_slab; i++) {
    void* p = PartitionMalloc(part, 0);
    ASSERT_TRUE(IsZeroSizeObject(p));
    ASSERT_EQ(PartitionOf(p), part);
    zero.push_back(p);
  }
  std::vector<uintptr_t> pages;
  for (void* p : zero) pages.push_back(reinterpret_cast<uintptr_t>(p) & ~(kPageSize - 1));
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  ASSERT_GE(pages.size(), 8u);
  for (uintptr_t page : pages) EXPECT_FALSE(Readable(reinterpret_cast<void*>(page)));
  for (void* p : zero) PartitionFree(part, p);
  // Every cached object back to its slab, every empty slab to the page heap.
  ASSERT_TRUE(ReleaseCachesForArena(part, /*flush=*/true));
  for (uintptr_t page : pages) {
    const Span* s = SpanOf(reinterpret_cast<void*>(page));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->state, SpanState::kFree) << "a zero-size slab was not retired";
    EXPECT_TRUE(Readable(reinterpret_cast<void*>(page)));
  }
  // Another class takes the pages back; every byte of those objects works.
  bool reused = false;
  std::vector<void*> others;
  for (int i = 0; i < 4096 && !reused; i++) {
    auto* q = static_cast<unsigned char*>(PartitionMalloc(part, 1024));
    ASSERT_NE(q, nullptr);
    others.push_back(q);
    uintptr_t page = reinterpret_cast<uintptr_t>(q) & ~(kPageSize - 1);
    if (std::binary_search(pages.begin(), pages.end(), page)) {
      memset(q, 0xab, 1024);
      EXPECT_EQ(q[1023], 0xab);
      reused = true;
    }
  }
  EXPECT_TRUE(reused) << "the page heap never reused a retired zero-size slab";
  for (void* q : others) PartitionFree(part, q);
  DestroyPartition(part);
}

}  // namespace
}  // namespace nitro
