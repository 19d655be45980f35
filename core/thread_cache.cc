#include "core/thread_cache.h"

#include "core/partition.h"
#include "core/report.h"

namespace nitro {

void ThreadCache::Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes,
                       bool strict, int64_t first_sample, int64_t first_record) {
  partition_ = partition;
  key_ = partition->key();
  marker_ = partition->free_marker();
  max_bytes_ = max_bytes;
  sample_countdown_ = first_sample;
  record_countdown_ = first_record;
  pick_rng_ = (reinterpret_cast<uintptr_t>(this) ^ key_) | 1;
  other_allocated_ = 0;
  other_freed_ = 0;
  for (int c = 1; c < kNumClasses; c++) {
    const SizeClassInfo& info = kSizeClasses.info(c);
    // Each class holds back up to quarantine/32 bytes, at least one object.
    // Above the depth a list holds at most two batches: a FIFO reuses its
    // oldest object, so a short list keeps reuse close to the depth (and the
    // memory it touches hot); the middle layer absorbs the rest in batches.
    uint64_t depth = quarantine_bytes / 32 / info.size;
    uint64_t cap = info.cache_max - info.batch;
    if (depth > cap) depth = cap;
    if (depth < 1) depth = 1;
    uint32_t band = info.cache_max < 2 * info.batch ? info.cache_max : 2 * info.batch;
    real_depth_[c] = static_cast<uint32_t>(depth);
    real_max_[c] = band + static_cast<uint32_t>(depth);
    // strict blocks both fast paths: max 1 fails every push (count - 1 >= 0),
    // depth ~0 fails every pop.
    lists_[c] = List{nullptr, nullptr, 0, strict ? 0 : real_max_[c] - 1,
                     strict ? ~uint32_t{0} : real_depth_[c], 0, 0, 0};
  }
}

void ThreadCache::Prepend(int cls, void* head, void* last, int n) {
  // A refill goes in front: the objects freed last keep waiting.
  List& l = lists_[cls];
  if (l.count == 0) {
    l.tail = last;
  } else {
    SetLink(last, l.head, key_);
  }
  l.head = head;
  __atomic_store_n(&l.count, l.count + static_cast<uint32_t>(n), __ATOMIC_RELAXED);
}

bool ThreadCache::RefillList(int cls) {
  void* head = nullptr;
  void* tail = nullptr;
  int n = partition_->central(cls).RemoveRange(&head, &tail, static_cast<int>(kSizeClasses.info(cls).batch));
  if (n == 0) return false;
  Prepend(cls, head, tail, n);
  return true;
}

void* ThreadCache::Refill(int cls) {
  // Batches may be short (a flushed list): refill until past the quarantine.
  while (lists_[cls].count <= real_depth_[cls]) {
    if (!RefillList(cls)) return nullptr;
  }
  return PopChecked(cls, 0);
}

void* ThreadCache::PopChecked(int cls, uint32_t pick, Validator valid) {
  List& l = lists_[cls];
  if (l.count <= real_depth_[cls]) return nullptr;
  uint32_t reusable = l.count - real_depth_[cls];
  uint32_t skip = 0;
  if (pick > 1) {
    // Randomized reuse (strict): one of the first `pick` reusable objects.
    uint64_t r = XorShift64(&pick_rng_) * 0x9E3779B97F4A7C15ull;
    uint32_t span = pick < reusable ? pick : reusable;
    skip = static_cast<uint32_t>((r >> 33) % span);
  }
  auto check = [&](void* q) {
    if (valid != nullptr && !valid(q, cls)) {
      ReportMisuse(misuse::kCorruptFreeList, q, partition_->name(),
                   "a free-list link points outside the %u-byte class", kSizeClasses.size(cls));
    }
    return q;
  };
  void* p;
  if (skip == 0) {
    p = check(l.head);
    l.head = GetLink(p, key_);
  } else {
    void* before = check(l.head);
    for (uint32_t i = 1; i < skip; i++) before = check(GetLink(before, key_));
    p = check(GetLink(before, key_));
    SetLink(before, GetLink(p, key_), key_);  // p is never the tail: count > depth >= 1
  }
  __atomic_store_n(&l.count, l.count - 1, __ATOMIC_RELAXED);
  static_cast<uintptr_t*>(p)[1] = 0;
  return p;
}

void ThreadCache::PushChecked(int cls, void* p) {
  List& l = lists_[cls];
  if (l.count >= real_max_[cls]) ReleaseBatch(cls, kSizeClasses.info(cls).batch);
  if (l.count == 0) {
    l.head = p;
  } else {
    SetLink(l.tail, p, key_);
  }
  l.tail = p;
  __atomic_store_n(&l.count, l.count + 1, __ATOMIC_RELAXED);
  static_cast<uintptr_t*>(p)[1] = marker_;
}

void ThreadCache::ReleaseBatch(int cls, uint32_t n) {
  // The oldest objects (the head) go back first: they waited longest.
  List& l = lists_[cls];
  if (n > l.count) n = l.count;
  if (n == 0) return;
  void* head = l.head;
  void* last = head;
  for (uint32_t i = 1; i < n; i++) last = GetLink(last, key_);
  __atomic_store_n(&l.count, l.count - n, __ATOMIC_RELAXED);
  if (l.count > 0) {
    l.head = GetLink(last, key_);
  } else {
    l.head = l.tail = nullptr;
  }
  SetLink(last, nullptr, key_);
  partition_->central(cls).InsertRange(head, last, static_cast<int>(n));
}

void ThreadCache::Overflow(int cls, void* p) {
  PushChecked(cls, p);
  // Bound the whole cache: checked here, on the slow path only, so the fast
  // path pays for one count per list and nothing more.
  if (CachedBytes() > max_bytes_) {
    for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, (lists_[c].count + 1) / 2);
  }
}

void ThreadCache::Flush() {
  for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, lists_[c].count);
}

uint64_t ThreadCache::AllocatedBytes() const {
  uint64_t total = other_allocated_;
  for (int c = 1; c < kNumClasses; c++) total += lists_[c].allocs * kSizeClasses.size(c);
  return total;
}

uint64_t ThreadCache::FreedBytes() const {
  uint64_t total = other_freed_;
  for (int c = 1; c < kNumClasses; c++) total += lists_[c].frees * kSizeClasses.size(c);
  return total;
}

ThreadCache::Counters ThreadCache::ReadCounters() const {
  Counters c;
  for (int i = 0; i < kNumClasses; i++) {
    c.allocs[i] = __atomic_load_n(&lists_[i].allocs, __ATOMIC_RELAXED);
    c.frees[i] = __atomic_load_n(&lists_[i].frees, __ATOMIC_RELAXED);
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
