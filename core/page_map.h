// PageMap: address -> Span in O(1) for every page of every partition, which
// also answers "is this pointer NitroHeap's?". Two levels: a static root of
// 2^17 entries (one per GiB of address space) and 2 MiB leaves of 2^18 span
// entries, reserved lazily and backed by memory only where used.
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

  // The span of the page holding p, or nullptr when NitroHeap has none there.
  NITRO_ALWAYS_INLINE Span* Get(const void* p) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (NITRO_UNLIKELY(a >> kAddressBits)) return nullptr;
    uintptr_t entry = LoadEntry(a);
    return entry == 0 ? nullptr : Decode(entry);
  }

  // Get for the fast paths of free, realloc and malloc_usable_size
  // (core/heap.h), with neither of Get's tests: never nullptr. An address
  // with no span (no leaf for its GiB, or no entry in the leaf) gets
  // none(), a span of zeros, whose every fast check fails (its span word
  // matches no cache, its class is 0, its index bound 0), so such a pointer
  // reaches the caller's slow path, which looks it up again with Get. The
  // address bits above kAddressBits are masked off the root index, so a
  // pointer at or above 2^kAddressBits finds the span of some lower
  // address: only for callers that then check the pointer against the span
  // so that such a pointer fails (FastFreeObject: p - start must be below
  // 2^39, and for it p - start is at least 2^46).
  //
  // Why no tests: entries are stored as offsets from this object, whose
  // address the lookup holds anyway (the root is inside it). A root entry
  // is its leaf's offset from empty_leaf_ (0: the empty leaf, whose entries
  // are all 0), a leaf entry its span's offset from none_ (0: none_). Two
  // adds replace two compare-and-branch pairs (free: 49 instructions to 47).
  NITRO_ALWAYS_INLINE Span* GetUnlessFar(const void* p) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t leaf = reinterpret_cast<uintptr_t>(this) +
                     root_[(a >> kLeafShift) & (kRootEntries - 1)].load(std::memory_order_relaxed);
    // The leaf's address as one register, then the entry by a scaled index
    // with empty_leaf_'s offset as the displacement: left to itself GCC
    // adds the three terms with two adds (objdump of free).
    asm("" : "+r"(leaf));
    const uintptr_t* e = reinterpret_cast<const uintptr_t*>(leaf + kEmptyLeafOffset) +
                         ((a >> kPageShift) & (kLeafEntries - 1));
    return Decode(__atomic_load_n(e, __ATOMIC_RELAXED));
  }
  // The span GetUnlessFar gives for an address that has none.
  const Span* none() const { return &none_; }

  // A guess at the magazine offset (Span::fast_free less the cache's base:
  // core/heap.h, FastFreeCache) of the slab holding p, read with no other
  // load before it: free addresses the magazine with the guess, so the
  // magazine's address does not wait for the page map's two loads and the
  // span's (the loop-carried path of a malloc/free loop: the next malloc
  // of the class loads what this free stores there), and checks the guess
  // against the span's word on the side. Any value is safe: only a guess
  // equal to the span word's offset is used, and every value stored is an
  // offset below kFastFreeSpan. One entry per page number modulo
  // kLeafEntries, shared by the pages 1 GiB apart; a free whose guess is
  // wrong (another class or partition used the page since, a page 1 GiB
  // away, a page of guesses returned to the kernel) sets it. Never written
  // for spans that are not a thread cache's slabs.
  NITRO_ALWAYS_INLINE uint64_t ClassHint(const void* p) const {
    uintptr_t index = (reinterpret_cast<uintptr_t>(p) >> kPageShift) & (kLeafEntries - 1);
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    // One load with the table's offset as the displacement, from the
    // object's address that GetUnlessFar holds: GCC adds the offset to the
    // index first (an instruction per free).
    uint64_t guess;
    asm("movzwl %c[off](%[map],%[index],2), %k[guess]"
        : [guess] "=r"(guess)
        : [map] "r"(this), [index] "r"(index), [off] "i"(kClassHintOffset), "m"(class_hint_));
    return guess;
#else
    return __atomic_load_n(&class_hint_[index], __ATOMIC_RELAXED);
#endif
  }
  void SetClassHint(const void* p, uint64_t mag_offset) {
    // ClassHint's callers rely on it: a guess of kFastFreeSpan or more could
    // equal a sampled span's offset (its class's plus kRecordedUnit).
    NITRO_ASSERT(mag_offset < kFastFreeSpan);
    // The index computed again, out of the compiler's sight: sharing the
    // entry's address with ClassHint's load costs free's likely path an lea.
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    asm("" : "+r"(a));
    __atomic_store_n(&class_hint_[(a >> kPageShift) & (kLeafEntries - 1)], static_cast<uint16_t>(mag_offset),
                     __ATOMIC_RELAXED);
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
  // Returns the pages of ClassHint's table whose every guess is for a page
  // of [first, last) (and the pages 1 GiB apart, whose frees then set
  // theirs again). Clear and ReleaseClear do it for their ranges.
  void ReleaseHints(uintptr_t first, uintptr_t last);
  // Resident bytes of the leaf pages holding the entries of [start, start +
  // bytes) (mincore; tests and statistics).
  size_t ResidentEntryBytes(uintptr_t start, size_t bytes) const;
  // Resident bytes of every leaf (mincore; statistics).
  size_t ResidentBytes() const;
  // Resident bytes of ClassHint's table (mincore; statistics). Pages only
  // read map the kernel's zero page, which mincore counts too: up to
  // 512 KiB above the memory the table really holds.
  size_t HintResidentBytes() const;
  // Bytes of address space whose entries fill one page of a leaf.
  static constexpr size_t kEntryPageSpan = (kPageSize / sizeof(uintptr_t)) << kPageShift;
  // Bytes of address space whose guesses (ClassHint) fill one page.
  static constexpr size_t kHintPageSpan = (kPageSize / sizeof(uint16_t)) << kPageShift;
  // Held while a leaf is made. Kept outside the (zero-initialized) object,
  // so that it stays in .bss.
  static SpinLock& lock();

 private:
  NITRO_ALWAYS_INLINE Span* Decode(uintptr_t entry) const {
    return reinterpret_cast<Span*>(reinterpret_cast<uintptr_t>(&none_) + entry);
  }
  uintptr_t Encode(const Span* span) const {
    return span == nullptr ? 0 : reinterpret_cast<uintptr_t>(span) - reinterpret_cast<uintptr_t>(&none_);
  }
  // The leaf of address a's GiB (empty_leaf_ when it has none).
  uintptr_t* LeafOf(uintptr_t a) const {
    return reinterpret_cast<uintptr_t*>(reinterpret_cast<uintptr_t>(empty_leaf_) +
                                        root_[a >> kLeafShift].load(std::memory_order_acquire));
  }
  // The entry of address a's page in the leaf of its GiB, which must exist.
  uintptr_t* EntryOf(uintptr_t a) const;
  bool HasLeaf(uintptr_t a) const { return root_[a >> kLeafShift].load(std::memory_order_acquire) != 0; }
  uintptr_t LoadEntry(uintptr_t a) const {
    return __atomic_load_n(LeafOf(a) + ((a >> kPageShift) & (kLeafEntries - 1)), __ATOMIC_RELAXED);
  }

  // First, at the object's address, which the lookup holds: no
  // displacement to add.
  alignas(kPageSize) std::atomic<uintptr_t> root_[kRootEntries] = {};  // whole pages: ResidentBytes
  // Zeros, never written: the span of no address (none()), and the leaf of
  // every GiB without one of its own. Only read, by lookups of foreign
  // pointers, so they cost address space, not memory (a read maps the
  // kernel's zero page).
  alignas(kPageSize) Span none_ = {};
  alignas(kPageSize) uintptr_t empty_leaf_[kLeafEntries] = {};
  // ClassHint's guesses, resident where written; returned to the kernel
  // with the leaf pages of the pages they guess for (ReleaseHints).
  alignas(kPageSize) uint16_t class_hint_[kLeafEntries] = {};
  static constexpr uintptr_t kEmptyLeafOffset = sizeof(root_) + RoundUp(sizeof(none_), kPageSize);
  static constexpr uintptr_t kClassHintOffset = kEmptyLeafOffset + sizeof(empty_leaf_);
};

// Constant-initialized, so usable from the very first malloc, before any
// constructor has run.
extern PageMap g_page_map;
NITRO_ALWAYS_INLINE PageMap& GlobalPageMap() { return g_page_map; }

}  // namespace nitro

#endif  // NITROHEAP_CORE_PAGE_MAP_H_
