// Sampling: which allocations go to the guarded pool (one in sample_rate, at
// random) and which the flight recorder samples (one per profile_rate bytes).
// Every allocation path reaches the decision through Sampled(), once.
#include <stdint.h>

#include "core/fast_math.h"
#include "core/heap_internal.h"
#include "core/movable.h"

namespace nitro {
namespace {

std::atomic<uint64_t> g_recorded{0};
__thread uint64_t tls_rng __attribute__((tls_model("initial-exec"))) = 0;

uint64_t ThreadRandom() {
  if (tls_rng == 0) tls_rng = (reinterpret_cast<uintptr_t>(&tls_rng) ^ 0x9E3779B97F4A7C15ull) | 1;
  return XorShift64(&tls_rng);
}

// A flight-recorder sample: count it in its span, so that the span's frees
// take the slow path (where they are timed), then hand it to telemetry.
void Record(void* p, size_t size, size_t align) {
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks == nullptr || hooks->on_sample == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) return;
  size_t usable = s->requested;
  uint32_t idx = 0;  // bit 0 stands for a large block or a guarded slot
  if (s->state == SpanState::kSlab) {
    idx = s->ObjectIndex(reinterpret_cast<uintptr_t>(p));
    usable = kSizeClasses.size(s->size_class);
  } else if (s->state == SpanState::kLarge) {
    usable = s->usable_bytes();
  } else if (s->state != SpanState::kGuarded) {
    return;
  }
  uint64_t bit = uint64_t{1} << (idx % 64);
  uint64_t old = __atomic_fetch_or(&s->recorded_bits[idx / 64], bit, __ATOMIC_ACQ_REL);
  if ((old & bit) == 0) __atomic_fetch_add(&s->fast_free, kRecordedUnit, __ATOMIC_ACQ_REL);
  g_recorded.fetch_add(1, std::memory_order_relaxed);
  hooks->on_sample(p, size, usable, align, s->partition);
}

}  // namespace

// Bytes until the next flight-recorder sample: exponential with mean
// `rate`, so that samples form a Poisson process over allocated bytes and an
// allocation of s bytes is sampled with probability 1 - e^(-s/rate), the
// weight every reader (pprof, nitroheap.Recording, the recorder's own
// estimate) divides by. (Until 2026-12-02 it was uniform in [0, 2 rate):
// 1 MiB blocks at the default 512 KiB were all sampled, and the estimate of
// their bytes came out 16% high.)
int64_t NextRecord() {
  uint64_t rate = g_options.profile_rate;
  if (rate == 0) return INT64_MAX;
  // At most 37 rates (u >= 2^-53); profile_rate is at most 2^40.
  return static_cast<int64_t>(NegLogUniform(ThreadRandom()) * static_cast<double>(rate));
}

// sample_rate can change at run time (nitro_ctl "opt.sample_rate"): read
// it with one atomic load. With sampling off, a thread still looks again
// after this many allocations, so that turning it on reaches every thread.
constexpr int64_t kSampleRecheck = int64_t{1} << 20;

uint64_t SampleRate() { return __atomic_load_n(&g_options.sample_rate, __ATOMIC_RELAXED); }

// Allocations until the next guarded one: uniform in [0, 2*rate), so one in
// `rate` on average and never periodic.
int64_t NextSample(uint64_t rate) {
  if (rate == 0) return kSampleRecheck;
  if (rate == 1) return 0;
  return static_cast<int64_t>(ThreadRandom() % (2 * rate));
}

int64_t NextSample() { return NextSample(SampleRate()); }

// A partition's guarded sample rate (PartitionPolicy::guarded_sample_divisor);
// 0: none, or no pool to take samples from.
uint64_t SampleRateOf(const Partition* partition) {
  uint64_t rate = SampleRate();
  uint32_t divisor = partition->policy().guarded_sample_divisor;
  if (rate == 0 || divisor == 0 || !g_pool.initialized()) return 0;
  return rate / divisor > 0 ? rate / divisor : 1;
}

int64_t NextSample(Partition* partition) { return NextSample(SampleRateOf(partition)); }

// A TELEMETRY_SILENT partition's countdown never runs out.
int64_t NextRecord(Partition* partition) {
  return partition->policy().record ? NextRecord() : INT64_MAX;
}

