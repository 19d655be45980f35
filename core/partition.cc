#include "core/partition.h"

#include <atomic>

#include <errno.h>
#include <string.h>

#include "core/cache_slots.h"
#include "core/lock_registry.h"
#include "core/numa.h"
#include "core/os.h"
#include "core/report.h"

namespace nitro {
namespace {

Partition* g_table[Partition::kMaxPartitions];
SpinLock g_table_lock{LockRank::kPartitionTable};

MetaPool<Partition, /*kZeroOnReuse=*/false>& PartitionPool() {
  static MetaPool<Partition, false> pool;
  return pool;
}

// A contract's configured actions on a soft-limit crossing, run by the
// crossing thread outside every lock (core/contract.h).
void RunPressureActions(void* owner, uint32_t actions) {
  auto* p = static_cast<Partition*>(owner);
  if (actions & kActionQuarantine) p->pages().EnlargeQuarantine(2);
  if (actions & kActionCompact) RequestPressureCompaction();
  if (actions & kActionRelease) {
    p->ReleaseFreeMemory();  // drains the middle layer too
  } else if (actions & kActionCaches) {
    for (int c = 1; c < kNumClasses; c++) p->central(c).Drain();
  }
}

}  // namespace

void ReleaseAllPartitionsForPressure() {
  Partition::ForEach([](Partition* p) { p->ReleaseFreeMemory(); });
}

// Every live partition's locks, for fork: by partition id, and within one
// partition in the order its methods nest them (LockAll).
void LockAllPartitions() {
  for (int i = 1; i < Partition::kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) p->LockAll();
  }
}
void UnlockAllPartitions() {
  for (int i = Partition::kMaxPartitions - 1; i >= 1; i--) {
    if (Partition* p = PartitionSlot(i)) p->UnlockAll();
  }
}
void ResetAllPartitionLocks() {
  for (int i = 1; i < Partition::kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) p->ResetLocksAfterFork();
  }
}
bool PartitionOwnsLock(const SpinLock* lock) {
  for (int i = 1; i < Partition::kMaxPartitions; i++) {
    Partition* p = PartitionSlot(i);
    auto a = reinterpret_cast<uintptr_t>(lock);
    auto base = reinterpret_cast<uintptr_t>(p);
    if (p != nullptr && a >= base && a < base + sizeof(Partition)) return true;
  }
  return false;
}
const LockGroup kPartitionLocks = {LockRank::kPartition, LockAllPartitions, UnlockAllPartitions,
                                   ResetAllPartitionLocks, PartitionOwnsLock};

SpinLock& PartitionTableLock() { return g_table_lock; }
const LockGroup* PartitionLockGroup() { return &kPartitionLocks; }
SpinLock& PartitionPoolLock() { return PartitionPool().lock(); }
Partition* PartitionSlot(int id) { return __atomic_load_n(&g_table[id], __ATOMIC_ACQUIRE); }
Partition* Partition::FromId(uint16_t id) {
  return id < kMaxPartitions ? PartitionSlot(id) : nullptr;
}

Partition* Partition::Create(const char* name, const PartitionConfig& config,
                             PageHeap::Clock clock) {
  LockGuard g(g_table_lock);
  int id = 0;
  for (int i = kMaxPartitions - 1; i >= 1; i--) {
    if (g_table[i] == nullptr) {
      id = i;
    } else if (name != nullptr && strncmp(g_table[i]->name_, name, kNameMax - 1) == 0) {
      errno = EEXIST;  // names identify partitions in statistics
      return nullptr;
    }
  }
  if (id == 0) {
    errno = ENOMEM;
    return nullptr;
  }
  Partition* p = PartitionPool().New();
  if (p == nullptr) return nullptr;
  p->Init(name, static_cast<uint16_t>(id), config, clock);
  __atomic_store_n(&g_table[id], p, __ATOMIC_RELEASE);
  return p;
}

