// ThreadCache: one thread's magazines, one per size class, in front of the
// default partition. Pop and Push are the whole malloc/free fast path.
//
// A magazine keeps its entries (object pointer, address of the object's
// free flag in its Span) outside the objects: a freed object holds no link
// and no marker, so a use-after-free write into it cannot redirect a later
// allocation nor fake a free state. It has two parts. The delay line, a
// ring of exactly `depth` entries, is the quarantine: a free puts its
// object there and moves the oldest entry out, so an object leaves it only
// after `depth` later frees of its class. Entries that left it go on a
// stack, from which allocations take the top: the object that left the
// quarantine last, i.e. the most recently freed object past the depth
// (LIFO beyond the quarantine). So a freed object waits at least `depth`
// frees of its class before reuse, and the one reused is the one freed
// least long ago that is allowed (its memory is the likeliest to be in
// the cache; a FIFO handed out the object freed longest ago). Allocation
// clears the object's free flag and a free sets it (Span::object_free), so
// freeing an object that is already free, or one never handed out, is
// caught on the fast path.
//
// Every miss (empty or full stack, a delay line not yet full, a thread with
// no cache yet, strict mode) takes the same slow path: a not-yet-created
// cache is a shared sentinel whose magazines have no room and nothing to
// give.
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
  // One cache line per class.
  struct alignas(64) Magazine {
    // The stack's top entry. Below every stack is a null entry, the top of
    // an empty one: the pop's test for "empty" is then the test for a null
    // object that malloc makes anyway.
    Entry* top = &empty_stack_;
    // Pushes need top < limit: the stack's last entry, or nullptr (the
    // sentinel, strict mode, and while the delay line is not full).
    Entry* limit = nullptr;
    Entry* delay_oldest = nullptr;  // where a full delay line takes the next free
    Entry* delay = nullptr;         // the delay line: [delay, delay_end), `depth` entries
    Entry* delay_end = nullptr;
    uint32_t held = 0;          // entries in the delay line (depth once full), from delay_oldest on
    uint32_t strict_count = 0;  // strict mode's stack count: its `top` stays on the null entry
    // Statistics beside the indices, on the cache line the fast path touches.
    uint64_t allocs = 0;
    uint64_t frees = 0;
  };

  NITRO_ALWAYS_INLINE void* Pop(int cls) { return Pop(mags_[cls]); }
  // The same given the class's magazine (MagAtOffset): malloc's fast path names the
  // magazine once for the pop and the counters, so the compiler computes
  // its address once.
  static NITRO_ALWAYS_INLINE void* Pop(Magazine& m) {
    Entry* top = m.top;
    void* p = top->object;
    if (NITRO_UNLIKELY(p == nullptr)) return nullptr;  // the null entry: empty
    __atomic_store_n(&m.top, top - 1, __ATOMIC_RELAXED);
    __atomic_store_n(top->free_flag, uint8_t{0}, __ATOMIC_RELAXED);  // held by the program now
    return p;
  }
  // False when the stack is full, the delay line not yet full, or this is
  // the sentinel. `free_flag`: the object's flag, which the caller found
  // clear (not already free).
  NITRO_ALWAYS_INLINE bool Push(int cls, void* p, uint8_t* free_flag) {
    return Push(mags_[cls], p, free_flag);
  }
  // The same given the class's magazine (MagazineAfterFirst). The object
  // takes the oldest delay-line entry's place; that entry, which has now
  // waited `depth` frees, goes on top of the stack. Word by word: moving
  // the entry as one 16-byte vector saves two instructions, but the next
  // malloc's pop reads it back as two 8-byte loads (likely a store-to-load
  // forwarding stall from the vector store): on this AMD EPYC a one-size
  // malloc/free loop took 0.25-0.29 s of user time per 20M pairs instead
  // of 0.20-0.24 (branch fast8, tried and reverted).
  static NITRO_ALWAYS_INLINE bool Push(Magazine& m, void* p, uint8_t* free_flag) {
    Entry* top = m.top;
    // As addresses: the limit may be null, which C++ does not order
    // against a pointer into the stack.
    if (NITRO_UNLIKELY(reinterpret_cast<uintptr_t>(top) >= reinterpret_cast<uintptr_t>(m.limit))) return false;
    Entry* slot = m.delay_oldest;
    Entry done = *slot;
    *slot = Entry{p, free_flag};
    slot++;
    m.delay_oldest = slot == m.delay_end ? m.delay : slot;
    top[1] = done;
    __atomic_store_n(&m.top, top + 1, __ATOMIC_RELAXED);
    __atomic_store_n(free_flag, uint8_t{1}, __ATOMIC_RELAXED);
    return true;
  }
  // strict mode's pop and push (core/strict.cc's fast path), inline and
  // checked: strict keeps `top` on the null entry and `limit` null, so the
  // default Pop and Push above always miss and every strict call reaches
  // these through the slow-path entry. PopRandom takes a random one of the
  // stack's top kStrictPick entries (randomized reuse); its caller vets the
  // object (StrictSpanOf), then hands it out with Claim. Returns the null
  // entry when the stack is empty.
  static constexpr uint32_t kStrictPick = 8;
  NITRO_ALWAYS_INLINE Entry PopRandom(int cls) {
    uint32_t count = mags_[cls].strict_count;
    if (NITRO_UNLIKELY(count == 0)) return Entry{nullptr, nullptr};
    return TakeAt(cls, count, RandomSkip(count, kStrictPick));
  }
  // False (nothing done) when the delay line is not yet full or the stack
  // is full: PushChecked then fills the line or returns a batch first.
  // Otherwise as Push: the object takes the oldest delay-line entry's
  // place, and that entry, which waited `depth` frees, goes on the stack.
  // Its object will be reused within the next few allocations of the class
  // and its zero check reads every byte of it, which has usually left the
  // cache during the quarantine: its first kStrictPrefetchLines lines are
  // prefetched now (hardware prefetchers follow the rest of a longer one).
  NITRO_ALWAYS_INLINE bool PushStrict(int cls, void* p, uint8_t* free_flag) {
    Magazine& m = mags_[cls];
    uint32_t count = m.strict_count;
    if (NITRO_UNLIKELY(m.held != static_cast<uint32_t>(m.delay_end - m.delay) || count >= stack_max_[cls])) {
      return false;
    }
    Entry* slot = m.delay_oldest;
    Entry done = *slot;
    PrefetchObject(done.object, kSizeClasses.size(cls));
    *slot = Entry{p, free_flag};
    slot++;
    m.delay_oldest = slot == m.delay_end ? m.delay : slot;
    stack_[cls][count + 1] = done;
    __atomic_store_n(&m.strict_count, count + 1, __ATOMIC_RELAXED);
    __atomic_store_n(free_flag, uint8_t{1}, __ATOMIC_RELAXED);
    return true;
  }
  // The object of an entry just taken is the program's from now.
  static NITRO_ALWAYS_INLINE void Claim(const Entry& e) {
    __atomic_store_n(e.free_flag, uint8_t{0}, __ATOMIC_RELAXED);
  }
  static constexpr uint32_t kStrictPrefetchLines = 4;
  static NITRO_ALWAYS_INLINE void PrefetchObject(const void* object, uint32_t bytes) {
    uint32_t lines = (bytes + 63) / 64;
    if (lines > kStrictPrefetchLines) lines = kStrictPrefetchLines;
    for (uint32_t i = 0; i < lines; i++) __builtin_prefetch(static_cast<const char*>(object) + 64 * i, 0, 3);
  }
  bool strict() const { return strict_; }
  Partition* partition() const { return partition_; }

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
  NITRO_ALWAYS_INLINE bool AccountAlloc(int cls, size_t size) { return AccountAlloc(mags_[cls], size); }
  NITRO_ALWAYS_INLINE bool AccountAlloc(Magazine& m, size_t size) {
    Bump(m.allocs, 1);
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
  // The magazine of a class for malloc's fast path, its offset held in
  // one register: left to itself GCC computes cls << 6 twice (once for the
  // pop's load, again for the stores and the counter: two instructions
  // more per malloc, seen in objdump of libnitroheap.so's malloc).
  // `offset`: SizeClassMap::MagazineOffsetFor, the class times the size of
  // a magazine, so that no shift is needed either.
  NITRO_ALWAYS_INLINE Magazine& MagAtOffset(uintptr_t offset) {
    asm("" : "+r"(offset));
    return *reinterpret_cast<Magazine*>(reinterpret_cast<char*>(mags_) + offset);
  }
  // The magazine `offset` bytes past class 1's, the form free's compare of
  // the span word yields (Span::fast_free): the compiler folds the rest
  // into the addressing.
  NITRO_ALWAYS_INLINE Magazine& MagazineAfterFirst(uint64_t offset) {
    return *reinterpret_cast<Magazine*>(reinterpret_cast<char*>(&mags_[1]) + offset);
  }
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
  // Objects the magazine holds, stack and delay line (strict_count is 0
  // outside strict mode, and top on the null entry in it).
  uint32_t ListCount(int cls) const {
    if (is_sentinel()) return 0;  // no stacks: stack_ is null, top the shared null entry
    return HeldCount(cls);
  }

  // quarantine_bytes sets each class's depth; strict routes every call to
  // the slow path (the fast fields block) where PopChecked/PushChecked run.
  // The entries come from the magazine store (sized here, returned by the
  // destructor); without memory for them the cache stays a sentinel.
  ~ThreadCache();
  // False (and the cache unusable) when there is no memory for the entries.
  bool Init(Partition* partition, size_t max_bytes, size_t quarantine_bytes, bool strict,
            int64_t first_sample, int64_t first_record);
  // Slow paths: refill from the middle layer and pop; make room and push.
  // A refill tops the delay line up first (with objects never handed out),
  // so that the fast push works again after a flush.
  void* Refill(int cls);
  bool RefillList(int cls);
  // `free_flag`, in Overflow and PushChecked: the object's flag when the
  // caller has it (free's fast-path checks found it); null: looked up.
  void Overflow(int cls, void* p, uint8_t* free_flag = nullptr);
  // The slow-path forms, honouring the real limits even in strict mode.
  // `pick` > 1 takes a random one of the top `pick` objects of the stack;
  // `valid`, if given, vets the object taken (a magazine entry is metadata,
  // but strict checks what it hands out all the same).
  using Validator = bool (*)(void* object, int cls);
  void* PopChecked(int cls, uint32_t pick, Validator valid = nullptr);
  void PushChecked(int cls, void* p, uint8_t* free_flag = nullptr);
  // Returns every cached object to the middle layer.
  void Flush();
  // A free run: the thread's frees have sent more than its cache's bound
  // (tcache_max_bytes) onward, to the middle layer (full stacks) or the page
  // heap (large blocks), since it last took anything back (a refill or a
  // large allocation). A large free counts for at most 1/kLargeFreesPerRun
  // of the bound (plus a byte), so that large frees alone start a run only
  // at the kLargeFreesPerRun-th in a row. Such a thread is emptying its
  // heap and may then sleep with full magazines, which only it can empty
  // (no other thread pops a magazine). So in a free run each free slow path
  // empties the stack that overflowed, not one batch (the delay line stays
  // full, or every later free of the class would refill it on the slow
  // path), and empties the whole cache when the run starts, at each large
  // free, and whenever the cache holds more than 1/kFreeRunShare of its
  // bound. The objects go to the middle layer, whose idle batches and slabs
  // the reclaimer returns. No instruction on the fast paths; an allocation
  // slow path ends the run.
  void NoteLargeFree(size_t bytes);
  void NoteLargeAllocation() { returned_since_refill_ = 0; }
  bool in_free_run() const { return returned_since_refill_ > max_bytes_; }
  static constexpr size_t kFreeRunShare = 8;
  static constexpr size_t kLargeFreesPerRun = 8;
  size_t CachedBytes() const;
  size_t capacity_bytes() const { return capacity_bytes_; }
  uint64_t cached_objects(int cls) const { return ListCount(cls); }
  // The stack's limit now (GrowStack, ShrinkStack): past the delay line,
  // the fast push takes objects while the stack holds fewer.
  uint32_t stack_limit(int cls) const { return stack_max_[cls]; }
  // The block grown stacks move to (tests read its residency).
  const void* grow_store() const { return grow_store_; }
  size_t grow_store_bytes() const { return grow_store_bytes_; }
  bool is_sentinel() const { return partition_ == nullptr; }
  // This cache's name in the middle layer (never 0, unique per Init):
  // its batches and the slabs it carves are handed back to it first
  // (CentralFreeList::RemoveRange).
  uint32_t id() const { return id_; }
  // This cache's thread is exiting: its batches and the slabs it carves
  // become nobody's (CentralFreeList::ForgetCache), in every class it
  // ever refilled.
  void GiveUpSlabs();
  // The span word (Span::FastFreeWordOf) of this cache's partition's
  // thread-cached slabs of class 1: a word minus it is below
  // kFastFreeSpan exactly for an unsampled slab of that partition, and is
  // then its class's magazine offset past class 1's (MagazineAfterFirst).
  // The sentinel's base matches no word.
  static constexpr uint64_t kNoFreeWordBase = uint64_t{1} << 63;
  NITRO_ALWAYS_INLINE uint64_t free_word_base() const { return free_word_base_; }

 private:
  // Returns n objects to the middle layer: the stack's top first (the
  // objects that left the quarantine last), then the delay line's oldest.
  void ReleaseBatch(int cls, uint32_t n);
  // The stack's limit adapts as tcmalloc's free-list length does: a
  // refill of a stack emptied by an allocation burst (Refill) raises it by
  // a batch, up to the class's cache_max, so a thread that allocates and
  // frees hundreds of objects of a class in turns keeps them (not a round
  // trip through the middle layer's lock per batch); every
  // kOverflowsToShrink-th overflow lowers it by a batch, down to
  // StackStart, so a thread that mostly frees a class (a consumer) holds
  // two batches of it, not cache_max. Flush and a free run reset it.
  void GrowStack(int cls);
  void ShrinkStack(int cls);
  void SetStackLimit(int cls, uint32_t limit);
  // The class's room in grow_store_ (taken first if need be); nullptr when
  // there is no memory for it.
  Entry* GrownStackOf(int cls);
  // Every stack in grow_store_ is empty (a flush): each moves back to its
  // room in store_, and grow_store_'s whole pages go back to the kernel.
  void ReturnGrowStore();
  static constexpr uint8_t kOverflowsToShrink = 3;
  static uint32_t StackStart(int cls) {
    const SizeClassInfo& info = kSizeClasses.info(cls);
    return info.cache_max < 2 * info.batch ? info.cache_max : 2 * info.batch;
  }
  void PushOnStack(int cls, Entry e);
  // The stack's count (entries above the null one); strict keeps it in
  // strict_count (see Magazine).
  uint32_t StackCount(int cls) const {
    return strict_ ? mags_[cls].strict_count : static_cast<uint32_t>(mags_[cls].top - stack_[cls]);
  }
  NITRO_ALWAYS_INLINE void SetStackCount(int cls, uint32_t n) {
    if (strict_) {
      __atomic_store_n(&mags_[cls].strict_count, n, __ATOMIC_RELAXED);
    } else {
      __atomic_store_n(&mags_[cls].top, stack_[cls] + n, __ATOMIC_RELAXED);
    }
  }
  // Sets the delay line's count and, with it, whether the fast push may run.
  void SetHeld(int cls, uint32_t held);
  uint32_t Count(int cls) const { return StackCount(cls) + mags_[cls].held; }
  Entry& StackAt(int cls, uint32_t index) { return stack_[cls][index]; }
  // A random offset from the stack's top in [0, min(count, pick)): the
  // high 32 bits of a per-thread xorshift scaled by a multiply and a shift
  // (no division on every strict allocation).
  NITRO_ALWAYS_INLINE uint32_t RandomSkip(uint32_t count, uint32_t pick) {
    uint64_t r = XorShift64(&pick_rng_) * 0x9E3779B97F4A7C15ull;
    uint32_t window = pick < count ? pick : count;
    return static_cast<uint32_t>(((r >> 32) * window) >> 32);
  }
  // Takes the entry `skip` places below the top of a stack of `count`
  // (count >= 1): the top entry moves into its place, so the pick costs
  // one move whatever the window. The caller vets the object, then hands
  // it out with Claim.
  NITRO_ALWAYS_INLINE Entry TakeAt(int cls, uint32_t count, uint32_t skip) {
    Entry* stack = stack_[cls];
    Entry e = stack[count - skip];
    stack[count - skip] = stack[count];
    SetStackCount(cls, count - 1);
    return e;
  }
  // The delay line's entry `age` places after its oldest.
  Entry& DelayAt(int cls, uint32_t age) {
    const Magazine& m = mags_[cls];
    size_t i = static_cast<size_t>(m.delay_oldest - m.delay) + age;
    size_t depth = static_cast<size_t>(m.delay_end - m.delay);
    return m.delay[i >= depth ? i - depth : i];
  }

  // The null entry below every empty stack (the sentinel's included).
  static inline Entry empty_stack_{nullptr, nullptr};
  Magazine mags_[kNumClasses];
  Entry* store_ = nullptr;  // every magazine's entries, one block
  size_t store_bytes_ = 0;
  int64_t sample_countdown_ = 0;
  // The partition's Span::FastFreeWordOf base (Partition::fast_free_base),
  // between the countdowns where free_word_base() finds it on the line
  // malloc touches; the sentinel's never matches a word.
  uint64_t free_word_base_ = kNoFreeWordBase;
  int64_t record_countdown_ = 0;
  Partition* partition_ = nullptr;
  size_t max_bytes_ = 0;
  uint64_t pick_rng_ = 1;
  uint32_t id_ = 0;
  uint64_t other_allocated_ = 0;
  uint64_t other_freed_ = 0;
  uint64_t returned_since_refill_ = 0;  // bytes; see in_free_run
  // Bursts whose growth GrowStack skips without asking the byte bound
  // again: set when the bound refused one, cleared when the cache shrinks
  // (a flush, a halving).
  uint32_t growths_to_skip_ = 0;
  static constexpr uint32_t kGrowthsSkippedAfterRefusal = 16;
  // A bit per class whose magazine may hold objects; clear ones are known
  // empty (after Flush, until a slow path fills them: SetHeld, PushOnStack).
  // The fast pushes (Push, PushStrict) need a full delay line, which only
  // those slow paths make, so no fast path has to set a bit.
  // Written by the owner only, atomically: CachedBytes reads it from
  // other threads (the heap report).
  static constexpr size_t kMayHoldWords = (kNumClasses + 63) / 64;
  uint64_t may_hold_[kMayHoldWords] = {};
  void NoteMayHold(int cls) {
    uint64_t& word = may_hold_[cls / 64];
    uint64_t bit = uint64_t{1} << (cls % 64);
    if ((word & bit) == 0) {
      capacity_bytes_ += (static_cast<size_t>(stack_max_[cls]) + depth_[cls]) * kSizeClasses.size(cls);
    }
    __atomic_store_n(&word, word | bit, __ATOMIC_RELAXED);
  }
  // At least CachedBytes, kept by the slow paths alone: over the classes in
  // may_hold_, the stack's limit plus the delay line, times the class's
  // size. While it is within a bound, CachedBytes (a walk over every class,
  // 22% of `workloads working_set`'s instructions when every refill took
  // it) is within it too and need not be summed. Flush sets it back to 0.
  size_t capacity_bytes_ = 0;
  // The classes this cache refilled from the middle layer (GiveUpSlabs).
  uint64_t refilled_[kMayHoldWords] = {};
  // The classes whose stack limit is above StackStart (Flush resets them).
  uint64_t grown_[kMayHoldWords] = {};
  // The classes whose stack lives in grow_store_ (GrowStack moved it;
  // Flush moves it back).
  uint64_t in_grow_store_[kMayHoldWords] = {};
  // f(cls) for each class whose bit is set in `bits` (may_hold_, refilled_).
  // ListCount of a cache that is not the sentinel. The owner moves a
  // growing stack once (GrowStack: stack_ first, then top); a reader on
  // another thread that sees one move and not the other gets the distance
  // between the old room and the new one, which is almost always beyond
  // any stack's room (kMostCachedObjects entries): it counts the stack as
  // empty this once (statistics read a transient value either way).
  NITRO_ALWAYS_INLINE uint32_t HeldCount(int cls) const {
    const Magazine& m = mags_[cls];
    uintptr_t stacked = (__atomic_load_n(reinterpret_cast<const uintptr_t*>(&m.top), __ATOMIC_RELAXED) -
                         __atomic_load_n(reinterpret_cast<const uintptr_t*>(&stack_[cls]), __ATOMIC_RELAXED)) /
                        sizeof(Entry);
    if (stacked > kMostCachedObjects) stacked = 0;
    return static_cast<uint32_t>(stacked) + __atomic_load_n(&m.strict_count, __ATOMIC_RELAXED) +
           __atomic_load_n(&m.held, __ATOMIC_RELAXED);
  }
  template <typename F>
  static void ForEachClassIn(const uint64_t (&bits)[kMayHoldWords], F f) {
    for (size_t w = 0; w < kMayHoldWords; w++) {
      for (uint64_t b = __atomic_load_n(&bits[w], __ATOMIC_RELAXED); b != 0; b &= b - 1) {
        f(static_cast<int>(w * 64) + __builtin_ctzll(b));
      }
    }
  }
  bool strict_ = false;
  Entry* stack_[kNumClasses] = {};        // each stack's null entry (entries above it)
  uint32_t stack_max_[kNumClasses] = {};  // the stack's limit in entries (GrowStack, ShrinkStack)
  uint8_t overflows_[kNumClasses] = {};   // overflows since the limit last changed
  // The class's counters (Magazine::allocs, frees) at its last refill.
  uint64_t refill_allocs_[kNumClasses] = {};
  uint64_t refill_frees_[kNumClasses] = {};
  // Room for every class's stack grown up to its cache_max, a block of the
  // magazine store taken at the first GrowStack: a stack moves there when
  // it grows, and back to store_ when a flush empties it, when the block's
  // pages go back to the kernel (ReturnGrowStore). Apart from store_, so
  // that a thread whose stacks never grow keeps its entries packed on a few
  // pages, and one whose bursts are over does not keep the grown entries'
  // pages (a free of 1 GiB of small objects left ~180 KiB of them resident).
  Entry* grow_store_ = nullptr;
  size_t grow_store_bytes_ = 0;
  uint32_t depth_[kNumClasses] = {};      // the delay line's length

 public:
  // Registry links (all live caches, for fork and statistics). After the
  // magazines, which start the object: the fast paths then address a
  // magazine as cache + (cls << 6) in one form.
  ThreadCache* next = nullptr;
  ThreadCache* prev = nullptr;
  unsigned long owner_thread = 0;
};
static_assert(sizeof(ThreadCache::Magazine) == kMagazineBytes, "SizeClassMap::MagazineOffsetFor scales by it");

// The magazine store's lock (entries of exited threads wait there for the
// next thread); the fork handler takes it.
SpinLock& MagazineStoreLock();

}  // namespace nitro

#endif  // NITROHEAP_CORE_THREAD_CACHE_H_
