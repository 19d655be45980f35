#include "core/thread_cache.h"

#include "core/meta_pool.h"
#include "core/os.h"
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

}  // namespace

SpinLock& MagazineStoreLock() { return g_store_lock; }

ThreadCache::~ThreadCache() {
  if (store_ != nullptr) GiveStoreBlock(store_, store_bytes_);
  store_ = nullptr;
  if (grow_store_ != nullptr) GiveStoreBlock(grow_store_, grow_store_bytes_);
  grow_store_ = nullptr;
}

bool ThreadCache::Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes,
                       bool strict, int64_t first_sample, int64_t first_record) {
  max_bytes_ = max_bytes;
  free_word_base_ = kNoFreeWordBase;  // a sentinel until Init succeeds
  strict_ = strict;
  sample_countdown_ = first_sample;
  record_countdown_ = first_record;
  pick_rng_ = reinterpret_cast<uintptr_t>(this) | 1;
  // Wraps after 2^32 caches, skipping 0: two caches far apart in time
  // sharing an id only share preferences.
  static uint32_t next_id = 0;
  do {
    id_ = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
  } while (id_ == 0);
  other_allocated_ = 0;
  other_freed_ = 0;
  returned_since_refill_ = 0;
  growths_to_skip_ = 0;
  capacity_bytes_ = 0;
  for (uint64_t& bits : may_hold_) bits = 0;  // every magazine starts empty (below)
  for (uint64_t& bits : refilled_) bits = 0;
  for (uint64_t& bits : grown_) bits = 0;
  for (uint64_t& bits : in_grow_store_) bits = 0;
  size_t entries = 0;
  for (int c = 1; c < kNumClasses; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    // Each class holds back up to quarantine/32 bytes, at least one object.
    // Past the depth the stack starts at two batches and grows with
    // allocation bursts, a batch per refill, up to the class's cache_max and
    // within the cache's byte bound (Refill, GrowStack, ShrinkStack).
    uint64_t depth = quarantine_bytes / 32 / info.stride;
    uint64_t cap = info.cache_max - info.batch;
    if (depth > cap) depth = cap;
    if (depth < 1) depth = 1;
    depth_[c] = static_cast<uint32_t>(depth);
    stack_max_[c] = StackStart(c);
    overflows_[c] = 0;
    refill_allocs_[c] = 0;
    refill_frees_[c] = 0;
    entries += 1 + stack_max_[c] + depth_[c];  // the stack's null entry, the stack, the delay line
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
  Entry* next_entry = store_;
  for (int c = 1; c < kNumClasses; c++) {
    Magazine& m = mags_[c];
    m = Magazine{};
    __atomic_store_n(&stack_[c], next_entry, __ATOMIC_RELAXED);  // ListCount reads it
    // A reused store block holds anything; a fresh one reads zero, and
    // writing there would make every class's page of it (~60 KiB a thread)
    // resident before the class is used (reading an untouched page does not).
    if (stack_[c][0].object != nullptr || stack_[c][0].free_flag != nullptr) stack_[c][0] = Entry{nullptr, nullptr};
    m.top = stack_[c];
    m.delay = m.delay_oldest = stack_[c] + 1 + stack_max_[c];
    m.delay_end = m.delay + depth_[c];
    next_entry = m.delay_end;
    SetHeld(c, 0);  // the fast push waits for a full delay line
  }
  partition_ = partition;
  free_word_base_ = partition->fast_free_base();
  return true;
}

void ThreadCache::SetHeld(int cls, uint32_t held) {
  Magazine& m = mags_[cls];
  __atomic_store_n(&m.held, held, __ATOMIC_RELAXED);
  if (held > 0) NoteMayHold(cls);
  // The fast push moves the oldest delay-line entry out: only a full line
  // has one that waited `depth` frees. Strict blocks it always.
  m.limit = !strict_ && held == depth_[cls] ? stack_[cls] + stack_max_[cls] : nullptr;
}

void ThreadCache::PushOnStack(int cls, Entry e) {
  uint32_t n = StackCount(cls) + 1;
  StackAt(cls, n) = e;
  SetStackCount(cls, n);
  NoteMayHold(cls);
}

bool ThreadCache::RefillList(int cls) {
  uint32_t delay_room = depth_[cls] - mags_[cls].held;
  uint32_t stacked = StackCount(cls);
  uint32_t room = (stacked < stack_max_[cls] ? stack_max_[cls] - stacked : 0) + delay_room;
  uint32_t want = kSizeClasses.info(cls).batch;
  if (want > room) want = room;
  if (want == 0) return false;
  void* objects[CentralFreeList::kMaxBatchObjects];
  uint8_t* flags[CentralFreeList::kMaxBatchObjects];
  int n = partition_->central(cls).RemoveRange(objects, static_cast<int>(want), id_, flags);
  if (n == 0) return false;
  refilled_[cls / 64] |= uint64_t{1} << (cls % 64);
  returned_since_refill_ = 0;  // allocating: no free run
  // The end of the batch tops the delay line up (never handed out, these
  // objects are safe to wait there); the rest goes on the stack with
  // objects[0] on top, taken first (the middle layer hands a fresh slab out
  // in address order).
  int to_stack = n;
  uint32_t held = mags_[cls].held;
  for (; to_stack > 0 && held < depth_[cls]; held++) {
    to_stack--;
    DelayAt(cls, held) = Entry{objects[to_stack], flags[to_stack]};
  }
  SetHeld(cls, held);
  // Written in place and counted once: a PushOnStack call per object was
  // 32 of the 83 instructions a refilled object cost (Python's json).
  if (to_stack > 0) {
    uint32_t count = StackCount(cls);
    for (int i = to_stack - 1; i >= 0; i--) StackAt(cls, ++count) = Entry{objects[i], flags[i]};
    SetStackCount(cls, count);
    NoteMayHold(cls);
  }
  return true;
}

void ThreadCache::SetStackLimit(int cls, uint32_t limit) {
  if ((may_hold_[cls / 64] >> (cls % 64) & 1) != 0) {
    // A lowered limit may leave the stack above it only until the caller's
    // ReleaseBatch (PushChecked), which no CachedBytes reading comes between.
    capacity_bytes_ = capacity_bytes_ + static_cast<size_t>(limit) * kSizeClasses.size(cls) -
                      static_cast<size_t>(stack_max_[cls]) * kSizeClasses.size(cls);
  }
  stack_max_[cls] = limit;
  overflows_[cls] = 0;
  uint64_t bit = uint64_t{1} << (cls % 64);
  grown_[cls / 64] = limit > StackStart(cls) ? grown_[cls / 64] | bit : grown_[cls / 64] & ~bit;
  SetHeld(cls, mags_[cls].held);  // the fast push's limit
}

ThreadCache::Entry* ThreadCache::GrownStackOf(int cls) {
  if (grow_store_ == nullptr) {
    size_t entries = 0;
    for (int c = 1; c < kNumClasses; c++) entries += 1 + kSizeClasses.info(c).cache_max;
    grow_store_ = static_cast<Entry*>(TakeStoreBlock(entries * sizeof(Entry)));
    if (grow_store_ == nullptr) return nullptr;
    grow_store_bytes_ = entries * sizeof(Entry);
  }
  Entry* room = grow_store_;
  for (int c = 1; c < cls; c++) room += 1 + kSizeClasses.info(c).cache_max;
  return room;
}

void ThreadCache::GrowStack(int cls) {
  const SizeClassInfo& info = kSizeClasses.info(cls);
  if (stack_max_[cls] >= info.cache_max) return;
  // The cache's byte bound is checked when a stack overflows, and a grown
  // stack takes a burst back without overflowing: growth stops where the
  // cache would hold more than its bound. The check walks every class that
  // may hold objects, and a cache at its bound refuses every burst: after a
  // refusal the next bursts do not ask (nor grow) until the cache shrinks or
  // kGrowthsSkippedAfterRefusal of them have passed (`workloads
  // working_set`, bursts in some of 60 classes: these walks were 22% of its
  // instructions).
  size_t more = static_cast<size_t>(info.batch) * info.size;
  if (capacity_bytes_ + more > max_bytes_) {  // else the sum is within the bound too
    if (growths_to_skip_ > 0) {
      growths_to_skip_--;
      return;
    }
    if (CachedBytes() + more > max_bytes_) {
      growths_to_skip_ = kGrowthsSkippedAfterRefusal;
      return;
    }
  }
  Entry* room = GrownStackOf(cls);
  if (room == nullptr) return;  // no memory for the room: the stack stays as it is
  if (stack_[cls] != room) {
    // Moved into its room in the grow store (again after each flush, which
    // moves it back: ReturnGrowStore): its null entry, then the entries it
    // holds, in order (none when Refill grows it, its only caller today).
    uint32_t count = StackCount(cls);
    room[0] = Entry{nullptr, nullptr};
    for (uint32_t i = 1; i <= count; i++) room[i] = stack_[cls][i];
    __atomic_store_n(&stack_[cls], room, __ATOMIC_RELAXED);  // ListCount reads it
    SetStackCount(cls, count);
    in_grow_store_[cls / 64] |= uint64_t{1} << (cls % 64);
  }
  uint32_t grown = stack_max_[cls] + info.batch;
  SetStackLimit(cls, grown < info.cache_max ? grown : info.cache_max);
}

void ThreadCache::ShrinkStack(int cls) {
  if (stack_max_[cls] <= StackStart(cls) || ++overflows_[cls] < kOverflowsToShrink) return;
  uint32_t shrunk = stack_max_[cls] - kSizeClasses.info(cls).batch;
  SetStackLimit(cls, shrunk > StackStart(cls) ? shrunk : StackStart(cls));
}

void* ThreadCache::Refill(int cls) {
  // A burst of allocations emptied the stack (its class's frees since the
  // last refill were under a quarter of its allocations): the stack may
  // hold a batch more, so that the burst's frees stay here. A class whose
  // allocations and frees merely wander (larson) does not grow.
  Magazine& m = mags_[cls];
  if (StackCount(cls) == 0 && !strict_) {
    uint64_t allocs = m.allocs - refill_allocs_[cls];
    uint64_t frees = m.frees - refill_frees_[cls];
    if (frees * 4 < allocs) GrowStack(cls);
  }
  refill_allocs_[cls] = m.allocs;
  refill_frees_[cls] = m.frees;
  // A batch may go to the delay line (a flushed cache): refill until the stack has one.
  while (StackCount(cls) == 0) {
    if (!RefillList(cls)) return nullptr;
  }
  return PopChecked(cls, 0);
}

void* ThreadCache::PopChecked(int cls, uint32_t pick, Validator valid) {
  uint32_t count = StackCount(cls);
  if (count == 0) return nullptr;
  // Randomized reuse (strict): one of the top `pick` objects of the stack.
  Entry e = TakeAt(cls, count, pick > 1 ? RandomSkip(count, pick) : 0);
  if (valid != nullptr && !valid(e.object, cls)) {
    ReportMisuse(misuse::kCorruptFreeList, e.object, partition_->name(),
                 "a thread-cache entry points outside the %u-byte class", kSizeClasses.size(cls));
  }
  Claim(e);
  return e.object;
}

void ThreadCache::PushChecked(int cls, void* p, uint8_t* free_flag) {
  Magazine& m = mags_[cls];
  if (free_flag == nullptr) free_flag = GlobalPageMap().Get(p)->FreeFlag(p);
  Entry e{p, free_flag};
  uint32_t held = m.held;
  if (held < depth_[cls]) {
    DelayAt(cls, held) = e;  // filling the quarantine
    SetHeld(cls, held + 1);
  } else {
    uint32_t stacked = StackCount(cls);
    if (stacked >= stack_max_[cls]) {
      ShrinkStack(cls);
      // A batch, and whatever the stack holds above a lowered limit.
      ReleaseBatch(cls, stacked - stack_max_[cls] + kSizeClasses.info(cls).batch);
    }
    Entry& oldest = DelayAt(cls, 0);
    Entry done = oldest;
    oldest = e;
    m.delay_oldest = m.delay_oldest + 1 == m.delay_end ? m.delay : m.delay_oldest + 1;
    PushOnStack(cls, done);
  }
  __atomic_store_n(e.free_flag, uint8_t{1}, __ATOMIC_RELAXED);
}

void ThreadCache::ReleaseBatch(int cls, uint32_t n) {
  Magazine& m = mags_[cls];
  uint32_t count = Count(cls);
  if (n > count) n = count;
  // Up to kReleaseChunk objects per call into the middle layer, which
  // files them as batches under one acquisition of its lock.
  constexpr uint32_t kReleaseChunk = 4 * CentralFreeList::kMaxBatchObjects;
  void* objects[kReleaseChunk];
  uint8_t* flags[kReleaseChunk];
  while (n > 0) {
    uint32_t k = n < kReleaseChunk ? n : kReleaseChunk;
    uint32_t stacked = StackCount(cls);
    uint32_t from_stack = k < stacked ? k : stacked;
    // From the top: a stack grown to hundreds of entries would otherwise
    // shift the rest down on every release.
    for (uint32_t i = 0; i < from_stack; i++) {
      const Entry& e = StackAt(cls, stacked - i);
      objects[i] = e.object;
      flags[i] = e.free_flag;
    }
    SetStackCount(cls, stacked - from_stack);
    uint32_t from_delay = k - from_stack;
    for (uint32_t i = 0; i < from_delay; i++) {
      const Entry& e = DelayAt(cls, i);
      objects[from_stack + i] = e.object;
      flags[from_stack + i] = e.free_flag;
    }
    if (from_delay > 0) {
      m.delay_oldest = &DelayAt(cls, from_delay % (m.delay_end - m.delay));
      SetHeld(cls, m.held - from_delay);
    }
    partition_->central(cls).InsertRange(objects, flags, static_cast<int>(k), id_);
    n -= k;
  }
}

void ThreadCache::Overflow(int cls, void* p, uint8_t* free_flag) {
  if (mags_[cls].held < depth_[cls]) {
    // Not an overflow: the delay line is filling up (a new or flushed
    // cache), which only the slow path does.
    PushChecked(cls, p, free_flag);
    return;
  }
  bool was_in_free_run = in_free_run();
  uint32_t held = Count(cls) + 1;
  PushChecked(cls, p, free_flag);  // a full stack returns a batch first
  uint32_t returned = held - Count(cls);
  returned_since_refill_ += static_cast<uint64_t>(returned) * kSizeClasses.size(cls);
  if (in_free_run()) {
    // The whole cache when the run starts, then this magazine's stack (full
    // again only after as many frees of its class as it holds), and the
    // whole cache again whenever it holds more than an eighth of its bound.
    // The delay line stays full: emptied, it refills one slow-path free at
    // a time, and a run of frees then spent `depth` slow frees per
    // `stack_max` fast ones (Python: 247,000 refilling frees in 4 rounds).
    ReleaseBatch(cls, StackCount(cls));
    size_t share = max_bytes_ / kFreeRunShare;
    if (!was_in_free_run || (capacity_bytes_ > share && CachedBytes() > share)) Flush();
    return;
  }
  // Bound the whole cache when a stack overflowed (a batch went back):
  // checked on the slow path only, so the fast path pays for one compare
  // per magazine and nothing more. The other frees that come here with
  // room in the stack (mostly objects of a slab holding a flight-recorder
  // sample, about 1.5% of all frees in `workloads scaling`) skip the sum
  // over every class, which cost 2% of that workload's time at 32 threads.
  if (returned > 0 && capacity_bytes_ > max_bytes_ && CachedBytes() > max_bytes_) {
    // Sent onward too: a thread whose grown stacks hold its cache's bound
    // overflows rarely, and counting only the batches its overflows
    // return would miss its free run.
    uint64_t halved = 0;
    ForEachClassIn(may_hold_, [this, &halved](int c) {
      uint32_t k = (Count(c) + 1) / 2;
      ReleaseBatch(c, k);
      halved += static_cast<uint64_t>(k) * kSizeClasses.size(c);
    });
    returned_since_refill_ += halved;
    growths_to_skip_ = 0;
  }
}

void ThreadCache::NoteLargeFree(size_t bytes) {
  // One free is not a run, however large: a thread that frees a large
  // block after each allocation (`workloads large_cycle`) flushed its cache
  // at most of them (cutting the quarantine's delay short each time) and
  // refilled it at its next small allocation.
  size_t most = max_bytes_ / kLargeFreesPerRun + 1;
  returned_since_refill_ += bytes < most ? bytes : most;
  if (in_free_run()) Flush();
}

void ThreadCache::Flush() {
  // Only the classes that may hold objects: in a run of large frees each one
  // flushes, and a walk over every class's magazine (a cache line each)
  // was 23% of `workloads large_cycle`'s instructions.
  if (partition_ == nullptr) return;
  ForEachClassIn(may_hold_, [this](int c) { ReleaseBatch(c, Count(c)); });
  for (uint64_t& bits : may_hold_) __atomic_store_n(&bits, uint64_t{0}, __ATOMIC_RELAXED);
  capacity_bytes_ = 0;
  growths_to_skip_ = 0;
  // The grown stacks start over: they grow again with the next bursts.
  ForEachClassIn(grown_, [this](int c) { SetStackLimit(c, StackStart(c)); });
  ReturnGrowStore();
}

void ThreadCache::ReturnGrowStore() {
  bool moved = false;
  ForEachClassIn(in_grow_store_, [this, &moved](int c) {
    // Empty (Flush released every entry): its room in store_ lies right
    // before its delay line, which never moves.
    Entry* home = mags_[c].delay - 1 - StackStart(c);
    home[0] = Entry{nullptr, nullptr};
    __atomic_store_n(&stack_[c], home, __ATOMIC_RELAXED);  // ListCount reads it
    SetStackCount(c, 0);
    SetHeld(c, mags_[c].held);  // the fast push's limit, in the stack's new place
    moved = true;
  });
  if (!moved) return;
  for (uint64_t& bits : in_grow_store_) bits = 0;
  // Only whole pages: the block's first and last may hold other metadata.
  uintptr_t begin = RoundUp(reinterpret_cast<uintptr_t>(grow_store_), kPageSize);
  uintptr_t end = (reinterpret_cast<uintptr_t>(grow_store_) + grow_store_bytes_) & ~(kPageSize - 1);
  if (end > begin) os::Release(reinterpret_cast<void*>(begin), end - begin);
}

void ThreadCache::GiveUpSlabs() {
  if (partition_ == nullptr) return;
  ForEachClassIn(refilled_, [this](int c) { partition_->central(c).ForgetCache(id_); });
  for (uint64_t& bits : refilled_) bits = 0;
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
  // Only the classes that may hold objects (the sentinel's: none): a
  // program freeing more than a magazine holds calls this on every
  // overflow, and the walk over every class was 5.7% of mimalloc-bench's
  // glibc-simple. HeldCount's bound is a constant: 27 instructions a class,
  // not 33 (espresso sums some 75 classes on each of 136,000 overflows).
  size_t total = 0;
  ForEachClassIn(may_hold_, [this, &total](int c) {
    total += static_cast<size_t>(HeldCount(c)) * kSizeClasses.size(c);
  });
  return total;
}

}  // namespace nitro
