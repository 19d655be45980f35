// The jemalloc-style API (nitroheap/mallocx.h) with NitroHeap as the
// program's malloc: jemalloc's semantics for every flag it defines, the
// defined refusals for the flags NitroHeap cannot serve, and NitroHeap's own
// flags. Run in every mode, and with every allocation sampled (BUILD).
#include "nitroheap/mallocx.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

extern "C" void free_aligned_sized(void*, size_t, size_t);  // C23; glibc 2.36 does not declare it

namespace {

const size_t kSizes[] = {1,    2,    8,     15,    16,    17,    48,     100,    128,    1000,
                         4095, 4096, 4097,  10000, 32768, 65537, 131072, 131073, 200000, 1 << 20};

bool AllZero(const void* p, size_t n) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (c[i] != 0) return false;
  }
  return true;
}

void Fill(void* p, size_t n, unsigned char seed) {
  unsigned char* c = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i++) c[i] = static_cast<unsigned char>(seed + i * 13);
}

bool Filled(const void* p, size_t n, unsigned char seed) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (c[i] != static_cast<unsigned char>(seed + i * 13)) return false;
  }
  return true;
}

TEST(Mallocx, ActiveUnderTest) { ASSERT_EQ(nitro_is_active(), 1); }

TEST(Mallocx, NallocxEqualsSallocxForEverySizeAndAlignment) {
  for (size_t size : kSizes) {
    for (int lg = 0; lg <= 16; lg++) {
      for (int zero : {0, MALLOCX_ZERO}) {
        int flags = MALLOCX_LG_ALIGN(lg) | zero;
        void* p = mallocx(size, flags);
        ASSERT_NE(p, nullptr) << size << " lg " << lg;
        size_t usable = sallocx(p, 0);
        EXPECT_EQ(nallocx(size, flags), usable) << size << " lg " << lg;
        EXPECT_EQ(malloc_usable_size(p), usable);
        EXPECT_GE(usable, size);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (uintptr_t{1} << lg), 0u) << size << " lg " << lg;
        if (zero) {
          EXPECT_TRUE(AllZero(p, usable)) << size << " lg " << lg;
        }
        Fill(p, usable, 1);
        dallocx(p, flags);
      }
    }
  }
}

// malloc_usable_size answers a live small object inline (core/heap.h
// UsableSize) and anything else from its slow path; both must agree with
// nallocx, which finds the size from the request alone, except for a
// guarded sample (every allocation while the pool lasts with
// sample_rate=1), which reports the size asked for. Every size up to 2 KiB,
// then sizes a few bytes apart to past the largest small size, with a
// second object of the size asked about before and after the first's free.
TEST(Mallocx, MallocUsableSizeIsNallocxForEverySize) {
  auto usable_ok = [](void* p, size_t size) {
    size_t usable = malloc_usable_size(p);
    return usable == nallocx(size, 0) || usable == size;
  };
  for (size_t size = 1; size <= (size_t{1} << 18); size += size < 2048 ? 1 : 7 + size / 64) {
    void* p = malloc(size);
    void* q = malloc(size);
    ASSERT_NE(p, nullptr) << size;
    ASSERT_NE(q, nullptr) << size;
    ASSERT_TRUE(usable_ok(p, size)) << size << ": " << malloc_usable_size(p) << ", nallocx " << nallocx(size, 0);
    ASSERT_TRUE(usable_ok(q, size)) << size << ": " << malloc_usable_size(q) << ", nallocx " << nallocx(size, 0);
    free(p);
    ASSERT_TRUE(usable_ok(q, size)) << size;
    free(q);
  }
}

