// The fragmentation workload: allocate about TOTAL bytes in small objects of
// mixed sizes (16..1024 bytes, uniform), free 90% of them at random, then
// keep running (churn: free and allocate again at random, the live bytes
// constant). Prints the resident set size at each step and the live bytes.
//
//   fragmentation malloc  [--mib=N] [--churn=N]   malloc/free, whichever allocator is loaded
//   fragmentation movable [--mib=N] [--churn=N]   nitro_halloc/nitro_hfree, then nitro_compact
//
// Not linked with NitroHeap: the movable mode finds nitro_halloc and friends
// with dlsym, so it runs under LD_PRELOAD=libnitroheap.so (and says so
// otherwise). Output, one "key value" per line, for fragmentation.py:
//   rss_start   before the first object
//   live_bytes  requested bytes of the surviving objects
//   rss_peak    after the allocation phase
//   rss_freed   after the frees
//   rss_compact after nitro_compact (movable only)
//   rss_churn   after the churn phase (and, movable, a compaction)
//   checksum    of the survivors' contents (the same in both modes)
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <initializer_list>

namespace {

using Handle = uint64_t;
Handle (*halloc)(size_t, int);
void* (*hptr)(Handle);
void (*hfree)(Handle);
size_t (*compact)(void*, size_t);
void (*quiescent)();

bool g_movable = false;

// The movable heap's own account (movable mode), to stderr: where RSS goes.
void PrintMovableStats(const char* when) {
  static auto* ctl = reinterpret_cast<int (*)(const char*, void*, size_t*, const void*, size_t)>(
      dlsym(RTLD_DEFAULT, "nitro_ctl"));
  if (ctl == nullptr || getenv("FRAGMENTATION_VERBOSE") == nullptr) return;
  fprintf(stderr, "%s:", when);
  for (const char* name : {"live_bytes", "slab_bytes", "handle_capacity", "objects_moved", "slabs_freed",
                           "busy_skipped", "pinned_skipped", "grace_timeouts", "compactions"}) {
    char key[64];
    snprintf(key, sizeof(key), "stats.movable.%s", name);
    uint64_t v = 0;
    size_t len = sizeof(v);
    ctl(key, &v, &len, nullptr, 0);
    fprintf(stderr, " %s=%llu", name, static_cast<unsigned long long>(v));
  }
  fprintf(stderr, "\n");
  // The mappings holding more than 1 MiB.
  FILE* f = fopen("/proc/self/smaps", "r");
  char line[512], range[512] = "";
  while (f != nullptr && fgets(line, sizeof(line), f) != nullptr) {
    unsigned long kb;
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) snprintf(range, sizeof(range), "%s", line);
    if (sscanf(line, "Rss: %lu kB", &kb) == 1 && kb >= 1024) fprintf(stderr, "  %lu kB %s", kb, range);
  }
  if (f != nullptr) fclose(f);
}

uint64_t Rss() {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f == nullptr || fscanf(f, "%lu %lu", &size, &resident) != 2) {
    fprintf(stderr, "fragmentation: cannot read /proc/self/statm\n");
    exit(2);
  }
  fclose(f);
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t g_rng = 88172645463325252ull;
uint64_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

struct Object {
  uint64_t ref;  // a pointer (malloc) or a handle (movable)
  uint32_t size;
};

void* Address(const Object& o) { return g_movable ? hptr(o.ref) : reinterpret_cast<void*>(o.ref); }

Object Make(uint32_t size) {
  Object o{0, size};
  if (g_movable) {
    o.ref = halloc(size, 0);
  } else {
    o.ref = reinterpret_cast<uint64_t>(malloc(size));
  }
  if (o.ref == 0) {
    fprintf(stderr, "fragmentation: out of memory\n");
    exit(1);
  }
  memset(Address(o), static_cast<int>(size & 0xff), size);  // touch every page, like a real program
  return o;
}

void Drop(const Object& o) {
  if (g_movable) hfree(o.ref); else free(reinterpret_cast<void*>(o.ref));
}

