// ThreadCache: one thread's magazines, one per size class, in front of the
// default partition. Pop and Push are the whole malloc/free fast path.
//
// A magazine is a ring of entries (object pointer, address of the object's
// free flag in its Span), kept outside the objects: a freed object holds no
// link and no marker, so a use-after-free write into it cannot redirect a
// later allocation nor fake a free state. Each magazine is a FIFO: frees
// append at the tail, allocations take the head, and an allocation needs
// more than `depth` objects in the ring. So a freed object waits at least
// `depth` allocations of its class before reuse (the quarantine), at the
// cost of one compare. Allocation clears the object's free flag and a free
// sets it (Span::object_free), so freeing an object that is already free,
// or one never handed out, is caught on the fast path.
//
// Every miss (empty or full ring, a thread with no cache yet, strict mode)
// takes the same slow path: a not-yet-created cache is a shared sentinel
// whose magazines have no room and nothing to give.
#ifndef NITROHEAP_CORE_THREAD_CACHE_H_
#define NITROHEAP_CORE_THREAD_CACHE_H_

#include <stddef.h>
#include <stdint.h>

#include "core/base.h"
#include "core/lock.h"
#include "core/size_class.h"

namespace nitro {

class Partition;

class ThreadCache {
 public:
  struct Entry {
    void* object;
    uint8_t* free_flag;  // &span->object_free[index]
  };
  // One cache line per class. The indices are byte offsets into the ring
  // (entry index * sizeof(Entry)), and depth and max are scaled alike, so
  // the fast paths index the ring without a shift.
  struct alignas(64) Magazine {
    Entry* ring;     // mask / sizeof(Entry) + 1 entries, from the magazine store
    uint32_t head;   // free-running: ring at (head & mask) is the oldest object
    uint32_t tail;   // free-running: the next push goes to (tail & mask)
    uint32_t mask;   // ring bytes - 1 (a power of two)
    uint32_t max;    // pushes need count < max (0 in the sentinel and in strict)
    uint32_t depth;  // pops need count > depth (>= 1 entry)
    uint32_t unused;
    // Statistics beside the ring's indices, on the cache line the fast path touches.
    uint64_t allocs;
    uint64_t frees;
  };
  static constexpr uint32_t kEntryBytes = sizeof(Entry);

