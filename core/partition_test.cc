#include "core/partition.h"

#include <gtest/gtest.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <set>
#include <vector>

namespace nitro {
namespace {

Partition* NewPartition(const char* name) {
  Partition* p = Partition::Create(name, PartitionConfig{});
  EXPECT_NE(p, nullptr);
  return p;
}

TEST(Partition, AllocatesEverySizeWithContentsIntact) {
  Partition* p = NewPartition("sizes");
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  for (size_t size = 1; size < 300000; size = size * 5 / 4 + 1) {
    auto* b = static_cast<unsigned char*>(p->Allocate(size));
    ASSERT_NE(b, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % kMinAlign, 0u);
    EXPECT_GE(p->UsableSize(b), size);
    memset(b, static_cast<int>(size & 0xff), size);
    blocks.emplace_back(b, size);
  }
  for (auto& [b, size] : blocks) {
    for (size_t i = 0; i < size; i += 97) ASSERT_EQ(b[i], size & 0xff) << size;
    p->Free(b);
  }
  Partition::Destroy(p);
}

TEST(Partition, LookupFindsObjectStartFromAnyInteriorAddress) {
  Partition* p = NewPartition("lookup");
  for (size_t size : {16ul, 48ul, 1000ul, 5000ul, 100000ul, 1000000ul}) {
    char* b = static_cast<char*>(p->Allocate(size));
    for (size_t off : {size_t{0}, size / 2, size - 1}) {
      PointerInfo info;
      ASSERT_TRUE(Lookup(b + off, &info));
      EXPECT_EQ(info.partition, p);
      EXPECT_EQ(info.object_start, b) << size << "+" << off;
      EXPECT_GE(info.object_size, size);
      EXPECT_EQ(info.size_class != 0, size <= kMaxSmallSize);
    }
    p->Free(b);
  }
  PointerInfo info;
  int on_stack = 0;
  EXPECT_FALSE(Lookup(&on_stack, &info));
  EXPECT_FALSE(Lookup(nullptr, &info));
  Partition::Destroy(p);
}

TEST(Partition, MemoryIsNeverSharedBetweenPartitions) {
  Partition* a = NewPartition("a");
  Partition* b = NewPartition("b");
  std::set<uintptr_t> seen_a;
  for (int round = 0; round < 3; round++) {
    std::vector<void*> va, vb;
    for (int i = 0; i < 2000; i++) {
      va.push_back(a->Allocate(64));
      vb.push_back(b->Allocate(64));
    }
    for (void* x : va) seen_a.insert(reinterpret_cast<uintptr_t>(x));
    for (void* x : vb) {
      EXPECT_EQ(seen_a.count(reinterpret_cast<uintptr_t>(x)), 0u);
      PointerInfo info;
      ASSERT_TRUE(Lookup(x, &info));
      EXPECT_EQ(info.partition, b);
    }
    for (void* x : va) a->Free(x);
    for (void* x : vb) b->Free(x);
  }
  Partition::Destroy(a);
  Partition::Destroy(b);
}

// A new partition is mostly untouched memory: the middle layer's batch
// stacks (~1 MiB of it) become resident only as batches come in.
TEST(Partition, ANewPartitionKeepsItsBatchStacksOutOfMemory) {
  for (int round = 0; round < 2; round++) {  // fresh, then made again in reused memory
    Partition* p = NewPartition("resident");
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % kPageSize, 0u);
    const size_t pages = RoundUp(sizeof(Partition), kPageSize) / kPageSize;
    ASSERT_GT(pages, 200u);
    std::vector<unsigned char> v(pages);
    ASSERT_EQ(mincore(p, pages * kPageSize, v.data()), 0);
    size_t resident = 0;
    for (unsigned char b : v) resident += b & 1;
    EXPECT_LE(resident, 16u) << "of " << pages << " pages, round " << round;
    void* obj = p->Allocate(100);
    ASSERT_NE(obj, nullptr);
    p->Free(obj);
    Partition::Destroy(p);
  }
}

TEST(Partition, DestroyUnmapsEverything) {
  Partition* p = NewPartition("destroy");
  void* small = p->Allocate(100);
  void* large = p->Allocate(1 << 20);
  PointerInfo info;
  ASSERT_TRUE(Lookup(small, &info));
  Partition::Destroy(p);
  EXPECT_FALSE(Lookup(small, &info));
  EXPECT_FALSE(Lookup(large, &info));
}

TEST(Partition, ReallocateKeepsContentsAndGrowsLargeBlocksInPlace) {
  Partition* p = NewPartition("realloc");
  auto* b = static_cast<unsigned char*>(p->Allocate(10));
  for (int i = 0; i < 10; i++) b[i] = static_cast<unsigned char>(i);
  b = static_cast<unsigned char*>(p->Reallocate(b, 200000));
  for (int i = 0; i < 10; i++) ASSERT_EQ(b[i], i);
  memset(b + 10, 7, 200000 - 10);
  void* before = b;
  b = static_cast<unsigned char*>(p->Reallocate(b, 400000));  // the region's frontier follows
  EXPECT_EQ(before, b);
  for (int i = 0; i < 10; i++) ASSERT_EQ(b[i], i);
  ASSERT_EQ(b[199999], 7);
  b = static_cast<unsigned char*>(p->Reallocate(b, 300000));  // shrink in place
  EXPECT_EQ(before, b);
  b = static_cast<unsigned char*>(p->Reallocate(b, 8));  // moves to a small class
  for (int i = 0; i < 8; i++) ASSERT_EQ(b[i], i);
  p->Free(b);
  Partition::Destroy(p);
}

TEST(Partition, AlignedAllocations) {
  Partition* p = NewPartition("aligned");
  for (size_t align = 16; align <= (size_t{1} << 21); align *= 2) {
    for (size_t size : {1ul, 100ul, 5000ul, 300000ul}) {
      void* b = p->Allocate(size, align);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % align, 0u) << size << " " << align;
      EXPECT_GE(p->UsableSize(b), size);
      p->Free(b);
    }
  }
  Partition::Destroy(p);
}

