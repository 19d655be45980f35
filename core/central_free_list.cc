#include "core/central_free_list.h"

#include <string.h>

#include "core/meta_pool.h"
#include "core/os.h"
#include "core/report.h"
#include "core/page_map.h"

namespace nitro {
namespace {

struct SizeTable {
  uint32_t sizes[kMaxObjectsPerSlab];
};
MetaPool<SizeTable> g_size_tables;

// A slab going back to the page heap drops its strict-mode size table, and
// a zero-size slab becomes read/write again: the page heap hands its pages
// to any class or large block next.
void RetireSlab(Span* s) {
  __atomic_store_n(&s->fast_free, uint32_t{0}, __ATOMIC_RELAXED);
  if (s->size_class == kZeroSizeClass && !os::ProtectReadWrite(reinterpret_cast<void*>(s->start), s->bytes())) {
    Fatal("cannot make a retired zero-size slab at %p writable again", reinterpret_cast<void*>(s->start));
  }
  if (s->requested_sizes != nullptr) {
    g_size_tables.Delete(reinterpret_cast<SizeTable*>(s->requested_sizes));
    s->requested_sizes = nullptr;
  }
}

}  // namespace

SpinLock& SizeTablePoolLock() { return g_size_tables.lock(); }

void CentralFreeList::Init(const SlabOwner* owner, int size_class, BatchStack* stack) {
  owner_ = owner;
  batch_ = stack->entries;
  size_class_ = size_class;
  stride_ = kSizeClasses.stride(size_class);
  const SizeClassInfo& info = kSizeClasses.info(size_class);
  size_t per_batch = static_cast<size_t>(info.batch) * info.stride;
  size_t n = (512 * 1024) / per_batch;
  max_batches_ = static_cast<int>(n < 2 ? 2 : (n > kMaxBatches ? kMaxBatches : n));
}

int CentralFreeList::RemoveRange(void** out, int n, uint32_t cache_id, uint8_t** flags) {
  LockGuard g(lock_);
  return RemoveRangeLocked(out, n, cache_id, flags);
}

int CentralFreeList::RemoveRangeLocked(void** out, int n, uint32_t cache_id, uint8_t** flags) {
  traffic_++;
  auto from_spans = [&](uint32_t id) { return FromSpans(out, n, id, flags); };
  if (cache_id == 0) return batches_ > 0 ? TakeFromBatch(batches_ - 1, out, flags, n) : from_spans(0);
  // Its own batch, else one nobody owns (an exited thread's), newest first.
  int nobodys = -1;
  for (int i = batches_ - 1; i >= 0; i--) {
    if (batch_[i].cache_id == cache_id) return TakeFromBatch(i, out, flags, n);
    if (nobodys < 0 && batch_[i].cache_id == 0) nobodys = i;
  }
  if (nobodys >= 0) return TakeFromBatch(nobodys, out, flags, n);
  // Another cache's batch when this one has no slab to carve without
  // making one, or when batches pile up (a consumer's frees feeding its
  // producer, in O(1)); not before: a thread that takes the batches of
  // another, which would have taken them back, mixes their objects.
  if (batches_ >= kForeignBatchBacklog || (batches_ > 0 && SlabFor(cache_id) == nullptr)) {
    return TakeFromBatch(batches_ - 1, out, flags, n);
  }
  return from_spans(cache_id);
}

int CentralFreeList::TakeFromBatch(int i, void** out, uint8_t** flags, int n) {
  Batch& b = batch_[i];
  int take = static_cast<int>(b.count) < n ? static_cast<int>(b.count) : n;
  b.count -= static_cast<uint32_t>(take);
  memcpy(out, b.objects + b.count, sizeof(void*) * static_cast<size_t>(take));
  if (flags != nullptr) memcpy(flags, b.flags + b.count, sizeof(uint8_t*) * static_cast<size_t>(take));
  if (b.count == 0) {
    batches_--;
    if (i < batches_) memmove(batch_ + i, batch_ + i + 1, sizeof(Batch) * static_cast<size_t>(batches_ - i));
  }
  return take;
}

Span* CentralFreeList::SlabFor(uint32_t cache_id) const {
  Span* free_to_claim = nullptr;
  int looked = 0;
  for (Span* s = nonempty_.first(); s != nullptr && looked < kSlabScan; s = s->next, looked++) {
    if (s->slab_cache_id == cache_id) return s;
    if (free_to_claim == nullptr &&
        (s->slab_cache_id == 0 || static_cast<uint32_t>(traffic_) - s->slab_cache_seen > kSlabLease)) {
      free_to_claim = s;
    }
  }
  return free_to_claim;
}

void CentralFreeList::InsertRange(void* const* objects, uint8_t* const* flags, int n, uint32_t cache_id) {
  uint64_t now = Now();  // outside the lock: a vDSO call
  LockGuard g(lock_);
  traffic_++;
  while (n > 0) {
    int k = n < static_cast<int>(kMaxBatchObjects) ? n : static_cast<int>(kMaxBatchObjects);
    if (batches_ < max_batches_) {
      Batch& b = batch_[batches_++];
      if (batches_ > batches_touched_) batches_touched_ = batches_;
      b.count = static_cast<uint32_t>(k);
      b.cache_id = cache_id;
      b.since = now;
      memcpy(b.objects, objects, sizeof(void*) * static_cast<size_t>(k));
      memcpy(b.flags, flags, sizeof(uint8_t*) * static_cast<size_t>(k));
    } else {
      ReturnToSpans(objects, k);
    }
    objects += k;
    flags += k;
    n -= k;
  }
}

void CentralFreeList::ForgetCache(uint32_t cache_id) {
  LockGuard g(lock_);
  for (int i = 0; i < batches_; i++) {
    if (batch_[i].cache_id == cache_id) batch_[i].cache_id = 0;
  }
  for (Span* s = nonempty_.first(); s != nullptr; s = s->next) {
    if (s->slab_cache_id == cache_id) s->slab_cache_id = 0;
  }
}

void* CentralFreeList::AllocateOne() {
  void* p = nullptr;
  uint8_t* flag = nullptr;
  {
    LockGuard g(lock_);
    if (RemoveRangeLocked(&p, 1, 0, &flag) != 1) return nullptr;
    direct_allocs_++;
  }
  __atomic_store_n(flag, uint8_t{0}, __ATOMIC_RELAXED);
  return p;
}

void CentralFreeList::FreeOne(void* p) {
  LockGuard g(lock_);
  direct_frees_++;
  traffic_++;
  Span* s = GlobalPageMap().Get(p);
  if (s != nullptr && s->state == SpanState::kSlab && s->size_class == size_class_) {
    uint8_t* flag = s->FreeFlag(p);
    if (__atomic_load_n(flag, __ATOMIC_RELAXED) != 0) {
      ReportMisuse(misuse::kDoubleFree, p, owner_->name, "a %u-byte object that is already free",
                  kSizeClasses.size(size_class_));
    }
    __atomic_store_n(flag, uint8_t{1}, __ATOMIC_RELAXED);
  }
  ReturnToSpans(&p, 1);  // reports anything else
}

bool CentralFreeList::AddSlab() {
  const SizeClassInfo& info = kSizeClasses.info(size_class_);
  Span* s = owner_->pages->Allocate(info.slab_pages, 1, SpanState::kSlab);
  if (s == nullptr) return false;
  if (size_class_ == kZeroSizeClass) {
    // malloc(0)'s objects have no byte to access: one mprotect for the
    // whole slab, undone when it retires (RetireSlab). Nothing ever writes
    // into them (usable size 0), strict's zeroing included.
    if (!os::ProtectNone(reinterpret_cast<void*>(s->start), s->bytes())) {
      owner_->pages->Free(s);
      return false;
    }
  } else if (owner_->strict) {
    // strict checks that a free object is still zero when reused.
    if (!s->zeroed) memset(reinterpret_cast<void*>(s->start), 0, s->bytes());
    SizeTable* t = g_size_tables.New();
    s->requested_sizes = t != nullptr ? t->sizes : nullptr;
  }
  s->size_class = static_cast<uint8_t>(size_class_);
  s->capacity = info.capacity;
  s->object_size = info.stride;
  s->stride_inverse = info.stride_inverse;
  s->stride_shift = static_cast<uint8_t>(info.stride_shift);
  s->index_bound = info.capacity;
  s->allocated = 0;
  s->bump = 0;  // every object is carved off by FromSpans' bump
  s->free_pages_returned = false;
  s->slab_cache_id = 0;
  memset(s->free_bits, 0, sizeof(s->free_bits));
  // Every object starts free (flag set) until a thread cache or AllocateOne
  // hands it to the program; so does the one past the end, which the tail
  // of a slab would index (free's fast path has no capacity check).
  memset(s->object_free, 1, info.capacity + 1);
  // Last, and released: a free that sees the class sees the geometry and
  // flags above (free's fast path trusts them to index object_free).
  __atomic_store_n(&s->fast_free, owner_->thread_cached ? static_cast<uint32_t>(size_class_) * kMagazineBytes : 0u,
                   __ATOMIC_RELEASE);
  nonempty_.PushFront(s);
  empty_slabs_++;
  slabs_++;
  span_free_ += info.capacity;
  return true;
}

int CentralFreeList::FromSpans(void** out, int n, uint32_t cache_id, uint8_t** flags) {
  // Objects freed back into a slab go out first, in address order; then the
  // never-used rest by bumping, so a fresh slab is handed out front to back
  // with no bitmap work. Nothing is written into the objects.
  int got = 0;
  while (got < n) {
    Span* s = nullptr;
    if (cache_id != 0) {
      s = SlabFor(cache_id);
      // A slab of its own rather than another live cache's; that one only
      // when no new slab can be had.
      if (s == nullptr && AddSlab()) s = nonempty_.first();
      if (s == nullptr) s = nonempty_.first();
      if (s == nullptr) break;
      s->slab_cache_id = cache_id;
      s->slab_cache_seen = static_cast<uint32_t>(traffic_);
    } else {
      if (nonempty_.empty() && !AddSlab()) break;
      s = nonempty_.first();
    }
    if (s->allocated == 0) {
      empty_slabs_--;
      slab_reused_at_ = Now();
    }
    s->free_pages_returned = false;
    // bump - allocated objects were handed out and came back (bits set).
    for (uint32_t w = 0; s->allocated < s->bump && got < n && w * 64 < s->bump; w++) {
      uint64_t bits = s->free_bits[w];
      while (bits != 0 && got < n) {
        uint32_t idx = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
        bits &= bits - 1;
        if (flags != nullptr) flags[got] = &s->object_free[idx];
        out[got++] = reinterpret_cast<void*>(s->start + static_cast<uintptr_t>(idx) * stride_);
        s->allocated++;
      }
      s->free_bits[w] = bits;
    }
    uint32_t carve = s->capacity - s->bump;
    if (carve > static_cast<uint32_t>(n - got)) carve = static_cast<uint32_t>(n - got);
    uintptr_t next = s->start + static_cast<uintptr_t>(s->bump) * stride_;
    if (flags != nullptr) {
      uint8_t* flag = &s->object_free[s->bump];
      for (uint32_t i = 0; i < carve; i++) flags[got + static_cast<int>(i)] = flag + i;
    }
    for (uint32_t i = 0; i < carve; i++, next += stride_) out[got++] = reinterpret_cast<void*>(next);
    s->bump += carve;
    s->allocated += carve;
    if (s->allocated == s->capacity) nonempty_.Remove(s);
  }
  span_free_ -= static_cast<size_t>(got);
  return got;
}

void CentralFreeList::ReturnToSpans(void* const* objects, int n) {
  PageMap& map = GlobalPageMap();
  const uint64_t magic = kSizeClasses.info(size_class_).magic;
  // Objects of a batch mostly share a slab: the last one is looked up and
  // vetted once (until it retires below), its bounds kept in registers.
  Span* s = nullptr;
  uintptr_t s_start = 0, s_end = 0;  // no slab: every address is outside
  size_t returned = 0;
  for (int i = 0; i < n; i++) {
    void* p = objects[i];
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a - s_start >= s_end - s_start) {
      s = map.Get(p);
      if (s == nullptr || s->state != SpanState::kSlab || s->size_class != size_class_) {
        ReportMisuse(misuse::kCorruptFreeList, p, owner_->name,
                     "a free-list entry is not an object of the %u-byte class", kSizeClasses.size(size_class_));
      }
      s_start = s->start;
      s_end = s->end();
      s->free_pages_returned = false;
    }
    uint32_t idx = static_cast<uint32_t>(((a - s_start) * magic) >> kMagicShift);
    uint64_t bit = uint64_t{1} << (idx % 64);
    // Beyond the bump: never handed out, free all along.
    if (idx >= s->bump || (s->free_bits[idx / 64] & bit)) {
      ReportMisuse(misuse::kDoubleFree, p, owner_->name, "a %u-byte object that is already free",
                   kSizeClasses.size(size_class_));
    }
    s->free_bits[idx / 64] |= bit;
    returned++;
    uint32_t allocated = s->allocated;
    if (allocated == s->capacity) nonempty_.PushFront(s);
    s->allocated = --allocated;
    if (allocated == 0) {
      // Every object is back: the slab is fresh again, handed out by bumping,
      // to any cache.
      s->bump = 0;
      s->slab_cache_id = 0;
      memset(s->free_bits, 0, sizeof(s->free_bits));
      if (empty_slabs_ < kKeepEmptySlabs) {
        empty_slabs_++;
      } else {
        nonempty_.Remove(s);
        slabs_--;
        span_free_ -= s->capacity;
        RetireSlab(s);
        owner_->pages->Free(s);
        s = nullptr;
        s_start = 0;
        s_end = 0;
      }
    }
  }
  span_free_ += returned;
}

