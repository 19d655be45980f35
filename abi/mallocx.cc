// jemalloc's non-standard API (include/nitroheap/mallocx.h): mallocx,
// rallocx, xallocx, sallocx, dallocx, sdallocx and nallocx, with jemalloc's
// flag encoding, plus NitroHeap's flags (NITRO_TRAIT_*,
// NITRO_MALLOCX_PARTITION). Each is a thin call into core/heap.h: the same
// allocation, reallocation, in-place and sized-free paths as the malloc
// family. The one rule added here: a request is made with the size
// UsableSizeFor names, so sallocx(mallocx(n, f)) equals nallocx(n, f)
// whatever served it (slab, large block, guarded sample, strict mode), and
// sdallocx of a small block accepts any size from the request up to its
// usable size, as jemalloc does (a large block: the size asked for).
#include "nitroheap/mallocx.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/heap.h"
#include "core/os.h"
#include "core/partition.h"
#include "core/report.h"
#include "core/traits.h"
#include "telemetry/stats.h"

namespace {

using nitro::Partition;

// jemalloc's fields (jemalloc.h), and NitroHeap's in the bits jemalloc
// leaves free (nitroheap.h).
constexpr unsigned kLgAlignMask = 0x3f;
constexpr unsigned kJemallocTcacheShift = 8, kJemallocTcacheMask = 0xfff;
constexpr unsigned kNitroTcacheMask = 0x3f;  // with NITRO_MALLOCX_FLAGS
constexpr unsigned kTcacheAutomatic = 0, kTcacheNone = 1;
constexpr unsigned kTraitShift = 14, kTraitMask = 0x3f;
constexpr unsigned kArenaShift = 20;  // also the partition field

struct Flags {
  size_t align = 0;          // 0: natural
  bool zero = false;
  Partition* partition = nullptr;  // nullptr: the default one
  const char* refused = nullptr;   // why the flags cannot be served
};

// The one decoding of a flag word, for every function.
Flags Decode(int flags) {
  Flags f;
  unsigned bits = static_cast<unsigned>(flags);
  unsigned lg = bits & kLgAlignMask;
  f.align = lg == 0 ? 0 : size_t{1} << lg;
  f.zero = (bits & MALLOCX_ZERO) != 0;
  bool nitro_flags = (bits & NITRO_MALLOCX_FLAGS) != 0;
  unsigned tcache = (bits >> kJemallocTcacheShift) & (nitro_flags ? kNitroTcacheMask : kJemallocTcacheMask);
  // MALLOCX_TCACHE_NONE: every NitroHeap allocation is served as if by the
  // thread's cache, which holds nothing a caller can observe; accepted.
  // Explicit caches come from jemalloc's mallctl("tcache.create"), which
  // NitroHeap does not have, so no valid id exists.
  if (tcache != kTcacheAutomatic && tcache != kTcacheNone) {
    f.refused = "MALLOCX_TCACHE(tc): NitroHeap has no explicit thread caches";
  }
  unsigned high = bits >> kArenaShift;
  if (!nitro_flags) {
    if (high != 0) f.refused = "MALLOCX_ARENA(a): NitroHeap has no arenas (see NITRO_MALLOCX_PARTITION)";
    return f;
  }
  unsigned traits = (bits >> kTraitShift) & kTraitMask;
  if (traits != 0 && high != 0) {
    f.refused = "NITRO_TRAIT_* and NITRO_MALLOCX_PARTITION(id) both name a partition";
    return f;
  }
  if (traits & nitro::kTraitMovable) {
    f.refused = "NITRO_TRAIT_MOVABLE: a raw pointer cannot follow a moved object (use nitro_halloc)";
    return f;
  }
  if (traits != 0) {
    // The trait set names one partition (made on first use).
    f.refused = nitro::TraitsRefused(traits);
    if (f.refused == nullptr) {
      f.partition = nitro::PartitionForTraits(traits);
      if (f.partition == nullptr) f.refused = "NITRO_TRAIT_*: the trait set's partition cannot be made";
    }
  }
  if (high != 0) {
    f.partition = Partition::FromId(static_cast<uint16_t>(high - 1));  // high < 4096
    if (f.partition == nullptr) f.refused = "NITRO_MALLOCX_PARTITION(id): no live partition has this id";
  }
  return f;
}

// jemalloc leaves size 0 undefined; NitroHeap serves it as 1 byte, so every
// call returns a block that can be resized and sized-freed.
size_t NonZero(size_t size) { return size == 0 ? 1 : size; }

// The free side cannot return an error: a flag word no allocation could
// have been made with is reported like any other misuse.
void CheckFreeFlags(const Flags& f, void* p, int flags, const char* what) {
  if (f.refused != nullptr) {
    nitro::ReportMisuse(nitro::misuse::kInvalidFree, p, "(none)", "%s with flags 0x%x: %s", what,
                        static_cast<unsigned>(flags), f.refused);
  }
  if (f.partition != nullptr && p != nullptr && nitro::PartitionOf(p) != f.partition) {
    nitro::ReportMisuse(nitro::misuse::kForeignFree, p, f.partition->name(),
                        "%s: partition %s (NITRO_MALLOCX_PARTITION) does not own this pointer", what,
                        f.partition->name());
  }
}

// MALLOCX_ZERO on a resize: the bytes the block gained read as zero.
void ZeroGrowth(void* p, size_t old_usable, size_t new_usable) {
  if (new_usable > old_usable) memset(static_cast<char*>(p) + old_usable, 0, new_usable - old_usable);
}

// Everything the fast paths below leave: any flag but a trait set, a trait
// set whose partition is not made yet, a large request, an empty magazine.
NITRO_NOINLINE void* MallocxSlow(size_t size, int flags) {
  Flags f = Decode(flags);
  if (f.refused != nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  size_t request;
  if (nitro::UsableSizeFor(f.partition, NonZero(size), f.align, &request) == 0) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = nitro::AllocateIn(f.partition, request, f.align, f.zero);
  // A large block's last page past the request reads as zero too.
  if (p != nullptr && f.zero) ZeroGrowth(p, request, nitro::UsableSize(p));
  return p;
}

// The one flag word besides 0 that the fast paths serve: NitroHeap's flag
// and trait bits, nothing else (no alignment, zeroing, cache or partition).
constexpr unsigned kTraitBits = kTraitMask << kTraitShift;
bool OnlyTraits(unsigned bits) { return (bits & ~kTraitBits) == NITRO_MALLOCX_FLAGS; }

// A due sample of a block mallocx's fast path popped: it records the
// class's size, nallocx's promise, found again from `size` here (the fast
// path's own ClassFor) so that the fast path keeps no class for it.
// partition nullptr: the thread's current one.
NITRO_NOINLINE void* SampleMallocx(Partition* partition, void* p, size_t size) {
  size_t usable = nitro::kSizeClasses.size(nitro::kSizeClasses.ClassFor(size));
  return partition == nullptr ? nitro::SampleSlow(p, usable) : nitro::SampleSlowIn(partition, p, usable);
}

NITRO_NOINLINE void DallocxSlow(void* p, int flags) {
  CheckFreeFlags(Decode(flags), p, flags, "dallocx");
  nitro::Free(p);
}

// The statistics JSON with `omit` sections left out, and a newline, to fd.
void WriteStatsJson(int fd, unsigned omit) {
  auto* st = static_cast<nitro_stats_t*>(nitro::os::Reserve(sizeof(nitro_stats_t), nitro::kPageSize));
  if (st == nullptr) return;
  nitro::CollectStats(st);
  size_t cap = size_t{1} << 20;
  for (int attempt = 0; attempt < 2; attempt++) {
    auto* buf = static_cast<char*>(nitro::os::Reserve(cap, nitro::kPageSize));
    if (buf == nullptr) break;
    size_t len = nitro::StatsToJson(*st, buf, cap, omit);
    if (len < cap) {
      buf[len] = '\n';
      nitro::WriteOutput(fd, buf, len + 1);
      nitro::os::Unmap(buf, cap);
      break;
    }
    nitro::os::Unmap(buf, cap);
    cap = nitro::RoundUp(len + 2, nitro::kPageSize);
  }
  nitro::os::Unmap(st, sizeof(nitro_stats_t));
}

}  // namespace

extern "C" {

// malloc's fast path (core/heap.h, AllocateFast) with the cache the flags
// name: flags 0 the thread's current partition's, as malloc; a trait set
// its partition's, found with one load. A small object's usable size is
// its class's, which is what nallocx promises, so only a due sample needs
// telling (SampleMallocx): it records the class's size, as MallocxSlow's
// request would.
NITRO_EXPORT void* mallocx(size_t size, int flags) noexcept {
  // Size 0 is 1 byte here, not malloc(0)'s zero-size class (nallocx(0)
  // promises a usable byte): AllocateFast<1> leaves it to MallocxSlow.
  unsigned bits = static_cast<unsigned>(flags);
  if (NITRO_LIKELY(bits == 0)) {
    return nitro::AllocateFast<1>(
        nitro::tls_cache, size, size,
        [size](void* p, int) { return SampleMallocx(nullptr, p, size); },
        [size] { return MallocxSlow(size, 0); });
  }
  Partition* partition = OnlyTraits(bits) ? nitro::TraitPartitionMade(bits >> kTraitShift) : nullptr;
  if (NITRO_UNLIKELY(partition == nullptr)) return MallocxSlow(size, flags);
  return nitro::AllocateFast<1>(
      nitro::CacheAtTpOffset(partition->alloc_cache_tp_offset()), size, size,
      [partition, size](void* p, int) { return SampleMallocx(partition, p, size); },
      [size, flags] { return MallocxSlow(size, flags); });
}

NITRO_EXPORT void* rallocx(void* p, size_t size, int flags) noexcept {
  if (p == nullptr) return mallocx(size, flags);  // undefined in jemalloc
  Flags f = Decode(flags);
  Partition* owner = nitro::PartitionOf(p);
  if (f.refused != nullptr || (f.partition != nullptr && owner != f.partition)) {
    errno = EINVAL;
    return nullptr;
  }
  // The block stays in its partition (Reallocate keeps it there).
  size_t request;
  if (nitro::UsableSizeFor(owner, NonZero(size), f.align, &request) == 0) {
    errno = ENOMEM;
    return nullptr;
  }
  size_t old_usable = f.zero ? nitro::UsableSize(p) : 0;
  void* q = nitro::Reallocate(p, request, f.align);
  // What the block gained reads as zero: past the old usable size when it
  // stayed, past what was copied when it moved.
  size_t kept = q == p || old_usable < request ? old_usable : request;
  if (q != nullptr && f.zero) ZeroGrowth(q, kept, nitro::UsableSize(q));
  return q;
}

NITRO_EXPORT size_t xallocx(void* p, size_t size, size_t extra, int flags) noexcept {
  Flags f = Decode(flags);
  Partition* owner = nitro::PartitionOf(p);
  if (f.refused != nullptr || (f.partition != nullptr && owner != f.partition)) {
    // xallocx has no error return: nothing is resized, and the size it
    // returns is the block's current one.
    errno = EINVAL;
    return nitro::UsableSize(p);
  }
  size_t old_usable = nitro::UsableSize(p);
  size_t want = NonZero(size);
  // Try size + extra first, then size alone, as jemalloc does.
  size_t with_extra = want + extra < want ? SIZE_MAX : want + extra;
  size_t target;
  size_t now = nitro::UsableSizeFor(owner, with_extra, f.align, &target) == 0
                   ? old_usable
                   : nitro::ResizeInPlaceOnly(p, target, f.align);
  if (now < want && extra != 0 && nitro::UsableSizeFor(owner, want, f.align, &target) != 0) {
    now = nitro::ResizeInPlaceOnly(p, target, f.align);
  }
  if (f.zero) ZeroGrowth(p, old_usable, now);
  return now;
}

// As in jemalloc, sallocx uses no flag.
NITRO_EXPORT size_t sallocx(const void* p, int flags) noexcept {
  (void)flags;
  return nitro::UsableSize(p);
}

// free's fast path; with a trait set, a partition's free, whose fast path
// checks the owner in the same compare as the class (PartitionFree).
NITRO_EXPORT void dallocx(void* p, int flags) noexcept {
  unsigned bits = static_cast<unsigned>(flags);
  if (NITRO_LIKELY(bits == 0)) return nitro::Free(p);
  Partition* partition = OnlyTraits(bits) ? nitro::TraitPartitionMade(bits >> kTraitShift) : nullptr;
  if (NITRO_UNLIKELY(partition == nullptr)) return DallocxSlow(p, flags);
  nitro::PartitionFree(partition, p, "dallocx");
}

NITRO_EXPORT void sdallocx(void* p, size_t size, int flags) noexcept {
  Flags f = Decode(flags);
  if (flags != 0) CheckFreeFlags(f, p, flags, "sdallocx");
  // A small block was allocated at the usable size of its request, which is
  // that of every size between the request and it; a large one at the size
  // asked for, which the sized free checks exactly.
  // The block's own partition decides (a strict one records exact sizes).
  size_t request;
  Partition* owner = f.partition != nullptr ? f.partition : nitro::PartitionOf(p);
  nitro::UsableSizeFor(owner, NonZero(size), f.align, &request);
  nitro::FreeSized(p, request, f.align);
}

NITRO_EXPORT size_t nallocx(size_t size, int flags) noexcept {
  Flags f = Decode(flags);
  if (f.refused != nullptr) {
    errno = EINVAL;
    return 0;
  }
  return nitro::UsableSizeFor(f.partition, NonZero(size), f.align);
}

// jemalloc's statistics call: NitroHeap's heap report (the one
// nitro_stats_print writes), or with "J" in opts the statistics JSON (the
// one nitro_stats_json writes), handed to write_cb in NUL-terminated
// pieces; with no callback, to standard error, as jemalloc does. opts
// letters that leave a section out, as jemalloc documents them: g general
// (pid, modes), m merged (the process's totals), a per arena (partitions),
// b bins (size classes), l large; any other letter is ignored, as jemalloc
// ignores letters it does not know.
NITRO_EXPORT void malloc_stats_print(void (*write_cb)(void*, const char*), void* opaque,
                                     const char* opts) noexcept {
  bool json = false;
  unsigned omit = 0;
  for (const char* o = opts; o != nullptr && *o != '\0'; o++) {
    switch (*o) {
      case 'J': json = true; break;
      case 'g': omit |= nitro::kSectionGeneral; break;
      case 'm': omit |= nitro::kSectionMerged; break;
      case 'a': omit |= nitro::kSectionPartitions; break;
      case 'b': omit |= nitro::kSectionClasses; break;
      case 'l': omit |= nitro::kSectionLarge; break;
      default: break;
    }
  }
  // Both are written into anonymous memory, so nothing is allocated while
  // the heap is being described: a memory file for the report, mapped pages
  // for the JSON.
  int fd = static_cast<int>(syscall(SYS_memfd_create, "nitroheap-stats", 0u));
  if (fd < 0) {
    if (write_cb != nullptr) write_cb(opaque, "<jemalloc>: NitroHeap: malloc_stats_print: cannot create a memory file\n");
    return;
  }
  if (json) {
    WriteStatsJson(fd, omit);
  } else {
    nitro::PrintHeapReport(fd, omit);
  }
  char chunk[512];
  off_t at = 0;
  ssize_t n;
  while ((n = pread(fd, chunk, sizeof(chunk) - 1, at)) > 0) {
    chunk[n] = '\0';
    if (write_cb != nullptr) {
      write_cb(opaque, chunk);
    } else if (write(2, chunk, static_cast<size_t>(n)) != n) {
      break;
    }
    at += n;
  }
  close(fd);
}

}  // extern "C"