void* Sampled(Partition* partition, ThreadCache* tc, void* p, size_t size, size_t align, int cls) {
  bool record = tc->RecordDue() && partition->policy().record;
  if (tc->RecordDue()) tc->ResetRecordCountdown(NextRecord(partition));
  // Only small objects are guarded (a large block has guard pages of its
  // own); malloc(0) keeps its address with no accessible byte (strict's
  // zero-size region, or kZeroSizeClass's PROT_NONE slab).
  bool guard = false;
  if (cls != 0 && tc->GuardDue()) {
    uint64_t rate = SampleRateOf(partition);
    tc->ResetSampleCountdown(NextSample(rate));
    guard = rate != 0;  // with sampling off, only the recheck was due
  }
  if (guard) {
    bool zero_size = size == 0 && align <= kMinAlign;
    if (void* q = g_pool.initialized() && !zero_size ? g_pool.Allocate(size, align, partition) : nullptr) {
      // p goes back unused; the guarded pool counts this allocation (the
      // thread's byte counters only the default partition's).
      tc->PushChecked(cls, p);
      tc->UnaccountAlloc(cls);
      if (partition == g_default) tc->CountOtherAllocated(size);
      p = q;
    }
  }
  if (record) Record(p, size, align);
  return p;
}

void RecordedFree(Span* s, void* p) {
  uint32_t idx = s->state == SpanState::kSlab ? s->ObjectIndex(reinterpret_cast<uintptr_t>(p)) : 0;
  uint64_t bit = uint64_t{1} << (idx % 64);
  if ((__atomic_load_n(&s->recorded_bits[idx / 64], __ATOMIC_RELAXED) & bit) == 0) return;
  // One atomic step decides who saw the sample: its count leaves the span
  // exactly once, so a concurrent new sample keeps the span on the slow path.
  uint64_t old = __atomic_fetch_and(&s->recorded_bits[idx / 64], ~bit, __ATOMIC_ACQ_REL);
  if ((old & bit) == 0) return;
  __atomic_fetch_sub(&s->fast_free, kRecordedUnit, __ATOMIC_ACQ_REL);
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks != nullptr && hooks->on_free != nullptr) hooks->on_free(p);
}

// ---- the movable heap's samples (core/movable.h RecorderHooks) ----
namespace {

Partition* g_movable_partition = nullptr;
__thread int64_t tls_movable_countdown __attribute__((tls_model("initial-exec"))) = 0;
__thread bool tls_movable_counting __attribute__((tls_model("initial-exec"))) = false;

// The thread's own byte countdown for nitro_halloc (malloc's lives in its
// thread cache, which a thread that only uses handles may not have).
bool MovableDue(size_t size) {
  if (!tls_movable_counting) {
    tls_movable_countdown = NextRecord(g_movable_partition);
    tls_movable_counting = true;
  }
  if ((tls_movable_countdown -= static_cast<int64_t>(size)) >= 0) return false;
  tls_movable_countdown = NextRecord(g_movable_partition);
  return true;
}

const TelemetryHooks* Hooks() { return g_hooks.load(std::memory_order_acquire); }

void MovableSampled(void* p, size_t size, size_t usable) {
  const TelemetryHooks* hooks = Hooks();
  if (hooks == nullptr || hooks->on_sample == nullptr) return;
  g_recorded.fetch_add(1, std::memory_order_relaxed);
  hooks->on_sample(p, size, usable, 16, g_movable_partition);
}

void MovableMoved(void* from, void* to, size_t size) {
  const TelemetryHooks* hooks = Hooks();
  if (hooks != nullptr && hooks->on_move != nullptr) hooks->on_move(from, to, size);
}

void MovableFreed(void* p) {
  const TelemetryHooks* hooks = Hooks();
  if (hooks != nullptr && hooks->on_free != nullptr) hooks->on_free(p);
}

const movable::RecorderHooks kMovableRecorder = {MovableDue, MovableSampled, MovableMoved, MovableFreed};

}  // namespace

void InstallMovableRecorder(Partition* movable) {
  g_movable_partition = movable;
  movable::SetRecorderHooks(&kMovableRecorder);
}

size_t GuardedSamples() { return g_pool.counts().total + g_recorded.load(std::memory_order_relaxed); }

}  // namespace nitro
