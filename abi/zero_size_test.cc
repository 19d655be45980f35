// malloc(0) and its relatives through the public ABI, with NitroHeap as the
// program's malloc, in every mode (docs/security.md, "malloc(0)"):
//   * malloc(0), calloc(0, n), realloc(NULL, 0), operator new(0) and
//     nitro_partition_malloc(p, 0): a distinct non-null pointer with
//     malloc_usable_size 0 and no accessible byte (strict's partitions other
//     than the default one: 0 bytes followed by canaries instead);
//   * aligned_alloc/memalign/posix_memalign(…, 0): an ordinary block;
//   * mallocx(0): 1 byte (jemalloc's semantics);
//   * legacy mode (NITROHEAP=legacy): whatever the C library does.
// Accessibility is probed with process_vm_readv/writev (EFAULT, no fault).
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <thread>
#include <vector>

#include "nitroheap/mallocx.h"
#include "nitroheap/nitroheap.h"

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

bool Legacy() { return !nitro_is_active(); }
bool Strict() {
  const char* o = getenv("NITROHEAP_OPTIONS");
  return o != nullptr && strstr(o, "mode=strict") != nullptr;
}

bool Sampled() {
  const char* o = getenv("NITROHEAP_OPTIONS");
  return o != nullptr && strstr(o, "sample_rate=1") != nullptr;
}

// What every zero-size pointer must be outside legacy mode.
void ExpectNoByte(void* p) {
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(malloc_usable_size(p), 0u);
  EXPECT_FALSE(Readable(p)) << p;
  EXPECT_FALSE(Writable(p)) << p;
}

TEST(ZeroSize, MallocCallocReallocNew) {
  void* p[5] = {malloc(0), calloc(0, 10), calloc(10, 0), realloc(nullptr, 0), ::operator new(0)};
  std::vector<void*> sorted(p, p + 5);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "distinct pointers";
  for (void* q : p) {
    ASSERT_NE(q, nullptr);
    if (!Legacy()) ExpectNoByte(q);
  }
  if (Legacy()) {
    // The C library's malloc(0): a minimum chunk the program may touch.
    EXPECT_TRUE(Writable(p[0]));
  }
  free(p[0]);
  free(p[1]);
  free(p[2]);
  free(p[3]);
  ::operator delete(p[4]);
  int* arr = new int[0];
  ASSERT_NE(arr, nullptr);
  delete[] arr;
}

TEST(ZeroSize, ReallocFromAndToZero) {
  auto* p = static_cast<char*>(malloc(0));
  auto* q = static_cast<char*>(realloc(p, 100));
  ASSERT_NE(q, nullptr);
  EXPECT_GE(malloc_usable_size(q), 100u);
  memset(q, 1, 100);
  if (!Legacy()) {
    // glibc's rule: realloc(p, 0) frees p and returns NULL.
    EXPECT_EQ(realloc(q, 0), nullptr);
  } else {
    free(realloc(q, 0));
  }
}

TEST(ZeroSize, AlignedZeroIsAnOrdinaryBlock) {
  void* a = aligned_alloc(64, 0);
  void* m = memalign(256, 0);
  void* pm = nullptr;
  ASSERT_EQ(posix_memalign(&pm, 4096, 0), 0);
  for (auto [p, align] : {std::pair<void*, size_t>{a, 64}, {m, 256}, {pm, 4096}}) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    // strict and guarded samples record the exact size asked for (0; strict
    // puts a canary at byte 0); otherwise the class's 16 bytes or more.
    if (!Legacy() && !Strict() && !Sampled()) {
      EXPECT_GE(malloc_usable_size(p), align);
      EXPECT_TRUE(Writable(p));
    }
    free(p);
  }
}

TEST(ZeroSize, MallocxTreatsZeroAsOne) {
  void* p = mallocx(0, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(sallocx(p, 0), 1u);
  if (!Legacy()) {
    EXPECT_EQ(sallocx(p, 0), nallocx(0, 0));
    EXPECT_TRUE(Writable(p));
  }
  dallocx(p, 0);
}

TEST(ZeroSize, PartitionMallocZero) {
  nitro_partition_t* part = nitro_partition_create("zero-size-test");
  if (Legacy()) {
    // Legacy partitions serve from the C library: defined, nothing more.
    if (part != nullptr) {
      nitro_partition_free(part, nitro_partition_malloc(part, 0));
      nitro_partition_destroy(part);
    }
    return;
  }
  ASSERT_NE(part, nullptr);
  void* a = nitro_partition_malloc(part, 0);
  void* b = nitro_partition_malloc(part, 0);
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a, b);
  if (Strict()) {
    // strict partitions: 0 bytes, then canaries (an overflow is seen at free).
    EXPECT_EQ(malloc_usable_size(a), 0u);
  } else {
    ExpectNoByte(a);
    ExpectNoByte(b);
  }
  void* c = nitro_partition_realloc(part, a, 40);
  ASSERT_NE(c, nullptr);
  memset(c, 3, 40);
  nitro_partition_free(part, c);
  nitro_partition_free(part, b);
  nitro_partition_destroy(part);
}

TEST(ZeroSize, ThreadsMakeDistinctPointers) {
  constexpr int kThreads = 4, kEach = 4000;
  std::vector<std::vector<void*>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kEach; i++) made[t].push_back(malloc(0));
    });
  }
  for (auto& th : threads) th.join();
  std::vector<void*> all;
  for (auto& v : made) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  if (!Legacy()) {
    for (size_t i = 0; i < all.size(); i += 101) EXPECT_FALSE(Readable(all[i]));
  }
  threads.clear();
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&made, t] {
      for (void* p : made[(t + 1) % kThreads]) free(p);
    });
  }
  for (auto& th : threads) th.join();
}

// The compiler may not see through it (and drop the malloc/free pair).
__attribute__((noipa)) void* Opaque(void* p) { return p; }

TEST(ZeroSizeDeathTest, DoubleFreeIsReported) {
  if (Legacy()) GTEST_SKIP() << "the C library's checks";
  EXPECT_DEATH(
      {
        void* p = Opaque(malloc(0));
        free(p);
        free(Opaque(p));
      },
      "double free");
}

}  // namespace
