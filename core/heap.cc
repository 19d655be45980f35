#include "core/heap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "core/guarded_pool.h"
#include "core/libc_heap.h"
#include "core/meta_pool.h"
#include "core/report.h"

#ifndef NITROHEAP_DEFAULT_LEGACY
#define NITROHEAP_DEFAULT_LEGACY 0
#endif

namespace nitro {
namespace {

enum State : int { kUninit = 0, kReadyNitro = 1, kReadyLegacy = 2 };

// Constant-initialized: an all-empty cache with no room, shared by every
// thread until it gets its own.
ThreadCache g_sentinel;
std::atomic<int> g_state{kUninit};
SpinLock g_init_lock;
Options g_options;
Partition* g_default = nullptr;
std::atomic<bool> g_post_init_done{false};
pthread_key_t g_thread_key;
bool g_thread_key_ok = false;
std::atomic<bool> g_reclaimer_started{false};
bool g_strict = false;
std::atomic<const TelemetryHooks*> g_hooks{nullptr};
ThreadCache::Counters g_exited_counters;  // under g_registry_lock
uint64_t g_start_ns = 0;
std::atomic<uint64_t> g_recorded{0};
GuardedPool g_pool;
ZeroSizeRegion g_zero;
uint8_t g_canary = 0xA5;

MetaPool<ThreadCache> g_cache_pool;
SpinLock g_registry_lock;
ThreadCache* g_registry = nullptr;
size_t g_threads = 0;

__thread bool tls_dead __attribute__((tls_model("initial-exec"))) = false;
__thread uint64_t tls_rng __attribute__((tls_model("initial-exec"))) = 0;

uint64_t ThreadRandom() {
  if (tls_rng == 0) tls_rng = (reinterpret_cast<uintptr_t>(&tls_rng) ^ 0x9E3779B97F4A7C15ull) | 1;
  return XorShift64(&tls_rng);
}

// Bytes until the next flight-recorder sample: uniform in [0, 2*rate).
int64_t NextRecord() {
  uint64_t rate = g_options.profile_rate;
  if (rate == 0) return INT64_MAX;
  return static_cast<int64_t>(ThreadRandom() % (2 * rate));
}

// Allocations until the next guarded one: uniform in [0, 2*rate), so one in
// `rate` on average and never periodic.
int64_t NextSample() {
  uint64_t rate = g_options.sample_rate;
  if (rate == 0) return INT64_MAX;
  if (rate == 1) return 0;
  return static_cast<int64_t>(ThreadRandom() % (2 * rate));
}

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void OptionError(const char* message, void*) { LogLine("%s", message); }

// ---- start-up -------------------------------------------------------------

void ThreadExit(void* arg);

void StartLocked() {
  bool legacy = NITROHEAP_DEFAULT_LEGACY;
  const char* h = getenv("NITROHEAP");
  if (h != nullptr && *h != '\0') {
    if (strcmp(h, "legacy") == 0) {
      legacy = true;
    } else if (strcmp(h, "nitro") == 0) {
      legacy = false;
    } else {
      LogLine("NITROHEAP=%.64s is neither 'nitro' nor 'legacy'; using the default, %s", h,
              legacy ? "legacy" : "nitro");
    }
  }
  bool help = false;
  ParseOptions(getenv("NITROHEAP_OPTIONS"), &g_options, &help, OptionError, nullptr);
  if (help) PrintOptionHelp(2, Options{});
  if (!g_options.background_thread && g_options.flight_recorder_signal) {
    LogLine("NITROHEAP_OPTIONS: flight_recorder_signal needs background_thread=1 (the thread writes "
            "the recording); with background_thread=0 the signal dumps nothing");
  }
  if (!legacy) {
    PartitionConfig config;
    config.max_free_committed = g_options.decay_ms == 0 ? 0 : g_options.max_free_committed;
    // Even fast mode keeps a few freed large runs back, so a double free of a
    // large block is caught also after the next large allocation.
    config.large_quarantine_bytes = QuarantineBytes(g_options) * 64;
    if (config.large_quarantine_bytes < (size_t{8} << 20)) config.large_quarantine_bytes = size_t{8} << 20;
    config.large_quarantine_spans = g_options.mode == HardeningMode::kStrict ? 64
                                    : g_options.mode == HardeningMode::kFast ? 2 : 8;
    g_strict = g_options.mode == HardeningMode::kStrict;
    g_default = Partition::Create("default", config, NowMs);
    if (g_default == nullptr) {
      LogLine("cannot reserve address space for the default partition; using the C library's "
              "allocator");
      legacy = true;
    } else {
      g_default->set_thread_cached(true);
      g_default->set_strict(g_strict);
      g_canary = static_cast<uint8_t>(g_default->key() >> 24) | 1;
      if (g_options.sample_rate != 0 && !g_pool.Init(g_default)) {
        LogLine("cannot reserve the guarded sampling pool; sampling is off");
      }
      if (g_strict && !g_zero.Init(g_default)) {
        LogLine("cannot reserve the zero-size region; malloc(0) returns a 16-byte block");
      }
    }
  }
  // Before the heap is published: every thread that sees it running must
  // see the key its cache registers with. (pthread_key_create never allocates.)
  if (!legacy) g_thread_key_ok = pthread_key_create(&g_thread_key, ThreadExit) == 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g_start_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  g_state.store(legacy ? kReadyLegacy : kReadyNitro, std::memory_order_release);
}

void ThreadExit(void* arg);
void ForkPrepare();
void ForkParent();
void ForkChild();
void AtExit();

// Steps that may allocate themselves, run once the heap already works.
void PostStart() {
  bool expected = false;
  if (!g_post_init_done.compare_exchange_strong(expected, true)) return;
  if (g_state.load(std::memory_order_acquire) != kReadyNitro) return;
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
  RegisterFaultPools(g_pool.initialized() ? &g_pool : nullptr, g_strict ? &g_zero : nullptr);
  InstallFaultHandler();
  atexit(AtExit);
}

// ---- thread caches --------------------------------------------------------

ThreadCache* CreateThreadCache() {
  if (tls_dead || g_state.load(std::memory_order_relaxed) != kReadyNitro) return nullptr;
  ThreadCache* tc = g_cache_pool.New();
  if (tc == nullptr) return nullptr;
  tc->Init(g_default, g_options.tcache_max_bytes, QuarantineBytes(g_options), g_strict, NextSample(),
           NextRecord());
  tc->owner_thread = static_cast<unsigned long>(pthread_self());
  {
    LockGuard g(g_registry_lock);
    tc->next = g_registry;
    if (g_registry) g_registry->prev = tc;
    g_registry = tc;
    g_threads++;
  }
  tls_cache = tc;
  if (g_thread_key_ok) pthread_setspecific(g_thread_key, tc);
  return tc;
}

void DestroyThreadCache(ThreadCache* tc) {
  tc->Flush();
  {
    LockGuard g(g_registry_lock);
    // Keep the counts of threads that are gone.
    ThreadCache::Counters c = tc->ReadCounters();
    for (int i = 0; i < kNumClasses; i++) {
      ThreadCache::Bump(g_exited_counters.allocs[i], c.allocs[i]);
      ThreadCache::Bump(g_exited_counters.frees[i], c.frees[i]);
    }
    if (tc->prev) tc->prev->next = tc->next; else g_registry = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    g_threads--;
  }
  g_cache_pool.Delete(tc);
}

void ThreadExit(void* arg) {
  auto* tc = static_cast<ThreadCache*>(arg);
  // Later destructors of this thread may still allocate: they go to the
  // middle layer directly instead of creating a new cache.
  tls_dead = true;
  tls_cache = &g_sentinel;
  DestroyThreadCache(tc);
}

// ---- background reclaimer -------------------------------------------------

void* ReclaimerMain(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  uint64_t last_idle_release = NowMs();
  for (;;) {
    uint64_t decay = g_options.decay_ms;
    uint64_t period = decay / 4 < 10 ? 10 : (decay / 4 > 1000 ? 1000 : decay / 4);
    const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
    if (hooks != nullptr && period > 100) period = 100;  // statistics at least every 100 ms
    struct timespec ts = {static_cast<time_t>(period / 1000),
                          static_cast<long>((period % 1000) * 1000000)};
    nanosleep(&ts, nullptr);
    uint64_t now = NowMs();
    uint64_t cutoff = now > decay ? now - decay : 0;
    // Idle batches and spare slabs once per decay period, then the pages
    // that have been free for longer than decay_ms.
    bool idle_round = now - last_idle_release >= (decay > 0 ? decay : 1);
    if (idle_round) last_idle_release = now;
    Partition::ForEach([cutoff, idle_round](Partition* p) {
      if (idle_round) p->ReleaseIdleObjects();
      p->ReleaseFreedBefore(cutoff);
    });
    if (hooks != nullptr && hooks->on_tick != nullptr) hooks->on_tick();
  }
  return nullptr;
}

void MaybeStartReclaimer() {
  if (!g_options.background_thread || g_reclaimer_started.load(std::memory_order_relaxed)) return;
  bool expected = false;
  if (!g_reclaimer_started.compare_exchange_strong(expected, true)) return;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  if (pthread_create(&t, &attr, ReclaimerMain, nullptr) == 0) {
    pthread_setname_np(t, "nitroheap-bg");
  }
  pthread_attr_destroy(&attr);
}

// ---- fork -----------------------------------------------------------------

void ForkPrepare() {
  // Every lock, in the order the engine nests them, so that no other thread
  // holds one at the moment of fork.
  g_init_lock.Lock();
  g_registry_lock.Lock();
  PartitionTableLock().Lock();
  for (int i = 1; i < Partition::kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) p->LockAll();
  }
  GlobalPageMap().lock().Lock();
  LockPageHeapPools();
  PartitionPoolLock().Lock();
  g_cache_pool.lock().Lock();
  MetaLock().Lock();
  LockLibcResolve();
}

void ForkParent() {
  UnlockLibcResolve();
  MetaLock().Unlock();
  g_cache_pool.lock().Unlock();
  PartitionPoolLock().Unlock();
  UnlockPageHeapPools();
  GlobalPageMap().lock().Unlock();
  for (int i = Partition::kMaxPartitions - 1; i >= 1; i--) {
    if (Partition* p = PartitionSlot(i)) p->UnlockAll();
  }
  PartitionTableLock().Unlock();
  g_registry_lock.Unlock();
  g_init_lock.Unlock();
}

void ForkChild() {
  ResetLibcResolveAfterFork();
  MetaLock().ResetAfterFork();
  g_cache_pool.lock().ResetAfterFork();
  PartitionPoolLock().ResetAfterFork();
  ResetPageHeapPoolsAfterFork();
  GlobalPageMap().ResetAfterFork();
  for (int i = 1; i < Partition::kMaxPartitions; i++) {
    if (Partition* p = PartitionSlot(i)) p->ResetLocksAfterFork();
  }
  PartitionTableLock().ResetAfterFork();
  g_registry_lock.ResetAfterFork();
  g_init_lock.ResetAfterFork();
  g_reclaimer_started.store(false);
  if (const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire)) {
    if (hooks->on_fork_child != nullptr) hooks->on_fork_child();
  }
  // The other threads are gone; what their caches held goes back.
  ThreadCache* mine = tls_cache;
  for (ThreadCache* tc = g_registry; tc != nullptr;) {
    ThreadCache* next = tc->next;
    if (tc != mine) DestroyThreadCache(tc);
    tc = next;
  }
}

