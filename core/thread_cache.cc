#include "core/thread_cache.h"

#include "core/meta_pool.h"
#include "core/page_map.h"
#include "core/partition.h"
#include "core/report.h"

namespace nitro {
namespace {

// Ring memory: blocks of metadata, reused by later threads (a thread's
// cache is made and destroyed with the thread). Usually every block has
// the same size (one set of options per process), so first fit suffices.
struct StoreBlock {
  StoreBlock* next;
  size_t bytes;
};
SpinLock g_store_lock{LockRank::kMetaPool};
StoreBlock* g_store_free = nullptr;  // under g_store_lock

void* TakeStoreBlock(size_t bytes) {
  {
    LockGuard g(g_store_lock);
    for (StoreBlock** link = &g_store_free; *link != nullptr; link = &(*link)->next) {
      StoreBlock* b = *link;
      if (b->bytes == bytes) {
        *link = b->next;
        return b;
      }
    }
  }
  return MetaAllocRaw(bytes);
}

void GiveStoreBlock(void* block, size_t bytes) {
  StoreBlock* b = static_cast<StoreBlock*>(block);
  LockGuard g(g_store_lock);
  b->next = g_store_free;
  b->bytes = bytes;
  g_store_free = b;
}

uint32_t RoundUpToPowerOfTwo(uint32_t n) {
  uint32_t p = 1;
  while (p < n) p *= 2;
  return p;
}

// The free flag of an object the middle layer handed out. Objects of one
// batch mostly share a slab: `span` remembers the last one.
uint8_t* FreeFlagOf(void* p, Span** span) {
  Span* s = *span;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (s == nullptr || a < s->start || a >= s->end()) *span = s = GlobalPageMap().Get(p);
  return s->FreeFlag(p);
}

}  // namespace

SpinLock& MagazineStoreLock() { return g_store_lock; }

ThreadCache::~ThreadCache() {
  if (store_ != nullptr) GiveStoreBlock(store_, store_bytes_);
  store_ = nullptr;
}

bool ThreadCache::Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes,
                       bool strict, int64_t first_sample, int64_t first_record) {
  max_bytes_ = max_bytes;
  sample_countdown_ = first_sample;
  record_countdown_ = first_record;
  pick_rng_ = reinterpret_cast<uintptr_t>(this) | 1;
  other_allocated_ = 0;
  other_freed_ = 0;
  returned_since_refill_ = 0;
  uint32_t ring_size[kNumClasses] = {};
  size_t entries = 0;
  for (int c = 1; c < kNumClasses; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    // Each class holds back up to quarantine/32 bytes, at least one object.
    // Above the depth a ring holds at most two batches: a FIFO reuses its
    // oldest object, so a short ring keeps reuse close to the depth (and the
    // memory it touches hot); the middle layer absorbs the rest in batches.
    uint64_t depth = quarantine_bytes / 32 / info.stride;
    uint64_t cap = info.cache_max - info.batch;
    if (depth > cap) depth = cap;
    if (depth < 1) depth = 1;
    uint32_t band = info.cache_max < 2 * info.batch ? info.cache_max : 2 * info.batch;
    real_depth_[c] = static_cast<uint32_t>(depth);
    real_max_[c] = band + static_cast<uint32_t>(depth);
    ring_size[c] = RoundUpToPowerOfTwo(real_max_[c]);
    entries += ring_size[c];
  }
  if (store_ != nullptr && store_bytes_ != entries * sizeof(Entry)) {
    GiveStoreBlock(store_, store_bytes_);
    store_ = nullptr;
  }
  if (store_ == nullptr) {
    store_bytes_ = entries * sizeof(Entry);
    store_ = static_cast<Entry*>(TakeStoreBlock(store_bytes_));
    if (store_ == nullptr) return false;
  }
  Entry* next_ring = store_;
  for (int c = 1; c < kNumClasses; c++) {
    // strict blocks both fast paths: max 0 fails every push, depth ~0 every pop.
    mags_[c] = Magazine{next_ring, 0, 0, ring_size[c] * kEntryBytes - 1,
                        strict ? 0 : real_max_[c] * kEntryBytes,
                        strict ? ~uint32_t{0} : real_depth_[c] * kEntryBytes, 0, 0, 0};
    next_ring += ring_size[c];
  }
  partition_ = partition;
  return true;
}

void ThreadCache::Prepend(int cls, void* const* objects, int n) {
  // A refill goes in front: the objects freed last keep waiting. objects[0]
  // is taken first (the middle layer hands a fresh slab out in address order).
  Span* span = nullptr;
  uint32_t head = mags_[cls].head;
  for (int i = n - 1; i >= 0; i--) {
    head -= kEntryBytes;
    At(cls, head) = Entry{objects[i], FreeFlagOf(objects[i], &span)};
  }
  __atomic_store_n(&mags_[cls].head, head, __ATOMIC_RELAXED);
}

bool ThreadCache::RefillList(int cls) {
  uint32_t room = real_max_[cls] - Count(cls);
  uint32_t want = kSizeClasses.info(cls).batch;
  if (want > room) want = room;
  if (want == 0) return false;
  void* objects[CentralFreeList::kMaxBatchObjects];
  int n = partition_->central(cls).RemoveRange(objects, static_cast<int>(want));
  if (n == 0) return false;
  returned_since_refill_ = 0;  // allocating: no free run
  Prepend(cls, objects, n);
  return true;
}

