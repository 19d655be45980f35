// SizeClassMap: the exact size classes for small objects and the O(1)
// size -> class lookup.
//
// Classes are multiples of 16 bytes (the minimum alignment). Up to 128 bytes
// they step by 16; above, every power-of-two interval [2^k, 2^(k+1)] is split
// into 8 equal steps, so the waste of any class is at most 1/9 of its size
// (< 12.5%). Below 128 bytes waste is bounded by the 15 bytes the alignment
// forces instead. The largest class is kMaxSmallSize (128 KiB); larger
// requests are page runs ("large" allocations).
//
// Each class also fixes its slab (a run of pages cut into objects): at least
// 8 objects (4 above 8 KiB, 2 above 32 KiB) and 16 KiB (at most 256
// objects), grown until the unusable tail is <= 1/8 of the slab.
//
// The last class, kZeroSizeClass, serves malloc(0): objects of 0 usable
// bytes, 16 bytes apart (so each malloc(0) is a distinct pointer), in
// one-page slabs that the middle layer maps PROT_NONE
// (core/central_free_list.cc), so any access through such a pointer
// faults. ClassFor(0) returns it from the same table lookup as every other
// size: malloc(0) costs the fast path nothing.
#ifndef NITROHEAP_CORE_SIZE_CLASS_H_
#define NITROHEAP_CORE_SIZE_CLASS_H_

#include <stddef.h>
#include <stdint.h>

#include "core/base.h"

namespace nitro {

inline constexpr size_t kMaxSmallSize = 128 * 1024;
// Class 0 is "not a small class"; 1 .. kLargestClass hold 16 B .. 128 KiB in
// increasing order; kZeroSizeClass (the last) holds malloc(0)'s objects.
inline constexpr int kNumClasses = 90;
inline constexpr int kZeroSizeClass = kNumClasses - 1;
inline constexpr int kLargestClass = kNumClasses - 2;
inline constexpr int kMaxObjectsPerSlab = 256;
// Objects per slab index: (offset * magic) >> kMagicShift == offset / size for
// every offset inside a slab (checked by size_class_test).
inline constexpr int kMagicShift = 42;
// Bytes of one thread-cache magazine (ThreadCache::Magazine, one cache line
// per class; core/thread_cache.h checks it).
inline constexpr uint32_t kMagazineBytes = 64;
static_assert(kNumClasses * kMagazineBytes <= 65535, "magazine offsets fit 16 bits");

struct SizeClassInfo {
  uint32_t size;        // usable bytes per object (0 for kZeroSizeClass)
  uint32_t stride;      // bytes from one object to the next (size, or 16 for kZeroSizeClass)
  uint32_t slab_pages;  // pages per slab
  uint32_t capacity;    // objects per slab
  uint32_t batch;       // objects moved between a thread cache and the middle layer at once
  uint32_t cache_max;   // most objects a thread cache keeps of this class
  uint64_t magic;       // ceil(2^kMagicShift / stride)
  // The exact-start check of free's fast path (ExactIndex): the inverse of
  // stride's odd part modulo 2^64, and the power of two in stride.
  uint64_t stride_inverse;
  uint32_t stride_shift;
};

// For a slab of objects `stride` bytes apart (stride = odd * 2^shift,
// inverse = odd's inverse modulo 2^64): off / stride when off is a
// multiple of stride, and otherwise a value above (2^64 - 1) / stride, so
// above any slab's capacity. One multiply and one rotate decide "the start
// of an object" and give its index; free's fast path compares the result
// with the slab's capacity (every offset, far ones and those below the
// slab's start included: size_class_test checks it).
NITRO_ALWAYS_INLINE constexpr uint64_t ExactIndex(uint64_t off, uint64_t inverse, uint32_t shift) {
  uint64_t x = off * inverse;
  return (x >> shift) | (x << ((64 - shift) & 63));
}

// The most objects of one class a thread cache keeps (SizeClassInfo::cache_max).
inline constexpr uint32_t kMostCachedObjects = 512;

class SizeClassMap {
 public:
  constexpr SizeClassMap() : info_(), index_(), magazine_offset_() {
    int n = 1;
    for (uint32_t s = 16; s <= 128; s += 16) info_[n++] = Make(s);
    for (uint32_t base = 128; base < kMaxSmallSize; base *= 2) {
      for (uint32_t k = 1; k <= 8; k++) info_[n++] = Make(base + k * (base / 8));
    }
    info_[kZeroSizeClass] = MakeZeroSize();
    int c = 1;
    for (size_t i = 0; i < sizeof(index_); i++) {
      size_t size = i * 16;
      while (info_[c].size < size) c++;
      index_[i] = static_cast<uint8_t>(c);
    }
    index_[0] = static_cast<uint8_t>(kZeroSizeClass);  // ClassFor(0)
    for (size_t i = 0; i < sizeof(index_); i++) magazine_offset_[i] = static_cast<uint16_t>(index_[i] * kMagazineBytes);
  }