void AtExit() {
  if (const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire)) {
    if (hooks->on_exit != nullptr) hooks->on_exit();
  }
  if (g_options.stats_print) PrintHeapReport(2);
}

// ---- helpers ----------------------------------------------------------------

[[noreturn]] void NoLibc(const char* what, const void* p) {
  Fatal("%s of %p: not NitroHeap's, and the C library's allocator is unavailable", what, p);
}

void* LibcMalloc(size_t size) {
  const LibcHeap* libc = Libc();
  if (libc == nullptr) NoLibc("malloc", nullptr);
  return libc->malloc(size);
}

// A pointer the page map does not know: the C library's, or a misuse.
const LibcHeap* ForeignOwner(const char* what, const void* p) {
  const LibcHeap* libc = Libc();
  if (libc == nullptr) NoLibc(what, p);
  if (g_state.load(std::memory_order_acquire) == kReadyNitro && !LibcMayOwn(p)) {
    ReportMisuse(misuse::kForeignFree, p, "(none)",
                 "%s of memory that neither NitroHeap nor the C library's allocator owns "
                 "(a stack, global or wild pointer)",
                 what);
  }
  return libc;
}

void FreeForeign(void* p) {
  if (IsBootstrapPointer(p)) return;
  ForeignOwner("free", p)->free(p);
}

