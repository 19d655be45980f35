// MetaPool: fixed-size allocator for the engine's own metadata (spans,
// thread caches, partitions). Its memory is a separate mapping with guard
// pages at both ends, never adjacent to user data, and never comes from the
// heap it describes.
#ifndef NITROHEAP_CORE_META_POOL_H_
#define NITROHEAP_CORE_META_POOL_H_

#include <new>
#include <stddef.h>
#include <string.h>
#include <type_traits>

#include "core/base.h"
#include "core/lock.h"
#include "core/os.h"

namespace nitro {

// Raw metadata memory, bump-allocated from guarded chunks. Never freed.
// Aligned to `align` (a power of two, at most a page), at least 64 bytes.
void* MetaAllocRaw(size_t bytes, size_t align = 64);
// Bytes of metadata mapped so far (a statistic).
size_t MetaBytesMapped();
SpinLock& MetaLock();

// kZeroOnReuse false: T's constructor sets every member that is read before
// it is written (Partition), so a reused object is not cleared first, which
// would make all of it resident again.
template <typename T, bool kZeroOnReuse = true>
class MetaPool {
 public:
  T* New() {
    void* p;
    {
      LockGuard g(lock_);
      p = free_;
      if (p) {
        free_ = *static_cast<void**>(p);
      }
      in_use_++;
    }
    bool recycled = p != nullptr;
    if (!p) p = MetaAllocRaw(sizeof(T) < sizeof(void*) ? sizeof(void*) : sizeof(T), alignof(T));
    if (!p) {
      LockGuard g(lock_);
      in_use_--;
      return nullptr;
    }
    // Fresh metadata comes zeroed from mmap: touching it would only cost
    // resident memory (a partition's batch stacks are ~1 MiB, mostly idle).
    if (recycled && kZeroOnReuse) memset(p, 0, sizeof(T));
    return new (p) T();
  }
  void Delete(T* t) {
    t->~T();
    LockGuard g(lock_);
    *reinterpret_cast<void**>(t) = free_;
    free_ = t;
    in_use_--;
  }
  size_t in_use() const { return in_use_; }
  SpinLock& lock() { return lock_; }

