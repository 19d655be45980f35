// The process heap: start-up and exit, and the one slow path behind every
// allocation and free entry point. Its other concerns live beside it:
// thread_registry.cc (thread caches), sampling.cc, strict.cc, reclaimer.cc
// and background.cc (the background thread), fork.cc, heap_report.cc.
#include "core/heap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "core/heap_internal.h"
#include "core/libc_heap.h"

#ifndef NITROHEAP_DEFAULT_LEGACY
#define NITROHEAP_DEFAULT_LEGACY 0
#endif

namespace nitro {

std::atomic<int> g_state{kUninit};
SpinLock g_init_lock{LockRank::kHeapInit};
Options g_options;
Partition* g_default = nullptr;
bool g_strict = false;
uint8_t g_canary = 0xA5;
GuardedPool g_pool;
ZeroSizeRegion g_zero;
std::atomic<const TelemetryHooks*> g_hooks{nullptr};

}  // namespace nitro

// Defaults a program builds in: `const char* nitroheap_options = "...";`
// (like jemalloc's malloc_conf). A weak reference: null when the program
// defines none. Under LD_PRELOAD the dynamic linker binds it when the
// program exports the symbol (-rdynamic).
extern "C" const char* nitroheap_options __attribute__((weak));

namespace nitro {
namespace {

std::atomic<bool> g_post_init_done{false};
uint64_t g_start_ns = 0;

void OptionError(const char* message, void*) { LogLine("%s", message); }
void HelpLine(const char* line, void*) { WriteOutput(2, line, strlen(line)); }

// ---- start-up and exit ------------------------------------------------------

// A set-user-ID or set-group-ID program (secure mode) must not take its
// heap's configuration from whoever started it: NITROHEAP_OPTIONS names
// files to write (flight_recorder=/etc/passwd), so a user could make a
// set-user-ID root program overwrite any file. The C library ignores its
// own MALLOC_* variables there for the same reason.
const char* ConfigurationVariable(const char* name) {
  const char* value = getenv(name);
  if (value == nullptr || getauxval(AT_SECURE) == 0) return value;
  LogLine("%s is ignored: this is a set-user-ID or set-group-ID program, whose heap the person "
          "starting it may not configure; the built-in defaults apply", name);
  return nullptr;
}

void StartLocked() {
  bool legacy = NITROHEAP_DEFAULT_LEGACY;
  const char* h = ConfigurationVariable("NITROHEAP");
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
  // The program's built-in defaults first (trusted also in secure mode: the
  // program's own); the environment overrides them.
  if (&nitroheap_options != nullptr) {
    ParseOptions(nitroheap_options, &g_options, &help, OptionError, nullptr, "nitroheap_options");
  }
  ParseOptions(ConfigurationVariable("NITROHEAP_OPTIONS"), &g_options, &help, OptionError, nullptr);
  if (help) PrintOptionHelp(HelpLine, nullptr, Options{});
  if (!g_options.background_thread && g_options.flight_recorder_signal) {
    LogLine("NITROHEAP_OPTIONS: flight_recorder_signal needs background_thread=1 (the thread writes "
            "the recording); with background_thread=0 the signal dumps nothing");
  }
  unsigned long page = getauxval(AT_PAGESZ);
  if (!legacy && page != 0 && page != kPageSize) {
    LogLine("this kernel's pages are %lu bytes; NitroHeap is built for %zu-byte pages, so the C "
            "library's allocator serves this process",
            page, kPageSize);
    legacy = true;
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
      // strict's checks hold for every object it serves, sampled ones too.
      if (g_strict) g_pool.set_canary(g_canary);
      if (g_strict && !g_zero.Init(g_default)) {
        LogLine("cannot reserve the zero-size region; malloc(0) returns a 16-byte block");
      }
    }
  }
  // Before the heap is published: every thread that sees it running must
  // see the key its cache registers with.
  if (!legacy) RegisterThreadExitKey();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g_start_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  g_state.store(legacy ? kReadyLegacy : kReadyNitro, std::memory_order_release);
}

// Exit: the background thread stops before anything it touches is torn
// down; then telemetry writes its files; then the report.
void AtExit() {
  g_background.Stop();
  if (const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire)) {
    if (hooks->on_exit != nullptr) hooks->on_exit();
  }
  if (__atomic_load_n(&g_options.stats_print, __ATOMIC_RELAXED)) PrintHeapReport(2);
}

