// strict mode's small-object checks as a program sees them, through malloc
// and free (the checked fast path of core/strict.cc): the canaries after a
// request of every length are intact after the program writes all of its
// bytes, and an overwrite of any slack byte is reported at free; reused
// objects read as zero. Run with NITROHEAP_OPTIONS=mode=strict,sample_rate=0
// (guarded samples keep canaries of their own).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include <gtest/gtest.h>

namespace {

// Every slot is a multiple of 16 bytes with room for the terminator, so
// [n, RoundUp16(n + 1)) lies in the slack of an n-byte object.
size_t SlackEnd(size_t n) { return (n + 1 + 15) & ~size_t{15}; }

// Not folded away by the compiler: the program really writes the byte.
void Corrupt(unsigned char* p, size_t k) {
  volatile unsigned char* v = p;
  v[k] = static_cast<unsigned char>(v[k] ^ 0x5a);
}

TEST(StrictChecks, FullWritesOfEveryLengthFreeCleanly) {
  // Lengths 1..1100 cover every position of the terminator in its word and
  // classes up to 1 KiB; each object written to its last byte, twice
  // around (the second time through objects freed and reused).
  for (int round = 0; round < 2; round++) {
    std::vector<unsigned char*> live;
    for (size_t n = 1; n <= 1100; n++) {
      auto* p = static_cast<unsigned char*>(malloc(n));
      ASSERT_NE(p, nullptr);
      memset(p, 0xff, n);
      live.push_back(p);
    }
    for (unsigned char* p : live) free(p);
  }
}

TEST(StrictChecks, ObjectsReadAsZeroWhenReused) {
  // Free objects are zeroed at free and checked zero at reuse, so malloc
  // hands out zero bytes even after the program filled them (more pairs
  // than any class's quarantine depth, so objects do come back).
  for (size_t n : {8, 24, 64, 200, 1000}) {
    for (int i = 0; i < 3000; i++) {
      auto* p = static_cast<unsigned char*>(malloc(n));
      ASSERT_NE(p, nullptr);
      for (size_t k = 0; k < n; k++) ASSERT_EQ(p[k], 0) << "byte " << k << " of a " << n << "-byte object";
      memset(p, 0xab, n);
      free(p);
    }
  }
}

using StrictChecksDeathTest = ::testing::Test;

TEST_F(StrictChecksDeathTest, AnOverwrittenSlackByteIsReportedAtFree) {
  GTEST_FLAG_SET(death_test_style, "fast");
  // Every terminator position (n % 8) and every slack byte up to the next
  // 16-byte boundary: the head word (program bytes masked out, the
  // terminator, the pattern) and the whole words after it.
  for (size_t n = 1; n <= 48; n++) {
    for (size_t k = n; k < SlackEnd(n); k++) {
      EXPECT_DEATH(
          {
            auto* p = static_cast<unsigned char*>(malloc(n));
            Corrupt(p, k);
            free(p);
          },
          "written past its end \\(canary at offset " + std::to_string(k) + "\\)")
          << n << "-byte object, slack byte " << k;
    }
  }
}

}  // namespace
