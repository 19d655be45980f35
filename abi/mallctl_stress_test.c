/* mallctl's statistics and purges while other threads allocate and free:
 * four threads replace random blocks of 1 byte to 300 KB while the main
 * thread reads epoch, stats.allocated and stats.resident and calls
 * arena.0.purge and thread.tcache.flush in a loop for a second. Every call
 * must succeed, and stats.allocated must stay below what the workers can
 * hold at once (4 x 256 blocks of at most 300 KB) and never read 0 while
 * they hold memory. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nitroheap/mallocx.h"

enum { kWorkers = 4, kSlots = 256, kLargest = 300000 };
static volatile int stop;
static volatile int started;

static void* worker(void* arg) {
  unsigned s = (unsigned)(uintptr_t)arg;
  void* slot[kSlots] = {0};
  while (!stop) {
    for (int i = 0; i < 1000; i++) {
      s = s * 1103515245u + 12345u;
      int k = (int)((s >> 8) % kSlots);
      free(slot[k]);
      size_t n = (s >> 16) % ((s & 1) ? kLargest : 512) + 1;
      slot[k] = malloc(n);
      if (slot[k] == NULL) abort();
      memset(slot[k], 1, n < 64 ? n : 64);
    }
    __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
  }
  for (int k = 0; k < kSlots; k++) free(slot[k]);
  return NULL;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
  pthread_t t[kWorkers];
  for (int i = 0; i < kWorkers; i++) pthread_create(&t[i], NULL, worker, (void*)(uintptr_t)(i + 1));
  while (!__atomic_load_n(&started, __ATOMIC_ACQUIRE)) {
  }
  double end = now_s() + 1.0;
  long rounds = 0;
  int failed = 0;
  do {
    uint64_t epoch = 1;
    size_t len = sizeof(epoch);
    size_t allocated = 0, resident = 0;
    failed |= mallctl("epoch", &epoch, &len, &epoch, len) != 0;
    len = sizeof(allocated);
    failed |= mallctl("stats.allocated", &allocated, &len, NULL, 0) != 0;
    len = sizeof(resident);
    failed |= mallctl("stats.resident", &resident, &len, NULL, 0) != 0;
    failed |= mallctl("arena.0.purge", NULL, NULL, NULL, 0) != 0;
    failed |= mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) != 0;
    if (allocated == 0 || allocated > (size_t)kWorkers * kSlots * kLargest + (16u << 20)) {
      fprintf(stderr, "stats.allocated %zu out of range\n", allocated);
      failed = 1;
    }
    rounds++;
  } while (!failed && now_s() < end);
  stop = 1;
  for (int i = 0; i < kWorkers; i++) pthread_join(t[i], NULL);
  printf("%ld rounds, %s\n", rounds, failed ? "FAILED" : "ok");
  return failed || rounds < 1;
}
