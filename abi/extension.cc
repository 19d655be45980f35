// NitroHeap's own extension API (include/nitroheap/nitroheap.h).
#include "nitroheap/nitroheap.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/contract.h"
#include "core/heap.h"
#include "core/movable.h"
#include "core/os.h"
#include "core/partition.h"
#include "core/traits.h"
#include "telemetry/stats.h"

using nitro::Partition;

namespace {
Partition* ToPartition(nitro_partition_t* p) { return reinterpret_cast<Partition*>(p); }
}  // namespace

extern "C" {

NITRO_EXPORT int nitro_is_active(void) { return nitro::Mode() == nitro::HeapMode::kNitro; }

NITRO_EXPORT const char* nitro_heap_mode(void) {
  return nitro::Mode() == nitro::HeapMode::kNitro ? "nitro" : "legacy";
}

NITRO_EXPORT int nitro_owns(const void* p) {
  nitro::PointerInfo info;
  return nitro::Lookup(p, &info) ? 1 : 0;
}

NITRO_EXPORT nitro_partition_t* nitro_partition_create(const char* name) {
  nitro::EnsureStarted();
  return reinterpret_cast<nitro_partition_t*>(nitro::CreatePartition(name, nitro::DefaultPolicy()));
}

NITRO_EXPORT int nitro_partition_destroy(nitro_partition_t* partition) {
  Partition* p = ToPartition(partition);
  // Trait sets name their partitions for the whole process.
  if (p == nullptr || p == nitro::DefaultPartition() || nitro::IsTraitPartition(p)) {
    errno = EINVAL;
    return -1;
  }
  nitro::DestroyPartition(p);
  return 0;
}

NITRO_EXPORT const char* nitro_partition_name(const nitro_partition_t* partition) {
  return reinterpret_cast<const Partition*>(partition)->name();
}

NITRO_EXPORT void* nitro_partition_malloc(nitro_partition_t* partition, size_t size) {
  return nitro::PartitionMalloc(ToPartition(partition), size);
}

NITRO_EXPORT void* nitro_partition_aligned_alloc(nitro_partition_t* partition, size_t align,
                                                 size_t size) {
  if (!nitro::IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return nitro::AllocateIn(ToPartition(partition), size, align, false);
}

NITRO_EXPORT void* nitro_partition_realloc(nitro_partition_t* partition, void* p, size_t size) {
  return nitro::PartitionReallocate(ToPartition(partition), p, size);
}

NITRO_EXPORT void nitro_partition_free(nitro_partition_t* partition, void* p) {
  nitro::PartitionFree(ToPartition(partition), p);
}

NITRO_EXPORT int nitro_partition_id(const nitro_partition_t* partition) {
  return partition == nullptr ? -1 : reinterpret_cast<const Partition*>(partition)->id();
}

NITRO_EXPORT nitro_partition_t* nitro_partition_of(const void* p) {
  return reinterpret_cast<nitro_partition_t*>(nitro::PartitionOf(p));
}

NITRO_EXPORT int nitro_partition_set_limit(nitro_partition_t* partition, size_t hard_bytes, size_t soft_bytes) {
  if (partition == nullptr || ToPartition(partition)->contract().SetLimits(hard_bytes, soft_bytes) != 0) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

NITRO_EXPORT int nitro_partition_on_pressure(nitro_partition_t* partition, nitro_pressure_fn* cb, void* ctx) {
  if (partition == nullptr) {
    errno = EINVAL;
    return -1;
  }
  ToPartition(partition)->contract().SetCallback(cb, ctx);
  return 0;
}

NITRO_EXPORT int nitro_set_memory_limit(size_t bytes) {
  nitro::EnsureStarted();  // start-up sets the default (cgroup) limit: not after this call
  nitro::SetProcessLimit(bytes, 0, nitro::LimitSource::kApi);
  return 0;
}

NITRO_EXPORT size_t nitro_release_free_memory(void) {
  size_t released = 0;
  Partition::ForEach([&released](Partition* p) { released += p->ReleaseFreeMemory(); });
  return released;
}

NITRO_EXPORT void nitro_stats_print(void) { nitro::PrintHeapReport(2); }

namespace {
// The struct before the heap contracts were appended: callers built with
// that header (the Rust crate's RawStats) still get every field they know;
// so do callers built before the movable heap's counters were appended.
constexpr size_t kStatsV1Size = offsetof(nitro_stats_t, contracts);
constexpr size_t kStatsV2Size = offsetof(nitro_stats_t, movable);
}  // namespace

NITRO_EXPORT int nitro_stats_snapshot(nitro_stats_t* out) {
  if (out == nullptr || out->size < kStatsV1Size) return EINVAL;
  if (nitro::Mode() != nitro::HeapMode::kNitro) return ENOSYS;
  if (out->size >= sizeof(nitro_stats_t)) {
    nitro::CollectStats(out);
    return 0;
  }
  auto* full = static_cast<nitro_stats_t*>(nitro::os::Reserve(sizeof(nitro_stats_t), nitro::kPageSize));
  if (full == nullptr) return ENOMEM;
  nitro::CollectStats(full);
  size_t known = out->size >= kStatsV2Size ? kStatsV2Size : kStatsV1Size;
  memcpy(out, full, known);
  out->size = static_cast<uint32_t>(known);
  nitro::os::Unmap(full, sizeof(nitro_stats_t));
  return 0;
}

namespace {

// The snapshot is large (about 10 KiB): built in memory from the kernel, so
// reading statistics never goes through the heap being measured.
struct Snapshot {
  Snapshot() {
    st = static_cast<nitro_stats_t*>(nitro::os::Reserve(sizeof(nitro_stats_t), nitro::kPageSize));
    if (st != nullptr) nitro::CollectStats(st);
  }
  ~Snapshot() {
    if (st != nullptr) nitro::os::Unmap(st, sizeof(nitro_stats_t));
  }
  nitro_stats_t* st;
};

int ReadU64(uint64_t v, void* oldp, size_t* oldlenp) {
  if (oldp == nullptr || oldlenp == nullptr) return 0;
  if (*oldlenp != sizeof(uint64_t)) return EINVAL;
  memcpy(oldp, &v, sizeof(v));
  return 0;
}

int ReadString(const char* s, void* oldp, size_t* oldlenp) {
  if (oldlenp == nullptr) return EINVAL;
  size_t need = strlen(s) + 1;
  if (oldp == nullptr) {
    *oldlenp = need;
    return 0;
  }
  if (*oldlenp < need) return EINVAL;
  memcpy(oldp, s, need);
  *oldlenp = need;
  return 0;
}

// "stats.<counter>", "stats.partitions.<name>.<counter>", "stats.classes.<size>.<field>".
int ReadStat(const char* name, void* oldp, size_t* oldlenp) {
  Snapshot snap;
  if (snap.st == nullptr) return ENOMEM;
  const nitro_stats_t& st = *snap.st;
  uint64_t v;
  if (strcmp(name, "threads") == 0) return ReadU64(st.threads, oldp, oldlenp);
  if (nitro::CounterByName(st.total, name, &v)) return ReadU64(v, oldp, oldlenp);
  if (strncmp(name, "partitions.", 11) == 0) {
    const char* rest = name + 11;
    const char* dot = strrchr(rest, '.');
    if (dot == nullptr) return ENOENT;
    for (uint32_t i = 0; i < st.partition_count; i++) {
      size_t n = strlen(st.partitions[i].name);
      if (static_cast<size_t>(dot - rest) == n && strncmp(rest, st.partitions[i].name, n) == 0 &&
          nitro::CounterByName(st.partitions[i].counters, dot + 1, &v)) {
        return ReadU64(v, oldp, oldlenp);
      }
    }
    return ENOENT;
  }
  if (strncmp(name, "classes.", 8) == 0) {
    char* end;
    unsigned long size = strtoul(name + 8, &end, 10);
    if (*end != '.') return ENOENT;
    for (const nitro_class_stats_t& k : st.classes) {
      if (k.size != size) continue;
      const char* f = end + 1;
      if (strcmp(f, "allocations") == 0) return ReadU64(k.allocations, oldp, oldlenp);
      if (strcmp(f, "frees") == 0) return ReadU64(k.frees, oldp, oldlenp);
      if (strcmp(f, "live_objects") == 0) return ReadU64(k.live_objects, oldp, oldlenp);
      if (strcmp(f, "slabs") == 0) return ReadU64(k.slabs, oldp, oldlenp);
      if (strcmp(f, "slab_objects") == 0) return ReadU64(k.slab_objects, oldp, oldlenp);
      if (strcmp(f, "slab_free_objects") == 0) return ReadU64(k.slab_free_objects, oldp, oldlenp);
      if (strcmp(f, "thread_cache_objects") == 0) return ReadU64(k.thread_cache_objects, oldp, oldlenp);
      if (strcmp(f, "middle_layer_objects") == 0) return ReadU64(k.middle_layer_objects, oldp, oldlenp);
      return ENOENT;
    }
    return ENOENT;
  }
  return ENOENT;
}

// "contract.<partition>.<field>": hard and soft read and write (uint64_t),
// use, crossings, callbacks, refusals and last_pressure_ns read.
int ContractControl(const char* name, void* oldp, size_t* oldlenp, const void* newp, size_t newlen) {
  const char* field = strrchr(name, '.');
  if (field == nullptr || field == name) return ENOENT;
  size_t name_len = static_cast<size_t>(field - name);
  field++;
  Partition* found = nullptr;
  Partition::ForEach([&](Partition* p) {
    if (strlen(p->name()) == name_len && strncmp(p->name(), name, name_len) == 0) found = p;
  });
  if (found == nullptr) return ENOENT;
  // The partition stays listed while the program uses it by name; a
  // concurrent nitro_partition_destroy of it is the program's race.
  nitro::Contract& c = found->contract();
  nitro::ContractState st = c.State();
  bool hard = strcmp(field, "hard") == 0, soft = strcmp(field, "soft") == 0;
  uint64_t value = hard ? st.hard_limit
                   : soft ? st.soft_limit
                   : strcmp(field, "use") == 0 ? st.use
                   : strcmp(field, "crossings") == 0 ? st.crossings
                   : strcmp(field, "callbacks") == 0 ? st.callbacks
                   : strcmp(field, "refusals") == 0 ? st.refusals
                   : strcmp(field, "last_pressure_ns") == 0 ? st.last_pressure_ns
                                                            : ~uint64_t{0};
  if (value == ~uint64_t{0}) return ENOENT;
  if (newp != nullptr || newlen != 0) {
    if (!hard && !soft) return EPERM;
    if (newp == nullptr || newlen != sizeof(uint64_t)) return EINVAL;
    uint64_t v;
    memcpy(&v, newp, sizeof(v));
    int err = hard ? c.SetLimits(v, st.soft_limit) : c.SetLimits(st.hard_limit, v);
    if (err != 0) return err;
  }
  return ReadU64(value, oldp, oldlenp);
}

int ReadOption(const char* name, void* oldp, size_t* oldlenp) {
  // The limit in force (from the cgroup, the options or a call).
  if (strcmp(name, "memory_limit") == 0) return ReadU64(nitro::GetProcessLimit().limit, oldp, oldlenp);
  const nitro::Options& o = nitro::CurrentOptions();
  for (const nitro::OptionSpec* s = nitro::OptionTable(); s->name; s++) {
    if (strcmp(s->name, name) != 0) continue;
    const char* field = reinterpret_cast<const char*>(&o) + s->offset;
    switch (s->type) {
      case nitro::OptionType::kString: return ReadString(field, oldp, oldlenp);
      case nitro::OptionType::kChoice:
        return ReadString(nitro::ModeName(*reinterpret_cast<const nitro::HardeningMode*>(field)), oldp, oldlenp);
      case nitro::OptionType::kBool:
        return ReadU64(__atomic_load_n(reinterpret_cast<const bool*>(field), __ATOMIC_RELAXED), oldp, oldlenp);
      case nitro::OptionType::kSize:
        // The quarantine's "by mode" default reads as the bytes in force.
        if (field == reinterpret_cast<const char*>(&o.quarantine)) {
          return ReadU64(nitro::QuarantineBytes(o), oldp, oldlenp);
        }
        return ReadU64(*reinterpret_cast<const size_t*>(field), oldp, oldlenp);
      case nitro::OptionType::kFileMode:
      case nitro::OptionType::kSignal:
      case nitro::OptionType::kUint:
        return ReadU64(__atomic_load_n(reinterpret_cast<const uint64_t*>(field), __ATOMIC_RELAXED), oldp, oldlenp);
    }
  }
  return ENOENT;
}

}  // namespace

NITRO_EXPORT size_t nitro_stats_json(char* buf, size_t len) {
  Snapshot snap;
  if (snap.st == nullptr) return 0;
  return nitro::StatsToJson(*snap.st, buf, len);
}

NITRO_EXPORT int nitro_ctl(const char* name, void* oldp, size_t* oldlenp, const void* newp,
                           size_t newlen) {
  if (name == nullptr) return EINVAL;
  if (nitro::Mode() != nitro::HeapMode::kNitro) return ENOSYS;
  bool writing = newp != nullptr || newlen != 0;
  if (strcmp(name, "heap.release") == 0 || strcmp(name, "thread.cache.flush") == 0) {
    if (oldp != nullptr) return EPERM;  // actions: nothing to read
    if (name[0] == 'h') nitro_release_free_memory(); else nitro::FlushThreadCache();
    return 0;
  }
  if (strcmp(name, "flight_recorder.dump") == 0 || strcmp(name, "profile.dump") == 0) {
    if (newp == nullptr || newlen == 0 || static_cast<const char*>(newp)[newlen - 1] != '\0') return EINVAL;
    const char* path = static_cast<const char*>(newp);
    return name[0] == 'f' ? nitro::DumpFlightRecording(path)
                          : nitro::DumpHeapProfile(path);
  }
  if (strcmp(name, "opt.memory_limit") == 0 && writing) {
    if (newp == nullptr || newlen != sizeof(uint64_t)) return EINVAL;
    uint64_t old = nitro::GetProcessLimit().limit, value;
    memcpy(&value, newp, sizeof(value));
    nitro::SetProcessLimit(value, 0, nitro::LimitSource::kApi);
    return oldp != nullptr ? ReadU64(old, oldp, oldlenp) : 0;
  }
  if (strncmp(name, "contract.", 9) == 0) return ContractControl(name + 9, oldp, oldlenp, newp, newlen);
  if (strncmp(name, "opt.", 4) == 0 && writing) {
    // A write may also read the old value first, as in mallctl.
    if (newp == nullptr || newlen != sizeof(uint64_t)) return EINVAL;
    uint64_t old = 0;
    size_t old_len = sizeof(old);
    ReadOption(name + 4, &old, &old_len);  // fails only for options that are not numbers: never writable
    uint64_t value;
    memcpy(&value, newp, sizeof(value));
    int err = nitro::SetOptionAtRunTime(name + 4, value);
    if (err == 0 && oldp != nullptr) return ReadU64(old, oldp, oldlenp);
    return err;
  }
  if (writing) {
    // Everything else is read-only; unknown names stay unknown.
    if (strncmp(name, "stats.", 6) == 0 || strncmp(name, "thread.", 7) == 0 || strcmp(name, "version") == 0) {
      return EPERM;
    }
    return ENOENT;
  }
  if (strcmp(name, "thread.allocated") == 0) return ReadU64(nitro::ThisThreadBytes().allocated, oldp, oldlenp);
  if (strcmp(name, "thread.deallocated") == 0) return ReadU64(nitro::ThisThreadBytes().freed, oldp, oldlenp);
  if (strcmp(name, "version") == 0) return ReadString("nitroheap 1 (stats v1)", oldp, oldlenp);
  if (strncmp(name, "stats.movable.", 14) == 0) {
    uint64_t v;
    return nitro::movable::StatByName(name + 14, &v) ? ReadU64(v, oldp, oldlenp) : ENOENT;
  }
  if (strncmp(name, "stats.", 6) == 0) return ReadStat(name + 6, oldp, oldlenp);
  if (strncmp(name, "opt.", 4) == 0) return ReadOption(name + 4, oldp, oldlenp);
  return ENOENT;
}

NITRO_EXPORT uint64_t nitro_thread_allocated(void) {
  return nitro::Mode() == nitro::HeapMode::kNitro ? nitro::ThisThreadBytes().allocated : 0;
}

NITRO_EXPORT uint64_t nitro_thread_deallocated(void) {
  return nitro::Mode() == nitro::HeapMode::kNitro ? nitro::ThisThreadBytes().freed : 0;
}

NITRO_EXPORT void nitro_register_output(nitro_output_fn* fn, void* arg) { nitro::SetOutputCallback(fn, arg); }

NITRO_EXPORT void nitro_register_error(nitro_error_fn* fn, void* arg) { nitro::SetErrorCallback(fn, arg); }

NITRO_EXPORT int nitro_flight_recorder_dump(const char* path) {
  if (path == nullptr) return EINVAL;
  return nitro::DumpFlightRecording(path);
}

NITRO_EXPORT int nitro_heap_profile_dump(const char* path) {
  if (path == nullptr) return EINVAL;
  return nitro::DumpHeapProfile(path);
}

}  // extern "C"