bool Started() {
  if (NITRO_LIKELY(g_state.load(std::memory_order_acquire) == kReadyNitro)) return true;
  EnsureStarted();
  return g_state.load(std::memory_order_acquire) == kReadyNitro;
}

void* AllocateSmall(int cls) {
  ThreadCache* tc = tls_cache;
  if (tc->is_sentinel()) {
    tc = CreateThreadCache();
    if (tc == nullptr) {
      void* p = g_default->central(cls).AllocateOne();
      if (p == nullptr) errno = ENOMEM;
      return p;
    }
  }
  void* p = tc->Pop(cls);
  if (p == nullptr) p = tc->Refill(cls);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void* AllocateLargeDefault(size_t size, size_t align, bool zero) {
  bool zeroed = false;
  void* p = g_default->AllocateLarge(size, align, &zeroed);
  if (p != nullptr && zero && !zeroed) memset(p, 0, size);
  return p;
}

void Record(void* p, size_t size, size_t align);

// Large allocations advance the flight recorder's byte countdown too.
void* AllocateLargeSampled(size_t size, size_t align, bool zero) {
  void* p = AllocateLargeDefault(size, align, zero);
  ThreadCache* tc = tls_cache;
  if (p != nullptr && !tc->is_sentinel() && tc->RecordBytes(size)) {
    tc->ResetRecordCountdown(NextRecord());
    Record(p, size, align);
  }
  return p;
}

// Checks that `p` starts a live object and returns what the page map says.
PointerInfo CheckedInfo(const char* what, void* p) {
  PointerInfo info;
  Lookup(p, &info);
  const char* part = info.partition->name();
  if (info.free_run) {
    if (info.span->start == reinterpret_cast<uintptr_t>(p)) {
      ReportMisuse(misuse::kDoubleFree, p, part, "%s of a large allocation that was already freed", what);
    }
    ReportMisuse(misuse::kInvalidFree, p, part, "%s of a pointer into freed memory", what);
  }
  if (info.object_start != p) {
    ReportMisuse(misuse::kInvalidFree, p, part,
                 "%s of a pointer that is not the start of an object (%zu bytes into a %zu-byte object at %p)",
                 what, static_cast<size_t>(static_cast<char*>(p) - static_cast<char*>(info.object_start)),
                 info.object_size, info.object_start);
  }
  if (info.size_class != 0 && static_cast<uintptr_t*>(p)[1] == info.partition->free_marker()) {
    ReportMisuse(misuse::kDoubleFree, p, part, "%s of a %zu-byte object that is already free", what,
                 info.object_size);
  }
  if (g_strict && info.span->requested_sizes != nullptr) {
    info.object_size = info.span->requested_sizes[info.span->ObjectIndex(reinterpret_cast<uintptr_t>(p))];
  }
  return info;
}

// A flight-recorder sample: mark its span so that its free is seen (and
// timed), then hand it to telemetry.
void Record(void* p, size_t size, size_t align) {
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks == nullptr || hooks->on_sample == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) return;
  size_t usable = s->requested;
  if (s->state == SpanState::kSlab) {
    uint32_t idx = s->ObjectIndex(reinterpret_cast<uintptr_t>(p));
    __atomic_fetch_or(&s->recorded_bits[idx / 64], uint64_t{1} << (idx % 64), __ATOMIC_RELAXED);
    __atomic_store_n(&s->cache_class, uint8_t{0}, __ATOMIC_RELAXED);
    usable = kSizeClasses.size(s->size_class);
  } else if (s->state == SpanState::kLarge) {
    __atomic_fetch_or(&s->recorded_bits[0], uint64_t{1}, __ATOMIC_RELAXED);
    usable = s->usable_bytes();
  } else if (s->state == SpanState::kGuarded) {
    __atomic_fetch_or(&s->recorded_bits[0], uint64_t{1}, __ATOMIC_RELAXED);
  }
  g_recorded.fetch_add(1, std::memory_order_relaxed);
  hooks->on_sample(p, size, usable, align, s->partition);
}

