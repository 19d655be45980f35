// The large-block protection coin as a program sees it, through malloc and
// free, with the token bucket off (NITROHEAP_OPTIONS=
// large_protect_burst=0,large_protect_per_sec=0): about one freed block in
// 256 has its first pages closed (docs/security.md, *Large blocks*), the
// rest of those blocks stays open, and a touch of a closed head is reported
// as a use after free. A page is probed with write(2) from it: the kernel
// answers EFAULT for a PROT_NONE page instead of raising SIGSEGV.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kHeadPages = 4;  // core/large_protect.h's kProtectHeadPages
constexpr size_t kBlock = size_t{1} << 20;

class Probe {
 public:
  Probe() { EXPECT_EQ(pipe(fds_), 0); }
  ~Probe() {
    close(fds_[0]);
    close(fds_[1]);
  }
  bool Readable(const void* p) {
    ssize_t n = write(fds_[1], p, 1);
    if (n == 1) {
      char c;
      EXPECT_EQ(read(fds_[0], &c, 1), 1);
      return true;
    }
    EXPECT_EQ(errno, EFAULT);
    return false;
  }

 private:
  int fds_[2];
};

// The freed block's address, hidden from the compiler's use-after-free
// warning: the test means to look at freed memory.
char* Opaque(uintptr_t address) {
  asm volatile("" : "+r"(address));
  return reinterpret_cast<char*>(address);
}

// Frees `count` 1 MiB blocks, written whole, one at a time, and probes each
// right after its free (still in the quarantine). Returns the closed ones;
// with `stop_at_closed`, stops at the first (later frees would push it out
// of the quarantine, which opens it).
std::vector<char*> FreeAndProbe(int count, int* open_middles_of_closed, bool stop_at_closed = false) {
  Probe probe;
  std::vector<char*> closed;
  *open_middles_of_closed = 0;
  for (int i = 0; i < count; i++) {
    char* p = Opaque(reinterpret_cast<uintptr_t>(malloc(kBlock)));
    EXPECT_NE(p, nullptr);
    memset(p, 1, kBlock);
    asm volatile("" : : "r"(p) : "memory");  // the writes are not dead
    uintptr_t address = reinterpret_cast<uintptr_t>(p);
    free(p);
    p = Opaque(address);
    if (probe.Readable(p)) continue;
    closed.push_back(p);
    // Every page of the head is closed, and what follows it is not.
    for (size_t k = 1; k < kHeadPages; k++) EXPECT_FALSE(probe.Readable(p + k * kPage)) << k;
    if (probe.Readable(p + kHeadPages * kPage) && probe.Readable(p + kBlock / 2) &&
        probe.Readable(p + kBlock - 1)) {
      ++*open_middles_of_closed;
    }
    if (stop_at_closed) break;
  }
  return closed;
}

TEST(LargeProtectCoin, AboutOneBlockIn256HasItsHeadClosed) {
  int open_middles = 0;
  std::vector<char*> closed = FreeAndProbe(8192, &open_middles);
  // 32 expected; the coin is random per process, so the bounds are wide
  // (below 10 or above 70 has odds under one in a million).
  EXPECT_GE(closed.size(), 10u);
  EXPECT_LE(closed.size(), 70u);
  EXPECT_EQ(open_middles, static_cast<int>(closed.size()));
}

using LargeProtectCoinDeathTest = ::testing::Test;

TEST_F(LargeProtectCoinDeathTest, ATouchOfAClosedHeadIsAUseAfterFree) {
  EXPECT_DEATH(
      {
        int open_middles = 0;
        std::vector<char*> closed;
        while (closed.empty()) closed = FreeAndProbe(256, &open_middles, /*stop_at_closed=*/true);
        volatile char* p = closed.back();
        p[kPage + 10] = 7;
      },
      "use after free at 0x[0-9a-f]+ in partition [a-z]+: access to freed large memory");
}

}  // namespace