// Steps that may allocate themselves, run once the heap already works.
void PostStart() {
  bool expected = false;
  if (!g_post_init_done.compare_exchange_strong(expected, true)) return;
  if (g_state.load(std::memory_order_acquire) != kReadyNitro) return;
  InstallForkHandlers();
  RegisterFaultPools(g_pool.initialized() ? &g_pool : nullptr, g_strict ? &g_zero : nullptr);
  InstallFaultHandler();
  atexit(AtExit);
}

// ---- helpers ----------------------------------------------------------------

[[noreturn]] void NoLibc(const char* what, const void* p) {
  Fatal("%s of %p: not NitroHeap's, and the C library's allocator is unavailable", what, p);
}

const LibcHeap* LibcOrDie(const char* what, const void* p) {
  const LibcHeap* libc = Libc();
  if (libc == nullptr) NoLibc(what, p);
  return libc;
}

// A pointer the page map does not know: the C library's, or a misuse.
const LibcHeap* ForeignOwner(const char* what, const void* p) {
  const LibcHeap* libc = LibcOrDie(what, p);
  if (g_state.load(std::memory_order_acquire) == kReadyNitro && !LibcMayOwn(p)) {
    ReportMisuse(misuse::kForeignFree, p, "(none)",
                 "%s of memory that neither NitroHeap nor the C library's allocator owns "
                 "(a stack, global or wild pointer)",
                 what);
  }
  return libc;
}

// Before the heap runs, or in legacy mode: dlsym's own allocations come
// from the bootstrap arena, everything else from the C library.
void* AllocateBeforeStart(size_t size, size_t align, bool zero) {
  if (void* p = BootstrapAllocate(size, align)) return p;  // static storage: zero
  const LibcHeap* libc = LibcOrDie("malloc", nullptr);
  if (align > kMinAlign) {
    void* p = libc->memalign(align, size);
    if (p != nullptr && zero) memset(p, 0, size);
    return p;
  }
  return zero ? libc->calloc(1, size) : libc->malloc(size);
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

void* AllocateLarge(size_t size, size_t align, bool zero) {
  bool zeroed = false;
  void* p = g_default->AllocateLarge(size, align, &zeroed);
  if (p == nullptr) return nullptr;
  if (zero && !zeroed) memset(p, 0, size);
  // Large allocations advance the flight recorder's byte countdown too.
  ThreadCache* tc = tls_cache;
  if (tc->is_sentinel()) return p;
  tc->CountOtherAllocated(size);
  if (tc->RecordBytes(size)) p = Sampled(tc, p, size, align, 0);
  return p;
}

// The small class for a request, or 0 when it takes the large path.
int SmallClassFor(size_t size, size_t align) {
  if (align <= kMinAlign) return size <= kMaxSmallSize ? kSizeClasses.ClassFor(size) : 0;
  return align <= kPageSize ? kSizeClasses.ClassForAligned(size, align) : 0;
}

// Checks that `p` starts a live slab or large object and returns what the
// page map says (the exact requested size for strict's small objects).
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
  if (info.size_class != 0 && info.span->ObjectIsFree(p)) {
    ReportMisuse(misuse::kDoubleFree, p, part, "%s of a %zu-byte object that is already free", what,
                 info.object_size);
  }
  if (g_strict && info.span->requested_sizes != nullptr) {
    info.object_size = info.span->requested_sizes[info.span->ObjectIndex(reinterpret_cast<uintptr_t>(p))];
  }
  return info;
}

// May a live block stay where it is for `size` bytes (alignment `align`)?
// The same rule decides which sizes a sized free accepts (SizeFits), so a
// block kept in place can always be freed with its new size.
bool SlabSizeFits(const PointerInfo& info, size_t size, size_t align) {
  size_t c = info.object_size;
  return size <= c && (size > c / 2 || kSizeClasses.ClassFor(size) == info.size_class ||
                       (align > kMinAlign && align <= kPageSize &&
                        kSizeClasses.ClassForAligned(size, align) == info.size_class));
}