// The free of a possibly recorded object: tells telemetry, and lets the
// span's frees take the fast path again once no sample is left in it.
void RecordedFree(Span* s, void* p) {
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  // Bit 0 marks a recorded large block or guarded slot.
  uint32_t idx = s->state == SpanState::kSlab ? s->ObjectIndex(reinterpret_cast<uintptr_t>(p)) : 0;
  uint64_t bit = uint64_t{1} << (idx % 64);
  if ((__atomic_load_n(&s->recorded_bits[idx / 64], __ATOMIC_RELAXED) & bit) == 0) return;
  __atomic_fetch_and(&s->recorded_bits[idx / 64], ~bit, __ATOMIC_RELAXED);
  if (hooks != nullptr && hooks->on_free != nullptr) hooks->on_free(p);
  if (s->state == SpanState::kSlab && s->partition->thread_cached()) {
    bool any = false;
    for (uint64_t w : s->recorded_bits) any |= __atomic_load_n(&w, __ATOMIC_RELAXED) != 0;
    if (!any) __atomic_store_n(&s->cache_class, s->size_class, __ATOMIC_RELAXED);
  }
}

ThreadCache* CacheForThisThread() {
  ThreadCache* tc = tls_cache;
  return tc->is_sentinel() ? CreateThreadCache() : tc;
}

bool ValidStrictObject(void* q, int cls) {
  Span* s = GlobalPageMap().Get(q);
  if (s == nullptr || s->state != SpanState::kSlab || s->partition != g_default || s->size_class != cls) {
    return false;
  }
  uintptr_t off = reinterpret_cast<uintptr_t>(q) - s->start;
  return off % kSizeClasses.size(cls) == 0 && off / kSizeClasses.size(cls) < s->capacity;
}

