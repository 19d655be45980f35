#include "core/size_class.h"

#include <gtest/gtest.h>

namespace nitro {
namespace {

// Classes 1 .. kLargestClass are the sized ones; kZeroSizeClass (malloc(0),
// the last) is tested in zero_size_class_test.cc and below where noted.
TEST(SizeClassMap, ClassesAreIncreasingMultiplesOfTheMinimumAlignment) {
  EXPECT_EQ(kSizeClasses.size(1), 16u);
  EXPECT_EQ(kSizeClasses.size(kLargestClass), kMaxSmallSize);
  EXPECT_EQ(kSizeClasses.size(kZeroSizeClass), 0u);
  for (int c = 1; c <= kLargestClass; c++) {
    EXPECT_EQ(kSizeClasses.stride(c), kSizeClasses.size(c)) << c;
    EXPECT_EQ(kSizeClasses.size(c) % kMinAlign, 0u) << c;
    if (c > 1) {
      EXPECT_GT(kSizeClasses.size(c), kSizeClasses.size(c - 1)) << c;
    }
  }
}

TEST(SizeClassMap, WorstCaseWastePerClassIsBounded) {
  // Waste of a class: the bytes lost by the smallest request it serves.
  for (int c = 2; c <= kLargestClass; c++) {
    uint32_t size = kSizeClasses.size(c);
    uint32_t prev = kSizeClasses.size(c - 1);
    double waste = static_cast<double>(size - (prev + 1)) / size;
    if (size <= 128) {
      // Below 128 bytes the 16-byte alignment is the step; waste < 16 bytes.
      EXPECT_EQ(size - prev, 16u) << size;
    } else {
      EXPECT_LE(waste, 0.125) << "class " << size << " after " << prev;
    }
  }
}

TEST(SizeClassMap, LookupReturnsTheSmallestFittingClassForEverySize) {
  EXPECT_EQ(kSizeClasses.ClassFor(0), kZeroSizeClass);
  int expected = 1;
  for (size_t size = 1; size <= kMaxSmallSize; size++) {
    while (kSizeClasses.size(expected) < size) expected++;
    ASSERT_EQ(kSizeClasses.ClassFor(size), expected) << size;
  }
}

TEST(SizeClassMap, SlabsAreDenseAndFitTheBitmap) {
  for (int c = 1; c <= kLargestClass; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    size_t slab = info.slab_pages * kPageSize;
    EXPECT_EQ(info.capacity, slab / info.size) << c;
    EXPECT_LE(info.capacity, static_cast<uint32_t>(kMaxObjectsPerSlab)) << c;
    EXPECT_GE(info.capacity, info.size <= 8192 ? 8u : (info.size <= 32768 ? 4u : 2u)) << c;
    EXPECT_LE((slab % info.size) * 8, slab) << "tail waste above 1/8 for class " << info.size;
    EXPECT_GE(info.cache_max, info.batch) << c;
    EXPECT_GE(info.batch, 2u) << c;
  }
}

TEST(SizeClassMap, MagicDivisionIsExactForEveryOffsetInASlab) {
  for (int c = 1; c < kNumClasses; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    uint64_t slab = uint64_t{info.slab_pages} * kPageSize;
    for (uint64_t off = 0; off < slab; off++) {
      ASSERT_EQ((off * info.magic) >> kMagicShift, off / info.stride)
          << "class " << c << " offset " << off;
    }
  }
}

// free's fast path trusts ExactIndex below capacity to mean "the start of
// object idx": every offset of the slab and past its end, offsets below its
// start (p below the slab: off wraps) and far ones (p at or above 2^47,
// which the page map masks down) must give the quotient exactly for object
// starts and a value at or above capacity for everything else.
TEST(SizeClassMap, ExactIndexAcceptsOnlyObjectStarts) {
  for (int c = 1; c < kNumClasses; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    uint64_t odd = info.stride >> info.stride_shift;
    ASSERT_EQ(odd % 2, 1u) << "class " << c;
    ASSERT_EQ(odd << info.stride_shift, info.stride) << "class " << c;
    ASSERT_EQ(odd * info.stride_inverse, 1u) << "class " << c << ": the inverse modulo 2^64";
    uint64_t slab = uint64_t{info.slab_pages} * kPageSize;
    auto check = [&](uint64_t off) {
      uint64_t idx = ExactIndex(off, info.stride_inverse, info.stride_shift);
      bool start = off % info.stride == 0 && off / info.stride < info.capacity;
      if (start) {
        ASSERT_EQ(idx, off / info.stride) << "class " << c << " offset " << off;
      } else {
        ASSERT_GE(idx, info.capacity) << "class " << c << " offset " << off;
      }
    };
    for (uint64_t off = 0; off < 2 * slab; off++) check(off);
    for (uint64_t back = 1; back <= 2 * slab; back++) check(0 - back);
    for (int bit = 20; bit < 64; bit++) {
      for (uint64_t k = 0; k < 4; k++) {
        check((uint64_t{1} << bit) + k * info.stride);
        check((uint64_t{1} << bit) + k * info.stride + 16);
        check((uint64_t{1} << bit) - k * info.stride);
      }
    }
  }
}

TEST(SizeClassMap, MagazineOffsetIsTheClassTimesTheMagazineSize) {
  for (size_t size = 0; size <= kMaxSmallSize; size++) {
    ASSERT_EQ(kSizeClasses.MagazineOffsetFor(size), uint32_t(kSizeClasses.ClassFor(size)) * kMagazineBytes)
        << "size " << size;
  }
}

TEST(SizeClassMap, AlignedLookupHonoursAlignment) {
  for (size_t align = 16; align <= kPageSize; align *= 2) {
    for (size_t size : {0ul, 1ul, 17ul, 100ul, 1000ul, 5000ul, 70000ul}) {
      int c = kSizeClasses.ClassForAligned(size, align);
      ASSERT_NE(c, 0) << size << " " << align;
      EXPECT_GE(kSizeClasses.size(c), size);
      EXPECT_EQ(kSizeClasses.size(c) % align, 0u);
    }
  }
  EXPECT_EQ(kSizeClasses.ClassForAligned(kMaxSmallSize + 1, 16), 0);
}

// ClassForAligned is a lookup of the size rounded up to the alignment; the
// answer must be the search it replaced: the smallest class holding `size`
// whose size the alignment divides. Every size to 8 KiB, then every 13th.
TEST(SizeClassMap, AlignedLookupIsTheSmallestAlignedClassForEverySize) {
  auto search = [](size_t size, size_t align) {
    if (size > kMaxSmallSize) return 0;
    for (int c = kSizeClasses.ClassFor(size == 0 ? 1 : size); c <= kLargestClass; c++) {
      if (kSizeClasses.size(c) % align == 0) return c;
    }
    return 0;
  };
  for (size_t align = 1; align <= kPageSize; align *= 2) {
    for (size_t size = 0; size <= kMaxSmallSize + 64; size += size < 8192 ? 1 : 13) {
      ASSERT_EQ(kSizeClasses.ClassForAligned(size, align), search(size, align)) << size << " align " << align;
    }
    ASSERT_EQ(kSizeClasses.ClassForAligned(kMaxSmallSize, align), search(kMaxSmallSize, align)) << align;
  }
}

}  // namespace
}  // namespace nitro