bool ResizeInPlace(const PointerInfo& info, void* p, size_t size, size_t align) {
  if (reinterpret_cast<uintptr_t>(p) % (align > kMinAlign ? align : kMinAlign) != 0) return false;
  switch (info.span->state) {
    case SpanState::kSlab:
      if (g_strict && info.span->requested_sizes != nullptr) return StrictResizeInPlace(info, p, size);
      return SlabSizeFits(info, size, align) && (size > info.object_size / 2 || info.object_size <= kMinAlign);
    case SpanState::kLarge:
      return size > kMaxSmallSize && info.partition->ResizeLargeInPlace(info.span, size);
    default:
      return false;  // guarded and zero-size blocks always move
  }
}

// The in-place half of every reallocation (Reallocate, xallocx): checks p,
// sets *old to its usable size, and keeps it for `size` bytes when
// ResizeInPlace allows. True when p stays where it is.
bool KeepInPlace(void* p, Span* s, size_t size, size_t align, const char* what, size_t* old) {
  if (s->state == SpanState::kGuarded) {
    *old = g_pool.UsableSize(s, p, what);
    return false;
  }
  if (s->state == SpanState::kZeroSize) {
    *old = g_zero.UsableSize(p, what);
    return false;
  }
  PointerInfo info = CheckedInfo(what, p);
  *old = info.object_size;
  size_t before = s->requested;
  if (!ResizeInPlace(info, p, size, align)) return false;
  // A large block resized in place: the thread counters see the change.
  if (s->state == SpanState::kLarge && s->partition == g_default) {
    ThreadCache* tc = tls_cache;
    if (!tc->is_sentinel() && s->requested > before) tc->CountOtherAllocated(s->requested - before);
    if (!tc->is_sentinel() && s->requested < before) tc->CountOtherFreed(before - s->requested);
  }
  return true;
}

// Bytes this thread frees outside the size-class lists (thread counters).
void CountOtherFreed(size_t bytes) {
  ThreadCache* tc = tls_cache;
  if (!tc->is_sentinel()) tc->CountOtherFreed(bytes);
}

void FreeForeign(void* p) {
  if (IsBootstrapPointer(p)) return;
  ForeignOwner("free", p)->free(p);
}

}  // namespace

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool Started() {
  if (NITRO_LIKELY(g_state.load(std::memory_order_acquire) == kReadyNitro)) return true;
  EnsureStarted();
  return g_state.load(std::memory_order_acquire) == kReadyNitro;
}

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

int SetOptionAtRunTime(const char* name, uint64_t value) {
  enum Field { kSampleRate, kDecayMs, kStatsPrint, kFixed };
  Field field = strcmp(name, "sample_rate") == 0  ? kSampleRate
                : strcmp(name, "decay_ms") == 0   ? kDecayMs
                : strcmp(name, "stats_print") == 0 ? kStatsPrint
                                                   : kFixed;
  // The table checks the range, exactly as at start-up, on a scratch copy.
  Options scratch;
  char text[24];
  snprintf(text, sizeof(text), "%llu", static_cast<unsigned long long>(value));
  int err = SetOption(name, text, &scratch, nullptr, nullptr, "nitro_ctl");
  if (err == ENOENT) return ENOENT;
  if (field == kFixed) return EPERM;
  if (err != 0) return err;
  EnsureStarted();
  switch (field) {
    case kSampleRate:
      if (value != 0 && !g_pool.initialized()) return EPERM;
      __atomic_store_n(&g_options.sample_rate, value, __ATOMIC_RELAXED);
      break;
    case kDecayMs:
      __atomic_store_n(&g_options.decay_ms, value, __ATOMIC_RELAXED);
      g_background.Wake();  // a shorter period starts now
      break;
    case kStatsPrint:
      __atomic_store_n(&g_options.stats_print, value != 0, __ATOMIC_RELAXED);
      break;
    case kFixed:
      break;
  }
  return 0;
}

ThreadBytes ThisThreadBytes() {
  ThreadCache* tc = tls_cache;
  if (!Started() || tc->is_sentinel()) return ThreadBytes{0, 0};
  return ThreadBytes{tc->AllocatedBytes(), tc->FreedBytes()};
}
void SetTelemetryHooks(const TelemetryHooks* hooks) { g_hooks.store(hooks, std::memory_order_release); }

int DumpFlightRecording(const char* path) {
  EnsureStarted();
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  return hooks != nullptr && hooks->dump_recording != nullptr ? hooks->dump_recording(path) : ENOSYS;
}

