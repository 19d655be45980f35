/* Defect 11 (issue 8): when main ends with pthread_exit after another thread
 * allocated, the baseline process never exits: the background thread keeps
 * it alive with every signal blocked (only SIGKILL ends it). glibc: the
 * process exits 0 once the last thread is gone. The driver runs this under
 * `timeout`.
 *
 * Usage: pthread_exit_main [joined|detached|running]
 *   joined:   the thread is joined before main's pthread_exit
 *   detached: the thread is detached and may still run at pthread_exit
 *   running:  main exits first; the thread allocates for 200 ms more */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void* Once(void* arg) {
  free(malloc(64));
  if (arg != NULL) { /* running: keep allocating after main is gone */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
      free(malloc(1000));
      clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 200);
  }
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "joined";
  void* keep = malloc(4096);
  memset(keep, 1, 4096);
  pthread_t t;
  if (pthread_create(&t, NULL, Once, strcmp(mode, "running") == 0 ? keep : NULL) != 0) return 2;
  if (strcmp(mode, "joined") == 0) pthread_join(t, NULL);
  else pthread_detach(t);
  printf("main: pthread_exit\n");
  fflush(stdout);
  pthread_exit(NULL);
}
