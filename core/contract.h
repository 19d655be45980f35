// Heap contracts: limits on the memory a partition, and the whole process,
// may hold (docs/architecture.md, "Heap contracts").
//
// What "use" counts: bytes of pages a partition's page heap has handed out
// for slabs and large blocks (PageHeap's in-use pages, guard pages of large
// blocks included). It grows when a slab or large block is carved, not when
// an object is taken from a slab or a thread cache, so it is checked on the
// slow path only (never on the malloc fast path) and it includes the free
// objects still inside slabs and caches. Free page runs (committed or
// released) and the guarded sampling pool do not count.
//
// A Budget is the lock-free state machine both levels share: a hard limit
// refuses a charge that would pass it; a soft limit counts a crossing when
// use reaches it while armed, and re-arms once use falls below 7/8 of it
// (the hysteresis). Use and the armed bit live in one word (charges are
// whole pages, so bit 0 is free), so a crossing is decided by the same
// compare-and-swap that moves use: exactly one charge makes each crossing.
//
// The page heap charges with its lock held, so the pressure signal (the
// program's callback and the configured actions) is not run there: the
// crossing is queued on the crossing thread and delivered when that thread
// leaves the allocator (a ContractScope ends), outside every lock.
#ifndef NITROHEAP_CORE_CONTRACT_H_
#define NITROHEAP_CORE_CONTRACT_H_

#include <atomic>
#include <stddef.h>
#include <stdint.h>

#include "core/base.h"
#include "core/options.h"

struct nitro_partition;

namespace nitro {

// What a charge did.
enum class ChargeResult { kOk, kCrossed, kRefused };

class Budget {
 public:
  ChargeResult Charge(size_t bytes);
  // A charge the hard limit cannot refuse (pages already taken).
  void ChargeAnyway(size_t bytes);
  void Uncharge(size_t bytes);
  // 0 means none. The caller checks soft <= hard.
  void SetLimits(size_t hard, size_t soft);
  // No use, no limits, armed (a partition made anew).
  void Reset() {
    word_.store(kArmedBit, std::memory_order_relaxed);
    SetLimits(0, 0);
  }
  size_t used() const { return word_.load(std::memory_order_relaxed) & ~kArmedBit; }
  size_t hard() const { return hard_.load(std::memory_order_relaxed); }
  size_t soft() const { return soft_.load(std::memory_order_relaxed); }
  // Use must fall below this before the next crossing counts.
  static size_t RearmPoint(size_t soft) { return soft - soft / 8; }

 private:
  // Set while armed: the next time use reaches the soft limit is a crossing.
  static constexpr size_t kArmedBit = 1;
  std::atomic<size_t> word_{kArmedBit};
  std::atomic<size_t> hard_{0};
  std::atomic<size_t> soft_{0};
};

// The public nitro_pressure_fn (nitroheap.h): the partition is passed as
// the program knows it, nitro_partition_t*.
using PressureCallback = void (*)(::nitro_partition* partition, size_t used, size_t soft_limit, void* ctx);
// Runs the configured actions for `owner` (a Partition), outside every lock.
using PressureActions = void (*)(void* owner, uint32_t actions);

struct ContractState {
  size_t hard_limit, soft_limit, use;
  uint64_t crossings;         // soft-limit crossings
  uint64_t callbacks;         // callback calls made for them
  uint64_t refusals;          // allocations the hard limit refused
  uint64_t last_pressure_ns;  // CLOCK_REALTIME of the last crossing, 0: never
  uint32_t actions;
};

// One partition's contract. Lives in its page heap, which charges it.
class Contract {
 public:
  // Before the partition is listed: applies the contract configured for
  // `name` in NITROHEAP_OPTIONS, if any.
  void Init(void* owner, const char* name, PressureActions run_actions);
  // The page heap's hooks (its lock held). False: refused (errno is left
  // to the caller), by this partition's hard limit or the process's.
  bool Charge(size_t bytes);
  void ChargeAnyway(size_t bytes);
  void Uncharge(size_t bytes);
  // 0 or EINVAL (soft > hard with both set); limits unchanged on EINVAL.
  int SetLimits(size_t hard, size_t soft);
  void SetCallback(PressureCallback cb, void* ctx);
  void SetActions(uint32_t actions) { actions_.store(actions, std::memory_order_relaxed); }
  ContractState State() const;
  size_t use() const { return budget_.used(); }
  // Runs the crossings queued for this contract: actions, then callback.
  void Deliver();

