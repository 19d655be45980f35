// MetaPool: fixed-size allocator for the engine's own metadata (spans,
// thread caches, partitions). Its memory is a separate mapping with guard
// pages at both ends, never adjacent to user data, and never comes from the
// heap it describes.
#ifndef NITROHEAP_CORE_META_POOL_H_
#define NITROHEAP_CORE_META_POOL_H_

#include <new>
#include <stddef.h>
#include <string.h>

#include "core/base.h"
#include "core/lock.h"
#include "core/os.h"

namespace nitro {

// Raw metadata memory, bump-allocated from guarded chunks. Never freed.
void* MetaAllocRaw(size_t bytes);
// Bytes of metadata mapped so far (a statistic).
size_t MetaBytesMapped();
SpinLock& MetaLock();

template <typename T>
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
    if (!p) p = MetaAllocRaw(sizeof(T) < sizeof(void*) ? sizeof(void*) : sizeof(T));
    if (!p) {
      LockGuard g(lock_);
      in_use_--;
      return nullptr;
    }
    // Fresh metadata comes zeroed from mmap: touching it would only cost
    // resident memory (a partition's middle layer is ~100 KiB, mostly idle).
    if (recycled) memset(p, 0, sizeof(T));
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
// area's first chunk); each chunk keeps its own free list and count, and a
// chunk found empty by two calls of ReleaseEmpty in a row (the reclaimer's
// ticks) is returned with madvise. New fills the most recently freed chunk
// first.
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
      if (c->free != nullptr) {
        p = c->free;
        c->free = *static_cast<void**>(p);
        recycled = true;
      } else {
        p = reinterpret_cast<void*>(ChunkBase(c) + static_cast<uintptr_t>(c->bump) * kSlot);
        c->bump++;
        recycled = false;  // never used since mapped or released: zero
      }
      c->live++;
      c->idle = false;
      c->released = false;
      if (c->free == nullptr && c->bump == kPerChunk) Unlist(c);
      in_use_++;
    }
    if (recycled) memset(p, 0, sizeof(T));
    return new (p) T();
  }
  void Delete(T* t) {
    t->~T();
    LockGuard g(lock_);
    Chunk* c = ChunkOf(t);
    *reinterpret_cast<void**>(t) = c->free;
    c->free = t;
    c->live--;
    if (!c->listed) List(c);
    in_use_--;
  }
  // Returns chunks with no object in use that were already empty at the
  // previous call (all of them with `now`) to the kernel. Returns the bytes.
  size_t ReleaseEmpty(bool now = false) {
    LockGuard g(lock_);
    size_t released = 0;
    for (Chunk* c = available_; c != nullptr; c = c->next) {
      if (c->live != 0 || c->released) continue;
      if (!now && !c->idle) {
        c->idle = true;
        continue;
      }
      os::Release(reinterpret_cast<void*>(ChunkBase(c)), kChunkBytes);
      c->free = nullptr;  // the links were in the released memory
      c->bump = 0;
      c->released = true;
      released += kChunkBytes;
    }
    released_total_ += released;
    return released;
  }
  size_t in_use() const { return in_use_; }
  size_t released_total() const { return released_total_; }
  SpinLock& lock() { return lock_; }

 private:
  static constexpr size_t kAreaBytes = size_t{4} << 20;
  static constexpr size_t kChunkBytes = size_t{64} << 10;
  static constexpr size_t kChunksPerArea = kAreaBytes / kChunkBytes;
  static constexpr size_t kSlot = (sizeof(T) + 63) / 64 * 64;  // cache-line aligned
  static constexpr uint32_t kPerChunk = static_cast<uint32_t>(kChunkBytes / kSlot);
  static_assert(kPerChunk >= 16, "ReturningMetaPool is for small objects");
  struct Chunk {
    void* free;
    uint32_t live;
    uint32_t bump;  // slots below were handed out once since the chunk was (re)mapped
    bool listed;    // on the available list: a free slot or room to bump
    bool idle;      // empty at the last ReleaseEmpty
    bool released;
    Chunk* next;
    Chunk* prev;
  };
  // Area layout: chunk 0 holds a PROT_NONE page and the descriptors, the
  // last chunk is left unused but for its PROT_NONE last page.
  static_assert(kPageSize + kChunksPerArea * sizeof(Chunk) <= kChunkBytes, "descriptors fit");

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
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_META_POOL_H_