void Partition::Init(const char* name, uint16_t id, const PartitionConfig& config,
                     PageHeap::Clock clock) {
  size_t n = name ? strnlen(name, kNameMax - 1) : 0;
  memcpy(name_, name ? name : "", n);
  name_[n] = '\0';
  id_ = id;
  os::RandomBytes(&key_, sizeof(key_));
  slab_owner_ = SlabOwner{&pages_, name_, false, false, clock};
  pages_.Init(this, id, config.region_bytes, config.max_free_committed, clock);
  pages_.SetQuarantine(config.large_quarantine_bytes, config.large_quarantine_spans,
                       config.large_protect_until_reuse);
  pages_.contract().Init(this, name_, RunPressureActions);
  large_guard_pages_ = config.large_guard_pages;
  clock_ = clock;
  uint64_t seed;
  os::RandomBytes(&seed, sizeof(seed));
  large_protect_.Init(config.large_protect, seed);
  policy_ = config.policy;
  bool cached = policy_.thread_caches;
  slab_owner_.thread_cached = cached;
  slab_owner_.strict = policy_.strict;
  alloc_slot_ = cached && policy_.min_align == 0 && policy_.object_size == 0 ? id : 0;
  fast_free_base_ = (uint64_t{id} << 32) + kMagazineBytes;
  alloc_cache_tp_offset_ = CacheSlotTpOffset(alloc_slot_);
  free_cache_tp_offset_ = CacheSlotTpOffset(id);
  // strict too: its big large blocks need huge pages (AllocateLarge).
  if (policy_.huge_pages || policy_.strict) pages_.AdviseHugePages();
  if (policy_.numa_interleave) pages_.InterleaveNodes(numa::ProcessInterleaveMask());
  for (int c = 1; c < kNumClasses; c++) central_[c].Init(&slab_owner_, c, &batches_[c]);
}

namespace {
std::atomic<void (*)(Partition*)> g_before_destroy{nullptr};
}  // namespace

void Partition::SetBeforeDestroy(void (*hook)(Partition* p)) {
  g_before_destroy.store(hook, std::memory_order_release);
}

void Partition::Destroy(Partition* p) {
  if (auto* hook = g_before_destroy.load(std::memory_order_acquire)) hook(p);
  // Under the table lock: the reclaimer and statistics (ForEach) never see
  // a partition half destroyed, and fork takes its locks while it is listed.
  LockGuard g(g_table_lock);
  p->pages_.Destroy();
  __atomic_store_n(&g_table[p->id_], nullptr, __ATOMIC_RELEASE);
  // Its batch stacks (page-aligned, whole pages) go back: the partition made
  // next in this memory starts with none resident, like a fresh one.
  os::Release(p->batches_, sizeof(p->batches_));
  PartitionPool().Delete(p);
}

void* Partition::Allocate(size_t size, size_t align) {
  ContractScope scope;  // pressure callbacks run as it ends, outside every lock
  void* p = AllocateOnce(size, align);
  // A hard limit refused pages: free memory held in the middle layer's
  // batches and empty slabs counts as use, so it goes back before one retry.
  if (NITRO_UNLIKELY(p == nullptr) && TakeLimitRefusal()) {
    size_t use = contract().use();
    for (int c = 1; c < kNumClasses; c++) central_[c].Drain();
    if (contract().use() < use) p = AllocateOnce(size, align);
    TakeLimitRefusal();
    if (p == nullptr) errno = ENOMEM;
  }
  return p;
}

void* Partition::AllocateOnce(size_t size, size_t align) {
  if (align <= kMinAlign) {
    if (size <= kMaxSmallSize) {
      void* p = central_[kSizeClasses.ClassFor(size)].AllocateOne();
      if (p == nullptr) errno = ENOMEM;
      return p;
    }
  } else if (align <= kPageSize) {
    if (int cls = kSizeClasses.ClassForAligned(size, align)) {
      void* p = central_[cls].AllocateOne();
      if (p == nullptr) errno = ENOMEM;
      return p;
    }
  }
  bool zeroed;
  return AllocateLarge(size, align, &zeroed);
}

