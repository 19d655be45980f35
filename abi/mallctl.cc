// jemalloc's control interface, mallctl, mallctlnametomib and mallctlbymib,
// for the names programs built with jemalloc read to learn about their heap
// (redis's INFO memory, MEMORY PURGE and MEMORY DOCTOR; services exporting
// jemalloc's statistics), answered from NitroHeap's own statistics.
//
// Why: a program linked with libjemalloc and run under
// LD_PRELOAD=libnitroheap.so has its malloc served by NitroHeap, but without
// these its mallctl calls reached the jemalloc the program still loads,
// which serves nothing: redis reported allocator_allocated 28672 bytes with
// 68 MiB live, an allocator_rss_ratio of 81, and MEMORY PURGE purged an
// empty heap.
//
// Every name below behaves as jemalloc 5.3 documents it, down to the error
// codes: a read with *oldlenp not the value's size copies what fits and
// returns EINVAL, a write of a read-only name returns EPERM, an unknown name
// ENOENT. Names jemalloc has and NitroHeap cannot answer truthfully (arenas
// beyond the one, extent hooks, tcache creation, per-arena and per-bin
// statistics, opt.*) return ENOENT, never a made-up value.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/heap.h"
#include "nitroheap/mallocx.h"

namespace {

// jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena.
constexpr unsigned kArenasAll = 4096;
// The one arena: NitroHeap's partitions are not jemalloc arenas (a program
// cannot pick one by index), so the process heap answers as a single arena.
constexpr unsigned kNarenas = 1;

enum class Name {
  kEpoch,
  kStatsAllocated,
  kStatsActive,
  kStatsResident,
  kStatsMapped,
  kStatsRetained,
  kThreadAllocated,
  kThreadDeallocated,
  kThreadTcacheFlush,
  kArenasNarenas,
  kArenasPage,
  kArenasQuantum,
  kArenaPurge,
  kArenaDecay,
  kBackgroundThread,
  kConfigStats,
};

// A name's pattern: components separated by dots; "#" is a number (an
// arena index), whose value the MIB carries at that position.
struct Entry {
  const char* pattern;
  Name name;
};
constexpr Entry kEntries[] = {
    {"epoch", Name::kEpoch},
    {"stats.allocated", Name::kStatsAllocated},
    {"stats.active", Name::kStatsActive},
    {"stats.resident", Name::kStatsResident},
    {"stats.mapped", Name::kStatsMapped},
    {"stats.retained", Name::kStatsRetained},
    {"thread.allocated", Name::kThreadAllocated},
    {"thread.deallocated", Name::kThreadDeallocated},
    {"thread.tcache.flush", Name::kThreadTcacheFlush},
    {"arenas.narenas", Name::kArenasNarenas},
    {"arenas.page", Name::kArenasPage},
    {"arenas.quantum", Name::kArenasQuantum},
    {"arena.#.purge", Name::kArenaPurge},
    {"arena.#.decay", Name::kArenaDecay},
    {"background_thread", Name::kBackgroundThread},
    {"config.stats", Name::kConfigStats},
};
constexpr size_t kEntryCount = sizeof(kEntries) / sizeof(kEntries[0]);
constexpr size_t kMaxComponents = 3;

size_t ComponentsOf(const char* pattern) {
  size_t n = 1;
  for (const char* c = pattern; *c != 0; c++) n += *c == '.';
  return n;
}

// Matches `name` against the table: the entry's index, and the numbers of
// its "#" components in mib[] at their positions (other positions 0).
// False for an unknown name, a number where a word belongs, or a number
// that does not fit a size_t.
bool Parse(const char* name, size_t* index, size_t mib[kMaxComponents]) {
  // strtoull's errno is not the caller's business: a successful call
  // leaves errno as it was.
  int saved_errno = errno;
  struct Restore {
    int value;
    ~Restore() { errno = value; }
  } restore{saved_errno};
  for (size_t e = 0; e < kEntryCount; e++) {
    const char* p = kEntries[e].pattern;
    const char* n = name;
    size_t component = 0;
    size_t values[kMaxComponents] = {};
    bool match = true;
    while (match) {
      if (*p == '#') {
        // Digits only (no sign, no space: strtoull would take them), and a
        // value that fits.
        if (*n < '0' || *n > '9') {
          match = false;
          break;
        }
        errno = 0;
        char* end;
        unsigned long long v = strtoull(n, &end, 10);
        if (errno == ERANGE) {
          match = false;
          break;
        }
        values[component] = static_cast<size_t>(v);
        n = end;
        p++;
      } else {
        while (*p != 0 && *p != '.' && *p == *n) p++, n++;
        if (*p != 0 && *p != '.') match = false;
        if (*n != 0 && *n != '.') match = false;
        if (!match) break;
      }
      // The component ends in both: the name's end or the next dot.
      if (*p != *n || (*p != 0 && *p != '.')) {
        match = false;
        break;
      }
      if (*p == 0) break;
      p++, n++;
      component++;
    }
    if (match) {
      *index = e;
      memcpy(mib, values, sizeof(values));
      mib[0] = e;
      return true;
    }
  }
  return false;
}

// jemalloc's READ: a value of the wrong size copies what fits and fails.
template <typename T>
int Read(T value, void* oldp, size_t* oldlenp) {
  if (oldp == nullptr || oldlenp == nullptr) return 0;
  if (*oldlenp != sizeof(T)) {
    size_t copy = *oldlenp < sizeof(T) ? *oldlenp : sizeof(T);
    memcpy(oldp, &value, copy);
    *oldlenp = copy;
    return EINVAL;
  }
  memcpy(oldp, &value, sizeof(T));
  return 0;
}

bool Writing(const void* newp, size_t newlen) { return newp != nullptr || newlen != 0; }
bool Reading(const void* oldp, const size_t* oldlenp) { return oldp != nullptr || oldlenp != nullptr; }

// The statistics jemalloc names, from NitroHeap's totals over every
// partition (the heap report's figures): allocated is the usable bytes of
// blocks the program holds; active the pages slabs and large blocks occupy
// (jemalloc: pages holding live data, at least allocated); mapped those and
// the free pages kept committed and the quarantined large blocks not yet
// given back (jemalloc: its extents, dirty ones included); resident the same plus the metadata NitroHeap can count
// without a walk: span descriptors written and the page map's resident
// leaves (jemalloc's resident includes its metadata too; NitroHeap's thread
// caches' and middle layer's own arrays are not counted); retained the
// reserved address space not committed.
// Blocks the guarded pool serves (sampled ones; every block with
// sample_rate=1) count too: their bytes as allocated, their data pages as
// active, mapped and resident.
int ReadStat(Name name, void* oldp, size_t* oldlenp, const void* newp, size_t newlen) {
  if (Writing(newp, newlen)) return EPERM;
  nitro::HeapStats st = nitro::GetHeapStats();
  nitro::GuardedPoolCounts guarded = nitro::GuardedCounts();
  size_t guarded_pages = static_cast<size_t>(guarded.live_objects) * nitro::kPageSize;
  if (guarded_pages < guarded.live_bytes) guarded_pages = static_cast<size_t>(guarded.live_bytes);
  // committed_bytes counts the freed large blocks waiting in the quarantine
  // until they are given back (strict keeps up to 256 MiB of them).
  size_t committed = st.committed_bytes + guarded_pages;
  size_t value = 0;
  switch (name) {
    case Name::kStatsAllocated: value = st.allocated_bytes + static_cast<size_t>(guarded.live_bytes); break;
    case Name::kStatsActive: value = st.in_use_page_bytes + guarded_pages; break;
    case Name::kStatsMapped: value = committed; break;
    case Name::kStatsResident:
      value = committed + st.span_descriptor_bytes + st.page_map_bytes;
      break;
    default:  // kStatsRetained: the partitions' reserved address space not committed
      value = st.reserved_bytes > st.committed_bytes ? st.reserved_bytes - st.committed_bytes : 0;
      break;
  }
  return Read(value, oldp, oldlenp);
}

uint64_t g_epoch = 1;

int Control(size_t index, const size_t* mib, void* oldp, size_t* oldlenp, void* newp, size_t newlen) {
  // Legacy mode: the C library serves, NitroHeap has nothing to report
  // (nitro_ctl answers the same).
  if (nitro::Mode() != nitro::HeapMode::kNitro) return ENOSYS;
  switch (kEntries[index].name) {
    case Name::kEpoch: {
      // NitroHeap's statistics are collected at each read, so a refresh has
      // nothing to do; the epoch still advances, as callers may check.
      if (newp != nullptr) {
        if (newlen != sizeof(uint64_t)) return EINVAL;
        __atomic_add_fetch(&g_epoch, 1, __ATOMIC_RELAXED);
      }
      return Read<uint64_t>(__atomic_load_n(&g_epoch, __ATOMIC_RELAXED), oldp, oldlenp);
    }
    case Name::kStatsAllocated:
    case Name::kStatsActive:
    case Name::kStatsResident:
    case Name::kStatsMapped:
    case Name::kStatsRetained:
      return ReadStat(kEntries[index].name, oldp, oldlenp, newp, newlen);
    case Name::kThreadAllocated:
    case Name::kThreadDeallocated: {
      if (Writing(newp, newlen)) return EPERM;
      nitro::ThreadBytes bytes = nitro::ThisThreadBytes();
      return Read<uint64_t>(kEntries[index].name == Name::kThreadAllocated ? bytes.allocated : bytes.freed, oldp,
                            oldlenp);
    }
    case Name::kThreadTcacheFlush:
      if (Writing(newp, newlen) || Reading(oldp, oldlenp)) return EPERM;
      nitro::FlushThreadCache();
      return 0;
    case Name::kArenasNarenas:
      if (Writing(newp, newlen)) return EPERM;
      return Read<unsigned>(kNarenas, oldp, oldlenp);
    case Name::kArenasPage:
      if (Writing(newp, newlen)) return EPERM;
      return Read<size_t>(nitro::kPageSize, oldp, oldlenp);
    case Name::kArenasQuantum:
      if (Writing(newp, newlen)) return EPERM;
      return Read<size_t>(nitro::kMinAlign, oldp, oldlenp);
    case Name::kArenaPurge:
    case Name::kArenaDecay: {
      if (Writing(newp, newlen) || Reading(oldp, oldlenp)) return EPERM;
      // Arena 0 (the one there is), narenas and MALLCTL_ARENAS_ALL (all);
      // jemalloc answers ENOENT for an index beyond them too.
      size_t arena = mib[1];
      if (arena != 0 && arena != kNarenas && arena != kArenasAll) return ENOENT;
      nitro::Trim();
      return 0;
    }
    case Name::kBackgroundThread: {
      bool running = nitro::CurrentOptions().background_thread;
      if (newp != nullptr) {
        if (newlen != sizeof(bool)) return EINVAL;
        bool wanted;
        memcpy(&wanted, newp, sizeof(wanted));
        // NitroHeap's background thread is chosen at start-up
        // (NITROHEAP_OPTIONS background_thread): asking for the state it
        // is in succeeds, asking to change it fails.
        if (wanted != running) return EPERM;
      }
      return Read<bool>(running, oldp, oldlenp);
    }
    case Name::kConfigStats:
      if (Writing(newp, newlen)) return EPERM;
      return Read<bool>(true, oldp, oldlenp);
  }
  return ENOENT;
}

}  // namespace