 private:
  void ReadCallback(PressureCallback* cb, void** ctx) const;

  void* owner_ = nullptr;
  PressureActions run_actions_ = nullptr;
  Budget budget_;
  std::atomic<uint32_t> actions_{kActionRelease};
  std::atomic<uint32_t> undelivered_{0};
  std::atomic<uint64_t> crossings_{0};
  std::atomic<uint64_t> callbacks_{0};
  std::atomic<uint64_t> refusals_{0};
  std::atomic<uint64_t> last_pressure_ns_{0};
  // The callback and its context change together: a sequence count (odd
  // while a writer is between the two stores) lets readers take a pair
  // that belongs together without a lock.
  mutable std::atomic<uint64_t> callback_seq_{0};
  std::atomic<PressureCallback> callback_{nullptr};
  std::atomic<void*> callback_ctx_{nullptr};
};

// ---- the process-wide limit (nitro_set_memory_limit) ----

enum class LimitSource { kNone, kCgroup, kOption, kApi };
const char* LimitSourceName(LimitSource s);

struct ProcessLimitState {
  size_t limit;           // hard: allocations past it fail; 0 none
  size_t pressure_point;  // free memory goes back to the kernel when use reaches it
  size_t use;             // every partition's use together
  uint64_t crossings, refusals, last_pressure_ns;
  LimitSource source;
};

// Sets the process limit: allocations that would take the use of all
// partitions past `bytes` fail; at 7/8 of it (or at `pressure_bytes`, when
// non-zero and lower) every partition returns its free pages, once per
// crossing. 0: no limit.
void SetProcessLimit(size_t bytes, size_t pressure_bytes, LimitSource source);
ProcessLimitState GetProcessLimit();

// cgroup v2: the smallest memory.max and memory.high on the path from this
// process's cgroup up to the root (0 where none is set). `proc_self_cgroup`
// is normally "/proc/self/cgroup" and `cgroup_root` "/sys/fs/cgroup"; tests
// pass a fake tree. Reads files with plain system calls: no allocation.
struct CgroupLimits {
  size_t max;
  size_t high;
  bool found;  // the process is in a cgroup v2 hierarchy we could read
};
CgroupLimits ReadCgroupLimits(const char* proc_self_cgroup, const char* cgroup_root);

// At start-up (before the default partition exists): the process limit
// from options.memory_limit (kMemoryLimitFromCgroup: from the cgroup) and
// the contracts configured per partition name.
void ApplyContractOptions(const Options& options);

// Delivery. A ContractScope around an allocator entry point runs, when it
// ends, the pressure signals of crossings this thread caused inside it.
void DeliverPendingPressure();
bool PressurePending();
// True once after an allocation was refused by a hard limit on this thread.
bool TakeLimitRefusal();

class ContractScope {
 public:
  ContractScope() = default;
  ContractScope(const ContractScope&) = delete;
  ContractScope& operator=(const ContractScope&) = delete;
  ~ContractScope() {
    if (NITRO_UNLIKELY(PressurePending())) DeliverPendingPressure();
  }
};

// Implemented by the partition layer: every partition returns its free
// memory (the process limit's pressure action).
void ReleaseAllPartitionsForPressure();

// The "compact" pressure action (and the process limit's): asks for a
// compaction of the movable heap, which the background thread runs on its
// next tick within compact_budget and compact_budget_us (the crossing
// thread may hold pointers from nitro_hptr, so it cannot wait for a grace
// period itself). TakePressureCompaction: true once per request.
void RequestPressureCompaction();
bool TakePressureCompaction();

}  // namespace nitro

#endif  // NITROHEAP_CORE_CONTRACT_H_
