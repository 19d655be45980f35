// N malloc+free pairs of one small size, for counting instructions per pair
// with callgrind (see callgrind_fastpath.sh). Not linked with NitroHeap: the
// allocator comes from LD_PRELOAD. Prints which object defines malloc, so
// the caller can check that the preload took effect. The loop adds about 12
// instructions per pair of its own (two calls through the PLT, a store, a
// load, the counter).
//
// Usage: fastpath_pairs N [SIZE [API]]      (SIZE defaults to 64)
// API: malloc (the default: malloc/free), partition (nitro_partition_malloc
// / nitro_partition_free in a partition of its own), partition-trait (the
// same in the partition nitro_partition_for_traits(NITRO_TRAIT_LOW_LATENCY)
// names), mallocx-trait
// (mallocx/dallocx with NITRO_TRAIT_LOW_LATENCY), mallocx (flags 0), or
// fresh (N mallocs, then N frees: every object is new, carved out of a
// fresh slab, so the count is the cost of a pair that starts a slab's life),
// or, under every allocator, the entry points beside malloc and free that
// programs call on their hot paths: usable (malloc, malloc_usable_size,
// free: redis counts its memory so on every allocation and free), aligned
// (aligned_alloc(64, SIZE) and free), sized-delete (operator new and the
// sized operator delete C++14 compilers call) and aligned-new (operator
// new with std::align_val_t(32) and the sized aligned delete).
// NitroHeap's functions are looked up at run time, so the program still
// runs under other allocators for the malloc API.
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <new>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s N [SIZE]\n", argv[0]);
    return 2;
  }
  const long n = atol(argv[1]);
  const size_t size = argc > 2 ? static_cast<size_t>(atol(argv[2])) : 64;
  // Warm-up outside the counted difference: start the allocator and its
  // thread cache.
  void* w = malloc(size);
  asm volatile("" : : "r"(w) : "memory");
  free(w);
  const char* api = argc > 3 ? argv[3] : "malloc";
  unsigned sum = 0;
  if (strcmp(api, "malloc") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(malloc(size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");  // keeps the pair and the store
      sum += static_cast<unsigned char>(p[0]);
      free(p);
    }
  } else if (strcmp(api, "partition") == 0 || strcmp(api, "partition-trait") == 0) {
    using CreateFn = void* (*)(const char*);
    using ForTraitsFn = void* (*)(int);
    using MallocFn = void* (*)(void*, size_t);
    using FreeFn = void (*)(void*, void*);
    auto create = reinterpret_cast<CreateFn>(dlsym(RTLD_DEFAULT, "nitro_partition_create"));
    auto for_traits = reinterpret_cast<ForTraitsFn>(dlsym(RTLD_DEFAULT, "nitro_partition_for_traits"));
    auto pmalloc = reinterpret_cast<MallocFn>(dlsym(RTLD_DEFAULT, "nitro_partition_malloc"));
    auto pfree = reinterpret_cast<FreeFn>(dlsym(RTLD_DEFAULT, "nitro_partition_free"));
    if (create == nullptr || for_traits == nullptr || pmalloc == nullptr || pfree == nullptr) {
      fprintf(stderr, "fastpath_pairs: the partition API needs NitroHeap\n");
      return 2;
    }
    // partition-trait: the partition NITRO_TRAIT_LOW_LATENCY names (nitroheap.h).
    void* part = strcmp(api, "partition") == 0 ? create("fastpath") : for_traits(0x80 | (1 << 15));
    pfree(part, pmalloc(part, size));  // warm-up: this thread's cache of it
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(pmalloc(part, size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]);
      pfree(part, p);
    }
  } else if (strcmp(api, "fresh") == 0) {
    // The pointer array from mmap, not from the allocator under test.
    void* mem = mmap(nullptr, sizeof(char*) * static_cast<size_t>(n), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      perror("fastpath_pairs: mmap");
      return 2;
    }
    char** live = static_cast<char**>(mem);
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(malloc(size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      live[i] = p;
    }
    for (long i = 0; i < n; i++) {
      sum += static_cast<unsigned char>(live[i][0]);
      free(live[i]);
    }
    munmap(mem, sizeof(char*) * static_cast<size_t>(n));
  } else if (strcmp(api, "mallocx") == 0 || strcmp(api, "mallocx-trait") == 0) {
    using MallocxFn = void* (*)(size_t, int);
    using DallocxFn = void (*)(void*, int);
    auto mx = reinterpret_cast<MallocxFn>(dlsym(RTLD_DEFAULT, "mallocx"));
    auto dx = reinterpret_cast<DallocxFn>(dlsym(RTLD_DEFAULT, "dallocx"));
    if (mx == nullptr || dx == nullptr) {
      fprintf(stderr, "fastpath_pairs: mallocx needs NitroHeap or jemalloc\n");
      return 2;
    }
    // NITRO_TRAIT_LOW_LATENCY (nitroheap.h).
    const int flags = strcmp(api, "mallocx") == 0 ? 0 : (0x80 | (1 << 15));
    dx(mx(size, flags), flags);  // warm-up
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(mx(size, flags));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]);
      dx(p, flags);
    }
  } else if (strcmp(api, "usable") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(malloc(size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]) + static_cast<unsigned>(malloc_usable_size(p));
      free(p);
    }
  } else if (strcmp(api, "aligned") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(aligned_alloc(64, size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]);
      free(p);
    }
  } else if (strcmp(api, "sized-delete") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(::operator new(size));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]);
      ::operator delete(p, size);
    }
  } else if (strcmp(api, "aligned-new") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = static_cast<char*>(::operator new(size, std::align_val_t(32)));
      p[0] = static_cast<char>(i);
      asm volatile("" : : "r"(p) : "memory");
      sum += static_cast<unsigned char>(p[0]);
      ::operator delete(p, size, std::align_val_t(32));
    }
  } else {
    fprintf(stderr,
            "fastpath_pairs: unknown API %s (malloc, fresh, partition, partition-trait, mallocx, "
            "mallocx-trait, usable, aligned, sized-delete, aligned-new)\n",
            api);
    return 2;
  }
  Dl_info info;
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  const char* from = (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname) ? info.dli_fname : "?";
  printf("pairs=%ld size=%zu sum=%u malloc_from=%s\n", n, size, sum, from);
  return 0;
}