// Whether the first byte at p can be read: write() reports EFAULT for a
// PROT_NONE page instead of faulting.
bool Readable(const void* p) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  bool readable = write(fds[1], p, 1) == 1;
  EXPECT_TRUE(readable || errno == EFAULT);
  close(fds[0]);
  close(fds[1]);
  return readable;
}

uint64_t g_fake_ms = 1000;
uint64_t FakeClock() { return g_fake_ms; }

TEST(Partition, FreedLargeBlocksAreProtectedWhileTheBudgetLasts) {
  PartitionConfig config;
  config.large_protect = LargeProtectConfig{/*every=*/false, /*burst=*/2, /*per_second=*/1000,
                                            /*sample=*/0};
  Partition* p = Partition::Create("large_protect", config, FakeClock);
  ASSERT_NE(p, nullptr);
  void* blocks[4];
  for (void*& b : blocks) {
    b = p->Allocate(300000);
    ASSERT_NE(b, nullptr);
    memset(b, 1, 300000);
  }
  // Two tokens: the first two frees are protected, the third is not.
  p->Free(blocks[0]);
  p->Free(blocks[1]);
  p->Free(blocks[2]);
  EXPECT_FALSE(Readable(blocks[0]));
  EXPECT_FALSE(Readable(blocks[1]));
  EXPECT_TRUE(Readable(blocks[2]));
  // One millisecond later the clock has added a token.
  g_fake_ms += 1;
  p->Free(blocks[3]);
  EXPECT_FALSE(Readable(blocks[3]));
  Partition::Destroy(p);
}

TEST(Partition, ImpossibleSizesFailWithEnomem) {
  Partition* p = NewPartition("enomem");
  errno = 0;
  EXPECT_EQ(p->Allocate(~size_t{0}), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(p->Allocate(size_t{1} << 47), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  Partition::Destroy(p);
}

TEST(Partition, EmptySlabsAreKeptForHysteresisThenReturned) {
  Partition* p = NewPartition("hysteresis");
  // Cycle through 16 classes many times: slabs must not be retired and
  // recreated every time (the cliff DESIGN.md measured in a peer).
  for (int round = 0; round < 100; round++) {
    for (int c = 1; c <= 16; c++) {
      void* b = p->Allocate(kSizeClasses.size(c));
      p->Free(b);
    }
  }
  PartitionStats st = p->Stats();
  EXPECT_LE(st.small_slabs, 16u * CentralFreeList::kKeepEmptySlabs);
  EXPECT_GE(st.small_slabs, 16u);
  p->ReleaseFreeMemory();
  EXPECT_EQ(p->Stats().small_slabs, 0u);
  EXPECT_EQ(p->Stats().pages.in_use_bytes, 0u);
  Partition::Destroy(p);
}

TEST(PartitionDeathTest, DoubleFreeIsDetected) {
  Partition* p = NewPartition("double_free");
  void* small = p->Allocate(32);
  void* keep = p->Allocate(32);  // keeps the slab alive
  p->Free(small);
  EXPECT_DEATH(p->Free(small), "nitroheap: double free at 0x[0-9a-f]+ in partition double_free: a 32-byte object that is already free");
  void* large = p->Allocate(1 << 20);
  p->Free(large);
  EXPECT_DEATH(p->Free(large), "double free");
  p->Free(keep);
}

TEST(PartitionDeathTest, InteriorAndForeignPointersAreDetected) {
  Partition* p = NewPartition("misuse");
  char* b = static_cast<char*>(p->Allocate(64));
  EXPECT_DEATH(p->Free(b + 16), "nitroheap: invalid free at 0x[0-9a-f]+ in partition misuse: not the start of an object \\(16 bytes into it\\)");
  int local = 0;
  EXPECT_DEATH(p->Free(&local), "nitroheap: free of memory not from the heap at 0x[0-9a-f]+ in partition misuse");
  Partition* other = NewPartition("other");
  EXPECT_DEATH(other->Free(b), "partition other does not own this pointer");
  p->Free(b);
}

}  // namespace
}  // namespace nitro

namespace nitro {
namespace {

TEST(Partition, NamesAreUnique) {
  Partition* a = Partition::Create("unique_name", PartitionConfig{});
  ASSERT_NE(a, nullptr);
  errno = 0;
  EXPECT_EQ(Partition::Create("unique_name", PartitionConfig{}), nullptr);
  EXPECT_EQ(errno, EEXIST);
  Partition::Destroy(a);
  Partition* b = Partition::Create("unique_name", PartitionConfig{});  // free again
  EXPECT_NE(b, nullptr);
  Partition::Destroy(b);
}

}  // namespace
}  // namespace nitro
