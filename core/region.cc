#include "core/region.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <atomic>
#include <new>

#include "core/base.h"
#include "core/lock_registry.h"
#include "core/os.h"
#include "core/report.h"

namespace nitro {

// The fork handler's view of the thread-safe regions: a fixed table (regions
// live in caller memory, so nothing is allocated to track them), changed
// under the table lock, read without it by the lock audit.
struct RegionLocks {
  static std::atomic<Region*> slots[Region::kMaxThreadSafe];
  static SpinLock table_lock;

  static void LockAll() {
    for (auto& s : slots) {
      if (Region* r = s.load(std::memory_order_acquire)) r->lock_.Lock();
    }
  }
  static void UnlockAll() {
    for (int i = Region::kMaxThreadSafe - 1; i >= 0; i--) {
      if (Region* r = slots[i].load(std::memory_order_acquire)) r->lock_.Unlock();
    }
  }
  static void ResetAll() {
    for (auto& s : slots) {
      if (Region* r = s.load(std::memory_order_acquire)) r->lock_.ResetAfterFork();
    }
  }
  static bool Owns(const SpinLock* lock) {
    for (auto& s : slots) {
      Region* r = s.load(std::memory_order_acquire);
      if (r != nullptr && &r->lock_ == lock) return true;
    }
    return false;
  }
};

std::atomic<Region*> RegionLocks::slots[Region::kMaxThreadSafe];
SpinLock RegionLocks::table_lock{LockRank::kRegionTable};

namespace {

constexpr uint64_t kRegionMagic = 0x6e69747265676e31ull;  // "nitregn1"
constexpr size_t kMinBlock = 32;  // header + two free-list links
constexpr uint64_t kUsed = 1;

const LockGroup kRegionLockGroup = {LockRank::kRegion, RegionLocks::LockAll, RegionLocks::UnlockAll,
                                    RegionLocks::ResetAll, RegionLocks::Owns};

// A free block's links live in its payload.
struct Links {
  Region::Block* next;
  Region::Block* prev;
};

}  // namespace

// 16 bits of a keyed hash of the header's address and both words: a header
// written by anything but the region (an overflow from the block below,
// a stray pointer) fails the check with probability 1 - 2^-16, on top of
// the size and range checks.
static inline uint64_t HeaderCheck(uintptr_t at, uint64_t size_used, uint64_t prev, uint64_t key) {
  uint64_t h = (at ^ key) * 0x9e3779b97f4a7c15ull;
  h = (h ^ size_used) * 0xff51afd7ed558ccdull;
  h = (h ^ prev) * 0xc4ceb9fe1a85ec53ull;
  return (h ^ (h >> 29)) >> 48;
}

static inline Links* LinksOf(Region::Block* b) { return static_cast<Links*>(b->payload()); }

// Request bytes -> block bytes (header included, at least kMinBlock); 0
// when impossible.
static inline size_t BlockBytesFor(size_t size) {
  if (size > kMaxRequest) return 0;
  size_t payload = size == 0 ? kMinAlign : RoundUp(size, kMinAlign);
  return payload + Region::kBlockHeader;
}

Region* Region::Create(void* memory, size_t length, RegionKind kind, bool thread_safe) {
  auto start = reinterpret_cast<uintptr_t>(memory);
  if (memory == nullptr || length < kMinBytes || start + length < start ||
      (kind != RegionKind::kBump && kind != RegionKind::kFreeList)) {
    errno = EINVAL;
    return nullptr;
  }
  static_assert(RoundUp(sizeof(Region), 64) + 64 <= kMaxHeaderBytes, "header fits its promise");
  uintptr_t header = RoundUp(start, 64);
  uintptr_t data_start = RoundUp(header + sizeof(Region), 64);
  uintptr_t data_end = RoundDown(start + length, kMinAlign);
  // Registered before first use, so the fork handler and the lock audit
  // know the table lock and every region lock.
  RegisterLock(&RegionLocks::table_lock);
  RegisterLockGroup(&kRegionLockGroup);
  LockGuard g(RegionLocks::table_lock);
  int free_slot = -1;
  for (int i = 0; i < kMaxThreadSafe; i++) {
    Region* live = RegionLocks::slots[i].load(std::memory_order_relaxed);
    // A live thread-safe region there: its header (and lock) must not be
    // overwritten, or fork would take a lock nobody can release.
    if (reinterpret_cast<uintptr_t>(live) == header) {
      errno = EBUSY;
      return nullptr;
    }
    if (live == nullptr && free_slot < 0) free_slot = i;
  }
  if (thread_safe && free_slot < 0) {
    errno = ENOMEM;
    return nullptr;
  }
  auto* r = new (reinterpret_cast<void*>(header)) Region();
  r->Init(data_start, data_end, kind, thread_safe);
  r->slot_ = thread_safe ? free_slot : -1;
  r->magic_ = kRegionMagic ^ header;
  if (thread_safe) RegionLocks::slots[free_slot].store(r, std::memory_order_release);
  return r;
}

void Region::Init(uintptr_t data_start, uintptr_t data_end, RegionKind kind, bool thread_safe) {
  magic_ = 0;
  os::RandomBytes(&key_, sizeof(key_));
  kind_ = kind;
  thread_safe_ = thread_safe;
  data_start_ = data_start;
  data_end_ = data_end;
  allocations_ = frees_ = failures_ = resets_ = 0;
  snprintf(name_, sizeof(name_), "region@%p", static_cast<void*>(this));
  ResetLocked();
  resets_ = 0;
}

Region* Region::FromHandle(void* handle) {
  auto* r = static_cast<Region*>(handle);
  if (NITRO_UNLIKELY(r == nullptr || (reinterpret_cast<uintptr_t>(r) & 63) != 0 ||
                     r->magic_ != (kRegionMagic ^ reinterpret_cast<uintptr_t>(r)))) {
    ReportMisuse(misuse::kBadRegion, handle, "(none)",
                 "not a live region (never created, destroyed, or its header overwritten)");
  }
  return r;
}

void Region::Destroy() {
  if (!thread_safe_) {
    magic_ = 0;
    return;
  }
  LockGuard g(RegionLocks::table_lock);
  lock_.Lock();  // waits for calls in flight
  RegionLocks::slots[slot_].store(nullptr, std::memory_order_release);
  magic_ = 0;
  lock_.Unlock();
}

void Region::Misuse(const char* kind, const void* addr, const char* fmt, ...) {
  char details[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(details, sizeof(details), fmt, ap);
  va_end(ap);
  // An error callback may use the region; it must not find it locked.
  if (thread_safe_) lock_.Unlock();
  ReportMisuse(kind, addr, name_, "%s", details);
}

uintptr_t Region::BlocksEnd() const { return kind_ == RegionKind::kBump ? cursor_ : data_end_; }

bool Region::HeaderOk(const Block* b) const {
  auto at = reinterpret_cast<uintptr_t>(b);
  size_t size = b->size();
  return (b->size_used & 14) == 0 && size >= kBlockHeader && size <= BlocksEnd() - at &&
         (b->prev_check >> 48) == HeaderCheck(at, b->size_used, b->prev(), key_);
}

void Region::WriteHeader(Block* b, size_t size, bool used, size_t prev) {
  b->size_used = size | (used ? kUsed : 0);
  b->prev_check = prev | (HeaderCheck(reinterpret_cast<uintptr_t>(b), b->size_used, prev, key_) << 48);
}

Region::Block* Region::NextChecked(Block* b) {
  Block* n = b->next();
  if (reinterpret_cast<uintptr_t>(n) >= BlocksEnd()) return nullptr;
  if (!HeaderOk(n)) {
    Misuse(misuse::kOverflow, n,
           "the header of the block after %p (%zu usable bytes) was overwritten: that block wrote "
           "past its end",
           b->payload(), b->size() - kBlockHeader);
  }
  return n;
}

void Region::SetPrevOfNext(Block* b) {
  if (Block* n = NextChecked(b)) WriteHeader(n, n->size(), n->used(), b->size());
}

void Region::ListInsert(Block* b) {
  Links* l = LinksOf(b);
  l->next = free_head_;
  l->prev = nullptr;
  if (free_head_ != nullptr) LinksOf(free_head_)->prev = b;
  free_head_ = b;
  free_bytes_ += b->size();
  free_count_++;
}

void Region::ListRemove(Block* b) {
  Links* l = LinksOf(b);
  if (l->prev != nullptr) {
    LinksOf(l->prev)->next = l->next;
  } else {
    free_head_ = l->next;
  }
  if (l->next != nullptr) LinksOf(l->next)->prev = l->prev;
  free_bytes_ -= b->size();
  free_count_--;
}

void Region::ResetLocked() {
  cursor_ = data_start_;
  free_head_ = nullptr;
  free_bytes_ = 0;
  free_count_ = 0;
  live_blocks_ = 0;
  live_bytes_ = 0;
  resets_++;
  if (kind_ == RegionKind::kFreeList) {
    WriteHeader(FirstBlock(), data_end_ - data_start_, false, 0);
    ListInsert(FirstBlock());
  }
}

// ---- bump -----------------------------------------------------------------

void* Region::BumpAllocate(size_t need, size_t align) {
  uintptr_t at = RoundUp(cursor_ + kBlockHeader, align) - kBlockHeader;
  if (at > data_end_ || need > data_end_ - at) return nullptr;
  // Alignment padding becomes a free header-only block, so the blocks
  // still tile [data_start, cursor) and can be walked.
  if (at != cursor_) WriteHeader(reinterpret_cast<Block*>(cursor_), at - cursor_, false, 0);
  auto* b = reinterpret_cast<Block*>(at);
  WriteHeader(b, need, true, 0);
  cursor_ = at + need;
  return b->payload();
}

void Region::BumpFree(Block* b) {
  NextChecked(b);  // an overflow out of b is caught while b's end is known
  WriteHeader(b, b->size(), false, 0);
}

void* Region::BumpResize(Block* b, size_t need) {
  auto at = reinterpret_cast<uintptr_t>(b);
  if (at + b->size() == cursor_ && need <= data_end_ - at) {  // the last block
    WriteHeader(b, need, true, 0);
    cursor_ = at + need;
    return b->payload();
  }
  return need <= b->size() ? b->payload() : nullptr;
}

// ---- free list ------------------------------------------------------------

void* Region::ListAllocate(size_t need, size_t align) {
  for (Block* b = free_head_; b != nullptr; b = LinksOf(b)->next) {
    auto start = reinterpret_cast<uintptr_t>(b);
    if (start < data_start_ || start >= data_end_ || (start & 15) != 0 || !HeaderOk(b) || b->used()) {
      Misuse(misuse::kCorruptFreeList, b, "a free-list link points at %p, which is not a free block",
             static_cast<void*>(b));
    }
    uintptr_t end = start + b->size();
    uintptr_t at = RoundUp(start + kBlockHeader, align) - kBlockHeader;
    // A gap in front must be able to stand as a free block of its own.
    if (at != start && at - start < kMinBlock) {
      at = RoundUp(start + kBlockHeader + kMinBlock, align) - kBlockHeader;
    }
    if (at > end || need > end - at) continue;
    size_t prev = b->prev();
    size_t gap = at - start;
    size_t take = need;
    size_t tail = end - (at + need);
    if (tail < kMinBlock) {
      take += tail;
      tail = 0;
    }
    ListRemove(b);
    if (gap != 0) {
      WriteHeader(b, gap, false, prev);
      ListInsert(b);
    }
    auto* a = reinterpret_cast<Block*>(at);
    WriteHeader(a, take, true, gap != 0 ? gap : prev);
    Block* last = a;
    if (tail != 0) {
      last = a->next();
      WriteHeader(last, tail, false, take);
      ListInsert(last);
    }
    SetPrevOfNext(last);
    return a->payload();
  }
  return nullptr;
}

void Region::ListFree(Block* b) {
  size_t size = b->size();
  size_t prev = b->prev();
  // Marked free first: if b merges into its left neighbour, its old header
  // still says "free", so a second free of it is reported as one.
  WriteHeader(b, size, false, prev);
  Block* start = b;
  if (Block* n = NextChecked(b); n != nullptr && !n->used()) {
    ListRemove(n);
    size += n->size();
  }
  if (prev != 0) {
    auto* l = reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(b) - prev);
    if (reinterpret_cast<uintptr_t>(l) < data_start_ || !HeaderOk(l) || l->size() != prev) {
      Misuse(misuse::kOverflow, l, "the header of the block before %p was overwritten",
             b->payload());
    }
    if (!l->used()) {
      ListRemove(l);
      size += l->size();
      start = l;
    }
  }
  WriteHeader(start, size, false, start->prev());
  ListInsert(start);
  SetPrevOfNext(start);
}

void* Region::ListResize(Block* b, size_t need) {
  size_t size = b->size();
  if (need <= size) {
    if (size - need >= kMinBlock) {  // the tail goes back, merged with what follows
      WriteHeader(b, need, true, b->prev());
      Block* t = b->next();
      WriteHeader(t, size - need, true, need);
      ListFree(t);
    }
    return b->payload();
  }
  Block* n = NextChecked(b);
  if (n == nullptr || n->used() || size + n->size() < need) return nullptr;
  size_t total = size + n->size();
  ListRemove(n);
  size_t take = total - need < kMinBlock ? total : need;
  WriteHeader(b, take, true, b->prev());
  Block* last = b;
  if (take != total) {
    last = b->next();
    WriteHeader(last, total - take, false, take);
    ListInsert(last);
  }
  SetPrevOfNext(last);
  return b->payload();
}

// ---- entry points -----------------------------------------------------------

Region::Block* Region::CheckedLiveBlock(const void* p, const char* what) {
  auto a = reinterpret_cast<uintptr_t>(p);
  if (a < data_start_ + kBlockHeader || a >= data_end_) {
    Misuse(misuse::kForeignFree, p, "%s of a pointer outside the region's blocks [%p, %p)", what,
           reinterpret_cast<void*>(data_start_), reinterpret_cast<void*>(data_end_));
  }
  Block* b = Block::Of(p);
  if ((a & 15) != 0 || reinterpret_cast<uintptr_t>(b) >= BlocksEnd() || !HeaderOk(b)) {
    ReportBadBlock(p, what);
  }
  if (!b->used()) {
    Misuse(misuse::kDoubleFree, p, "%s of a %zu-byte block that is already free", what,
           b->size() - kBlockHeader);
  }
  return b;
}

void Region::ReportBadBlock(const void* p, const char* what) {
  auto h = reinterpret_cast<uintptr_t>(p) - kBlockHeader;
  for (uintptr_t at = data_start_, end = BlocksEnd(); at < end;) {
    auto* b = reinterpret_cast<Block*>(at);
    if (at == h) {
      Misuse(misuse::kOverflow, b,
             "%s of %p: its header was overwritten (the block before it wrote past its end)", what, p);
    }
    if (!HeaderOk(b)) {
      Misuse(misuse::kOverflow, b, "the header of a block was overwritten (found during %s of %p)", what,
             p);
    }
    if (h > at && h < at + b->size()) {
      Misuse(misuse::kInvalidFree, p, "%s of a pointer into the middle of the %zu-byte block %p", what,
             b->size() - kBlockHeader, b->payload());
    }
    at += b->size();
  }
  Misuse(misuse::kInvalidFree, p, "%s of a pointer that is not an allocated block", what);
}

void* Region::Allocate(size_t size, size_t align) {
  size_t need = BlockBytesFor(size);
  Guard g(this);
  void* p = nullptr;
  if (need != 0) {
    p = kind_ == RegionKind::kBump ? BumpAllocate(need, align) : ListAllocate(need, align);
  }
  if (NITRO_UNLIKELY(p == nullptr)) {
    failures_++;
    errno = ENOMEM;
    return nullptr;
  }
  live_blocks_++;
  live_bytes_ += Block::Of(p)->size() - kBlockHeader;
  allocations_++;
  return p;
}

void Region::Free(void* p) {
  if (p == nullptr) return;
  Guard g(this);
  Block* b = CheckedLiveBlock(p, "free");
  live_blocks_--;
  live_bytes_ -= b->size() - kBlockHeader;
  frees_++;
  if (kind_ == RegionKind::kBump) {
    BumpFree(b);
  } else {
    ListFree(b);
  }
}

void* Region::ResizeInPlace(void* p, size_t size) {
  size_t need = BlockBytesFor(size);
  Guard g(this);
  Block* b = CheckedLiveBlock(p, "realloc");
  if (need == 0) return nullptr;
  size_t old_usable = b->size() - kBlockHeader;
  void* q = kind_ == RegionKind::kBump ? BumpResize(b, need) : ListResize(b, need);
  if (q != nullptr) live_bytes_ = live_bytes_ - old_usable + (b->size() - kBlockHeader);
  return q;
}

void* Region::Reallocate(void* p, size_t size) {
  if (p == nullptr) return Allocate(size, kMinAlign);
  if (void* q = ResizeInPlace(p, size)) return q;
  // Moves: a new block, the bytes, then the old block freed. Between the
  // steps another thread may allocate; p stays valid throughout.
  void* q = Allocate(size, kMinAlign);
  if (q == nullptr) return nullptr;
  size_t old_usable = UsableSize(p);
  memcpy(q, p, old_usable < size ? old_usable : size);
  Free(p);
  return q;
}

bool Region::IsLiveBlock(const void* p) {
  Guard g(this);
  auto a = reinterpret_cast<uintptr_t>(p);
  if (a < data_start_ + kBlockHeader || a >= BlocksEnd() || (a & 15) != 0) return false;
  const Block* b = Block::Of(p);
  return HeaderOk(b) && b->used();
}

bool Region::Validate() {
  Guard g(this);
  size_t free_seen = 0;
  for (uintptr_t at = data_start_, end = BlocksEnd(); at < end;) {
    auto* b = reinterpret_cast<Block*>(at);
    if (!HeaderOk(b)) return false;
    if (kind_ == RegionKind::kFreeList && !b->used()) free_seen++;
    at += b->size();
  }
  if (kind_ == RegionKind::kBump) return true;
  size_t listed = 0;
  for (Block* b = free_head_; b != nullptr; b = LinksOf(b)->next) {
    auto a = reinterpret_cast<uintptr_t>(b);
    if (a < data_start_ || a >= data_end_ || (a & 15) != 0 || !HeaderOk(b) || b->used() ||
        ++listed > free_seen) {
      return false;
    }
  }
  return listed == free_seen && listed == free_count_;
}

size_t Region::UsableSize(const void* p) {
  Guard g(this);
  return CheckedLiveBlock(p, "usable size")->size() - kBlockHeader;
}

void Region::Reset() {
  Guard g(this);
  ResetLocked();
}

RegionStats Region::Stats() {
  Guard g(this);
  RegionStats s = {};
  s.kind = kind_;
  s.capacity = data_end_ - data_start_;
  size_t largest_block = 0;
  if (kind_ == RegionKind::kBump) {
    s.free = data_end_ - cursor_;
    largest_block = s.free;
    s.free_blocks = s.free >= kMinBlock ? 1 : 0;
  } else {
    s.free = free_bytes_;
    s.free_blocks = free_count_;
    for (Block* b = free_head_; b != nullptr; b = LinksOf(b)->next) {
      if (b->size() > largest_block) largest_block = b->size();
    }
  }
  s.used = s.capacity - s.free;
  s.largest_free = largest_block >= kMinBlock ? largest_block - kBlockHeader : 0;
  s.fragmentation = s.free == 0 ? 0.0 : 1.0 - static_cast<double>(largest_block) / static_cast<double>(s.free);
  s.live_blocks = live_blocks_;
  s.live_bytes = live_bytes_;
  s.allocations = allocations_;
  s.frees = frees_;
  s.failures = failures_;
  s.resets = resets_;
  return s;
}

}  // namespace nitro
