#include "telemetry/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/contract.h"
#include "core/movable.h"
#include "core/heap.h"
#include "core/os.h"
#include "core/partition.h"

namespace nitro {

// One entry of the public per-class table for each small size class but
// kZeroSizeClass (malloc(0)'s objects count in the totals only: 0 bytes each).
static_assert(NITRO_STATS_CLASSES == kLargestClass,
              "NITRO_STATS_CLASSES in nitroheap.h must match the engine's size classes");
namespace {

struct CounterField {
  const char* name;
  size_t offset;
};

#define NITRO_COUNTER(f) {#f, offsetof(nitro_counters_t, f)}
constexpr CounterField kCounterFields[] = {
    NITRO_COUNTER(allocations),        NITRO_COUNTER(frees),
    NITRO_COUNTER(live_objects),       NITRO_COUNTER(live_bytes),
    NITRO_COUNTER(live_requested_bytes), NITRO_COUNTER(mapped_bytes),
    NITRO_COUNTER(committed_bytes),    NITRO_COUNTER(returned_bytes),
    NITRO_COUNTER(free_cached_bytes),  NITRO_COUNTER(slabs),
    NITRO_COUNTER(slab_objects),       NITRO_COUNTER(slab_free_objects),
    NITRO_COUNTER(thread_cache_bytes), NITRO_COUNTER(middle_layer_bytes),
    NITRO_COUNTER(remote_free_backlog), NITRO_COUNTER(quarantine_bytes),
    NITRO_COUNTER(lock_contention),    NITRO_COUNTER(sampled_allocations),
};
#undef NITRO_COUNTER
constexpr size_t kCounterCount = sizeof(kCounterFields) / sizeof(kCounterFields[0]);
static_assert(kCounterCount * sizeof(uint64_t) == sizeof(nitro_counters_t),
              "every counter has a name");

uint64_t& Field(nitro_counters_t& c, size_t i) {
  return *reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&c) + kCounterFields[i].offset);
}
uint64_t Field(const nitro_counters_t& c, size_t i) {
  return *reinterpret_cast<const uint64_t*>(reinterpret_cast<const char*>(&c) + kCounterFields[i].offset);
}

// The thread caches' counters, summed.
struct CacheSums {
  uint64_t allocs[kNumClasses];
  uint64_t frees[kNumClasses];
  uint64_t cached[kNumClasses];
};

void AddCache(const ThreadCache* tc, void* ctx) {
  auto* sums = static_cast<CacheSums*>(ctx);
  ThreadCache::Counters c = tc->ReadCounters();
  for (int i = 1; i < kNumClasses; i++) {
    sums->allocs[i] += c.allocs[i];
    sums->frees[i] += c.frees[i];
    sums->cached[i] += tc->ListCount(i);
  }
}

class JsonWriter {
 public:
  JsonWriter(char* buf, size_t len) : buf_(buf), len_(len) {}
  __attribute__((format(printf, 2, 3))) void Add(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(pos_ < len_ ? buf_ + pos_ : nullptr, pos_ < len_ ? len_ - pos_ : 0, fmt, ap);
    va_end(ap);
    if (n > 0) pos_ += static_cast<size_t>(n);
  }
  // JSON is UTF-8: a name that is not (a partition named with Latin-1
  // bytes) would make the whole document unreadable, so each byte of an
  // invalid sequence is written as U+FFFD.
  void String(const char* s) {
    Add("\"");
    while (*s) {
      unsigned char ch = static_cast<unsigned char>(*s);
      size_t n = Utf8SequenceLength(reinterpret_cast<const unsigned char*>(s));
      if (n > 1) {
        Add("%.*s", static_cast<int>(n), s);
        s += n;
        continue;
      }
      if (ch == '"' || ch == '\\') Add("\\%c", ch);
      else if (ch < 0x20 || ch == 0x7f) Add("\\u%04x", ch);
      else if (ch >= 0x80) Add("\\ufffd");
      else Add("%c", ch);
      s++;
    }
    Add("\"");
  }

