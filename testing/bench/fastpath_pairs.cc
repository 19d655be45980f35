// N malloc+free pairs of one small size, for counting instructions per pair
// with callgrind (see callgrind_fastpath.sh). Not linked with NitroHeap: the
// allocator comes from LD_PRELOAD. Prints which object defines malloc, so
// the caller can check that the preload took effect. The loop adds about 12
// instructions per pair of its own (two calls through the PLT, a store, a
// load, the counter).
//
// Usage: fastpath_pairs N [SIZE]      (SIZE defaults to 64)
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

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
  unsigned sum = 0;
  for (long i = 0; i < n; i++) {
    char* p = static_cast<char*>(malloc(size));
    p[0] = static_cast<char>(i);
    asm volatile("" : : "r"(p) : "memory");  // keeps the pair and the store
    sum += static_cast<unsigned char>(p[0]);
    free(p);
  }
  Dl_info info;
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  const char* from = (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname) ? info.dli_fname : "?";
  printf("pairs=%ld size=%zu sum=%u malloc_from=%s\n", n, size, sum, from);
  return 0;
}