// strict: a fresh object must still be all zero past its two list words
// (it was zeroed when freed); the bytes past the request get canaries.
void* StrictAllocate(size_t size, size_t align) {
  ThreadCache* tc = CacheForThisThread();
  int cls = 0;
  if (size < kMaxSmallSize) {
    cls = align <= kMinAlign ? kSizeClasses.ClassFor(size + 1)
                             : (align <= kPageSize ? kSizeClasses.ClassForAligned(size + 1, align) : 0);
  }
  if (cls == 0) return nullptr;  // the caller takes the large path
  bool due = tc != nullptr && tc->AccountAlloc(cls, size);
  bool record = false;
  if (due && tc->RecordDue()) {
    tc->ResetRecordCountdown(NextRecord());
    record = true;
  }
  if (due && tc->GuardDue()) {
    tc->ResetSampleCountdown(NextSample());
    if (void* q = g_pool.initialized() ? g_pool.Allocate(size, align) : nullptr) {
      tc->UnaccountAlloc(cls);  // counted under the guarded pool instead
      if (record) Record(q, size, align);
      return q;
    }
  }
  if (size == 0 && align <= kMinAlign) {
    if (void* q = g_zero.Allocate()) return q;
  }
  void* p = nullptr;
  if (tc != nullptr) {
    p = tc->PopChecked(cls, 8, ValidStrictObject);
    while (p == nullptr && tc->RefillList(cls)) p = tc->PopChecked(cls, 8, ValidStrictObject);
  } else {
    p = g_default->central(cls).AllocateOne();
  }
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (!ValidStrictObject(p, cls)) {
    ReportMisuse(misuse::kCorruptFreeList, p, "default", "a free-list link points outside the %u-byte class",
                 kSizeClasses.size(cls));
  }
  uint32_t slot = kSizeClasses.size(cls);
  auto* bytes = static_cast<unsigned char*>(p);
  for (uint32_t i = 16; i < slot; i++) {
    if (bytes[i] != 0) {
      ReportMisuse(misuse::kWriteAfterFree, bytes + i, "default",
                   "byte %u of a freed %u-byte object at %p was written after it was freed", i, slot, p);
    }
  }
  Span* s = GlobalPageMap().Get(p);
  if (s->requested_sizes != nullptr) s->requested_sizes[s->ObjectIndex(reinterpret_cast<uintptr_t>(p))] = static_cast<uint32_t>(size);
  memset(bytes + size, g_canary, slot - size);
  if (record) Record(p, size, align);
  return p;
}

void StrictFree(Span* s, void* p, int cls) {
  uint32_t slot = kSizeClasses.size(cls);
  size_t req = s->requested_sizes != nullptr ? s->requested_sizes[s->ObjectIndex(reinterpret_cast<uintptr_t>(p))] : slot;
  auto* bytes = static_cast<unsigned char*>(p);
  for (size_t i = req; i < slot; i++) {
    if (bytes[i] != g_canary) {
      ReportMisuse(misuse::kOverflow, bytes + i, "default",
                   "the %zu-byte object at %p was written past its end (canary at offset %zu)", req, p, i);
    }
  }
  memset(p, 0, slot);  // a read after free sees no old data
  ThreadCache* tc = CacheForThisThread();
  if (tc == nullptr) {
    g_default->central(cls).FreeOne(p);
    return;
  }
  tc->PushChecked(cls, p);
  tc->AccountFree(cls);
}

// Formats a report on the stack: printing it must not allocate.
class ReportBuffer {
 public:
  __attribute__((format(printf, 2, 3))) void Add(const char* fmt, ...) {
    if (n_ >= sizeof(buf_)) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf_ + n_, sizeof(buf_) - n_, fmt, ap);
    va_end(ap);
    if (m > 0) n_ += static_cast<size_t>(m);
    if (n_ > sizeof(buf_)) n_ = sizeof(buf_);
  }
  void WriteTo(int fd) const {
    const char* p = buf_;
    size_t len = n_;
    while (len > 0) {
      ssize_t w = write(fd, p, len);
      if (w <= 0) break;
      p += w;
      len -= static_cast<size_t>(w);
    }
  }

 private:
  char buf_[4096];
  size_t n_ = 0;
};

}  // namespace

__thread ThreadCache* tls_cache __attribute__((tls_model("initial-exec"))) = &g_sentinel;

void EnsureStarted() {
  if (g_state.load(std::memory_order_acquire) == kUninit) {
    LockGuard g(g_init_lock);
    if (g_state.load(std::memory_order_relaxed) == kUninit) StartLocked();
  }
  PostStart();
}

HeapMode Mode() {
  EnsureStarted();
  return g_state.load(std::memory_order_acquire) == kReadyLegacy ? HeapMode::kLegacy
                                                                 : HeapMode::kNitro;
}
const Options& CurrentOptions() { return g_options; }
HardeningMode CurrentMode() { return g_options.mode; }

void SetTelemetryHooks(const TelemetryHooks* hooks) { g_hooks.store(hooks, std::memory_order_release); }

void ForEachThreadCache(void (*f)(const ThreadCache* tc, void* ctx), void* ctx) {
  LockGuard g(g_registry_lock);
  for (ThreadCache* tc = g_registry; tc != nullptr; tc = tc->next) f(tc, ctx);
}