  // The length of the valid multi-byte UTF-8 sequence at p (2 to 4), or 1.
  static size_t Utf8SequenceLength(const unsigned char* p) {
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 1;
    for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xc0) != 0x80) return 1;  // also stops at the terminating NUL
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    return overlong || surrogate || cp > 0x10ffff ? 1 : n;
  }
  void Counters(const nitro_counters_t& c) {
    for (size_t i = 0; i < kCounterCount; i++) {
      Add("%s\"%s\":%llu", i ? "," : "", kCounterFields[i].name,
          static_cast<unsigned long long>(Field(c, i)));
    }
  }
  // A contract's state as flat counters ("contract_use", ...), so that
  // readers that take every partition field as a number keep working.
  void Contract(const nitro_contract_stats_t& c, const char* prefix) {
    Add(",\"%shard_limit\":%llu,\"%ssoft_limit\":%llu,\"%suse\":%llu,\"%scrossings\":%llu,"
        "\"%scallbacks\":%llu,\"%srefusals\":%llu,\"%slast_pressure_ns\":%llu",
        prefix, static_cast<unsigned long long>(c.hard_limit), prefix,
        static_cast<unsigned long long>(c.soft_limit), prefix, static_cast<unsigned long long>(c.use), prefix,
        static_cast<unsigned long long>(c.crossings), prefix, static_cast<unsigned long long>(c.callbacks),
        prefix, static_cast<unsigned long long>(c.refusals), prefix,
        static_cast<unsigned long long>(c.last_pressure_ns));
  }
  size_t length() const { return pos_; }

 private:
  char* buf_;
  size_t len_;
  size_t pos_ = 0;
};

}  // namespace

bool CounterByName(const nitro_counters_t& c, const char* name, uint64_t* out) {
  for (size_t i = 0; i < kCounterCount; i++) {
    if (strcmp(kCounterFields[i].name, name) == 0) {
      *out = Field(c, i);
      return true;
    }
  }
  return false;
}

