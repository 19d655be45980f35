#include "core/page_map.h"

#include "core/os.h"

namespace nitro {

bool PageMap::Ensure(uintptr_t start, size_t bytes) {
  uintptr_t first = start >> kLeafShift;
  uintptr_t last = (start + bytes - 1) >> kLeafShift;
  if ((start + bytes - 1) >> kAddressBits) return false;
  for (uintptr_t i = first; i <= last; i++) {
    if (root_[i].load(std::memory_order_acquire) != nullptr) continue;
    LockGuard g(lock());
    if (root_[i].load(std::memory_order_relaxed) != nullptr) continue;
    void* leaf = os::Reserve(kLeafEntries * sizeof(Span*), kPageSize);
    if (leaf == nullptr) return false;
    root_[i].store(static_cast<Span**>(leaf), std::memory_order_release);
  }
  return true;
}

void PageMap::Set(uintptr_t start, size_t pages, Span* span) {
  for (size_t i = 0; i < pages; i++) {
    uintptr_t a = start + (i << kPageShift);
    Span** leaf = root_[a >> kLeafShift].load(std::memory_order_acquire);
    NITRO_ASSERT(leaf != nullptr);
    __atomic_store_n(&leaf[(a >> kPageShift) & (kLeafEntries - 1)], span, __ATOMIC_RELAXED);
  }
}

void PageMap::SetEnds(Span* span) {
  Set(span->start, 1, span);
  if (span->pages > 1) Set(span->end() - kPageSize, 1, span);
}

namespace {
SpinLock g_leaf_lock{LockRank::kPageMap};
}  // namespace

SpinLock& PageMap::lock() { return g_leaf_lock; }

PageMap g_page_map;

}  // namespace nitro