const ThreadCache::Counters& ExitedThreadCounters() { return g_exited_counters; }
size_t GuardedSamples() { return g_pool.total_sampled() + g_recorded.load(std::memory_order_relaxed); }
GuardedPoolCounts GuardedCounts() {
  return GuardedPoolCounts{g_pool.total_sampled(), g_pool.total_sampled() - g_pool.live(), g_pool.live(),
                           g_pool.live_bytes()};
}
uint64_t HeapStartTimeNs() { return g_start_ns; }
Partition* DefaultPartition() { return Started() ? g_default : nullptr; }

void* MallocSlow(size_t size) {
  if (NITRO_UNLIKELY(g_state.load(std::memory_order_acquire) != kReadyNitro)) {
    if (void* p = BootstrapAllocate(size, kMinAlign)) return p;
    if (!Started()) return LibcMalloc(size);
  }
  MaybeStartReclaimer();
  if (g_strict) {
    if (void* p = StrictAllocate(size, 0)) return p;
    if (size < kMaxSmallSize) return nullptr;
  }
  if (size > kMaxSmallSize || g_strict) return AllocateLargeSampled(size, 0, false);
  int cls = kSizeClasses.ClassFor(size);
  void* p = AllocateSmall(cls);
  ThreadCache* tc = tls_cache;
  if (p != nullptr && !tc->is_sentinel() && tc->AccountAlloc(cls, size)) return SampleSlow(p, size);
  return p;
}

void* SampleSlow(void* p, size_t size) {
  ThreadCache* tc = tls_cache;
  void* result = p;
  if (tc->GuardDue()) {
    tc->ResetSampleCountdown(NextSample());
    if (void* q = g_pool.initialized() ? g_pool.Allocate(size, 0) : nullptr) {
      // p goes back unused; the guarded pool counts this allocation.
      int cls = kSizeClasses.ClassFor(size);
      tc->PushChecked(cls, p);
      tc->UnaccountAlloc(cls);
      result = q;
    }
  }
  if (tc->RecordDue()) {
    tc->ResetRecordCountdown(NextRecord());
    Record(result, size, 0);
  }
  return result;
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    FreeForeign(p);
    return;
  }
  if (s->state == SpanState::kGuarded) {
    g_pool.Free(s, p);
    RecordedFree(s, p);
    return;
  }
  if (s->state == SpanState::kZeroSize) {
    g_zero.Free(p);
    return;
  }
  PointerInfo info = CheckedInfo("free", p);
  if (s->state == SpanState::kLarge) {
    RecordedFree(s, p);
    s->partition->FreeLarge(s, p);
    return;
  }
  int cls = s->size_class;
  if (!s->partition->thread_cached()) {
    // A slab of a partition without thread caches.
    info.partition->central(cls).FreeOne(p);
    return;
  }
  RecordedFree(s, p);
  if (g_strict) {
    StrictFree(s, p, cls);
    return;
  }
  ThreadCache* tc = tls_cache;
  if (tc->is_sentinel()) {
    tc = CreateThreadCache();
    if (tc == nullptr) {
      g_default->central(cls).FreeOne(p);
      return;
    }
  }
  tc->Overflow(cls, p);
  tc->AccountFree(cls);
}

void FreeSizedSlow(void* p, size_t size, size_t align) {
  if (p == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    FreeForeign(p);
    return;
  }
  if (s->state == SpanState::kSlab || s->state == SpanState::kLarge || s->state == SpanState::kGuarded) {
    PointerInfo info = CheckedInfo("sized free", p);
    bool ok;
    if (s->state == SpanState::kSlab && !(g_strict && s->requested_sizes != nullptr)) {
      // Class granularity: the size it was made with, or (after an in-place
      // realloc) any size above half the class.
      size_t c = info.object_size;
      ok = size <= c && (size > c / 2 || kSizeClasses.ClassFor(size) == info.size_class ||
                         (align > kMinAlign && align <= kPageSize &&
                          kSizeClasses.ClassForAligned(size, align) == info.size_class));
    } else if (s->state == SpanState::kSlab) {
      ok = size == info.object_size;  // strict records the exact size
    } else {
      ok = size == s->requested;
    }
    if (!ok) {
      ReportMisuse(misuse::kSizeMismatch, p, info.partition->name(),
                   "freed with size %zu, but the object was allocated with %s%zu bytes", size,
                   s->state == SpanState::kSlab && !(g_strict && s->requested_sizes) ? "a size up to " : "",
                   s->state == SpanState::kSlab ? info.object_size : s->requested);
    }
  }
  FreeSlow(p);
}

void* Calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (NITRO_UNLIKELY(!Started())) {
    if (void* p = BootstrapAllocate(total, kMinAlign)) return p;  // zero: static storage
    const LibcHeap* libc = Libc();
    if (libc == nullptr) NoLibc("calloc", nullptr);
    return libc->calloc(n, size);
  }
  if (total <= kMaxSmallSize) {
    void* p = Malloc(total);
    if (p != nullptr) memset(p, 0, total);
    return p;
  }
  return AllocateLargeSampled(total, 0, true);
}

