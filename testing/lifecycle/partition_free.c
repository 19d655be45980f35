/* Defect 4 (issue 8): Partition::Free/Reallocate treat every non-slab span as
 * large, so nitro_partition_free(nitro_partition_of(p), p) on a guarded
 * (sample_rate=1) or zero-size-region (mode=strict, malloc(0)) pointer hands
 * the pool's span to the page heap: mallinfo2().hblks underflows to 2^64-1.
 * And nitro_partition_of returns NULL for a guarded allocation malloc made.
 *
 * The functions are looked up at run time: without NitroHeap loaded the
 * program prints "SKIP" and exits 0. For malloc'd blocks of several sizes
 * (0 included): nitro_partition_of(p) must be the default partition,
 * nitro_partition_realloc and nitro_partition_free through it must work, and
 * mallinfo2's counters must stay sane. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct nitro_partition nitro_partition_t;
typedef nitro_partition_t* (*PartitionOfFn)(const void*);
typedef void (*PartitionFreeFn)(nitro_partition_t*, void*);
typedef void* (*PartitionReallocFn)(nitro_partition_t*, void*, size_t);
typedef const char* (*PartitionNameFn)(const nitro_partition_t*);

static int failures = 0;

static void Check(int ok, const char* what, size_t size) {
  printf("%s %s (size %zu)\n", ok ? "ok  " : "FAIL", what, size);
  if (!ok) failures++;
}

static int Sane(const char* when, size_t size) {
  struct mallinfo2 mi = mallinfo2();
  const size_t limit = (size_t)1 << 46; /* 64 TiB: anything above is an underflow */
  int ok = mi.hblks < limit && mi.hblkhd < limit && mi.uordblks < limit && mi.arena < limit;
  if (!ok)
    printf("     %s: hblks=%zu hblkhd=%zu uordblks=%zu arena=%zu\n", when, mi.hblks, mi.hblkhd,
           mi.uordblks, mi.arena);
  Check(ok, when, size);
  return ok;
}

int main(void) {
  PartitionOfFn partition_of = (PartitionOfFn)dlsym(RTLD_DEFAULT, "nitro_partition_of");
  PartitionFreeFn partition_free = (PartitionFreeFn)dlsym(RTLD_DEFAULT, "nitro_partition_free");
  PartitionReallocFn partition_realloc = (PartitionReallocFn)dlsym(RTLD_DEFAULT, "nitro_partition_realloc");
  PartitionNameFn partition_name = (PartitionNameFn)dlsym(RTLD_DEFAULT, "nitro_partition_name");
  if (partition_of == NULL || partition_free == NULL || partition_realloc == NULL || partition_name == NULL) {
    printf("SKIP: NitroHeap's extension API is not loaded\n");
    return 0;
  }
  setvbuf(stdout, NULL, _IONBF, 0); /* the lines before an abort must show */
  static const size_t sizes[] = {24, 0, 1, 100, 4096, 100000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    /* 1: malloc, then free through nitro_partition_of */
    char* p = malloc(n);
    nitro_partition_t* part = partition_of(p);
    Check(p != NULL && part != NULL, "nitro_partition_of(malloc(n)) is not NULL", n);
    if (p == NULL || part == NULL) continue;
    Check(strcmp(partition_name(part), "default") == 0, "it is the default partition", n);
    if (n > 0) memset(p, 0x33, n);
    partition_free(part, p);
    if (!Sane("mallinfo2 after nitro_partition_free", n)) break;
    /* 2: realloc through the partition, then free through it */
    p = malloc(n);
    part = partition_of(p);
    char* q = part != NULL ? partition_realloc(part, p, n + 200) : NULL;
    Check(q != NULL && partition_of(q) == part, "nitro_partition_realloc(nitro_partition_of(p), p, n + 200)", n);
    if (q == NULL) continue;
    memset(q, 0x44, n + 200);
    partition_free(partition_of(q), q);
    if (!Sane("mallinfo2 after realloc and nitro_partition_free", n)) break;
  }
  /* The heap still works afterwards. */
  for (int i = 0; i < 1000; i++) free(malloc((size_t)i * 37));
  Sane("mallinfo2 at the end", 0);
  printf("partition_free: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