  NITRO_ALWAYS_INLINE void* Pop(int cls) {
    Magazine& m = mags_[cls];
    uint32_t head = m.head;
    if (NITRO_UNLIKELY(m.tail - head <= m.depth)) return nullptr;
    const Entry& e = *reinterpret_cast<const Entry*>(reinterpret_cast<char*>(m.ring) + (head & m.mask));
    __atomic_store_n(&m.head, head + kEntryBytes, __ATOMIC_RELAXED);
    __atomic_store_n(e.free_flag, uint8_t{0}, __ATOMIC_RELAXED);  // held by the program now
    void* p = e.object;
    if (p == nullptr) __builtin_unreachable();  // entries are objects: one test less in malloc
    return p;
  }
  // False when the ring is full or this is the sentinel. `free_flag`: the
  // object's flag, which the caller found clear (not already free).
  NITRO_ALWAYS_INLINE bool Push(int cls, void* p, uint8_t* free_flag) {
    return Push(mags_[cls], p, free_flag);
  }
  // The same given the class's magazine (MagazineAfterFirst).
  static NITRO_ALWAYS_INLINE bool Push(Magazine& m, void* p, uint8_t* free_flag) {
    uint32_t tail = m.tail;
    if (NITRO_UNLIKELY(tail - m.head >= m.max)) return false;
    *reinterpret_cast<Entry*>(reinterpret_cast<char*>(m.ring) + (tail & m.mask)) = Entry{p, free_flag};
    __atomic_store_n(&m.tail, tail + kEntryBytes, __ATOMIC_RELAXED);
    __atomic_store_n(free_flag, uint8_t{1}, __ATOMIC_RELAXED);
    return true;
  }
  // An add by the owner that readers on other threads (relaxed loads) see
  // whole. On x86-64 one `add` to memory (an aligned 8-byte store is never
  // torn; no lock prefix, since only the owner writes): the relaxed
  // load-add-store form costs three instructions on each fast path, as
  // GCC does not fold atomics into a memory operand.
  static NITRO_ALWAYS_INLINE void Bump(uint64_t& x, uint64_t d) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    asm("addq %1, %0" : "+m"(x) : "er"(d));
#else
    __atomic_store_n(&x, __atomic_load_n(&x, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
#endif
  }

  // Statistics, written by the owning thread only and read by others with
  // relaxed loads (merged on read): the fast path pays one addition each.
  struct Counters {
    uint64_t allocs[kNumClasses];
    uint64_t frees[kNumClasses];
  };
  // Counts an allocation and advances both samplers: the guarded pool's
  // (one in sample_rate allocations) and the flight recorder's (one every
  // profile_rate bytes). True when either is due. On x86-64 each countdown
  // is one subtract from memory whose sign the branch tests (GCC would load,
  // subtract, store and OR the two: eight instructions, here four); the
  // recorder's subtract a due guarded sample skips is made on that unlikely
  // path, so both always advance.
  NITRO_ALWAYS_INLINE bool AccountAlloc(int cls, size_t size) {
    Bump(mags_[cls].allocs, 1);
    if (NITRO_UNLIKELY(CountDown(sample_countdown_, 1))) {
      record_countdown_ -= static_cast<int64_t>(size);
      return true;
    }
    return NITRO_UNLIKELY(CountDown(record_countdown_, static_cast<int64_t>(size)));
  }
  // x -= d; true when x is then negative.
  static NITRO_ALWAYS_INLINE bool CountDown(int64_t& x, int64_t d) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool negative;
    asm("subq %2, %0" : "+m"(x), "=@ccs"(negative) : "er"(d));
    return negative;
#else
    return (x -= d) < 0;
#endif
  }
  NITRO_ALWAYS_INLINE void AccountFree(int cls) { AccountFree(mags_[cls]); }
  static NITRO_ALWAYS_INLINE void AccountFree(Magazine& m) { Bump(m.frees, 1); }
  // The magazine of class `cls_minus_1 + 1`, in the form whose + 1 the
  // compiler folds into the addressing (PartitionFree's compare yields
  // the class minus one; mags_[cls_minus_1 + 1] costs an add).
  NITRO_ALWAYS_INLINE Magazine& MagazineAfterFirst(uint64_t cls_minus_1) { return (&mags_[1])[cls_minus_1]; }
  // An allocation that the guarded pool served instead (counted there).
  void UnaccountAlloc(int cls) { Bump(mags_[cls].allocs, ~uint64_t{0}); }
  // Large allocations only advance the flight recorder's byte countdown.
  bool RecordBytes(size_t size) { return (record_countdown_ -= static_cast<int64_t>(size)) < 0; }
  bool GuardDue() const { return sample_countdown_ < 0; }
  // Bytes of blocks outside the size-class magazines (large and guarded
  // ones) this thread allocated and freed; with the magazines' counters they make
  // the thread's totals (nitro_thread_allocated), off the fast path.
  void CountOtherAllocated(size_t bytes) { other_allocated_ += bytes; }
  void CountOtherFreed(size_t bytes) { other_freed_ += bytes; }
  uint64_t AllocatedBytes() const;
  uint64_t FreedBytes() const;
  bool RecordDue() const { return record_countdown_ < 0; }
  void ResetSampleCountdown(int64_t countdown) { sample_countdown_ = countdown; }
  void ResetRecordCountdown(int64_t countdown) { record_countdown_ = countdown; }
  // A copy of the counters, read with relaxed loads.
  Counters ReadCounters() const;
  uint32_t ListCount(int cls) const {
    return (__atomic_load_n(&mags_[cls].tail, __ATOMIC_RELAXED) -
            __atomic_load_n(&mags_[cls].head, __ATOMIC_RELAXED)) / kEntryBytes;
  }