int DumpHeapProfile(const char* path) {
  EnsureStarted();
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  return hooks != nullptr && hooks->dump_profile != nullptr ? hooks->dump_profile(path) : ENOSYS;
}
uint64_t HeapStartTimeNs() { return g_start_ns; }
Partition* DefaultPartition() { return Started() ? g_default : nullptr; }
GuardedPoolCounts GuardedCounts() {
  GuardedPool::Counts c = g_pool.counts();
  return GuardedPoolCounts{c.total, c.total - c.live, c.live, c.live_bytes};
}

// ---- the slow paths -----------------------------------------------------------

void* AllocateSlow(size_t size, size_t align, bool zero) {
  if (NITRO_UNLIKELY(!Started())) return AllocateBeforeStart(size, align, zero);
  g_background.MaybeStart();
  if (g_strict) {
    void* p;
    if (StrictAllocate(size, align, &p)) {
      if (p != nullptr && zero) memset(p, 0, size);
      return p;
    }
  } else if (int cls = SmallClassFor(size, align)) {
    void* p = AllocateSmall(cls);
    if (p == nullptr) return nullptr;
    ThreadCache* tc = tls_cache;
    if (!tc->is_sentinel() && tc->AccountAlloc(cls, size)) p = Sampled(tc, p, size, align, cls);
    if (zero) memset(p, 0, size);
    return p;
  }
  return AllocateLarge(size, align, zero);
}

void* SampleSlow(void* p, size_t size) {
  return Sampled(tls_cache, p, size, 0, kSizeClasses.ClassFor(size));
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    FreeForeign(p);
    return;
  }
  switch (s->state) {
    case SpanState::kGuarded: {
      size_t size = g_pool.Free(s, p);
      CountOtherFreed(size);
      RecordedFree(s, p);
      return;
    }
    case SpanState::kZeroSize:
      g_zero.Free(p);
      return;
    default:
      break;
  }
  PointerInfo info = CheckedInfo("free", p);
  if (s->state == SpanState::kLarge) {
    RecordedFree(s, p);
    if (s->partition == g_default) CountOtherFreed(s->requested);
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
  ThreadCache* tc = CacheForThisThread();
  if (tc == nullptr) {
    g_default->central(cls).FreeOne(p);
    return;
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
    size_t recorded;
    bool ok;
    bool class_granular = false;
    if (s->state == SpanState::kGuarded) {
      recorded = g_pool.UsableSize(s, p, "sized free");
      ok = size == recorded;
    } else {
      PointerInfo info = CheckedInfo("sized free", p);
      recorded = s->state == SpanState::kSlab ? info.object_size : s->requested;
      if (s->state == SpanState::kSlab && !(g_strict && s->requested_sizes != nullptr)) {
        // Class granularity: any size that may have made, or been kept in,
        // this object (see ResizeInPlace).
        class_granular = true;
        ok = SlabSizeFits(info, size, align);
      } else {
        ok = size == recorded;  // strict's small objects, large blocks: the exact size
      }
    }
    if (!ok) {
      ReportMisuse(misuse::kSizeMismatch, p, s->partition->name(),
                   "freed with size %zu, but the object was allocated with %s%zu bytes", size,
                   class_granular ? "a size up to " : "", recorded);
    }
  }
  FreeSlow(p);
}

// ---- the other entry points ---------------------------------------------------

void* Calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (total <= kMaxSmallSize && NITRO_LIKELY(g_state.load(std::memory_order_acquire) == kReadyNitro)) {
    void* p = Malloc(total);
    if (p != nullptr) memset(p, 0, total);
    return p;
  }
  return AllocateSlow(total, 0, true);
}

void* AllocateAligned(size_t align, size_t size) {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  if (align <= kMinAlign) return Malloc(size);
  return AllocateSlow(size, align, false);
}