  // Class for a request of `size` bytes; requires size <= kMaxSmallSize.
  // Size 0 gets kZeroSizeClass.
  NITRO_ALWAYS_INLINE int ClassFor(size_t size) const { return index_[(size + 15) >> 4]; }
  // ClassFor(size) * kMagazineBytes, from a table of its own: malloc's fast
  // path addresses the class's magazine with it and saves the shift.
  NITRO_ALWAYS_INLINE uint32_t MagazineOffsetFor(size_t size) const { return magazine_offset_[(size + 15) >> 4]; }
  // Smallest class whose objects are all aligned to `align` (a power of two
  // <= page size) and hold `size` bytes; 0 when no class does. An aligned
  // request for 0 bytes gets a 1-byte class, not kZeroSizeClass (whose
  // objects are only 16 bytes apart).
  // Slabs start page-aligned, so objects are aligned when the size is; and
  // the class of the size rounded up to the alignment is such a class: the
  // sizes from base to 2 x base (base a power of two from 128) step by
  // base / 8 (by 16 up to 128), so a multiple of an alignment of base / 8 or
  // more is itself a class's size, and every class there is a multiple of a
  // smaller one. Any class that holds `size` with an aligned size holds
  // the rounded size, so none smaller is aligned (size_class_test checks
  // every size against the search this replaced). One add, a mask and the
  // lookup: the aligned fast path (core/heap.h AllocateAlignedFast) uses it.
  NITRO_ALWAYS_INLINE int ClassForAligned(size_t size, size_t align) const {
    if (size > kMaxSmallSize) return 0;
    size_t rounded = AlignedRequest(size, align);
    return rounded <= kMaxSmallSize ? ClassFor(rounded) : 0;
  }
  // The size whose class ClassForAligned gives: at least 1 (an aligned
  // request for 0 bytes gets a 1-byte class), rounded up to `align`. For
  // size <= kMaxSmallSize and align <= the page size.
  static NITRO_ALWAYS_INLINE constexpr size_t AlignedRequest(size_t size, size_t align) {
    return ((size == 0 ? 1 : size) + align - 1) & ~(align - 1);
  }
  const SizeClassInfo& info(int c) const { return info_[c]; }
  // Usable bytes of an object of class c (0 for kZeroSizeClass).
  uint32_t size(int c) const { return info_[c].size; }
  // Bytes between consecutive objects of class c in a slab.
  uint32_t stride(int c) const { return info_[c].stride; }

 private:
  static constexpr SizeClassInfo Make(uint32_t size) {
    // At least 8 objects (4 above 8 KiB, 2 above 32 KiB: a slab of a large
    // class held for one object costs memory), and 16 KiB when the per-slab
    // bitmap has room for it.
    uint32_t min_objects = size <= 8192 ? 8 : (size <= 32768 ? 4 : 2);
    uint32_t min_bytes = 16 * 1024 < kMaxObjectsPerSlab * size ? 16 * 1024 : kMaxObjectsPerSlab * size;
    if (min_bytes < min_objects * size) min_bytes = min_objects * size;
    uint32_t pages = static_cast<uint32_t>((min_bytes + kPageSize - 1) / kPageSize);
    while ((pages * kPageSize % size) * 8 > pages * kPageSize) pages++;
    uint32_t capacity = static_cast<uint32_t>(pages * kPageSize / size);
    uint32_t batch = static_cast<uint32_t>(64 * 1024 / size);
    batch = batch < 2 ? 2 : (batch > 32 ? 32 : batch);
    uint32_t cache_max = static_cast<uint32_t>(256 * 1024 / size);
    cache_max = cache_max > kMostCachedObjects ? kMostCachedObjects : cache_max;
    if (cache_max < batch) cache_max = batch;
    uint64_t magic = ((uint64_t{1} << kMagicShift) + size - 1) / size;
    uint32_t shift = 0;
    while ((size >> shift) % 2 == 0) shift++;
    return SizeClassInfo{size, size, pages, capacity, batch, cache_max, magic, OddInverse(size >> shift), shift};
  }
  // The inverse of an odd number modulo 2^64 (Newton's iteration: each step
  // doubles the correct low bits, 3 to start with).
  static constexpr uint64_t OddInverse(uint64_t odd) {
    uint64_t inverse = odd;
    for (int i = 0; i < 5; i++) inverse *= 2 - odd * inverse;
    return inverse;
  }
  // kZeroSizeClass: 256 objects 16 bytes apart fill one page, so one
  // mprotect covers 256 malloc(0)s; caches move them as the 16-byte class.
  static constexpr SizeClassInfo MakeZeroSize() {
    SizeClassInfo info = Make(kMinAlign);
    info.size = 0;
    info.slab_pages = 1;
    info.capacity = static_cast<uint32_t>(kPageSize / kMinAlign);
    return info;
  }

  SizeClassInfo info_[kNumClasses];
  // One entry per 16 bytes of request up to kMaxSmallSize (8 KiB), so the
  // fast path's lookup is one load with no branch; classes are multiples
  // of 16, so it names the smallest class that holds the request.
  uint8_t index_[kMaxSmallSize / 16 + 1];
  uint16_t magazine_offset_[kMaxSmallSize / 16 + 1];
};

inline constexpr SizeClassMap kSizeClasses{};
static_assert(kPageSize / kMinAlign <= kMaxObjectsPerSlab, "a zero-size slab fits the per-slab bitmap");

}  // namespace nitro

#endif  // NITROHEAP_CORE_SIZE_CLASS_H_