  // quarantine_bytes sets each class's depth; strict routes every call to
  // the slow path (the fast fields block) where PopChecked/PushChecked run.
  // The rings come from the magazine store (sized here, returned by the
  // destructor); without memory for them the cache stays a sentinel.
  ~ThreadCache();
  // False (and the cache unusable) when there is no memory for the rings.
  bool Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes, bool strict,
            int64_t first_sample, int64_t first_record);
  // Slow paths: refill from the middle layer and pop; make room and push.
  void* Refill(int cls);
  bool RefillList(int cls);
  void Overflow(int cls, void* p);
  // The slow-path forms, honouring the real limits even in strict mode.
  // `pick` > 1 takes a random one of the first `pick` reusable objects;
  // `valid`, if given, vets the object taken (a magazine entry is metadata,
  // but strict checks what it hands out all the same).
  using Validator = bool (*)(void* object, int cls);
  void* PopChecked(int cls, uint32_t pick, Validator valid = nullptr);
  void PushChecked(int cls, void* p);
  // Returns every cached object to the middle layer.
  void Flush();
  // A free run: the thread's frees have sent more than its cache's bound
  // (tcache_max_bytes) onward, to the middle layer (full rings) or the page
  // heap (large blocks), since it last took anything back (a refill or a
  // large allocation). Such a thread is emptying its heap and may then
  // sleep with full magazines, which only it can empty (no other thread
  // pops a magazine). So in a free run each free slow path empties the
  // ring that overflowed, not one batch, and empties the whole cache when
  // the run starts, at each large free, and whenever the cache holds more
  // than 1/kFreeRunShare of its bound. The objects go to the middle layer,
  // whose idle batches and slabs the reclaimer returns. No instruction on
  // the fast paths; an allocation slow path ends the run.
  void NoteLargeFree(size_t bytes);
  void NoteLargeAllocation() { returned_since_refill_ = 0; }
  bool in_free_run() const { return returned_since_refill_ > max_bytes_; }
  static constexpr size_t kFreeRunShare = 8;
  size_t CachedBytes() const;
  uint64_t cached_objects(int cls) const { return ListCount(cls); }
  bool is_sentinel() const { return partition_ == nullptr; }

 private:
  void ReleaseBatch(int cls, uint32_t n);
  void Prepend(int cls, void* const* objects, int n);
  uint32_t Count(int cls) const { return (mags_[cls].tail - mags_[cls].head) / kEntryBytes; }
  Entry& At(int cls, uint32_t offset) {
    Magazine& m = mags_[cls];
    return *reinterpret_cast<Entry*>(reinterpret_cast<char*>(m.ring) + (offset & m.mask));
  }

  Magazine mags_[kNumClasses];
  Entry* store_ = nullptr;  // every ring, one block
  size_t store_bytes_ = 0;
  int64_t sample_countdown_ = 0;
  // Kept apart from sample_countdown_ (see AccountAlloc); never read, which
  // clang reports as an unused private field.
  [[maybe_unused]] void* pad_ = nullptr;
  int64_t record_countdown_ = 0;
  Partition* partition_ = nullptr;
  size_t max_bytes_ = 0;
  uint64_t pick_rng_ = 1;
  uint64_t other_allocated_ = 0;
  uint64_t other_freed_ = 0;
  uint64_t returned_since_refill_ = 0;  // bytes; see in_free_run
  uint32_t real_max_[kNumClasses] = {};
  uint32_t real_depth_[kNumClasses] = {};

 public:
  // Registry links (all live caches, for fork and statistics). After the
  // magazines, which start the object: the fast paths then address a
  // magazine as cache + (cls << 6) in one form.
  ThreadCache* next = nullptr;
  ThreadCache* prev = nullptr;
  unsigned long owner_thread = 0;
};

// The magazine store's lock (rings of exited threads wait there for the
// next thread); the fork handler takes it.
SpinLock& MagazineStoreLock();

}  // namespace nitro

#endif  // NITROHEAP_CORE_THREAD_CACHE_H_