void* Partition::AllocateLarge(size_t size, size_t align, bool* zeroed) {
  if (size > kMaxRequest || align > kMaxRequest) {
    errno = ENOMEM;
    return nullptr;
  }
  size_t guard = large_guard_pages_ ? 1 : 0;
  size_t data_pages = PagesFor(size == 0 ? 1 : size);
  size_t align_pages = align > kPageSize ? align >> kPageShift : 1;
  size_t phase_pages = 0;
  if (policy_.strict && size >= kStrictHugeBlock && align_pages == 1 && pages_.huge_pages()) {
    // strict's big blocks lie in transparent huge pages (its regions ask for
    // them): it protects every freed block and opens it again at reuse, and
    // on this project's virtual machines each 4 KiB page touched after such
    // an mprotect costs tens of microseconds (a 16 MiB block filled after
    // each cycle: 119 ms against 1.4 ms with huge pages); a 2 MiB page costs
    // about three 4 KiB pages' worth. The block ends at a 2 MiB boundary, so
    // that the guard page begins a huge page and splits none of the block's:
    // only its first, partial one may be split, by whatever uses the pages
    // before it.
    align_pages = kHugePagePages;
    phase_pages = (kHugePagePages - data_pages % kHugePagePages) % kHugePagePages;
  }
  size_t pages = data_pages + guard;
  // The guard page makes an overflow off the end fault at once.
  Span* s = pages_.Allocate(pages, align_pages, SpanState::kLarge, guard != 0, phase_pages);
  if (s == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  s->requested = size;
  *zeroed = s->zeroed;
  {
    LockGuard g(large_lock_);
    large_count_++;
    large_bytes_ += size;
    large_usable_ += s->usable_bytes();
    large_allocs_total_++;
  }
  return reinterpret_cast<void*>(s->start);
}

void Partition::FreeLarge(Span* s, void* p) {
  if (reinterpret_cast<uintptr_t>(p) != s->start) {
    ReportMisuse(misuse::kInvalidFree, p, name_, "not the start of the large allocation at %p",
                 reinterpret_cast<void*>(s->start));
  }
  LargeProtection protect = LargeProtection::kNone;
  {
    LockGuard g(large_lock_);
    large_count_--;
    large_bytes_ -= s->requested;
    large_usable_ -= s->usable_bytes();
    large_frees_total_++;
    if (pages_.ProtectionLasts(s->bytes())) protect = large_protect_.ShouldProtect(clock_ ? clock_() : 0);
  }
  pages_.Free(s, /*quarantine=*/true, protect);
}

bool Partition::ResizeLargeInPlace(Span* s, size_t size) {
  ContractScope scope;
  size_t old_usable = s->usable_bytes();
  size_t guard = s->guard_pages;
  size_t pages = PagesFor(size) + guard;
  if (pages != s->pages) {
    // The guard page moves with the end of the block.
    uintptr_t old_guard = s->end() - kPageSize;
    if (guard && !os::ProtectReadWrite(reinterpret_cast<void*>(old_guard), kPageSize)) return false;
    s->guard_pages = 0;
    bool ok = true;
    if (pages < s->pages) {
      pages_.Shrink(s, pages);
    } else {
      ok = pages_.GrowInPlace(s, pages);
    }
    if (guard && os::ProtectNone(reinterpret_cast<void*>(s->end() - kPageSize), kPageSize)) {
      s->guard_pages = 1;
    }
    if (!ok) return false;
  }
  LockGuard g(large_lock_);
  large_bytes_ = large_bytes_ - s->requested + size;
  large_usable_ = large_usable_ - old_usable + s->usable_bytes();
  s->requested = size;
  return true;
}

bool Lookup(const void* p, PointerInfo* out) {
  *out = PointerInfo{};
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) return false;
  out->partition = s->partition;
  out->span = s;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  switch (s->state) {
    case SpanState::kFree:
      out->free_run = true;
      break;
    case SpanState::kSlab: {
      out->size_class = s->size_class;
      uint32_t idx = s->ObjectIndex(a);
      if (idx >= s->capacity) return true;  // the slab's unusable tail
      out->object_start = reinterpret_cast<void*>(s->start + static_cast<uintptr_t>(idx) * s->object_size);
      out->object_size = kSizeClasses.size(s->size_class);  // 0 for kZeroSizeClass
      break;
    }
    case SpanState::kLarge:
      out->object_start = reinterpret_cast<void*>(s->start);
      out->object_size = s->usable_bytes();
      break;
    case SpanState::kGuarded:
    case SpanState::kZeroSize:
      // Resolved by the pool that owns the span (core/guarded_pool.h).
      out->object_start = reinterpret_cast<void*>(s->start);
      out->object_size = s->requested;
      break;
  }
  return true;
}