uint32_t RandomSize() { return 16 + static_cast<uint32_t>(Next() % 1009); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (strcmp(argv[1], "malloc") != 0 && strcmp(argv[1], "movable") != 0)) {
    fprintf(stderr, "usage: fragmentation malloc|movable [--mib=N] [--churn=N]\n");
    return 2;
  }
  g_movable = strcmp(argv[1], "movable") == 0;
  uint64_t total = uint64_t{1024} << 20;
  uint64_t churn = 0;  // default: as many operations as surviving objects
  for (int i = 2; i < argc; i++) {
    if (strncmp(argv[i], "--mib=", 6) == 0) {
      total = strtoull(argv[i] + 6, nullptr, 10) << 20;
    } else if (strncmp(argv[i], "--churn=", 8) == 0) {
      churn = strtoull(argv[i] + 8, nullptr, 10);
    } else {
      fprintf(stderr, "fragmentation: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (g_movable) {
    halloc = reinterpret_cast<Handle (*)(size_t, int)>(dlsym(RTLD_DEFAULT, "nitro_halloc"));
    hptr = reinterpret_cast<void* (*)(Handle)>(dlsym(RTLD_DEFAULT, "nitro_hptr"));
    hfree = reinterpret_cast<void (*)(Handle)>(dlsym(RTLD_DEFAULT, "nitro_hfree"));
    compact = reinterpret_cast<size_t (*)(void*, size_t)>(dlsym(RTLD_DEFAULT, "nitro_compact"));
    quiescent = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "nitro_quiescent"));
    if (!halloc || !hptr || !hfree || !compact || !quiescent) {
      fprintf(stderr, "fragmentation: movable mode needs NitroHeap (LD_PRELOAD=libnitroheap.so)\n");
      return 2;
    }
  }
  printf("rss_start %llu\n", static_cast<unsigned long long>(Rss()));
  // Allocation phase.
  size_t cap = total / 200 + 16;
  auto* objs = static_cast<Object*>(malloc(cap * sizeof(Object)));
  size_t n = 0;
  for (uint64_t bytes = 0; bytes < total;) {
    if (n == cap) {
      cap *= 2;
      objs = static_cast<Object*>(realloc(objs, cap * sizeof(Object)));
    }
    objs[n] = Make(RandomSize());
    bytes += objs[n].size;
    n++;
  }
  printf("objects %zu\n", n);
  printf("rss_peak %llu\n", static_cast<unsigned long long>(Rss()));
  // Free 90% at random; the survivors go to an array of their own (a real
  // program's index shrinks with its contents too).
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (Next() % 10 == 0) objs[kept++] = objs[i]; else Drop(objs[i]);
  }
  auto* live = static_cast<Object*>(malloc(kept * sizeof(Object)));
  memcpy(live, objs, kept * sizeof(Object));
  free(objs);
  uint64_t live_bytes = 0;
  for (size_t i = 0; i < kept; i++) live_bytes += live[i].size;
  printf("live_objects %zu\n", kept);
  printf("live_bytes %llu\n", static_cast<unsigned long long>(live_bytes));
  printf("rss_freed %llu\n", static_cast<unsigned long long>(Rss()));
  if (g_movable) {
    quiescent();
    compact(nullptr, SIZE_MAX);
    printf("rss_compact %llu\n", static_cast<unsigned long long>(Rss()));
    PrintMovableStats("after compaction");
  }
  // Keep running: replace random survivors (the same size, so the live
  // bytes stay as they are), reading each one first.
  if (churn == 0) churn = kept;
  uint64_t sum = 0;
  for (uint64_t op = 0; op < churn; op++) {
    Object& o = live[Next() % kept];
    sum += static_cast<const unsigned char*>(Address(o))[o.size - 1];
    uint32_t size = o.size;
    Drop(o);
    o = Make(size);
    if (g_movable && op % 1024 == 0) quiescent();
  }
  if (g_movable) {
    quiescent();
    compact(nullptr, SIZE_MAX);
  }
  printf("rss_churn %llu\n", static_cast<unsigned long long>(Rss()));
  if (g_movable) PrintMovableStats("after churn");
  for (size_t i = 0; i < kept; i++) {
    const auto* p = static_cast<const unsigned char*>(Address(live[i]));
    for (uint32_t j = 0; j < live[i].size; j++) {
      if (p[j] != (live[i].size & 0xff)) {
        fprintf(stderr, "fragmentation: object %zu lost its contents\n", i);
        return 1;
      }
    }
    sum += p[0];
  }
  printf("checksum %llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