extern "C" {

NITRO_EXPORT int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen) noexcept {
  if (name == nullptr) return EINVAL;
  nitro::EnsureStarted();
  size_t index;
  size_t mib[kMaxComponents];
  if (!Parse(name, &index, mib)) return ENOENT;
  return Control(index, mib, oldp, oldlenp, newp, newlen);
}

NITRO_EXPORT int mallctlnametomib(const char* name, size_t* mibp, size_t* miblenp) noexcept {
  if (name == nullptr || mibp == nullptr || miblenp == nullptr) return EINVAL;
  nitro::EnsureStarted();
  size_t index;
  size_t mib[kMaxComponents];
  if (!Parse(name, &index, mib)) return ENOENT;
  // As jemalloc: at most *miblenp components, and how many were filled. A
  // shorter MIB (a prefix) names no value: mallctlbymib answers ENOENT.
  size_t components = ComponentsOf(kEntries[index].pattern);
  if (*miblenp < components) components = *miblenp;
  memcpy(mibp, mib, components * sizeof(size_t));
  *miblenp = components;
  return 0;
}

NITRO_EXPORT int mallctlbymib(const size_t* mibp, size_t miblen, void* oldp, size_t* oldlenp, void* newp,
                              size_t newlen) noexcept {
  if (mibp == nullptr) return EINVAL;
  nitro::EnsureStarted();
  // A MIB from mallctlnametomib: the entry first, a number where the name
  // has one; its length is the name's component count.
  if (miblen == 0 || mibp[0] >= kEntryCount || miblen != ComponentsOf(kEntries[mibp[0]].pattern)) return ENOENT;
  size_t mib[kMaxComponents] = {};
  memcpy(mib, mibp, miblen * sizeof(size_t));
  return Control(mibp[0], mib, oldp, oldlenp, newp, newlen);
}

}  // extern "C"
