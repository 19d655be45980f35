/* Linked against the installed NitroHeap (pkg-config or CMake): prints
 * whether NitroHeap serves this program's malloc, and what its statistics
 * say about it. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nitroheap/nitroheap.h>

int main(void) {
  char* block = malloc(100);
  if (block == NULL) return 1;
  memset(block, 1, 100);
  uint64_t allocations = 0;
  size_t len = sizeof(allocations);
  int ctl = nitro_ctl("stats.allocations", &allocations, &len, NULL, 0);
  printf("active=%d owns=%d usable=%zu ctl=%d counted=%d\n", nitro_is_active(),
         nitro_owns(block), malloc_usable_size(block), ctl, allocations >= 1);
  free(block);
  return 0;
}