void* AllocateAligned(size_t align, size_t size) {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  if (NITRO_UNLIKELY(!Started())) {
    if (void* p = BootstrapAllocate(size, align)) return p;
    const LibcHeap* libc = Libc();
    if (libc == nullptr) NoLibc("memalign", nullptr);
    return libc->memalign(align, size);
  }
  if (align <= kMinAlign) return Malloc(size);
  if (g_strict) {
    if (void* p = StrictAllocate(size, align)) return p;
    if (size < kMaxSmallSize && align <= kPageSize && errno == ENOMEM) return nullptr;
  } else if (align <= kPageSize) {
    if (int cls = kSizeClasses.ClassForAligned(size, align)) {
      void* p = AllocateSmall(cls);
      ThreadCache* tc = tls_cache;
      if (p == nullptr || tc->is_sentinel() || !tc->AccountAlloc(cls, size)) return p;
      bool record = tc->RecordDue();
      if (record) tc->ResetRecordCountdown(NextRecord());
      if (tc->GuardDue()) {
        tc->ResetSampleCountdown(NextSample());
        if (void* q = g_pool.initialized() ? g_pool.Allocate(size, align) : nullptr) {
          tc->PushChecked(cls, p);
          tc->UnaccountAlloc(cls);
          p = q;
        }
      }
      if (record) Record(p, size, align);
      return p;
    }
  }
  return AllocateLargeSampled(size, align, false);
}

void* Realloc(void* p, size_t size) {
  if (p == nullptr) return Malloc(size);
  if (size == 0) {
    // glibc's behaviour, which programs written for Linux expect.
    Free(p);
    return nullptr;
  }
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    // Not ours: a pointer from before NitroHeap took over, or from legacy
    // mode. In legacy mode it stays with the C library.
    if (IsBootstrapPointer(p)) {
      // Bootstrap blocks record no size; copy what the arena holds after p.
      void* q = Malloc(size);
      size_t room = BootstrapBytesAfter(p);
      if (q != nullptr) memcpy(q, p, size < room ? size : room);
      return q;
    }
    if (!Started()) {
      const LibcHeap* libc = Libc();
      if (libc == nullptr) NoLibc("realloc", p);
      return libc->realloc(p, size);
    }
    const LibcHeap* libc = ForeignOwner("realloc", p);
    size_t old = libc->usable_size(p);
    void* q = Malloc(size);
    if (q == nullptr) return nullptr;
    memcpy(q, p, old < size ? old : size);
    libc->free(p);
    return q;
  }
  if (s->state == SpanState::kGuarded || s->state == SpanState::kZeroSize) {
    PointerInfo info;
    Lookup(p, &info);
    void* q = Malloc(size);
    if (q == nullptr) return nullptr;
    memcpy(q, p, info.object_size < size ? info.object_size : size);
    Free(p);
    return q;
  }
  PointerInfo info = CheckedInfo("realloc", p);
  size_t old = info.object_size;
  if (info.size_class != 0) {
    if (!g_strict && size <= old && (size > old / 2 || old <= kMinAlign)) return p;
    if (g_strict && info.span->requested_sizes != nullptr && info.partition == g_default &&
        size + 1 <= kSizeClasses.size(info.size_class) && size > kSizeClasses.size(info.size_class) / 2) {
      // strict keeps the block when the new size still leaves canary room:
      // the bytes past the new size become canaries again.
      uint32_t slot = kSizeClasses.size(info.size_class);
      auto* bytes = static_cast<unsigned char*>(p);
      uint32_t idx = info.span->ObjectIndex(reinterpret_cast<uintptr_t>(p));
      if (size < old) memset(bytes + size, g_canary, old - size);
      for (size_t i = old > size ? old : size; i < slot; i++) {
        if (bytes[i] != g_canary) {
          ReportMisuse(misuse::kOverflow, bytes + i, "default",
                       "the %zu-byte object at %p was written past its end (canary at offset %zu)", old, p, i);
        }
      }
      info.span->requested_sizes[idx] = static_cast<uint32_t>(size);
      return p;
    }
  } else if (s->state == SpanState::kLarge && size > kMaxSmallSize) {
    if (info.partition->ResizeLargeInPlace(s, size)) return p;
  }
  // Growth by small steps (strings) copies once per step: grow by a quarter
  // at least, so a string crosses a quarter of the classes, not all of them.
  // Only within the small classes, where the object's size is its class (a
  // large or guarded block records the exact size, which free_sized checks).
  size_t target = size;
  if (!g_strict && size > old && size - old < old / 4 && old + old / 4 <= kMaxSmallSize) {
    target = old + old / 4;
  }
  void* q = info.partition == g_default ? Malloc(target) : info.partition->Allocate(target);
  if (q == nullptr && target != size) {
    q = info.partition == g_default ? Malloc(size) : info.partition->Allocate(size);
  }
  if (q == nullptr) return nullptr;
  if (target != size) {
    // A block the guarded pool served records its exact size: make it the
    // caller's (the slack past it is simply not guarded).
    Span* qs = GlobalPageMap().Get(q);
    if (qs != nullptr && qs->state == SpanState::kGuarded) g_pool.Resize(qs, size);
  }
  memcpy(q, p, old < size ? old : size);
  Free(p);
  return q;
}

