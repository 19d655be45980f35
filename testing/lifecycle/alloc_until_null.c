/* Defect 12 (issue 8): under an address-space limit (ulimit -v) the baseline
 * reserves a fixed 1 GiB up front: below about 2 GiB every malloc returns
 * NULL from the first call, and with 3 GB it gets 1.0 GiB where glibc gets
 * 2.9. Allocates 1 MiB blocks (touching one byte of each) until malloc
 * returns NULL, then prints "alloc_until_null: N MiB" and frees them.
 *
 * Usage: alloc_until_null [MIN_MIB]   exits 1 when fewer than MIN_MIB MiB
 *        were obtained (default 0: never) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_BLOCKS (64 * 1024) /* 64 GiB: far beyond any limit used here */

static void* blocks[MAX_BLOCKS];

int main(int argc, char** argv) {
  long min_mib = argc > 1 ? atol(argv[1]) : 0;
  long n = 0;
  while (n < MAX_BLOCKS) {
    char* p = malloc(1 << 20);
    if (p == NULL) break;
    p[0] = 1;
    blocks[n++] = p;
  }
  int enomem = errno == ENOMEM;
  for (long i = 0; i < n; i++) free(blocks[i]);
  /* the heap still works after running out */
  char* again = malloc(1 << 20);
  printf("alloc_until_null: %ld MiB\n", n);
  if (n > 0 && again == NULL) {
    fprintf(stderr, "alloc_until_null: malloc fails after everything was freed\n");
    return 1;
  }
  free(again);
  if (n < MAX_BLOCKS && !enomem) fprintf(stderr, "alloc_until_null: malloc returned NULL without ENOMEM\n");
  if (n < min_mib) {
    fprintf(stderr, "alloc_until_null: %ld MiB < %ld MiB expected\n", n, min_mib);
    return 1;
  }
  return 0;
}
