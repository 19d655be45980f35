#include "core/thread_cache.h"

#include "core/partition.h"

namespace nitro {

void ThreadCache::Init(Partition* partition, size_t max_bytes) {
  partition_ = partition;
  key_ = partition->key();
  max_bytes_ = max_bytes;
  for (int c = 1; c < kNumClasses; c++) {
    lists_[c] = List{nullptr, 0, kSizeClasses.info(c).cache_max};
  }
}

void* ThreadCache::Refill(int cls) {
  void* head = nullptr;
  int n = partition_->central(cls).RemoveRange(&head, static_cast<int>(kSizeClasses.info(cls).batch));
  if (n == 0) return nullptr;
  List& l = lists_[cls];
  // The list was empty, so the batch becomes the list.
  l.head = head;
  l.count = static_cast<uint32_t>(n);
  return Pop(cls);
}

void ThreadCache::ReleaseBatch(int cls, uint32_t n) {
  List& l = lists_[cls];
  if (n > l.count) n = l.count;
  if (n == 0) return;
  void* head = l.head;
  void* last = head;
  for (uint32_t i = 1; i < n; i++) last = GetLink(last, key_);
  l.head = GetLink(last, key_);
  l.count -= n;
  SetLink(last, nullptr, key_);
  partition_->central(cls).InsertRange(head, static_cast<int>(n));
}

void ThreadCache::Overflow(int cls, void* p) {
  ReleaseBatch(cls, kSizeClasses.info(cls).batch);
  bool pushed = Push(cls, p);
  NITRO_ASSERT(pushed);
  (void)pushed;
  // Bound the whole cache: checked here, on the slow path only, so the fast
  // path pays for one count per list and nothing more.
  if (CachedBytes() > max_bytes_) {
    for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, (lists_[c].count + 1) / 2);
  }
}

void ThreadCache::Flush() {
  for (int c = 1; c < kNumClasses; c++) ReleaseBatch(c, lists_[c].count);
}

size_t ThreadCache::CachedBytes() const {
  size_t total = 0;
  for (int c = 1; c < kNumClasses; c++) {
    total += static_cast<size_t>(lists_[c].count) * kSizeClasses.size(c);
  }
  return total;
}

}  // namespace nitro