void Partition::Free(void* p) {
  if (p == nullptr) return;
  PointerInfo info;
  if (!Lookup(p, &info) || info.partition != this) {
    ReportMisuse(misuse::kForeignFree, p, name_, "partition %s does not own this pointer", name_);
  }
  if (info.free_run) {
    ReportMisuse(info.span->start == reinterpret_cast<uintptr_t>(p) ? misuse::kDoubleFree
                                                                     : misuse::kInvalidFree,
                 p, name_, "the pointer is in freed large memory");
  }
  if (info.object_start != p) {
    ReportMisuse(misuse::kInvalidFree, p, name_, "not the start of an object (%zu bytes into it)",
                 static_cast<size_t>(static_cast<char*>(p) - static_cast<char*>(info.object_start)));
  }
  if (info.span->state == SpanState::kSlab) {
    central_[info.size_class].FreeOne(p);
  } else if (info.span->state == SpanState::kLarge) {
    FreeLarge(info.span, p);
  } else {
    // Guarded and zero-size blocks belong to the process heap's pools
    // (nitro::PartitionFree in core/heap.h frees those).
    ReportMisuse(misuse::kInvalidFree, p, name_,
                 "a sampled or zero-size block: free it with free() or nitro_partition_free");
  }
}

size_t Partition::UsableSize(const void* p) {
  PointerInfo info;
  if (!Lookup(p, &info) || info.partition != this || info.object_start != p) return 0;
  return info.object_size;
}

void* Partition::Reallocate(void* p, size_t size) {
  if (p == nullptr) return Allocate(size);
  PointerInfo info;
  if (!Lookup(p, &info) || info.partition != this || info.object_start != p || info.free_run ||
      (info.span->state != SpanState::kSlab && info.span->state != SpanState::kLarge)) {
    ReportMisuse(misuse::kInvalidFree, p, name_, "realloc of a pointer that is not a live object");
  }
  if (info.span->state == SpanState::kLarge && size > kMaxSmallSize &&
      ResizeLargeInPlace(info.span, size)) {
    return p;
  }
  if (info.size_class != 0 && size <= info.object_size && size > info.object_size / 2) return p;
  void* q = Allocate(size);
  if (q == nullptr) return nullptr;
  memcpy(q, p, size < info.object_size ? size : info.object_size);
  Free(p);
  return q;
}

// Threads' caches of this partition are gone before this runs
// (ReleaseCachesForArena, core/heap.h): their lists point into slabs that
// Reset unmaps, and Visit must see their objects as free.
void Partition::Reset() {
  LockAll();
  pages_.ForEachSpanLocked([](Span* s) {
    if (s->state == SpanState::kSlab) CentralFreeList::Retire(s);
  });
  for (int c = 1; c < kNumClasses; c++) central_[c].ForgetAllLocked();
  pages_.DestroyLocked();
  large_frees_total_ += large_count_;
  large_count_ = large_bytes_ = large_usable_ = 0;
  UnlockAll();
}

size_t Partition::ReleaseFreeMemory() {
  for (int c = 1; c < kNumClasses; c++) central_[c].Drain();
  size_t released = pages_.ReleaseAll();
  return released + SpanPool().ReleaseEmpty(/*now=*/true);
}

PartitionStats Partition::Stats() {
  PartitionStats st{};
  st.pages = pages_.Stats();
  {
    LockGuard g(large_lock_);
    st.large_allocations = large_count_;
    st.large_bytes = large_bytes_;
    st.large_usable_bytes = large_usable_;
    st.large_allocs_total = large_allocs_total_;
    st.large_frees_total = large_frees_total_;
  }
  st.lock_contention = large_lock_.contended() + pages_.lock().contended();
  for (int c = 1; c < kNumClasses; c++) {
    CentralStats cs = central_[c].Stats();
    st.small_transfer_bytes += cs.transfer_objects * kSizeClasses.size(c);
    st.small_slab_free_bytes += cs.span_free_objects * kSizeClasses.size(c);
    st.small_slabs += cs.slabs;
    st.small_object_bytes += cs.slabs * kSizeClasses.info(c).capacity * kSizeClasses.size(c);
  }
  return st;
}

void Partition::LockAll() {
  for (int c = 1; c < kNumClasses; c++) central_[c].lock().Lock();
  large_lock_.Lock();
  pages_.lock().Lock();
}

void Partition::UnlockAll() {
  pages_.lock().Unlock();
  large_lock_.Unlock();
  for (int c = kNumClasses - 1; c >= 1; c--) central_[c].lock().Unlock();
}

void Partition::ResetLocksAfterFork() {
  for (int c = 1; c < kNumClasses; c++) central_[c].lock().ResetAfterFork();
  large_lock_.ResetAfterFork();
  pages_.lock().ResetAfterFork();
}

}  // namespace nitro