 private:
  SpinLock lock_{LockRank::kMetaPool};
  void* free_ = nullptr;
  size_t in_use_ = 0;
};

// A MetaPool for metadata made and dropped in bulk (span descriptors: one
// per slab and per page run), whose memory goes back to the kernel when a
// program frees what it allocated. Objects live in 64 KiB chunks carved from
// 4 MiB areas (a PROT_NONE page at each end, the chunk descriptors in the
// area's first chunk); each chunk keeps its own free list, count, and count
// per page. ReleaseEmpty (the reclaimer's ticks) returns with madvise a
// chunk found empty by two calls in a row, and in a chunk still in use each
// page whose objects were all free at two calls in a row: a few live
// descriptors spread over many chunks keep a page each, not a chunk each.
// A returned page's slots leave the free list (their links were in it) and
// come back, zero, when the chunk has no other room. New fills the most
// recently freed chunk first.
template <typename T>
class ReturningMetaPool {
 public:
  T* New() {
    void* p;
    bool recycled;
    {
      LockGuard g(lock_);
      Chunk* c = available_;
      if (c == nullptr && (c = NewChunk()) == nullptr) return nullptr;
      uint32_t slot;
      recycled = c->free != nullptr || c->bump == kPerChunk;
      if (!recycled) {
        slot = c->bump++;  // never used since mapped or released: zero
        uint16_t fresh = PagesOf(slot) & ~c->touched;
        c->touched |= fresh;
        CountPages(Popcount(fresh));
      } else {
        if (c->free == nullptr) ReturnPage(c);
        slot = SlotIndex(c->free);
        void* next = *static_cast<void**>(c->free);
        c->free = next;
      }
      p = reinterpret_cast<void*>(ChunkBase(c) + static_cast<uintptr_t>(slot) * kSlot);
      for (uint16_t m = PagesOf(slot); m != 0; m &= m - 1) c->live_in_page[__builtin_ctz(m)]++;
      c->idle_pages &= static_cast<uint16_t>(~PagesOf(slot));
      c->live++;
      c->idle = false;
      c->released = false;
      if (!HasRoom(c)) Unlist(c);
      in_use_++;
    }
    if (recycled) memset(p, 0, sizeof(T));  // a link, or an old object
    return new (p) T();
  }
  void Delete(T* t) {
    t->~T();
    LockGuard g(lock_);
    Chunk* c = ChunkOf(t);
    *reinterpret_cast<void**>(t) = c->free;
    c->free = t;
    for (uint16_t m = PagesOf(SlotIndex(t)); m != 0; m &= m - 1) c->live_in_page[__builtin_ctz(m)]--;
    c->live--;
    if (!c->listed) List(c);
    in_use_--;
  }
  // Moves `t` to a free slot lying only on pages that already hold other
  // live objects, when `t` is the one live object on a page of its slot:
  // that page can then go back (ReleaseEmpty), and no page becomes resident
  // for the move. A long-lived object made at a busy moment (the descriptor
  // of a run released after a program freed its heap) otherwise keeps a
  // page of its own. Returns the new address, with t's bytes, or `t` when
  // it shares its pages or no such slot was found among the first
  // kRepackScan free slots. After a move the caller repoints every
  // reference to the copy and then Deletes `t`, so that no reader finds a
  // reference to a slot that is free.
  T* Repack(T* t) {
    static_assert(std::is_trivially_copyable<T>::value, "moved by copying its bytes");
    LockGuard g(lock_);
    Chunk* from = ChunkOf(t);
    const uint16_t own = PagesOf(SlotIndex(t));
    bool alone = false;
    for (uint16_t m = own; m != 0; m &= m - 1) alone |= from->live_in_page[__builtin_ctz(m)] == 1;
    if (!alone) return t;
    size_t scanned = 0;
    for (Chunk* c = available_; c != nullptr && scanned < kRepackScan; c = c->next) {
      if (c->live == 0 || (c == from && c->live == 1)) continue;  // no page there holds another
      for (void** link = &c->free; *link != nullptr && scanned < kRepackScan;
           link = static_cast<void**>(*link), scanned++) {
        uint16_t pages = PagesOf(SlotIndex(*link));
        bool shared = true;
        for (uint16_t m = pages; m != 0 && shared; m &= m - 1) {
          uint32_t pg = static_cast<uint32_t>(__builtin_ctz(m));
          uint32_t others = c->live_in_page[pg] - (c == from && (own & (1u << pg)) ? 1u : 0u);
          shared = others != 0;
        }
        if (!shared) continue;
        void* to = *link;
        *link = *static_cast<void**>(to);
        for (uint16_t m = pages; m != 0; m &= m - 1) c->live_in_page[__builtin_ctz(m)]++;
        c->idle_pages &= static_cast<uint16_t>(~pages);
        c->live++;
        if (!HasRoom(c)) Unlist(c);
        in_use_++;
        memcpy(to, static_cast<void*>(t), sizeof(T));
        return static_cast<T*>(to);
      }
    }
    return t;
  }
  // Returns to the kernel chunks with no object in use, and pages of other
  // chunks holding no object in use, that were already so at the previous
  // call (all of them with `now`). Returns the bytes.
  size_t ReleaseEmpty(bool now = false) {
    LockGuard g(lock_);
    size_t released = 0;
    for (Chunk* c = available_; c != nullptr; c = c->next) {
      if (c->live != 0) {
        released += ReleaseEmptyPages(c, now);
        continue;
      }
      if (c->released) continue;
      if (!now && !c->idle) {
        c->idle = true;
        continue;
      }
      os::Release(reinterpret_cast<void*>(ChunkBase(c)), kChunkBytes);
      CountPages(-Popcount(static_cast<uint16_t>(c->touched & ~c->released_pages)));
      c->free = nullptr;  // the links were in the released memory
      c->bump = 0;
      c->touched = 0;
      c->released_pages = 0;
      c->idle_pages = 0;
      c->released = true;
      released += kChunkBytes;
    }
    released_total_ += released;
    return released;
  }
  size_t in_use() const { return in_use_; }
  size_t released_total() const { return released_total_; }
  // Bytes of object pages written since they were mapped or last returned
  // (the chunk descriptors aside): what the pool holds of the process's RSS.
  size_t committed_bytes() const { return __atomic_load_n(&committed_pages_, __ATOMIC_RELAXED) * kPageSize; }
  SpinLock& lock() { return lock_; }

