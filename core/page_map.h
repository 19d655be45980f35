// PageMap: address -> Span in O(1) for every page of every partition, which
// also answers "is this pointer NitroHeap's?". Two levels: a static root of
// 2^17 entries (one per GiB of address space) and 2 MiB leaves of 2^18 Span
// pointers, reserved lazily and backed by memory only where used.
//
// Entries are read without a lock (relaxed atomics): a pointer being freed was
// published to the freeing thread by the program's own synchronization.
#ifndef NITROHEAP_CORE_PAGE_MAP_H_
#define NITROHEAP_CORE_PAGE_MAP_H_

#include <atomic>
#include <stddef.h>
#include <stdint.h>

#include "core/base.h"
#include "core/lock.h"
#include "core/span.h"

namespace nitro {

class PageMap {
 public:
  static constexpr int kLeafShift = 30;
  static constexpr size_t kRootEntries = size_t{1} << (kAddressBits - kLeafShift);
  static constexpr size_t kLeafEntries = size_t{1} << (kLeafShift - kPageShift);

  NITRO_ALWAYS_INLINE Span* Get(const void* p) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (NITRO_UNLIKELY(a >> kAddressBits)) return nullptr;
    Span** leaf = root_[a >> kLeafShift].load(std::memory_order_relaxed);
    if (NITRO_UNLIKELY(leaf == nullptr)) return nullptr;
    return __atomic_load_n(&leaf[(a >> kPageShift) & (kLeafEntries - 1)], __ATOMIC_RELAXED);
  }

  // Get for the free fast paths (core/heap.h), without Get's test of the
  // address bits above kAddressBits: they are masked off the root index
  // instead, so a pointer at or above 2^kAddressBits finds the span of some
  // lower address. Only for callers that then check the pointer against
  // the span so that such a pointer fails (FastFreeObject: p - start must
  // be below 2^39, and for it p - start is at least 2^46).
  NITRO_ALWAYS_INLINE Span* GetUnlessFar(const void* p) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    Span** leaf = root_[(a >> kLeafShift) & (kRootEntries - 1)].load(std::memory_order_relaxed);
    if (NITRO_UNLIKELY(leaf == nullptr)) return nullptr;
    return __atomic_load_n(&leaf[(a >> kPageShift) & (kLeafEntries - 1)], __ATOMIC_RELAXED);
  }
  // Makes sure leaves exist for [start, start + bytes). False when the kernel
  // refuses memory for a leaf.
  bool Ensure(uintptr_t start, size_t bytes);
  // Points every page of [start, start + pages) at `span` (nullptr clears).
  void Set(uintptr_t start, size_t pages, Span* span);
  // Points the first and last page only (enough for a free run's neighbours).
  void SetEnds(Span* span);
  // Points the first and last page at `span` and clears the entries of the
  // pages between, returning the leaf pages that held only those entries to
  // the kernel (they read as nullptr again). For free runs given back to the
  // kernel: an address inside one then looks up as not the heap's.
  void SetEndsOnly(Span* span);
  // Clears the entries of the pages [first, last) the same way.
  void Clear(uintptr_t first, uintptr_t last);
  // Returns the leaf pages that hold only entries of pages in [first, last)
  // to the kernel, touching no entry: for a range whose entries are clear.
  void ReleaseClear(uintptr_t first, uintptr_t last);
  // Resident bytes of the leaf pages holding the entries of [start, start +
  // bytes) (mincore; tests and statistics).
  size_t ResidentEntryBytes(uintptr_t start, size_t bytes) const;
  // Resident bytes of every leaf (mincore; statistics).
  size_t ResidentBytes() const;
  // Bytes of address space whose entries fill one page of a leaf.
  static constexpr size_t kEntryPageSpan = (kPageSize / sizeof(Span*)) << kPageShift;
  // Held while a leaf is made. Kept outside the (zero-initialized, 1 MiB)
  // root table, so that the table stays in .bss.
  static SpinLock& lock();

 private:
  alignas(kPageSize) std::atomic<Span**> root_[kRootEntries] = {};  // whole pages: ResidentBytes
};

// Constant-initialized, so usable from the very first malloc, before any
// constructor has run.
extern PageMap g_page_map;
NITRO_ALWAYS_INLINE PageMap& GlobalPageMap() { return g_page_map; }

}  // namespace nitro

#endif  // NITROHEAP_CORE_PAGE_MAP_H_