// aligned_alloc, posix_memalign and aligned operator new pop an aligned
// request from its class's magazine inline (core/heap.h
// AllocateAlignedFast) up to the page size: every such block must be
// aligned, hold its size, and have the usable size nallocx promises for the
// alignment (or, a guarded sample, the size asked for). Sizes 0 to 1 KiB one
// by one, then further apart past the largest small size, 32 blocks live at
// a time so that reused objects are checked too.
TEST(Mallocx, AlignedAllocationIsAlignedAndSizedForEverySize) {
  struct Block {
    void* p;
    size_t size;
    size_t align;
    int how;
  };
  // Sized frees with the alignment (the sized-free fast path checks the
  // class an aligned request gets) for two of the three.
  auto release = [](const Block& b) {
    ASSERT_TRUE(Filled(b.p, b.size, static_cast<unsigned char>(b.size))) << b.size << " align " << b.align;
    switch (b.how) {
      case 0: free_aligned_sized(b.p, b.align, b.size); break;
      case 1: free(b.p); break;
      case 2: ::operator delete(b.p, b.size, std::align_val_t(b.align)); break;
    }
  };
  for (size_t align = 32; align <= 8192; align *= 2) {
    Block live[32] = {};
    int n = 0;
    for (size_t size = 0; size <= (size_t{1} << 18); size += size < 1024 ? 1 : 61 + size / 16) {
      Block b{nullptr, size, align, n % 3};
      switch (n % 3) {
        case 0: b.p = aligned_alloc(align, size); break;
        case 1: ASSERT_EQ(posix_memalign(&b.p, align, size), 0) << size << " align " << align; break;
        case 2: b.p = ::operator new(size, std::align_val_t(align)); break;
      }
      ASSERT_NE(b.p, nullptr) << size << " align " << align;
      ASSERT_EQ(reinterpret_cast<uintptr_t>(b.p) % align, 0u) << size << " align " << align;
      size_t usable = malloc_usable_size(b.p);
      size_t want = nallocx(size, MALLOCX_ALIGN(align));
      ASSERT_TRUE(usable == want || usable == size) << size << " align " << align << ": " << usable
                                                    << ", nallocx " << want;
      ASSERT_GE(usable, size);
      Fill(b.p, size, static_cast<unsigned char>(size));
      if (live[n % 32].p != nullptr) release(live[n % 32]);
      live[n % 32] = b;
      n++;
    }
    for (const Block& b : live) {
      if (b.p != nullptr) release(b);
    }
  }
}

TEST(Mallocx, AlignMacroMatchesLgAlign) {
  EXPECT_EQ(MALLOCX_ALIGN(4096), MALLOCX_LG_ALIGN(12));
  EXPECT_EQ(MALLOCX_ALIGN(1), MALLOCX_LG_ALIGN(0));
  void* p = mallocx(10, MALLOCX_ALIGN(1 << 20));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (1 << 20), 0u);
  EXPECT_EQ(sallocx(p, 0), nallocx(10, MALLOCX_ALIGN(1 << 20)));
  dallocx(p, 0);
}

TEST(Mallocx, SizeZeroIsOneByte) {
  void* p = mallocx(0, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(sallocx(p, 0), nallocx(1, 0));
  EXPECT_EQ(nallocx(0, 0), nallocx(1, 0));
  sdallocx(p, 0, 0);
}

TEST(Mallocx, ReusedBlocksAreZeroedWithMallocxZero) {
  // Dirty a block of each size, free it, and ask again with MALLOCX_ZERO:
  // the thread cache hands the same slot back.
  for (size_t size : kSizes) {
    void* p = mallocx(size, 0);
    ASSERT_NE(p, nullptr);
    memset(p, 0xab, sallocx(p, 0));
    dallocx(p, 0);
    void* q = mallocx(size, MALLOCX_ZERO);
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(AllZero(q, sallocx(q, 0))) << size;
    dallocx(q, 0);
  }
}

TEST(Mallocx, RallocxMovesWhenNeededAndKeepsContents) {
  for (size_t size : kSizes) {
    for (int lg : {0, 6, 12}) {
      int flags = MALLOCX_LG_ALIGN(lg);
      void* p = mallocx(size, flags);
      ASSERT_NE(p, nullptr);
      size_t usable = sallocx(p, 0);
      Fill(p, usable, 7);
      size_t bigger = size * 4 + 3;
      void* q = rallocx(p, bigger, flags | MALLOCX_ZERO);
      ASSERT_NE(q, nullptr);
      size_t q_usable = sallocx(q, 0);
      EXPECT_GE(q_usable, bigger);
      EXPECT_TRUE(Filled(q, usable, 7)) << size;
      EXPECT_TRUE(AllZero(static_cast<char*>(q) + usable, q_usable - usable)) << size;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % (uintptr_t{1} << lg), 0u);
      size_t smaller = size / 3 + 1;
      void* r = rallocx(q, smaller, flags);
      ASSERT_NE(r, nullptr);
      EXPECT_TRUE(Filled(r, smaller, 7)) << size;
      EXPECT_GE(sallocx(r, 0), smaller);
      sdallocx(r, smaller, flags);
    }
  }
}