 private:
  static constexpr size_t kAreaBytes = size_t{4} << 20;
  static constexpr size_t kChunkBytes = size_t{64} << 10;
  static constexpr size_t kChunksPerArea = kAreaBytes / kChunkBytes;
  static constexpr uint32_t kPagesPerChunk = static_cast<uint32_t>(kChunkBytes / kPageSize);
  static constexpr size_t kSlot = (sizeof(T) + 63) / 64 * 64;  // cache-line aligned
  static constexpr uint32_t kPerChunk = static_cast<uint32_t>(kChunkBytes / kSlot);
  static constexpr size_t kRepackScan = 4096;  // free slots Repack looks at, at most
  static_assert(kPerChunk >= 16, "ReturningMetaPool is for small objects");
  static_assert(kPagesPerChunk <= 16 && kSlot <= kPageSize, "a slot's pages fit a uint16_t mask");
  struct Chunk {
    void* free;
    uint32_t live;
    uint32_t bump;            // slots below were handed out once since the chunk was (re)mapped
    uint16_t touched;         // pages written since the chunk was (re)mapped
    uint16_t released_pages;  // pages returned while the chunk was in use (slots not on the free list)
    uint16_t idle_pages;      // pages without a live slot at the last ReleaseEmpty
    bool listed;              // on the available list: a free slot, room to bump or a returned page
    bool idle;                // empty at the last ReleaseEmpty
    bool released;
    uint8_t live_in_page[kPagesPerChunk];  // live slots touching each page
    Chunk* next;
    Chunk* prev;
  };
  // Area layout: chunk 0 holds a PROT_NONE page and the descriptors, the
  // last chunk is left unused but for its PROT_NONE last page.
  static_assert(kPageSize + kChunksPerArea * sizeof(Chunk) <= kChunkBytes, "descriptors fit");
  static_assert((kPageSize + kSlot - 1) / kSlot + 1 < 256, "live_in_page counts fit a byte");

