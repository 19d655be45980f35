/* Defect 2 (issue 8): nitro_rust_realloc keeps an over-aligned block in place
 * on shrink without updating its recorded size, so nitro_rust_dealloc(p,
 * new_size, align) fails the sized-free check and aborts: always for align
 * 4096, 1 MiB -> 1 MiB - 8 KiB; for align 32, 100 -> 80 whenever the block
 * was guard-sampled (NITROHEAP_OPTIONS=sample_rate=1).
 *
 * The functions are looked up at run time: without NitroHeap loaded the
 * program prints "SKIP" and exits 0.
 *
 * Usage: rust_realloc [page|small|sweep|all]   (default all)
 *   page:  align 4096, 1 MiB -> 1 MiB - 8 KiB, dealloc with the new size
 *   small: align 32, 100 -> 80 (run it with sample_rate=1)
 *   sweep: every (align, old size, new size) of a small table: realloc,
 *          check the contents and the alignment, dealloc with the new size */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void* (*AllocFn)(size_t, size_t);
typedef void (*DeallocFn)(void*, size_t, size_t);
typedef void* (*ReallocFn)(void*, size_t, size_t, size_t);

static AllocFn rust_alloc;
static DeallocFn rust_dealloc;
static ReallocFn rust_realloc;

static int failures = 0;

static void Fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}

static int Same(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
  return 1;
}

/* alloc(old, align), realloc to new, dealloc(p, new, align): aborts on the
 * baseline; any other error is counted. */
static void Case(size_t align, size_t old_size, size_t new_size, int verbose) {
  unsigned seed = (unsigned)(align + old_size + new_size);
  unsigned char* p = rust_alloc(old_size, align);
  if (p == NULL || (uintptr_t)p % align != 0) {
    printf("FAIL alloc(%zu, align %zu) = %p\n", old_size, align, (void*)p);
    failures++;
    return;
  }
  Fill(p, old_size, seed);
  unsigned char* q = rust_realloc(p, old_size, align, new_size);
  size_t keep = old_size < new_size ? old_size : new_size;
  if (q == NULL || (uintptr_t)q % align != 0 || !Same(q, keep, seed)) {
    printf("FAIL realloc(align %zu, %zu -> %zu) = %p\n", align, old_size, new_size, (void*)q);
    failures++;
    if (q == NULL) rust_dealloc(p, old_size, align);
    return;
  }
  Fill(q, new_size, seed + 1);
  rust_dealloc(q, new_size, align); /* the baseline aborts here */
  if (verbose) printf("ok   align %zu: alloc %zu, realloc to %zu, dealloc %zu\n", align, old_size, new_size, new_size);
}

int main(int argc, char** argv) {
  const char* which = argc > 1 ? argv[1] : "all";
  int all = strcmp(which, "all") == 0;
  rust_alloc = (AllocFn)dlsym(RTLD_DEFAULT, "nitro_rust_alloc");
  rust_dealloc = (DeallocFn)dlsym(RTLD_DEFAULT, "nitro_rust_dealloc");
  rust_realloc = (ReallocFn)dlsym(RTLD_DEFAULT, "nitro_rust_realloc");
  if (rust_alloc == NULL || rust_dealloc == NULL || rust_realloc == NULL) {
    printf("SKIP: NitroHeap's Rust API is not loaded\n");
    return 0;
  }
  setvbuf(stdout, NULL, _IONBF, 0); /* the lines before an abort must show */
  if (all || strcmp(which, "page") == 0) Case(4096, 1 << 20, (1 << 20) - 8192, 1);
  if (all || strcmp(which, "small") == 0) Case(32, 100, 80, 1);
  if (!all && strcmp(which, "sweep") != 0) return failures == 0 ? 0 : 1;
  static const size_t aligns[] = {8, 16, 32, 64, 256, 4096, 8192, 65536};
  static const size_t sizes[] = {1, 24, 80, 100, 4000, 4096, 70000, (1 << 20) - 8192, 1 << 20, 3 << 20};
  int cases = 0;
  for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
        Case(aligns[a], sizes[i], sizes[j], 0);
        cases++;
      }
  printf("rust_realloc: %d sweep cases, %d failed\n", cases, failures);
  return failures == 0 ? 0 : 1;
}