void CentralFreeList::Retire(Span* slab) { RetireSlab(slab); }

void CentralFreeList::ForgetAllLocked() {
  batches_ = 0;
  slab_reused_at_ = 0;
  nonempty_ = SpanList();
  empty_slabs_ = 0;
  slabs_ = 0;
  span_free_ = 0;
}

void CentralFreeList::Drain() {
  LockGuard g(lock_);
  while (batches_ > 0) {
    Batch& b = batch_[--batches_];
    ReturnToSpans(b.objects, static_cast<int>(b.count));
  }
  ReleaseEmptySlabs();  // those kept for hysteresis go back too
}

void CentralFreeList::ReleaseEmptySlabs() {
  for (Span* s = nonempty_.first(); s != nullptr;) {
    Span* next = s->next;
    if (s->allocated == 0) {
      nonempty_.Remove(s);
      empty_slabs_--;
      slabs_--;
      span_free_ -= s->capacity;
      RetireSlab(s);
      owner_->pages->Free(s);
    }
    s = next;
  }
}

void CentralFreeList::ReleaseIdle(uint64_t cutoff) {
  LockGuard g(lock_);
  // Batches are stamped in stack order: the idle ones are at the bottom.
  int idle = 0;
  while (idle < batches_ && batch_[idle].since <= cutoff) idle++;
  if (idle > 0) {
    for (int i = 0; i < idle; i++) ReturnToSpans(batch_[i].objects, static_cast<int>(batch_[i].count));
    memmove(batch_, batch_ + idle, sizeof(Batch) * static_cast<size_t>(batches_ - idle));
    batches_ -= idle;
  }
  if (slab_reused_at_ <= cutoff) ReleaseEmptySlabs();
  bool idle_class = traffic_ == traffic_seen_;
  traffic_seen_ = traffic_;
  if (idle_class && batches_ == 0 && batches_touched_ > 0) {
    // An idle class with no batch left: the pages its stack grew into go
    // back too (BatchStack: they hold nothing else), so a program that freed
    // its heap keeps none of them.
    os::Release(batch_, RoundUp(sizeof(Batch) * static_cast<size_t>(batches_touched_), kPageSize));
    batches_touched_ = 0;
  }
  if (idle_class && !owner_->strict && size_class_ != kZeroSizeClass) {
    for (Span* s = nonempty_.first(); s != nullptr; s = s->next) {
      if (s->allocated != 0) ReturnFreePages(s);
    }
  }
}