void* Reallocate(void* p, size_t size, size_t align) {
  if (align < kMinAlign) align = 0;
  if (p == nullptr) return align == 0 ? Malloc(size) : AllocateSlow(size, align, false);
  if (size == 0 && align == 0) {
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
      void* q = align == 0 ? Malloc(size) : AllocateSlow(size, align, false);
      size_t room = BootstrapBytesAfter(p);
      if (q != nullptr) memcpy(q, p, size < room ? size : room);
      return q;
    }
    if (!Started() && align == 0) return LibcOrDie("realloc", p)->realloc(p, size);
    const LibcHeap* libc = ForeignOwner("realloc", p);
    size_t old = libc->usable_size(p);
    void* q = align == 0 ? Malloc(size) : AllocateSlow(size, align, false);
    if (q == nullptr) return nullptr;
    memcpy(q, p, old < size ? old : size);
    libc->free(p);
    return q;
  }
  size_t old;
  Partition* partition = s->partition;
  if (KeepInPlace(p, s, size, align, "realloc", &old)) return p;
  // Growth by small steps (strings) copies once per step: grow by a quarter
  // at least, so a string crosses a quarter of the classes, not all of them.
  // Only where the object's size is its class (strict, guarded and large
  // blocks record the exact size, which sized frees check).
  size_t target = size;
  if (!g_strict && s->state == SpanState::kSlab && size > old && size - old < old / 4 &&
      old + old / 4 <= kMaxSmallSize) {
    target = old + old / 4;
  }
  void* q = AllocateIn(partition, target, align, false);
  if (q == nullptr && target != size) {
    target = size;
    q = AllocateIn(partition, size, align, false);
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
  if (s->state == SpanState::kGuarded) return g_pool.UsableSize(s, p);
  if (s->state == SpanState::kZeroSize) return g_zero.UsableSize(p);
  return CheckedInfo("malloc_usable_size", const_cast<void*>(p)).object_size;
}

void* AllocateIn(Partition* partition, size_t size, size_t align, bool zero) {
  if (partition == nullptr || partition == g_default) return Allocate(size, align, zero);
  void* p = partition->Allocate(size, align);
  if (p != nullptr && zero) memset(p, 0, size);
  return p;
}

size_t UsableSizeFor(Partition* partition, size_t size, size_t align, size_t* request) {
  if (request != nullptr) *request = size;
  if (size > kMaxRequest || align > kMaxRequest) return 0;
  if (!Started()) return size;  // legacy mode: the C library decides
  if (align < kMinAlign) align = 0;
  if (partition == nullptr) partition = g_default;
  // Strict mode records each small object's exact size; other slabs hold
  // their class's size; large blocks own whole pages.
  bool strict = partition == g_default && g_strict;
  int cls = strict ? StrictClassFor(size, align) : SmallClassFor(size, align);
  if (cls == 0) return RoundUp(size, kPageSize);
  size_t usable = strict ? size : kSizeClasses.size(cls);
  if (request != nullptr) *request = usable;
  return usable;
}

size_t ResizeInPlaceOnly(void* p, size_t size, size_t align) {
  if (align < kMinAlign) align = 0;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) return UsableSize(p);  // the C library's block: never resized here
  size_t old;
  if (KeepInPlace(p, s, size, align, "xallocx", &old)) return UsableSize(p);
  return old;
}

Partition* PartitionOf(const void* p) {
  PointerInfo info;
  if (!Lookup(p, &info) || info.free_run) return nullptr;
  return info.partition;
}

// A pointer handed to a partition's API must be that partition's.
static void CheckPartitionOwns(Partition* partition, void* p, const char* what) {
  if (p != nullptr && PartitionOf(p) != partition) {
    ReportMisuse(misuse::kForeignFree, p, partition->name(), "%s: partition %s does not own this pointer",
                 what, partition->name());
  }
}

void PartitionFree(Partition* partition, void* p) {
  CheckPartitionOwns(partition, p, "nitro_partition_free");
  Free(p);
}

void* PartitionReallocate(Partition* partition, void* p, size_t size) {
  if (p == nullptr) return AllocateIn(partition, size, 0, false);
  CheckPartitionOwns(partition, p, "nitro_partition_realloc");
  return Reallocate(p, size, 0);
}

bool FlushThreadCache() {
  if (!Started()) return false;
  ThreadCache* tc = tls_cache;
  if (tc->is_sentinel()) return false;
  tc->Flush();
  return true;
}

bool Trim() {
  if (!Started()) {
    const LibcHeap* libc = Libc();
    return libc != nullptr && libc->trim != nullptr && libc->trim(0) != 0;
  }
  FlushThreadCache();
  size_t released = 0;
  Partition::ForEach([&released](Partition* part) { released += part->ReleaseFreeMemory(); });
  return released > 0;
}

}  // namespace nitro
