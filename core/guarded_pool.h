// GuardedPool: sampled allocations on pages of their own between guard
// pages (GWP-ASan inside the allocator). An allocation is placed against its
// right or left guard at random, so an overflow or an underflow faults at
// once; when freed, its pages become inaccessible and the slot is reused
// last, so a later access faults too. The fault handler reports the kind,
// address, size, offset and the allocation and free stacks, then lets the
// process die with the original signal. A sample costs one system call at
// each end (mprotect to open its pages, one mmap to close the slot and drop
// its memory): each is a TLB shootdown in a threaded process, which is why
// the default rate is low (docs/security.md, "Guarded sampling").
//
// ZeroSizeRegion: in strict mode malloc(0) returns a unique address in a
// region with no accessible bytes.
#ifndef NITROHEAP_CORE_GUARDED_POOL_H_
#define NITROHEAP_CORE_GUARDED_POOL_H_

#include <stddef.h>
#include <stdint.h>

#include "core/lock.h"
#include "core/report.h"
#include "core/span.h"

namespace nitro {

class GuardedPool {
 public:
  static constexpr size_t kSlots = 256;
  static constexpr size_t kDataPages = 4;          // largest guarded allocation: 16 KiB
  static constexpr size_t kStride = (kDataPages + 1) * kPageSize;

  // Reserves the pool; false if the kernel refuses.
  bool Init(Partition* owner);
  bool initialized() const { return base_ != 0; }
  // nullptr when the request does not fit a slot or every slot is in use.
  // The block belongs to `partition` (nullptr: the pool's owner) until
  // freed: its span says so, for ownership checks and reports.
  void* Allocate(size_t size, size_t align, Partition* partition = nullptr);
  // `s` is the slot's span; reports double and invalid frees.
  // Returns the freed block's size (what the caller asked for).
  size_t Free(Span* s, void* p);
  // Records a smaller size for a live allocation (realloc's slack).
  void Resize(Span* s, size_t size);
  // The usable size of a live allocation; reports a pointer that is not one.
  size_t UsableSize(Span* s, const void* p, const char* what = "malloc_usable_size");
  // strict: the bytes between the end of an allocation and the end of its
  // last page hold this canary, checked at free (0: none).
  void set_canary(uint8_t canary) { canary_ = canary; }
  SpinLock& lock() { return lock_; }
  // Prints a report and returns true if `addr` is in the pool.
  bool ReportFault(uintptr_t addr);
  struct Counts {
    size_t live, total, live_bytes;
  };
  // A copy read without the pool's lock (each field whole, the three not
  // from one instant). The statistics read it on every telemetry tick: when
  // Allocate and Free held the lock over their system calls, with every
  // allocation sampled, the tick's waits for the lock made a futex storm
  // (about 100 futex calls in a 7,000-pair run under strace).
  Counts counts();

 private:
  enum class SlotState : uint8_t { kUnused, kLive, kFreed };
  struct Slot {
    SlotState state;
    bool retired;  // freed, but the kernel refused to remap it: never reused
    // A thread opens (Allocate) or closes (Free) the slot's pages outside
    // the lock: no Allocate takes it meanwhile. In a fork child, a slot
    // that another thread was opening or closing stays busy, never reused
    // (whether its pages are open is not known there).
    bool busy;
    uintptr_t ptr;
    size_t size;
    int alloc_frames, free_frames;
    unsigned long alloc_thread, free_thread;
    uintptr_t alloc_stack[kMaxFrames];
    uintptr_t free_stack[kMaxFrames];
  };
  uintptr_t SlotData(size_t i) const { return base_ + kPageSize + i * kStride; }
  // The slot of span `s`, checked: reports a pointer that does not start a
  // live allocation (lock held).
  Slot& LiveSlot(Span* s, const void* p, const char* what);
  uintptr_t SlackEnd(const Slot& slot) const {
    return RoundUp(slot.ptr + (slot.size == 0 ? 1 : slot.size), kPageSize);
  }

  SpinLock lock_{LockRank::kGuardedPool};
  uintptr_t base_ = 0;
  size_t bytes_ = 0;
  Slot* slots_ = nullptr;  // ~570 B each (two stacks): touched only when used
  // Slot i's span, apart from the slots: Init writes every span pointer, and
  // kept inside the slots that would make all of them (~145 KiB) resident.
  Span** spans_ = nullptr;  // a slot's span, made at its first use
  Span* SpanFor(size_t slot);
  size_t next_ = 0;  // slots are reused round-robin: the oldest free one
  // Written under lock_, read by counts() without it.
  size_t live_ = 0;
  size_t total_ = 0;
  size_t live_bytes_ = 0;
  static void AddCount(size_t& x, size_t d) {
    __atomic_store_n(&x, __atomic_load_n(&x, __ATOMIC_RELAXED) + d, __ATOMIC_RELEASE);
  }
  uint64_t rng_ = 0x2545F4914F6CDD1Dull;
  Partition* owner_ = nullptr;
  uint8_t canary_ = 0;
};

class ZeroSizeRegion {
 public:
  static constexpr size_t kBytes = size_t{64} << 20;  // 4M unique pointers
  bool Init(Partition* owner);
  // A fresh address with no accessible byte, or nullptr when exhausted.
  void* Allocate();
  void Free(void* p);
  // 0 for a live zero-size allocation; reports any other pointer.
  size_t UsableSize(const void* p, const char* what = "malloc_usable_size");
  SpinLock& lock() { return lock_; }
  bool Contains(uintptr_t a) const { return a >= base_ && a < base_ + kBytes; }

 private:
  SpinLock lock_{LockRank::kZeroRegion};
  uintptr_t base_ = 0;
  uint64_t* live_bits_ = nullptr;
  size_t next_ = 0;
  Partition* owner_ = nullptr;
};

// Installs the SIGSEGV/SIGBUS handler (once), chained to the previous one.
void InstallFaultHandler();
// The pools the handler consults.
void RegisterFaultPools(GuardedPool* pool, ZeroSizeRegion* zero);

}  // namespace nitro

#endif  // NITROHEAP_CORE_GUARDED_POOL_H_