void CollectStats(nitro_stats_t* out) {
  memset(out, 0, sizeof(*out));
  out->version = NITRO_STATS_VERSION;
  out->size = sizeof(nitro_stats_t);
  out->pid = static_cast<uint64_t>(os::ProcessId());
  movable::Stats moved;
  movable::GetStats(&moved);
  static_assert(sizeof(moved) == sizeof(out->movable), "the C struct mirrors the movable heap's");
  memcpy(&out->movable, &moved, sizeof(moved));
  Partition* def = DefaultPartition();
  if (def == nullptr) return;
  CacheSums sums;
  memset(&sums, 0, sizeof(sums));
  ForEachThreadCache(AddCache, &sums);
  const ThreadCache::Counters& gone = ExitedThreadCounters();
  for (int i = 1; i < kNumClasses; i++) {
    sums.allocs[i] += __atomic_load_n(&gone.allocs[i], __ATOMIC_RELAXED);
    sums.frees[i] += __atomic_load_n(&gone.frees[i], __ATOMIC_RELAXED);
  }
  out->threads = GetHeapStats().threads;
  ProcessLimitState lim = GetProcessLimit();
  out->memory_limit = nitro_contract_stats_t{lim.limit, lim.pressure_point, lim.use, lim.crossings, 0,
                                             lim.refusals, lim.last_pressure_ns};
  out->memory_limit_source = static_cast<uint32_t>(lim.source);
  // Summed before the partition table is locked (the registry's lock ranks
  // before it), in memory of its own: too large for a helper's stack.
  const size_t others_bytes = RoundUp(sizeof(PartitionCacheSums) * kCachedPartitions, kPageSize);
  auto* others = static_cast<PartitionCacheSums*>(os::Reserve(others_bytes, kPageSize));  // zero
  if (others != nullptr) SumPartitionCaches(others);

  Partition::ForEach([&](Partition* p) {
    bool is_default = p == def;
    nitro_counters_t c;
    memset(&c, 0, sizeof(c));
    uint64_t small_live_usable = 0, small_live_requested = 0;
    // Another partition's thread caches count its objects as the default
    // partition's count malloc's.
    static const PartitionCacheSums kNoCaches = {};
    const uint64_t* c_allocs = sums.allocs;
    const uint64_t* c_frees = sums.frees;
    const uint64_t* c_cached = sums.cached;
    if (!is_default) {
      const PartitionCacheSums& own =
          others != nullptr && p->id() < kCachedPartitions ? others[p->id()] : kNoCaches;
      c_allocs = own.allocs;
      c_frees = own.frees;
      c_cached = own.cached;
    }
    for (int cls = 1; cls < kNumClasses; cls++) {
      CentralStats cs = p->central(cls).Stats();
      uint64_t size = kSizeClasses.size(cls);
      uint64_t allocs = cs.direct_allocs + c_allocs[cls];
      uint64_t frees = cs.direct_frees + c_frees[cls];
      uint64_t live = allocs > frees ? allocs - frees : 0;
      c.allocations += allocs;
      c.frees += frees;
      c.live_objects += live;
      c.live_bytes += live * size;
      small_live_usable += live * size;
      // Per object only the class is known: estimate the request as the
      // middle of the sizes the class serves.
      uint64_t smallest = cls == kZeroSizeClass ? 0 : (cls > 1 ? kSizeClasses.size(cls - 1) + 1 : 1);
      small_live_requested += live * ((smallest + size) / 2);
      uint64_t capacity = cs.slabs * kSizeClasses.info(cls).capacity;
      c.slabs += cs.slabs;
      c.slab_objects += capacity;
      c.slab_free_objects += cs.span_free_objects;
      c.middle_layer_bytes += cs.transfer_objects * size;
      c.remote_free_backlog += cs.transfer_objects;
      c.lock_contention += cs.lock_contention;
      uint64_t cached = c_cached[cls];
      c.thread_cache_bytes += cached * size;
      if (is_default && cls != kZeroSizeClass) {
        nitro_class_stats_t& k = out->classes[cls - 1];
        k.size = static_cast<uint32_t>(size);
        k.allocations = allocs;
        k.frees = frees;
        k.live_objects = live;
        k.slabs = cs.slabs;
        k.slab_objects = capacity;
        k.slab_free_objects = cs.span_free_objects;
        k.thread_cache_objects = cached;
        k.middle_layer_objects = cs.transfer_objects;
      }
    }
    c.live_requested_bytes += small_live_requested;
    (void)small_live_usable;
    PartitionStats ps = p->Stats();
    c.allocations += ps.large_allocs_total;
    c.frees += ps.large_frees_total;
    c.live_objects += ps.large_allocations;
    c.live_bytes += ps.large_usable_bytes;
    c.live_requested_bytes += ps.large_bytes;
    c.mapped_bytes = ps.pages.reserved_bytes;
    // Quarantined large runs not yet given back are committed memory too
    // (strict holds up to 256 MiB of them).
    c.committed_bytes = ps.pages.in_use_bytes + ps.pages.free_committed_bytes + ps.pages.quarantine_committed_bytes;
    c.returned_bytes = ps.pages.released_total_bytes;
    c.free_cached_bytes = ps.pages.free_committed_bytes;
    c.quarantine_bytes = ps.pages.quarantine_bytes;
    c.lock_contention += ps.lock_contention;
    if (is_default) {
      c.sampled_allocations = GuardedSamples();
      GuardedPoolCounts g = GuardedCounts();
      c.allocations += g.allocations;
      c.frees += g.frees;
      c.live_objects += g.live_objects;
      c.live_bytes += g.live_bytes;
      c.live_requested_bytes += g.live_bytes;
    }
    for (size_t i = 0; i < kCounterCount; i++) Field(out->total, i) += Field(c, i);
    if (out->partition_count < NITRO_STATS_MAX_PARTITIONS) {
      nitro_partition_stats_t& ps_out = out->partitions[out->partition_count++];
      snprintf(ps_out.name, sizeof(ps_out.name), "%s", p->name());
      ps_out.counters = c;
      ContractState cs = p->contract().State();
      out->contracts[out->partition_count - 1] =
          nitro_contract_stats_t{cs.hard_limit, cs.soft_limit, cs.use, cs.crossings, cs.callbacks, cs.refusals,
                                 cs.last_pressure_ns};
    }
  });
  if (others != nullptr) os::Unmap(others, others_bytes);
}

