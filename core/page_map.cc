#include "core/page_map.h"

#include "core/os.h"

#include <stddef.h>
#include <sys/mman.h>

namespace nitro {

bool PageMap::Ensure(uintptr_t start, size_t bytes) {
  static_assert(offsetof(PageMap, empty_leaf_) == kEmptyLeafOffset, "GetUnlessFar finds the empty leaf there");
  static_assert(offsetof(PageMap, root_) == 0, "GetUnlessFar reads the root at the object's address");
  static_assert(offsetof(PageMap, class_hint_) == kClassHintOffset, "ClassHint reads its guesses there");
  uintptr_t first = start >> kLeafShift;
  uintptr_t last = (start + bytes - 1) >> kLeafShift;
  if ((start + bytes - 1) >> kAddressBits) return false;
  for (uintptr_t i = first; i <= last; i++) {
    if (root_[i].load(std::memory_order_acquire) != 0) continue;
    LockGuard g(lock());
    if (root_[i].load(std::memory_order_relaxed) != 0) continue;
    void* leaf = os::Reserve(kLeafEntries * sizeof(uintptr_t), kPageSize);
    if (leaf == nullptr) return false;
    // Entries are written sparsely and returned page by page: a huge page
    // would make the whole 2 MiB leaf resident at the first entry.
    os::NoHugePages(leaf, kLeafEntries * sizeof(uintptr_t));
    // Never 0: the leaf is not the empty one.
    root_[i].store(reinterpret_cast<uintptr_t>(leaf) - reinterpret_cast<uintptr_t>(empty_leaf_),
                   std::memory_order_release);
  }
  return true;
}

uintptr_t* PageMap::EntryOf(uintptr_t a) const {
  NITRO_ASSERT(HasLeaf(a));
  return LeafOf(a) + ((a >> kPageShift) & (kLeafEntries - 1));
}

void PageMap::Set(uintptr_t start, size_t pages, Span* span) {
  // One leaf at a time, then one store per page: a large block's pages are
  // most of the page heap's work (`workloads large_cycle`: a root lookup
  // per page made this a third of its instructions).
  uintptr_t value = Encode(span);
  uintptr_t first = start, last = start + (pages << kPageShift);
  while (first < last) {
    uintptr_t leaf_end = (first | ((uintptr_t{1} << kLeafShift) - 1)) + 1;
    uintptr_t stop = last < leaf_end ? last : leaf_end;
    uintptr_t* e = EntryOf(first);
    for (uintptr_t* end = e + ((stop - first) >> kPageShift); e < end; e++) {
      __atomic_store_n(e, value, __ATOMIC_RELAXED);
    }
    first = stop;
  }
}

void PageMap::SetEnds(Span* span) {
  Set(span->start, 1, span);
  if (span->pages > 1) Set(span->end() - kPageSize, 1, span);
}

void PageMap::SetEndsOnly(Span* span) {
  SetEnds(span);
  if (span->pages > 2) Clear(span->start + kPageSize, span->end() - kPageSize);
}

void PageMap::Clear(uintptr_t first, uintptr_t last) {
  const uintptr_t start = first;
  while (first < last) {
    // One leaf at a time: [first, stop) lies in one leaf.
    uintptr_t leaf_end = (first | ((uintptr_t{1} << kLeafShift) - 1)) + 1;
    uintptr_t stop = last < leaf_end ? last : leaf_end;
    uintptr_t* lo = EntryOf(first);
    uintptr_t* hi = lo + ((stop - first) >> kPageShift);
    // Whole pages of entries go back to the kernel; the entries on the
    // partly covered pages at either end are cleared one by one (written
    // only when set, so that a page already returned is not touched).
    auto page_lo = reinterpret_cast<uintptr_t*>(RoundUp(reinterpret_cast<uintptr_t>(lo), kPageSize));
    auto page_hi = reinterpret_cast<uintptr_t*>(RoundDown(reinterpret_cast<uintptr_t>(hi), kPageSize));
    if (page_lo >= page_hi) page_lo = page_hi = hi;
    for (uintptr_t* e = lo; e < page_lo; e++) {
      if (__atomic_load_n(e, __ATOMIC_RELAXED) != 0) __atomic_store_n(e, uintptr_t{0}, __ATOMIC_RELAXED);
    }
    if (page_lo < page_hi) {
      os::Release(page_lo, reinterpret_cast<uintptr_t>(page_hi) - reinterpret_cast<uintptr_t>(page_lo));
    }
    for (uintptr_t* e = page_hi; e < hi; e++) {
      if (__atomic_load_n(e, __ATOMIC_RELAXED) != 0) __atomic_store_n(e, uintptr_t{0}, __ATOMIC_RELAXED);
    }
    first = stop;
  }
  ReleaseHints(start, last);
}

void PageMap::ReleaseHints(uintptr_t first, uintptr_t last) {
  first = RoundUp(first, kHintPageSpan);
  last = RoundDown(last, kHintPageSpan);
  if (first >= last) return;
  // The table covers 1 GiB of pages: a range of a GiB or more covers all of it.
  if (last - first >= (uintptr_t{1} << kLeafShift)) {
    os::Release(class_hint_, sizeof(class_hint_));
    return;
  }
  constexpr uintptr_t kHintMask = sizeof(class_hint_) - 1;
  uintptr_t lo = ((first >> kPageShift) * sizeof(uint16_t)) & kHintMask;
  uintptr_t hi = ((last >> kPageShift) * sizeof(uint16_t)) & kHintMask;
  char* base = reinterpret_cast<char*>(class_hint_);
  if (lo < hi) {
    os::Release(base + lo, hi - lo);
  } else {  // wraps around the table's end
    os::Release(base + lo, sizeof(class_hint_) - lo);
    if (hi > 0) os::Release(base, hi);
  }
}

void PageMap::ReleaseClear(uintptr_t first, uintptr_t last) {
  // Whole pages of entries only: the entries of a page partly outside the
  // range may be set, and reading one of a returned page would fault it in.
  ReleaseHints(first, last);
  first = RoundUp(first, kEntryPageSpan);
  last = RoundDown(last, kEntryPageSpan);
  while (first < last) {
    uintptr_t leaf_end = (first | ((uintptr_t{1} << kLeafShift) - 1)) + 1;
    uintptr_t stop = last < leaf_end ? last : leaf_end;
    os::Release(EntryOf(first), ((stop - first) >> kPageShift) * sizeof(uintptr_t));
    first = stop;
  }
}

size_t PageMap::ResidentEntryBytes(uintptr_t start, size_t bytes) const {
  size_t resident = 0;
  for (uintptr_t a = RoundDown(start, kEntryPageSpan); a < start + bytes; a += kEntryPageSpan) {
    if (!HasLeaf(a)) continue;
    void* page = EntryOf(a);
    unsigned char in_core = 0;
    if (mincore(page, kPageSize, &in_core) == 0 && (in_core & 1)) resident += kPageSize;
  }
  return resident;
}

size_t PageMap::ResidentBytes() const {
  constexpr size_t kLeafBytes = kLeafEntries * sizeof(uintptr_t);
  constexpr size_t kRootPageEntries = kPageSize / sizeof(root_[0]);
  static_assert(sizeof(root_) % kPageSize == 0, "the root table is whole pages");
  // Only the root table's resident pages are read: reading the rest (1 MiB
  // of .bss, mostly never written) would make it resident. A page with a
  // leaf was written, so it is resident unless swapped out (not counted).
  unsigned char root_in_core[sizeof(root_) / kPageSize];
  if (mincore(const_cast<std::atomic<uintptr_t>*>(root_), sizeof(root_), root_in_core) != 0) return 0;
  unsigned char in_core[kLeafBytes / kPageSize];
  size_t resident = 0;

  for (size_t page = 0; page < sizeof(root_) / kPageSize; page++) {
    if ((root_in_core[page] & 1) == 0) continue;
    for (size_t i = page * kRootPageEntries; i < (page + 1) * kRootPageEntries; i++) {
      uintptr_t offset = root_[i].load(std::memory_order_acquire);
      if (offset == 0) continue;
      void* leaf = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(empty_leaf_) + offset);
      if (mincore(leaf, kLeafBytes, in_core) != 0) continue;
      for (unsigned char v : in_core) resident += (v & 1) ? kPageSize : 0;
    }
  }
  return resident;
}

size_t PageMap::HintResidentBytes() const {
  unsigned char in_core[sizeof(class_hint_) / kPageSize];
  if (mincore(const_cast<uint16_t*>(class_hint_), sizeof(class_hint_), in_core) != 0) return 0;
  size_t resident = 0;
  for (unsigned char v : in_core) resident += (v & 1) ? kPageSize : 0;
  return resident;
}

namespace {
SpinLock g_leaf_lock{LockRank::kPageMap};
}  // namespace

SpinLock& PageMap::lock() { return g_leaf_lock; }

PageMap g_page_map;

}  // namespace nitro
