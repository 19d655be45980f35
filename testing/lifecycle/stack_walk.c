// A stack walk through frames of code built without frame pointers: such
// code uses the frame-pointer register for data, here a pointer to an
// inaccessible page just above the thread's stack, where a caller's frame
// would be. The allocator's stack walk (taken for guarded samples and for
// flight-recorder samples) must stop there, not fault. Found with git gc
// under sample_rate=1, where git left a guarded block's end in %rbp: the
// walk faulted on the guard page, and the fault handler reported a heap
// buffer overflow the program never made. Run with sample_rate=1 and with
// profile_rate=1; x86-64 only (the register is named).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static char* g_noaccess;

__attribute__((noinline, optimize("omit-frame-pointer"))) static void* MallocWithBogusFramePointer(size_t n) {
  register char* bp __asm__("rbp") = g_noaccess + 64;
  __asm__ volatile("" : : "r"(bp));
  void* p = malloc(n);
  __asm__ volatile("" : : "r"(bp));
  return p;
}

static void* Thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) free(MallocWithBogusFramePointer(24 + i % 200));
  return NULL;
}

int main(void) {
  // [stack 256 KiB][no-access page]: the bogus frame pointer lies just above
  // the thread's stack, where a frame of a caller would be.
  size_t stack = 256 * 1024;
  char* m = mmap(NULL, stack + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 2;
  g_noaccess = m + stack;
  mprotect(g_noaccess, 4096, PROT_NONE);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, m, stack);
  pthread_t t;
  if (pthread_create(&t, &a, Thread, NULL) != 0) return 2;
  pthread_join(t, NULL);
  puts("ok");
  return 0;
}