size_t StatsToJson(const nitro_stats_t& st, char* buf, size_t len, unsigned omit) {
  JsonWriter w(buf, len);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  w.Add("{\"version\":%u", st.version);
  if ((omit & kSectionGeneral) == 0) {
    w.Add(",\"pid\":%llu,\"time_ns\":%llu,\"heap_mode\":\"%s\",\"hardening_mode\":\"%s\"",
          static_cast<unsigned long long>(st.pid),
          static_cast<unsigned long long>(ts.tv_sec) * 1000000000ull + static_cast<unsigned long long>(ts.tv_nsec),
          Mode() == HeapMode::kNitro ? "nitro" : "legacy", ModeName(CurrentMode()));
  }
  if ((omit & kSectionMerged) == 0) {
    w.Add(",\"threads\":%llu,", static_cast<unsigned long long>(st.threads));
    w.Counters(st.total);
    w.Contract(st.memory_limit, "memory_limit_");
    w.Add(",\"memory_limit_source\":\"%s\"",
          LimitSourceName(static_cast<LimitSource>(st.memory_limit_source <= 3 ? st.memory_limit_source : 0)));
    movable::Stats moved;
    memcpy(&moved, &st.movable, sizeof(moved));
    for (size_t i = 0; i < movable::kStatFieldCount; i++) {
      w.Add(",\"movable_%s\":%llu", movable::kStatFields[i].name,
            static_cast<unsigned long long>(moved.*movable::kStatFields[i].field));
    }
  }
  if ((omit & kSectionPartitions) == 0) {
    w.Add(",\"partitions\":{");
    for (uint32_t i = 0; i < st.partition_count; i++) {
      if (i) w.Add(",");
      w.String(st.partitions[i].name);
      w.Add(":{");
      w.Counters(st.partitions[i].counters);
      w.Contract(st.contracts[i], "contract_");
      w.Add("}");
    }
    w.Add("}");
  }
  if ((omit & kSectionClasses) != 0) {
    w.Add("}");
    return w.length();
  }
  w.Add(",\"size_classes\":[");
  for (int i = 0; i < NITRO_STATS_CLASSES; i++) {
    const nitro_class_stats_t& k = st.classes[i];
    w.Add("%s{\"size\":%u,\"allocations\":%llu,\"frees\":%llu,\"live_objects\":%llu,\"slabs\":%llu,"
          "\"slab_objects\":%llu,\"slab_free_objects\":%llu,\"thread_cache_objects\":%llu,"
          "\"middle_layer_objects\":%llu}",
          i ? "," : "", k.size, static_cast<unsigned long long>(k.allocations),
          static_cast<unsigned long long>(k.frees), static_cast<unsigned long long>(k.live_objects),
          static_cast<unsigned long long>(k.slabs), static_cast<unsigned long long>(k.slab_objects),
          static_cast<unsigned long long>(k.slab_free_objects),
          static_cast<unsigned long long>(k.thread_cache_objects),
          static_cast<unsigned long long>(k.middle_layer_objects));
  }
  w.Add("]}");
  return w.length();
}

}  // namespace nitro