TEST(Mallocx, RallocxFailureKeepsTheOldBlock) {
  void* p = mallocx(64, 0);
  ASSERT_NE(p, nullptr);
  Fill(p, 64, 3);
  errno = 0;
  EXPECT_EQ(rallocx(p, SIZE_MAX / 2 + 1, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_TRUE(Filled(p, 64, 3));
  EXPECT_EQ(sallocx(p, 0), nallocx(64, 0));
  dallocx(p, 0);
}

TEST(Mallocx, XallocxNeverMoves) {
  void* p = mallocx(100, 0);
  ASSERT_NE(p, nullptr);
  size_t usable = sallocx(p, 0);
  Fill(p, usable, 5);
  // Within the block's size: in place, and the usable size is reported.
  EXPECT_EQ(xallocx(p, usable, 0, 0), usable);
  EXPECT_EQ(xallocx(p, 100, 0, 0), usable);
  // A small block cannot grow into another class in place: the size stays.
  EXPECT_EQ(xallocx(p, 100000, 0, 0), usable);
  EXPECT_EQ(sallocx(p, 0), usable);
  // extra: the block may grow by up to `extra`, and must reach `size`.
  EXPECT_EQ(xallocx(p, 60, 100000, 0), usable);
  EXPECT_TRUE(Filled(p, usable, 5));
  dallocx(p, 0);
}

TEST(Mallocx, XallocxResizesLargeBlocksInPlace) {
  size_t mb = 1 << 20;
  char* p = static_cast<char*>(mallocx(mb, 0));
  ASSERT_NE(p, nullptr);
  Fill(p, mb, 9);
  size_t shrunk = xallocx(p, mb / 2, 0, 0);
  EXPECT_GE(shrunk, mb / 2);
  EXPECT_LT(shrunk, mb);
  EXPECT_EQ(sallocx(p, 0), shrunk);
  EXPECT_TRUE(Filled(p, mb / 2, 9));
  // Growing back: in place if the pages after it are free, else unchanged;
  // either way the pointer is the same and the result is its usable size.
  size_t grown = xallocx(p, mb, 0, MALLOCX_ZERO);
  EXPECT_EQ(sallocx(p, 0), grown);
  EXPECT_TRUE(grown == shrunk || grown >= mb);
  if (grown > shrunk) {
    EXPECT_TRUE(AllZero(p + shrunk, grown - shrunk));
  }
  EXPECT_TRUE(Filled(p, mb / 2, 9));
  // Either size is accepted by the sized free that matches it.
  sdallocx(p, grown > shrunk ? mb : mb / 2, 0);
}

TEST(Mallocx, XallocxTriesSizePlusExtraFirst) {
  size_t mb = 1 << 20;
  void* p = mallocx(mb, 0);
  ASSERT_NE(p, nullptr);
  size_t got = xallocx(p, mb / 4, mb / 4, 0);
  EXPECT_GE(got, mb / 2);  // size + extra fits in place (a shrink)
  EXPECT_EQ(sallocx(p, 0), got);
  dallocx(p, 0);
}

TEST(Mallocx, SdallocxAcceptsSizesFromRequestToUsable) {
  for (size_t size : kSizes) {
    if (size > 131072) continue;  // large blocks: the exact size (below)
    void* p = mallocx(size, 0);
    void* q = mallocx(size, 0);
    ASSERT_NE(p, nullptr);
    ASSERT_NE(q, nullptr);
    sdallocx(p, size, 0);
    sdallocx(q, sallocx(q, 0), 0);
  }
  void* large = mallocx(200000, 0);
  ASSERT_NE(large, nullptr);
  sdallocx(large, 200000, 0);
}

TEST(MallocxDeathTest, SdallocxWithWrongSizeIsReported) {
  EXPECT_DEATH(
      {
        void* p = mallocx(100, 0);
        sdallocx(p, 1000, 0);
      },
      "sized free with the wrong size");
  EXPECT_DEATH(
      {
        void* p = mallocx(200000, 0);
        sdallocx(p, 100000, 0);
      },
      "sized free with the wrong size");
}

TEST(Mallocx, TcacheNoneIsAccepted) {
  void* p = mallocx(100, MALLOCX_TCACHE_NONE | MALLOCX_ZERO);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(AllZero(p, sallocx(p, 0)));
  EXPECT_EQ(nallocx(100, MALLOCX_TCACHE_NONE), sallocx(p, 0));
  p = rallocx(p, 1000, MALLOCX_TCACHE_NONE);
  ASSERT_NE(p, nullptr);
  sdallocx(p, 1000, MALLOCX_TCACHE_NONE);
}

// Flags NitroHeap cannot serve: NULL (0 from nallocx) with EINVAL, never
// silently ignored.
TEST(Mallocx, RefusedFlagsFailWithEinval) {
  const int refused[] = {
      MALLOCX_ARENA(0),           MALLOCX_ARENA(7),           MALLOCX_TCACHE(0),
      MALLOCX_TCACHE(5),          NITRO_TRAIT_MOVABLE,        NITRO_TRAIT_MOVABLE | NITRO_TRAIT_SHARED_RW,
      NITRO_TRAIT_SECURE_STRICT | NITRO_TRAIT_LOW_LATENCY,  // conflicting traits
      NITRO_TRAIT_SECURE_STRICT | NITRO_MALLOCX_PARTITION(1),
      NITRO_MALLOCX_PARTITION(0),  NITRO_MALLOCX_PARTITION(255), NITRO_MALLOCX_PARTITION(4000),
  };
  void* block = mallocx(100, 0);
  ASSERT_NE(block, nullptr);
  size_t usable = sallocx(block, 0);
  for (int flags : refused) {
    errno = 0;
    EXPECT_EQ(mallocx(100, flags), nullptr) << std::hex << flags;
    EXPECT_EQ(errno, EINVAL) << std::hex << flags;
    errno = 0;
    EXPECT_EQ(nallocx(100, flags), 0u) << std::hex << flags;
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(rallocx(block, 1000, flags), nullptr) << std::hex << flags;
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(xallocx(block, usable, 0, flags), usable);
    EXPECT_EQ(errno, EINVAL);
  }
  dallocx(block, 0);
}

TEST(MallocxDeathTest, FreeWithRefusedFlagsIsReported) {
  EXPECT_DEATH(dallocx(mallocx(100, 0), MALLOCX_TCACHE(3)), "invalid free.*MALLOCX_TCACHE");
  EXPECT_DEATH(sdallocx(mallocx(100, 0), 100, NITRO_TRAIT_MOVABLE), "invalid free.*NITRO_TRAIT");
  // A trait set names a partition: a block of another one is reported.
  EXPECT_DEATH(dallocx(mallocx(100, 0), NITRO_TRAIT_LOW_LATENCY), "traits:lowlat");
}

TEST(Mallocx, NitroFlagsUseBitsJemallocLeavesFree) {
  // jemalloc's own fields stay as they are; bit 7 alone is free in them.
  EXPECT_EQ(NITRO_MALLOCX_FLAGS & (0x3f | MALLOCX_ZERO), 0);
  EXPECT_EQ(NITRO_MALLOCX_FLAGS & MALLOCX_TCACHE_NONE, 0);
  EXPECT_EQ((NITRO_TRAIT_SECURE_STRICT | NITRO_TRAIT_TELEMETRY_SILENT) & MALLOCX_TCACHE_NONE, 0);
}

TEST(Mallocx, PartitionFlagAllocatesInThatPartition) {
  nitro_partition_t* part = nitro_partition_create("mallocx_test");
  ASSERT_NE(part, nullptr);
  int id = nitro_partition_id(part);
  ASSERT_GT(id, 0);
  int flags = NITRO_MALLOCX_PARTITION(id);
  for (size_t size : kSizes) {
    void* p = mallocx(size, flags | MALLOCX_ZERO | MALLOCX_LG_ALIGN(6));
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(nitro_partition_of(p), part);
    EXPECT_EQ(sallocx(p, 0), nallocx(size, flags | MALLOCX_LG_ALIGN(6))) << size;
    EXPECT_TRUE(AllZero(p, sallocx(p, 0)));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    Fill(p, size, 4);
    // rallocx keeps the block in its partition; the flag is checked.
    void* q = rallocx(p, size * 2, flags);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(nitro_partition_of(q), part);
    EXPECT_TRUE(Filled(q, size, 4));
    errno = 0;
    EXPECT_EQ(rallocx(q, size * 3, MALLOCX_ARENA(0)), nullptr);
    EXPECT_EQ(errno, EINVAL);
    sdallocx(q, size * 2, flags);
  }
  void* m = malloc(100);
  int default_id = nitro_partition_id(nitro_partition_of(m));
  free(m);
  EXPECT_GT(default_id, 0);
  EXPECT_NE(default_id, id);
  void* d = mallocx(100, NITRO_MALLOCX_PARTITION(default_id));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(nitro_partition_id(nitro_partition_of(d)), default_id);
  errno = 0;
  EXPECT_EQ(rallocx(d, 300, flags), nullptr);  // not this partition's block
  EXPECT_EQ(errno, EINVAL);
  EXPECT_DEATH(dallocx(d, flags), "does not own this pointer");
  dallocx(d, NITRO_MALLOCX_PARTITION(default_id));
  EXPECT_EQ(nitro_partition_destroy(part), 0);
  // A destroyed partition's id names nothing.
  errno = 0;
  EXPECT_EQ(mallocx(100, flags), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

}  // namespace
