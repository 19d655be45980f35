// Region heaps: a heap inside one fixed block of memory the caller owns
// (abi/include/nitroheap/region.h is the public face; docs/regions.md the
// layout). Nothing here maps memory: the Region object itself is placed at
// the start of the caller's memory, and every block carries a 16-byte
// header with its size, its left neighbour's size and a keyed check value,
// so a free can find both neighbours in O(1) and a corrupted header is
// noticed before it is trusted.
#ifndef NITROHEAP_CORE_REGION_H_
#define NITROHEAP_CORE_REGION_H_

#include <stddef.h>
#include <stdint.h>

#include "core/lock.h"

namespace nitro {

enum class RegionKind : int { kBump = 1, kFreeList = 2 };

struct RegionStats {
  RegionKind kind;
  size_t capacity;
  size_t used;
  size_t free;
  size_t largest_free;  // the largest 16-byte aligned request that fits now
  size_t live_blocks;
  size_t live_bytes;
  size_t free_blocks;
  double fragmentation;
  uint64_t allocations;
  uint64_t frees;
  uint64_t failures;
  uint64_t resets;
};

class Region {
 public:
  // The header and the per-block header.
  static constexpr size_t kMaxHeaderBytes = 256;
  static constexpr size_t kMinBytes = 512;
  static constexpr size_t kBlockHeader = 16;
  static constexpr int kMaxThreadSafe = 4096;

  // nullptr with errno EINVAL (bad arguments), EBUSY (a live thread-safe
  // region starts there) or ENOMEM (table of thread-safe regions full).
  static Region* Create(void* memory, size_t length, RegionKind kind, bool thread_safe);
  // The region behind a handle; reports "invalid region handle" (and
  // aborts) when it is not a live region.
  static Region* FromHandle(void* handle);
  void Destroy();

  // align: a power of two >= kMinAlign. nullptr + ENOMEM when nothing fits.
  void* Allocate(size_t size, size_t align);
  void Free(void* p);
  void* Reallocate(void* p, size_t size);
  size_t UsableSize(const void* p);
  // Grows or shrinks p's block where it lies: p, or nullptr (p unchanged)
  // when the block cannot reach `size` in place.
  void* ResizeInPlace(void* p, size_t size);
  // Checks without reporting: p is a live block / every header and link
  // checks out (what HeapValidate asks).
  bool IsLiveBlock(const void* p);
  bool Validate();
  void Reset();
  RegionStats Stats();
  // f(block, usable, in_use) in address order, under the lock.
  template <typename F>
  size_t Visit(F f);

  const char* name() const { return name_; }
  // Where blocks may lie: [data_start, data_end).
  uintptr_t data_start() const { return data_start_; }
  uintptr_t data_end() const { return data_end_; }

 // A block's header, just below its payload (public for the free-list
  // links' helpers in region.cc).
  struct Block;

 private:
  class Guard;

  Region() = default;
  void Init(uintptr_t data_start, uintptr_t data_end, RegionKind kind, bool thread_safe);

  // Everything below runs with the lock held (or single-threaded).
  void* BumpAllocate(size_t need, size_t align);
  void* ListAllocate(size_t need, size_t align);
  void BumpFree(Block* b);
  void ListFree(Block* b);
  void* BumpResize(Block* b, size_t need);  // in place, or nullptr
  void* ListResize(Block* b, size_t need);  // in place, or nullptr
  void ResetLocked();
  // The live block whose payload starts at p, checked; reports misuse
  // (naming `what`) otherwise.
  Block* CheckedLiveBlock(const void* p, const char* what);
  // p's header did not check out: walks the blocks from the start to say
  // why (overwritten header, interior pointer, not a block), then reports.
  [[noreturn]] void ReportBadBlock(const void* p, const char* what);
  [[noreturn]] void Misuse(const char* kind, const void* addr, const char* fmt, ...)
      __attribute__((format(printf, 4, 5)));

  Block* FirstBlock() const { return reinterpret_cast<Block*>(data_start_); }
  uintptr_t BlocksEnd() const;  // bump: the cursor; free list: data end
  bool HeaderOk(const Block* b) const;
  void WriteHeader(Block* b, size_t size, bool used, size_t prev);
  Block* NextChecked(Block* b);  // right neighbour (checked) or nullptr
  void SetPrevOfNext(Block* b);   // keeps the right neighbour's prev size
  void ListInsert(Block* b);
  void ListRemove(Block* b);

  uint64_t magic_;
  uint64_t key_;
  SpinLock lock_{LockRank::kRegion};
  RegionKind kind_;
  bool thread_safe_;
  int slot_;
  uintptr_t data_start_;
  uintptr_t data_end_;
  uintptr_t cursor_;   // bump: next free byte
  Block* free_head_;   // free list: LIFO list of free blocks
  size_t free_bytes_;  // free list: bytes in free blocks
  size_t free_count_;
  size_t live_blocks_;
  size_t live_bytes_;
  uint64_t allocations_;
  uint64_t frees_;
  uint64_t failures_;
  uint64_t resets_;
  char name_[32];

  friend struct RegionLocks;
};

struct Region::Block {
  uint64_t size_used;   // block bytes (header included, multiple of 16) | used bit
  uint64_t prev_check;  // left neighbour's block bytes (0: first) | check << 48
  size_t size() const { return size_used & ~uint64_t{15}; }
  bool used() const { return (size_used & 1) != 0; }
  size_t prev() const { return prev_check & ((uint64_t{1} << 48) - 1); }
  void* payload() { return reinterpret_cast<char*>(this) + kBlockHeader; }
  Block* next() { return reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(this) + size()); }
  static Block* Of(const void* p) {
    return reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(p) - kBlockHeader);
  }
};

class Region::Guard {
 public:
  explicit Guard(Region* r) : r_(r) {
    if (r_->thread_safe_) r_->lock_.Lock();
  }
  ~Guard() {
    if (r_->thread_safe_) r_->lock_.Unlock();
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  Region* r_;
};

template <typename F>
size_t Region::Visit(F f) {
  Guard g(this);
  size_t n = 0;
  for (uintptr_t at = data_start_, end = BlocksEnd(); at < end; n++) {
    Block* b = reinterpret_cast<Block*>(at);
    if (!HeaderOk(b)) ReportBadBlock(b->payload(), "visit");
    f(b->payload(), b->size() - kBlockHeader, b->used());
    at += b->size();
  }
  return n;
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_REGION_H_
