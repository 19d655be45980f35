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

#include "core/contract.h"
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
uint64_t g_canary_pattern = 0xA5A5A5A5A5A5A5A5;
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

// A partition's page-level configuration from its policy.
PartitionConfig ConfigFor(const PartitionPolicy& policy) {
  PartitionConfig config;
  config.policy = policy;
  config.max_free_committed = g_options.decay_ms == 0 ? 0 : g_options.max_free_committed;
  // Even fast mode keeps a few freed large runs back, so a double free of a
  // large block is caught also after the next large allocation.
  config.large_quarantine_bytes = policy.quarantine_bytes * 64;
  if (config.large_quarantine_bytes < (size_t{8} << 20)) config.large_quarantine_bytes = size_t{8} << 20;
  config.large_quarantine_spans = policy.strict ? 64 : policy.quarantine_bytes == 0 ? 2 : 8;
  // Protecting a freed large block costs two system calls (free and
  // reuse): strict pays them for every block, closed whole; the others for
  // every block's first MiB while the partition's token bucket lasts, then
  // the first 16 KiB of one in 256 at random (core/large_protect.h). Not
  // tied to sample_rate: sample_rate=0 keeps it.
  config.large_protect = LargeProtectConfig{
      policy.strict, static_cast<uint32_t>(g_options.large_protect_burst),
      static_cast<uint32_t>(g_options.large_protect_per_sec), /*sample=*/256};
  // Outside strict, protected blocks stay closed while quarantined only: kept PROT_NONE
  // until reuse, they fragment the heap (page faults cost more than the
  // mprotect calls). strict keeps them closed until reuse.
  config.large_protect_until_reuse = policy.strict;
  return config;
}

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
  ResolveModeDefaults(&g_options);
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
  ApplyContractOptions(g_options);  // before the default partition takes its contract
  // Dropped, not flushed: the partition's memory is about to be unmapped.
  Partition::SetBeforeDestroy([](Partition* p) { ForgetPartitionCaches(p); });
  if (!legacy) {
    g_strict = g_options.mode == HardeningMode::kStrict;
    PartitionPolicy policy = DefaultPolicy();
    policy.guarded_sample_divisor = 1;  // malloc's sample_rate
    g_default = Partition::Create("default", ConfigFor(policy), NowMs);
    if (g_default == nullptr) {
      LogLine("cannot reserve address space for the default partition; using the C library's "
              "allocator");
      legacy = true;
    } else {
      // Whatever the options, malloc's partition has thread caches.
      g_default->set_thread_cached(true);
      g_canary = static_cast<uint8_t>(g_default->key() >> 24) | 1;
      // Eight random non-zero bytes: an overflow writing any one value
      // meets bytes it does not match.
      uint64_t pattern = g_default->key() * 0x9E3779B97F4A7C15u;
      for (int b = 0; b < 64; b += 8) {
        if (((pattern >> b) & 0xFF) == 0) pattern |= uint64_t{0xA5} << b;
      }
      g_canary_pattern = pattern;
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
  PageHeap::SetBoundDeferral([](bool wake) {
    if (!g_background.running()) return false;
    if (wake) g_background.Wake();
    return true;
  });
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

// tc: this thread's cache of the partition, or nullptr (none).
void* AllocateSmall(Partition* partition, ThreadCache* tc, int cls) {
  if (tc == nullptr) {
    void* p = partition->central(cls).AllocateOne();
    if (p == nullptr) errno = ENOMEM;
    return p;
  }
  void* p = tc->Pop(cls);
  if (p == nullptr) p = tc->Refill(cls);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// This thread's cache of `partition` if it has one (none is made here).
ThreadCache* ExistingCacheFor(Partition* partition) {
  if (partition != g_default && !partition->thread_cached()) return nullptr;
  ThreadCache* tc = tls_caches.by_slot[partition->id()];
  return tc->is_sentinel() ? nullptr : tc;
}

void* AllocateLarge(Partition* partition, size_t size, size_t align, bool zero) {
  bool zeroed = false;
  void* p = partition->AllocateLarge(size, align, &zeroed);
  if (p == nullptr) return nullptr;
  if (zero && !zeroed) memset(p, 0, size);
  // Large allocations advance the flight recorder's byte countdown too.
  ThreadCache* tc = CacheFor(partition);
  if (tc == nullptr) return p;
  tc->NoteLargeAllocation();
  if (partition == g_default) tc->CountOtherAllocated(size);
  if (tc->RecordBytes(size)) p = Sampled(partition, tc, p, size, align, 0);
  return p;
}

// A request as the partition's policy serves it: typed partitions serve
// their one size (false for a larger or over-aligned request), SHARED_RW
// ones whole cache lines, the movable partition none (it has handles only).
bool AdjustRequest(const PartitionPolicy& policy, size_t* size, size_t* align) {
  if (policy.handles_only) return false;
  if (policy.object_size != 0) {
    if (*size > policy.object_size || *align > kMinAlign) return false;
    *size = policy.object_size;
  }
  if (policy.min_align != 0) {
    if (*align < policy.min_align) *align = policy.min_align;
    *size = RoundUp(*size == 0 ? 1 : *size, policy.min_align);
  }
  return true;
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
  if (info.partition->strict() && info.span->requested_sizes != nullptr) {
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

// A slab object (outside strict's recorded sizes) keeps its place for
// `size` bytes: the sized-free rule, and no more than halving the usable
// size, so a shrink that would waste more than half moves to a smaller class.
bool SlabKeeps(const PointerInfo& info, size_t size, size_t align) {
  return SlabSizeFits(info, size, align) && (size > info.object_size / 2 || info.object_size <= kMinAlign);
}

bool ResizeInPlace(const PointerInfo& info, void* p, size_t size, size_t align) {
  if (reinterpret_cast<uintptr_t>(p) % (align > kMinAlign ? align : kMinAlign) != 0) return false;
  switch (info.span->state) {
    case SpanState::kSlab:
      if (info.partition->strict() && info.span->requested_sizes != nullptr) {
        return StrictResizeInPlace(info, p, size);
      }
      return SlabKeeps(info, size, align);
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
    ThreadCache* tc = DefaultCache();
    if (!tc->is_sentinel() && s->requested > before) tc->CountOtherAllocated(s->requested - before);
    if (!tc->is_sentinel() && s->requested < before) tc->CountOtherFreed(before - s->requested);
  }
  return true;
}

// Bytes this thread frees outside the size-class lists (thread counters).
void CountOtherFreed(size_t bytes) {
  ThreadCache* tc = DefaultCache();
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
  if (!Started()) return ThreadBytes{0, 0};
  ThreadCache* tc = DefaultCache();
  if (tc->is_sentinel()) return ThreadBytes{0, 0};
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

static void* AllocateStarted(Partition* partition, size_t size, size_t align, bool zero);

void* AllocateSlow(size_t size, size_t align, bool zero) {
  // Started() first: its acquire is what makes g_default (read by
  // CurrentPartition) and the partition behind it safe to read.
  if (NITRO_UNLIKELY(!Started())) return AllocateBeforeStart(size, align, zero);
  // tls_cache is the current partition's cache, and the sentinel (never
  // strict) before the thread has one or when the partition's requests need
  // adjusting (Partition::alloc_slot): AdjustRequest has nothing to do here.
  if (ThreadCache* tc = tls_cache; tc->strict() && align <= kMinAlign) {
    if (void* p = StrictAllocateFast(tc, size)) {
      if (zero) memset(p, 0, size);
      return p;
    }
  }
  // The thread's current partition (SetThreadPartition) is read here only.
  return AllocateSlowIn(CurrentPartition(), size, align, zero);
}

void* AllocateSlowIn(Partition* partition, size_t size, size_t align, bool zero) {
  if (partition == nullptr) {
    if (NITRO_UNLIKELY(!Started())) return AllocateBeforeStart(size, align, zero);
    partition = g_default;
  }
  ContractScope scope;  // pressure callbacks run as it ends, outside every lock
  void* p = AllocateStarted(partition, size, align, zero);
  if (NITRO_UNLIKELY(p == nullptr) && TakeLimitRefusal()) {
    // A hard limit refused pages: objects cached by this thread and the
    // middle layer count as use (their slabs), so they go back before one retry.
    size_t use = partition->contract().use();
    FlushThreadCache();
    for (int c = 1; c < kNumClasses; c++) partition->central(c).Drain();
    if (partition->contract().use() < use) p = AllocateStarted(partition, size, align, zero);
    TakeLimitRefusal();
  }
  return p;
}

static void* AllocateStarted(Partition* partition, size_t size, size_t align, bool zero) {
  g_background.MaybeStart();
  if (!AdjustRequest(partition->policy(), &size, &align)) {
    errno = EINVAL;
    return nullptr;
  }
  if (partition->strict()) {
    void* p;
    if (StrictAllocate(partition, size, align, &p)) {
      if (p != nullptr && zero) memset(p, 0, size);
      return p;
    }
  } else if (int cls = SmallClassFor(size, align)) {
    ThreadCache* tc = CacheFor(partition);
    void* p = AllocateSmall(partition, tc, cls);
    if (p == nullptr) return nullptr;
    if (tc != nullptr && tc->AccountAlloc(cls, size)) p = Sampled(partition, tc, p, size, align, cls);
    if (zero) memset(p, 0, size);
    return p;
  }
  return AllocateLarge(partition, size, align, zero);
}

void* SampleSlow(void* p, size_t size) {
  return Sampled(CurrentPartition(), tls_cache, p, size, 0, kSizeClasses.ClassFor(size));
}

void* SampleAlignedSlow(void* p, size_t size, size_t align, int cls) {
  return Sampled(CurrentPartition(), tls_cache, p, size, align, cls);
}

void* SampleSlowIn(Partition* partition, void* p, size_t size) {
  return Sampled(partition, tls_caches.by_slot[partition->alloc_slot()], p, size, 0,
                 kSizeClasses.ClassFor(size));
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  Span* s = GlobalPageMap().Get(p);
  if (s == nullptr) {
    FreeForeign(p);
    return;
  }
  // The checks free's own fast path made (a slab of a thread-cached
  // partition without samples, the object's start, not free), so none of
  // those below is needed: strict's fast path, or the magazine had no room
  // (full, or its delay line filling after a flush, one free at a time:
  // Python's frees came here 270,000 times in 4 rounds, at 370 instructions
  // each with the lookups below, 190 without, besides returned batches).
  {
    uint64_t mag_offset;
    uint8_t* flag;
    if (ThreadCache* tc = FastFreeCache(p, s, &mag_offset, &flag)) {
      int cls = static_cast<int>(mag_offset / kMagazineBytes) + 1;
      if (tc->strict()) {
        StrictFreeFast(tc, s, p, cls, flag);
      } else {
        tc->Overflow(cls, p, flag);
        tc->AccountFree(cls);
      }
      return;
    }
  }
  switch (s->state) {
    case SpanState::kGuarded: {
      // The span is read before the slot is given back: once Free returns,
      // another thread's sample may take the slot and rewrite its span, so
      // reading it then counted the freed bytes to the new owner's
      // partition and could clear the new allocation's recorder sample
      // (ThreadSanitizer, testing/stress:heap_lifecycle_stress_test).
      // UsableSize reports every pointer that is not a live guarded
      // allocation, as Free would, before the sample's mark is touched.
      g_pool.UsableSize(s, p, "free");
      Partition* owner = s->partition;
      RecordedFree(s, p);
      size_t size = g_pool.Free(s, p);
      if (owner == g_default) CountOtherFreed(size);
      return;
    }
    case SpanState::kZeroSize:
      g_zero.Free(p);
      return;
    default:
      break;
  }
  CheckedInfo("free", p);
  Partition* partition = s->partition;
  RecordedFree(s, p);
  if (s->state == SpanState::kLarge) {
    if (partition == g_default) CountOtherFreed(s->requested);
    size_t bytes = s->bytes();
    partition->FreeLarge(s, p);
    if (ThreadCache* tc = ExistingCacheFor(partition)) tc->NoteLargeFree(bytes);
    return;
  }
  int cls = s->size_class;
  if (partition->strict()) {
    StrictFree(s, p, cls);
    return;
  }
  ThreadCache* tc = CacheFor(partition);
  if (tc == nullptr) {
    partition->central(cls).FreeOne(p);
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
      if (s->state == SpanState::kSlab && !(s->partition->strict() && s->requested_sizes != nullptr)) {
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

void* NotPowerOfTwoAlignment() {
  errno = EINVAL;
  return nullptr;
}

namespace {

// Moves a slab object of `old` usable bytes (its class's size) to a new
// block of `size` bytes in its partition (alignment `align`, 0 for the
// natural one), as realloc does when it cannot stay. Growth by small
// steps (strings) copies once per step: grow by a quarter at least, so a
// string crosses a quarter of the classes, not all of them. Only where the
// object's size is its class (strict, guarded and large blocks record the
// exact size, which sized frees check).
void* MoveSlabObject(Partition* partition, void* p, size_t old, size_t size, size_t align) {
  size_t target = size;
  if (size > old && size - old < old / 4 && old + old / 4 <= kMaxSmallSize) target = old + old / 4;
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

}  // namespace

void* ReallocateVetted(void* p, size_t size, Span* s, int cls) {
  if (size == 0) {
    Free(p);  // glibc's behaviour, as ReallocateSlow's
    return nullptr;
  }
  PointerInfo info{};
  info.size_class = cls;
  info.object_size = kSizeClasses.size(cls);
  if (SlabKeeps(info, size, 0)) return p;
  // It moves: Lookup's PointerInfo would repeat the checks Reallocate made
  // (180 instructions per move; Python's json moved 116,000 objects in 4
  // rounds).
  if (!s->partition->strict()) return MoveSlabObject(s->partition, p, info.object_size, size, 0);
  return ReallocateSlow(p, size, 0);
}

void* ReallocateSlow(void* p, size_t size, size_t align) {
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
  if (!partition->strict() && s->state == SpanState::kSlab) return MoveSlabObject(partition, p, old, size, align);
  void* q = AllocateIn(partition, size, align, false);
  if (q == nullptr) return nullptr;
  memcpy(q, p, old < size ? old : size);
  Free(p);
  return q;
}

size_t UsableSizeSlow(const void* p) {
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
  if (partition == nullptr) return Allocate(size, align, zero);
  if (align > kMinAlign) return AllocateSlowIn(partition, size, align, zero);
  void* p = PartitionMalloc(partition, size);
  if (p != nullptr && zero) memset(p, 0, size);
  return p;
}

PartitionPolicy DefaultPolicy() {
  PartitionPolicy policy;
  policy.strict = g_options.mode == HardeningMode::kStrict;
  policy.cache_max_bytes = g_options.tcache_max_bytes;
  policy.quarantine_bytes = QuarantineBytes(g_options);
  return policy;
}

Partition* CreatePartition(const char* name, const PartitionPolicy& policy) {
  if (policy.object_size > kMaxSmallSize) {
    errno = EINVAL;  // a typed partition serves one small class
    return nullptr;
  }
  PartitionConfig config = ConfigFor(policy);
  // Legacy mode has no thread caches: its partitions take their locks.
  if (!Started()) config.policy.thread_caches = false;
  return Partition::Create(name, config, NowMs);
}

void DestroyPartition(Partition* partition) {
  // Threads' caches of it are dropped first (the hook StartLocked installs).
  Partition::Destroy(partition);
}

bool ReleaseCachesForArena(Partition* partition, bool flush) {
  if (partition == nullptr || partition == g_default) return false;
  DropPartitionCaches(partition, flush);
  // A visit reads slabs' free bits: objects in the middle layer's batches
  // go back into their slabs first.
  if (flush) {
    for (int c = 1; c < kNumClasses; c++) partition->central(c).Drain();
  }
  return true;
}

Partition* SetThreadPartition(Partition* partition) {
  if (!Started()) return nullptr;
  Partition* previous = CurrentPartition();
  tls_partition = partition == g_default ? nullptr : partition;
  // The cache malloc's fast path pops from becomes that partition's (the
  // sentinel until its slow path makes one).
  tls_cache = tls_caches.by_slot[CurrentPartition()->alloc_slot()];
  return previous;
}

Partition* ThreadPartition() { return Started() ? CurrentPartition() : nullptr; }

size_t UsableSizeFor(Partition* partition, size_t size, size_t align, size_t* request) {
  if (request != nullptr) *request = size;
  if (size > kMaxRequest || align > kMaxRequest) return 0;
  if (!Started()) return size;  // legacy mode: the C library decides
  if (align < kMinAlign) align = 0;
  if (partition == nullptr) partition = g_default;
  // Strict mode records each small object's exact size; other slabs hold
  // their class's size; large blocks own whole pages.
  if (!AdjustRequest(partition->policy(), &size, &align)) return 0;
  bool strict = partition->strict();
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

void PartitionFreeSlow(Partition* partition, void* p, const char* what) {
  Span* s = GlobalPageMap().Get(p);
  // The span's partition owns every block the page map knows (guarded
  // blocks: the partition that sampled them); anything else is looked up
  // in full.
  if (s == nullptr || s->partition != partition) CheckPartitionOwns(partition, p, what);
  FreeSlow(p);
}

void* PartitionReallocate(Partition* partition, void* p, size_t size) {
  if (p == nullptr) return AllocateIn(partition, size, 0, false);
  CheckPartitionOwns(partition, p, "nitro_partition_realloc");
  return Reallocate(p, size, 0);
}

bool FlushThreadCache() {
  if (!Started()) return false;
  FlushPartitionCaches();
  ThreadCache* tc = DefaultCache();
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
