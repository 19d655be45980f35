/* Defect 6 (issue 8): free() of a pointer into a PROT_NONE mapping. The
 * foreign-pointer check (LibcMayOwn) reads a chunk header in front of the
 * pointer, and mincore() succeeds on PROT_NONE pages, so the baseline dies of
 * SIGSEGV inside free with no message. NitroHeap must report the invalid free
 * ("nitroheap: ..." on stderr) and abort (SIGABRT), in every mode.
 *
 * Usage: free_protnone [mid|start|end]
 *   mid:   free(base + 4096 + 16), the header in front lies in PROT_NONE
 *   start: free(base + 16), the whole mapping around it is PROT_NONE
 *   end:   free(base + 4096), the page in front is PROT_NONE too
 * (glibc's own free also dies on this pointer, SIGSEGV or SIGABRT: only the
 * preloaded run is checked.) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "mid";
  free(malloc(32)); /* make sure the allocator is up */
  char* base = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    perror("mmap");
    return 2;
  }
  char* p = base + 4096 + 16;
  if (strcmp(where, "start") == 0) p = base + 16;
  if (strcmp(where, "end") == 0) p = base + 4096;
  fprintf(stderr, "free_protnone: freeing %p (%s) of PROT_NONE mapping %p\n", (void*)p, where, (void*)base);
  void* volatile q = p; /* hide the origin from the compiler's free checks */
  free(q);
  fprintf(stderr, "free_protnone: free returned (the invalid free was not reported)\n");
  return 1;
}
