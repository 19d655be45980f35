// The Windows-style heap API (nitroheap/win_heap.h) as documented there.
#include "nitroheap/win_heap.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

bool AllZero(const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != 0) return false;
  }
  return true;
}

std::set<uintptr_t> BusyBlocks(HANDLE h, int* regions = nullptr, int* free_blocks = nullptr) {
  std::set<uintptr_t> busy;
  PROCESS_HEAP_ENTRY e;
  e.lpData = nullptr;
  while (HeapWalk(h, &e)) {
    if (e.wFlags & PROCESS_HEAP_ENTRY_BUSY) {
      busy.insert(reinterpret_cast<uintptr_t>(e.lpData));
    } else if (e.wFlags & PROCESS_HEAP_REGION) {
      if (regions) ++*regions;
    } else if (free_blocks) {
      ++*free_blocks;
    }
  }
  EXPECT_EQ(GetLastError(), ERROR_NO_MORE_ITEMS);
  return busy;
}

class WinHeapTest : public ::testing::TestWithParam<SIZE_T> {};  // maximum: 0 growable

TEST_P(WinHeapTest, AllocSizeReallocFreeWalk) {
  HANDLE h = HeapCreate(0, 0, GetParam());
  ASSERT_NE(h, nullptr);
  std::vector<char*> blocks;
  for (int i = 1; i <= 50; i++) {
    auto* p = static_cast<char*>(HeapAlloc(h, HEAP_ZERO_MEMORY, i * 37));
    ASSERT_NE(p, nullptr);
    SIZE_T size = HeapSize(h, 0, p);
    ASSERT_GE(size, SIZE_T(i * 37));
    ASSERT_TRUE(AllZero(p, size));
    memset(p, i, i * 37);
    ASSERT_TRUE(HeapValidate(h, 0, p));
    blocks.push_back(p);
  }
  EXPECT_TRUE(HeapValidate(h, 0, nullptr));
  std::set<uintptr_t> expected;
  for (char* b : blocks) expected.insert(reinterpret_cast<uintptr_t>(b));
  EXPECT_EQ(BusyBlocks(h), expected);

  // Growth keeps the bytes; HEAP_ZERO_MEMORY zeroes what is new.
  char* p = blocks[3];
  SIZE_T old = HeapSize(h, 0, p);
  auto* q = static_cast<char*>(HeapReAlloc(h, HEAP_ZERO_MEMORY, p, 3000));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 4 * 37; i++) ASSERT_EQ(q[i], 4);
  EXPECT_TRUE(AllZero(q + old, HeapSize(h, 0, q) - old));
  blocks[3] = q;

  // In place only: a small block cannot grow far; it stays as it was.
  char* r = blocks[0];
  SetLastError(0);
  EXPECT_EQ(HeapReAlloc(h, HEAP_REALLOC_IN_PLACE_ONLY, r, 100000), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
  EXPECT_EQ(r[0], 1);
  EXPECT_EQ(HeapReAlloc(h, HEAP_REALLOC_IN_PLACE_ONLY, r, 10), r);  // shrinking is in place

  for (char* b : blocks) ASSERT_TRUE(HeapFree(h, 0, b));
  EXPECT_TRUE(HeapFree(h, 0, nullptr));
  SetLastError(0);
  EXPECT_EQ(HeapSize(h, 0, blocks[10]), static_cast<SIZE_T>(-1));
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_FALSE(HeapValidate(h, 0, blocks[10]));
  int regions = 0, free_blocks = 0;
  EXPECT_TRUE(BusyBlocks(h, &regions, &free_blocks).empty());
  if (GetParam() != 0) {
    EXPECT_EQ(regions, 1);
    EXPECT_EQ(free_blocks, 1);  // coalesced whole again
  }
  EXPECT_TRUE(HeapDestroy(h));
  SetLastError(0);
  EXPECT_EQ(HeapAlloc(h, 0, 8), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

INSTANTIATE_TEST_SUITE_P(GrowableAndFixed, WinHeapTest, ::testing::Values(SIZE_T{0}, SIZE_T{1} << 20));

TEST(WinHeap, GrowableHeapIsAPartition) {
  HANDLE h = HeapCreate(0, 4096, 0);
  void* p = HeapAlloc(h, 0, 100);
  nitro_partition_t* part = nitro_partition_of(p);
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(strncmp(nitro_partition_name(part), "winheap-", 8), 0);
  HeapFree(h, 0, p);
  HeapDestroy(h);
}

TEST(WinHeap, FixedHeapFailsCleanlyWhenFull) {
  HANDLE h = HeapCreate(0, 0, 64 << 10);
  ASSERT_NE(h, nullptr);
  std::vector<void*> blocks;
  void* p;
  SetLastError(0);
  while ((p = HeapAlloc(h, 0, 1000)) != nullptr) blocks.push_back(p);
  EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
  EXPECT_GT(blocks.size(), 55u);
  EXPECT_LE(blocks.size() * 1000, size_t{64} << 10);
  EXPECT_LT(HeapCompact(h, 0), 1000u);
  HeapFree(h, 0, blocks[20]);
  EXPECT_GE(HeapCompact(h, 0), 1000u);
  EXPECT_EQ(HeapAlloc(h, 0, 1000), blocks[20]);  // usable again, the freed block reused
  EXPECT_TRUE(HeapValidate(h, 0, nullptr));
  // A header overwritten: the heap no longer validates (and nothing aborts).
  memset(static_cast<char*>(blocks[5]) - 8, 0x5a, 8);
  EXPECT_FALSE(HeapValidate(h, 0, nullptr));
  EXPECT_FALSE(HeapValidate(h, 0, blocks[5]));
  EXPECT_TRUE(HeapDestroy(h));
}

TEST(WinHeap, BadArguments) {
  SetLastError(0);
  EXPECT_EQ(HeapCreate(0x100000, 0, 0), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_EQ(HeapCreate(0, 8192, 4096), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_EQ(HeapCreate(HEAP_CREATE_ENABLE_EXECUTE, 0, 0), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_NOT_SUPPORTED);
  int not_a_heap;
  SetLastError(0);
  EXPECT_EQ(HeapAlloc(&not_a_heap, 0, 8), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  EXPECT_FALSE(HeapFree(nullptr, 0, nullptr));
  EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  HANDLE h = HeapCreate(0, 0, 0);
  EXPECT_EQ(HeapAlloc(h, HEAP_REALLOC_IN_PLACE_ONLY, 8), nullptr);  // not an alloc flag
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_EQ(HeapReAlloc(h, 0, nullptr, 8), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_FALSE(HeapWalk(h, nullptr));
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  EXPECT_FALSE(HeapUnlock(h));  // not held
  HeapDestroy(h);
}

TEST(WinHeap, LastErrorIsPerThread) {
  SetLastError(1234);
  std::thread([] {
    EXPECT_EQ(GetLastError(), 0u);
    SetLastError(5);
  }).join();
  EXPECT_EQ(GetLastError(), 1234u);
}

TEST(WinHeap, ProcessHeapIsMalloc) {
  HANDLE ph = GetProcessHeap();
  ASSERT_NE(ph, nullptr);
  void* p = HeapAlloc(ph, HEAP_ZERO_MEMORY, 100);
  void* m = malloc(100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(AllZero(p, HeapSize(ph, 0, p)));
  EXPECT_EQ(nitro_partition_of(p), nitro_partition_of(m));
  free(m);
  p = HeapReAlloc(ph, 0, p, 5000);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(HeapFree(ph, 0, p));
  EXPECT_FALSE(HeapDestroy(ph));
  EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  PROCESS_HEAP_ENTRY e;
  e.lpData = nullptr;
  EXPECT_FALSE(HeapWalk(ph, &e));
  EXPECT_EQ(GetLastError(), ERROR_NOT_SUPPORTED);
  EXPECT_TRUE(HeapValidate(ph, 0, nullptr));
}

TEST(WinHeap, GetProcessHeapsListsEveryHeap) {
  DWORD before = GetProcessHeaps(0, nullptr);
  EXPECT_GE(before, 1u);
  HANDLE a = HeapCreate(0, 0, 0), b = HeapCreate(0, 0, 1 << 16);
  std::vector<HANDLE> all(before + 2);
  ASSERT_EQ(GetProcessHeaps(static_cast<DWORD>(all.size()), all.data()), before + 2);
  EXPECT_EQ(all[0], GetProcessHeap());
  std::set<HANDLE> seen(all.begin(), all.end());
  EXPECT_TRUE(seen.count(a) && seen.count(b));
  HANDLE one[1];
  EXPECT_EQ(GetProcessHeaps(1, one), before + 2);  // too small: the count anyway
  HeapDestroy(a);
  HeapDestroy(b);
  EXPECT_EQ(GetProcessHeaps(0, nullptr), before);
}

// HeapLock holds back other threads' serialized calls, not the holder's own
// (the lock is recursive) and not HEAP_NO_SERIALIZE calls.
TEST(WinHeap, HeapLockSerializes) {
  HANDLE h = HeapCreate(0, 0, 0);
  ASSERT_TRUE(HeapLock(h));
  void* mine = HeapAlloc(h, 0, 10);  // recursive
  ASSERT_NE(mine, nullptr);
  std::thread unserialized([&] { HeapFree(h, HEAP_NO_SERIALIZE, HeapAlloc(h, HEAP_NO_SERIALIZE, 10)); });
  unserialized.join();  // would hang if it waited for the lock
  std::atomic<bool> done{false};
  std::thread other([&] {
    HeapFree(h, 0, HeapAlloc(h, 0, 10));
    done = true;
  });
  usleep(50 * 1000);
  EXPECT_FALSE(done.load());  // still waiting for HeapUnlock
  ASSERT_TRUE(HeapUnlock(h));
  other.join();
  EXPECT_TRUE(done.load());
  HeapFree(h, 0, mine);
  HeapDestroy(h);
}

TEST(WinHeap, ForkWhileThreadsAllocate) {
  HANDLE h = HeapCreate(0, 0, 0), f = HeapCreate(0, 0, 1 << 20);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (HANDLE heap : {h, f}) {
    threads.emplace_back([&, heap] {
      while (!stop) HeapFree(heap, 0, HeapAlloc(heap, 0, 64));
    });
  }
  for (int i = 0; i < 10; i++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      void* a = HeapAlloc(h, 0, 100);
      void* b = HeapAlloc(f, 0, 100);
      _exit(a != nullptr && b != nullptr && HeapFree(h, 0, a) && HeapFree(f, 0, b) &&
                    HeapValidate(f, 0, nullptr)
                ? 0
                : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  stop = true;
  for (auto& t : threads) t.join();
  HeapDestroy(h);
  HeapDestroy(f);
}

std::atomic<int> g_aborts{0};
void CountAbort(int) { g_aborts++; }

TEST(WinHeap, GenerateExceptions) {
  HANDLE h = HeapCreate(HEAP_GENERATE_EXCEPTIONS, 0, 1 << 16);
  ASSERT_NE(h, nullptr);
  // A handler that returns: the call then fails as without the flag.
  struct sigaction sa = {}, old = {};
  sa.sa_handler = CountAbort;
  sigaction(SIGABRT, &sa, &old);
  EXPECT_EQ(HeapAlloc(h, 0, 1 << 20), nullptr);
  EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
  EXPECT_EQ(g_aborts.load(), 1);
  sigaction(SIGABRT, &old, nullptr);
  EXPECT_NE(HeapAlloc(h, 0, 100), nullptr);  // still usable
  // No handler: the process ends with the one-line report.
  EXPECT_DEATH(HeapAlloc(h, 0, 1 << 20), "HeapAlloc: STATUS_NO_MEMORY \\(0xc0000017\\)");
  HANDLE g = HeapCreate(0, 0, 1 << 16);
  EXPECT_EQ(HeapAlloc(g, 0, 1 << 20), nullptr);  // no flag: just NULL
  EXPECT_DEATH(HeapAlloc(g, HEAP_GENERATE_EXCEPTIONS, 1 << 20), "STATUS_NO_MEMORY");
  HeapDestroy(g);
  HeapDestroy(h);
}

TEST(WinHeap, MisuseIsReported) {
  HANDLE h = HeapCreate(0, 0, 0);
  void* p = HeapAlloc(h, 0, 64);
  HeapFree(h, 0, p);
  EXPECT_DEATH(HeapFree(h, 0, p), "nitroheap: double free");
  EXPECT_DEATH(HeapReAlloc(h, 0, p, 100), "nitroheap: invalid free");
  HANDLE f = HeapCreate(0, 0, 1 << 16);
  void* q = HeapAlloc(f, 0, 64);
  EXPECT_DEATH(HeapFree(h, 0, q), "nitroheap: free of memory not from the heap");
  HeapDestroy(f);
  HeapDestroy(h);
}

}  // namespace