size_t UsableSize(const void* p) {
  if (p == nullptr) return 0;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    if (IsBootstrapPointer(p)) return 0;
    return ForeignOwner("malloc_usable_size", p)->usable_size(const_cast<void*>(p));
  }
  if (s->state == SpanState::kGuarded || s->state == SpanState::kZeroSize) return s->requested;
  return CheckedInfo("malloc_usable_size", const_cast<void*>(p)).object_size;
}

bool Trim() {
  if (!Started()) {
    const LibcHeap* libc = Libc();
    return libc != nullptr && libc->trim != nullptr && libc->trim(0) != 0;
  }
  ThreadCache* tc = tls_cache;
  if (!tc->is_sentinel()) tc->Flush();
  size_t released = 0;
  Partition::ForEach([&released](Partition* part) { released += part->ReleaseFreeMemory(); });
  return released > 0;
}

HeapStats GetHeapStats() {
  HeapStats st{};
  if (!Started()) return st;
  Partition::ForEach([&st](Partition* part) {
    PartitionStats ps = part->Stats();
    st.reserved_bytes += ps.pages.reserved_bytes;
    st.in_use_page_bytes += ps.pages.in_use_bytes;
    st.free_committed_bytes += ps.pages.free_committed_bytes;
    st.free_released_bytes += ps.pages.free_released_bytes;
    st.released_total_bytes += ps.pages.released_total_bytes;
    st.transfer_bytes += ps.small_transfer_bytes;
    st.slab_free_bytes += ps.small_slab_free_bytes;
    st.large_allocations += ps.large_allocations;
    st.large_bytes += ps.large_bytes;
    st.quarantine_bytes += ps.pages.quarantine_bytes;
    st.partitions++;
  });
  {
    LockGuard g(g_registry_lock);
    // Racy reads of other threads' counts: a statistic, not an invariant.
    for (ThreadCache* tc = g_registry; tc != nullptr; tc = tc->next) {
      st.thread_cache_bytes += tc->CachedBytes();
    }
    st.threads = g_threads;
  }
  st.committed_bytes = st.in_use_page_bytes + st.free_committed_bytes;
  size_t held = st.thread_cache_bytes + st.transfer_bytes + st.slab_free_bytes;
  st.allocated_bytes = st.in_use_page_bytes > held ? st.in_use_page_bytes - held : 0;
  st.metadata_bytes = MetaBytesMapped();
  st.sampled_live = g_pool.live();
  st.sampled_total = g_pool.total_sampled();
  return st;
}

void PrintHeapReport(int fd) {
  HeapStats st = GetHeapStats();
  ReportBuffer out;
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  out.Add("---- NitroHeap heap report (pid %d) ----\n", static_cast<int>(getpid()));
  if (Mode() == HeapMode::kLegacy) {
    out.Add("mode: legacy (every call goes to the C library's allocator)\n");
  } else {
    out.Add("allocated by program   %10.2f MiB\n", mib(st.allocated_bytes));
    out.Add("  of which large       %10.2f MiB in %zu allocations\n", mib(st.large_bytes),
        st.large_allocations);
    out.Add("committed              %10.2f MiB\n", mib(st.committed_bytes));
    out.Add("  thread caches        %10.2f MiB (%zu threads)\n", mib(st.thread_cache_bytes), st.threads);
    out.Add("  middle layer         %10.2f MiB\n", mib(st.transfer_bytes));
    out.Add("  free in slabs        %10.2f MiB\n", mib(st.slab_free_bytes));
    out.Add("  free pages (cached)  %10.2f MiB\n", mib(st.free_committed_bytes));
    out.Add("returned to the OS     %10.2f MiB total\n", mib(st.released_total_bytes));
    out.Add("address space reserved %10.2f MiB in %zu partitions\n", mib(st.reserved_bytes),
        st.partitions);
    out.Add("metadata               %10.2f MiB\n", mib(st.metadata_bytes));
    out.Add("hardening              %s; large quarantine %.2f MiB; guarded %zu live, %zu sampled\n",
            ModeName(g_options.mode), mib(st.quarantine_bytes), st.sampled_live, st.sampled_total);
  }
  out.Add("----------------------------------------\n");
  out.WriteTo(fd);
}

}  // namespace nitro