bool CentralFreeList::PageHoldsOnlyFreeObjects(const Span* s, uint32_t page) const {
  uintptr_t first_byte = static_cast<uintptr_t>(page) * kPageSize;
  uint32_t first = static_cast<uint32_t>(first_byte / stride_);
  uint32_t last = static_cast<uint32_t>((first_byte + kPageSize - 1) / stride_);
  if (last >= s->bump) last = s->bump == 0 ? 0 : s->bump - 1;  // beyond: never handed out
  for (uint32_t i = first; i < s->bump && i <= last; i++) {
    if ((s->free_bits[i / 64] & (uint64_t{1} << (i % 64))) == 0) return false;
  }
  return true;
}

void CentralFreeList::ReturnFreePages(Span* s) {
  if (s->free_pages_returned) return;
  s->free_pages_returned = true;
  // Runs of such pages, one madvise each. Their objects read as zero when
  // handed out next; nothing is kept inside a free object.
  uintptr_t run = 0;
  for (uint32_t page = 0; page <= s->pages; page++) {
    uintptr_t at = s->start + static_cast<uintptr_t>(page) * kPageSize;
    if (page < s->pages && PageHoldsOnlyFreeObjects(s, page)) {
      if (run == 0) run = at;
    } else if (run != 0) {
      owner_->pages->ReturnSlabPages(reinterpret_cast<void*>(run), at - run);
      run = 0;
    }
  }
}

CentralStats CentralFreeList::Stats() {
  LockGuard g(lock_);
  CentralStats st{};
  for (int i = 0; i < batches_; i++) st.transfer_objects += batch_[i].count;
  st.span_free_objects = span_free_;
  st.slabs = slabs_;
  st.slab_objects_in_use = slabs_ * kSizeClasses.info(size_class_).capacity - span_free_;
  st.direct_allocs = direct_allocs_;
  st.direct_frees = direct_frees_;
  st.lock_contention = lock_.contended();
  return st;
}

}  // namespace nitro