  static int Popcount(uint16_t m) { return __builtin_popcount(m); }
  // Under the lock; committed_bytes reads without it.
  void CountPages(int delta) {
    __atomic_store_n(&committed_pages_, committed_pages_ + static_cast<size_t>(static_cast<ptrdiff_t>(delta)),
                     __ATOMIC_RELAXED);
  }
  // The pages slot i lies on (a slot may straddle two).
  static uint16_t PagesOf(uint32_t i) {
    uint32_t first = static_cast<uint32_t>(i * kSlot / kPageSize);
    uint32_t last = static_cast<uint32_t>(((i + 1) * kSlot - 1) / kPageSize);
    return static_cast<uint16_t>(((2u << last) - 1) & ~((1u << first) - 1));
  }
  static bool HasRoom(const Chunk* c) {
    return c->free != nullptr || c->bump < kPerChunk || c->released_pages != 0;
  }
  // Returns the pages of `c` (which has live slots) that hold none, were
  // written, lie wholly below the bump (no slot beyond it will touch them)
  // and held none at the previous call too (any with `now`).
  size_t ReleaseEmptyPages(Chunk* c, bool now) {
    uint16_t empty = 0;
    for (uint32_t pg = 0; pg < kPagesPerChunk; pg++) {
      // (The chunk's last page ends with a tail no slot reaches.)
      uint32_t last_slot = static_cast<uint32_t>(((pg + 1) * kPageSize - 1) / kSlot);
      if (last_slot >= kPerChunk) last_slot = kPerChunk - 1;
      if (c->live_in_page[pg] == 0 && last_slot < c->bump) empty |= static_cast<uint16_t>(1u << pg);
    }
    empty &= static_cast<uint16_t>(c->touched & ~c->released_pages);
    uint16_t go = now ? empty : static_cast<uint16_t>(empty & c->idle_pages);
    c->idle_pages = empty;
    if (go == 0) return 0;
    // The free list loses the slots on those pages: their links are there.
    void** link = &c->free;
    while (*link != nullptr) {
      if (PagesOf(SlotIndex(*link)) & go) {
        *link = *static_cast<void**>(*link);
      } else {
        link = static_cast<void**>(*link);
      }
    }
    for (uint16_t m = go; m != 0; m &= m - 1) {
      os::Release(reinterpret_cast<void*>(ChunkBase(c) + __builtin_ctz(m) * kPageSize), kPageSize);
    }
    c->released_pages |= go;
    c->idle_pages &= static_cast<uint16_t>(~go);
    CountPages(-Popcount(go));
    return Popcount(go) * kPageSize;
  }
  // Takes back the first returned page of `c` (which has no free slot and
  // nothing to bump): its slots that lie on no other returned page join the
  // free list (a slot straddling a page still returned waits for it).
  void ReturnPage(Chunk* c) {
    while (c->free == nullptr) {
      NITRO_ASSERT(c->released_pages != 0);
      uint32_t pg = static_cast<uint32_t>(__builtin_ctz(c->released_pages));
      c->released_pages &= static_cast<uint16_t>(~(1u << pg));
      CountPages(1);
      for (uint32_t i = static_cast<uint32_t>(pg * kPageSize / kSlot); i < kPerChunk; i++) {
        uint16_t pages = PagesOf(i);
        if (!(pages & (1u << pg))) break;
        if (pages & c->released_pages) continue;
        void* slot = reinterpret_cast<void*>(ChunkBase(c) + static_cast<uintptr_t>(i) * kSlot);
        *static_cast<void**>(slot) = c->free;
        c->free = slot;
      }
    }
  }
  static Chunk* Descriptors(uintptr_t area) { return reinterpret_cast<Chunk*>(area + kPageSize); }
  static Chunk* ChunkOf(const void* p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t area = a & ~(kAreaBytes - 1);
    return Descriptors(area) + (a - area) / kChunkBytes;
  }
  static uintptr_t ChunkBase(const Chunk* c) {
    uintptr_t area = reinterpret_cast<uintptr_t>(c) & ~(kAreaBytes - 1);
    return area + static_cast<uintptr_t>(c - Descriptors(area)) * kChunkBytes;
  }
  static uint32_t SlotIndex(const void* p) {
    return static_cast<uint32_t>((reinterpret_cast<uintptr_t>(p) & (kChunkBytes - 1)) / kSlot);
  }
  void List(Chunk* c) {
    c->prev = nullptr;
    c->next = available_;
    if (available_) available_->prev = c;
    available_ = c;
    c->listed = true;
  }
  void Unlist(Chunk* c) {
    if (c->prev) c->prev->next = c->next; else available_ = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = nullptr;
    c->listed = false;
  }
  Chunk* NewChunk() {
    if (area_ == 0 || next_chunk_ == kChunksPerArea - 1) {
      void* raw = os::Reserve(kAreaBytes, kAreaBytes);
      if (raw == nullptr) return nullptr;
      area_ = reinterpret_cast<uintptr_t>(raw);
      os::NoHugePages(raw, kAreaBytes);  // returned chunk by chunk
      // Guard pages: an overflow out of, or into, the metadata faults.
      os::ProtectNone(raw, kPageSize);
      os::ProtectNone(reinterpret_cast<void*>(area_ + kAreaBytes - kPageSize), kPageSize);
      next_chunk_ = 1;
    }
    Chunk* c = Descriptors(area_) + next_chunk_++;
    List(c);
    return c;
  }

  SpinLock lock_{LockRank::kMetaPool};
  Chunk* available_ = nullptr;
  uintptr_t area_ = 0;
  size_t next_chunk_ = 0;
  size_t in_use_ = 0;
  size_t released_total_ = 0;
  size_t committed_pages_ = 0;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_META_POOL_H_