void* ThreadCache::Refill(int cls) {
  // Batches may be short (a flushed ring): refill until past the quarantine.
  while (Count(cls) <= real_depth_[cls]) {
    if (!RefillList(cls)) return nullptr;
  }
  return PopChecked(cls, 0);
}

void* ThreadCache::PopChecked(int cls, uint32_t pick, Validator valid) {
  Magazine& m = mags_[cls];
  uint32_t count = Count(cls);
  if (count <= real_depth_[cls]) return nullptr;
  uint32_t reusable = count - real_depth_[cls];
  uint32_t skip = 0;
  if (pick > 1) {
    // Randomized reuse (strict): one of the first `pick` reusable objects.
    uint64_t r = XorShift64(&pick_rng_) * 0x9E3779B97F4A7C15ull;
    uint32_t span = pick < reusable ? pick : reusable;
    // The high 32 random bits scaled onto [0, span) by a multiply and a
    // shift: no 64-bit division on every strict allocation.
    skip = static_cast<uint32_t>(((r >> 32) * span) >> 32);
  }
  uint32_t head = m.head;
  Entry e = At(cls, head + skip * kEntryBytes);
  // The older entries in front of it move up by one.
  for (uint32_t i = skip; i > 0; i--) At(cls, head + i * kEntryBytes) = At(cls, head + (i - 1) * kEntryBytes);
  if (valid != nullptr && !valid(e.object, cls)) {
    ReportMisuse(misuse::kCorruptFreeList, e.object, partition_->name(),
                 "a thread-cache entry points outside the %u-byte class", kSizeClasses.size(cls));
  }
  __atomic_store_n(&m.head, head + kEntryBytes, __ATOMIC_RELAXED);
  __atomic_store_n(e.free_flag, uint8_t{0}, __ATOMIC_RELAXED);
  return e.object;
}

void ThreadCache::PushChecked(int cls, void* p) {
  Magazine& m = mags_[cls];
  if (Count(cls) >= real_max_[cls]) ReleaseBatch(cls, kSizeClasses.info(cls).batch);
  Span* span = nullptr;
  uint8_t* flag = FreeFlagOf(p, &span);
  uint32_t tail = m.tail;
  At(cls, tail) = Entry{p, flag};
  __atomic_store_n(&m.tail, tail + kEntryBytes, __ATOMIC_RELAXED);
  __atomic_store_n(flag, uint8_t{1}, __ATOMIC_RELAXED);
}

void ThreadCache::ReleaseBatch(int cls, uint32_t n) {
  // The oldest objects (the head) go back first: they waited longest.
  Magazine& m = mags_[cls];
  uint32_t count = Count(cls);
  if (n > count) n = count;
  void* objects[CentralFreeList::kMaxBatchObjects];
  while (n > 0) {
    uint32_t k = n < CentralFreeList::kMaxBatchObjects ? n : CentralFreeList::kMaxBatchObjects;
    uint32_t head = m.head;
    for (uint32_t i = 0; i < k; i++) objects[i] = At(cls, head + i * kEntryBytes).object;
    __atomic_store_n(&m.head, head + k * kEntryBytes, __ATOMIC_RELAXED);
    partition_->central(cls).InsertRange(objects, static_cast<int>(k));
    n -= k;
  }
}

void ThreadCache::Overflow(int cls, void* p) {
  bool was_in_free_run = in_free_run();
  uint32_t held = Count(cls) + 1;
  PushChecked(cls, p);  // a full ring returns a batch first
  returned_since_refill_ += static_cast<uint64_t>(held - Count(cls)) * kSizeClasses.size(cls);
  if (in_free_run()) {
    // The whole cache when the run starts, then this ring (full again only
    // after as many frees of its class as it holds), and the whole cache
    // again whenever it holds more than an eighth of its bound.
    ReleaseBatch(cls, Count(cls));
    if (!was_in_free_run || CachedBytes() > max_bytes_ / kFreeRunShare) Flush();
    return;
  }
  // Bound the whole cache: checked here, on the slow path only, so the fast
  // path pays for one count per ring and nothing more.
  if (CachedBytes() > max_bytes_) {
    for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, (Count(c) + 1) / 2);
  }
}

void ThreadCache::NoteLargeFree(size_t bytes) {
  returned_since_refill_ += bytes;
  if (in_free_run()) Flush();
}

void ThreadCache::Flush() {
  if (partition_ == nullptr) return;
  for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, Count(c));
}

uint64_t ThreadCache::AllocatedBytes() const {
  uint64_t total = other_allocated_;
  for (int c = 1; c < kNumClasses; c++) total += mags_[c].allocs * kSizeClasses.size(c);
  return total;
}

uint64_t ThreadCache::FreedBytes() const {
  uint64_t total = other_freed_;
  for (int c = 1; c < kNumClasses; c++) total += mags_[c].frees * kSizeClasses.size(c);
  return total;
}

ThreadCache::Counters ThreadCache::ReadCounters() const {
  Counters c;
  for (int i = 0; i < kNumClasses; i++) {
    c.allocs[i] = __atomic_load_n(&mags_[i].allocs, __ATOMIC_RELAXED);
    c.frees[i] = __atomic_load_n(&mags_[i].frees, __ATOMIC_RELAXED);
  }
  return c;
}

size_t ThreadCache::CachedBytes() const {
  size_t total = 0;
  for (int c = 1; c < kNumClasses; c++) {
    total += static_cast<size_t>(ListCount(c)) * kSizeClasses.size(c);
  }
  return total;
}

}  // namespace nitro
