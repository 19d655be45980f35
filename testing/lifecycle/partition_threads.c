/* Partition calls read the thread's cache of a partition with one load at
 * a thread-pointer offset the partition recorded when it was made
 * (core/cache_slots.h). In the shared object that offset is the dynamic
 * (initial-exec) TLS block's: this program runs the partition fast paths
 * under LD_PRELOAD in the main thread, in new threads whose very first
 * allocator call is nitro_partition_malloc, in a trait partition
 * (nitro_partition_for_traits), and in a forked child. Each block is
 * written and checked, so a cache read from the wrong place shows as a
 * crash, a report or a block handed out twice.
 *
 * The functions are looked up at run time: without NitroHeap loaded the
 * program prints "SKIP" and exits 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct nitro_partition nitro_partition_t;
typedef nitro_partition_t* (*CreateFn)(const char*);
typedef nitro_partition_t* (*ForTraitsFn)(int);
typedef void* (*MallocFn)(nitro_partition_t*, size_t);
typedef void (*FreeFn)(nitro_partition_t*, void*);

#define kHeld 200
#define kRounds 20
#define kThreads 4
#define kLowLatency (0x80 | (1 << 15)) /* NITRO_TRAIT_LOW_LATENCY (nitroheap.h) */

static MallocFn pmalloc;
static FreeFn pfree;

/* kRounds times: kHeld blocks allocated, filled with their own tag, checked,
 * freed. Returns the number of faults found (0 when all is well). */
static int Churn(nitro_partition_t* part, unsigned tag) {
  void* held[kHeld];
  int bad = 0;
  for (int round = 0; round < kRounds; round++) {
    for (int i = 0; i < kHeld; i++) {
      size_t size = 16 + (size_t)((i * 37) % 512);
      held[i] = pmalloc(part, size);
      if (held[i] == NULL) return bad + 1;
      memset(held[i], (int)((tag + (unsigned)i) & 0xff), size);
    }
    for (int i = 0; i < kHeld; i++) {
      size_t size = 16 + (size_t)((i * 37) % 512);
      const unsigned char* b = held[i];
      unsigned char want = (unsigned char)((tag + (unsigned)i) & 0xff);
      if (b[0] != want || b[size - 1] != want) bad++;
      pfree(part, held[i]);
    }
  }
  return bad;
}

struct Job {
  nitro_partition_t* part;
  unsigned tag;
  int bad;
};

static void* Worker(void* arg) {
  struct Job* job = arg;
  /* This thread's first allocator call: its slot still holds the sentinel. */
  job->bad = Churn(job->part, job->tag);
  return NULL;
}

int main(void) {
  CreateFn create = (CreateFn)dlsym(RTLD_DEFAULT, "nitro_partition_create");
  ForTraitsFn for_traits = (ForTraitsFn)dlsym(RTLD_DEFAULT, "nitro_partition_for_traits");
  pmalloc = (MallocFn)dlsym(RTLD_DEFAULT, "nitro_partition_malloc");
  pfree = (FreeFn)dlsym(RTLD_DEFAULT, "nitro_partition_free");
  if (create == NULL || for_traits == NULL || pmalloc == NULL || pfree == NULL) {
    printf("SKIP: NitroHeap's partition API is not loaded\n");
    return 0;
  }
  nitro_partition_t* parts[2] = {create("lifecycle-threads"), for_traits(kLowLatency)};
  if (parts[0] == NULL || parts[1] == NULL) {
    printf("FAIL: no partition\n");
    return 1;
  }
  int failures = 0;
  for (int p = 0; p < 2; p++) {
    int bad = Churn(parts[p], 1);
    printf("%s main thread, partition %d: %d bad blocks\n", bad ? "FAIL" : "ok  ", p, bad);
    failures += bad != 0;

    pthread_t threads[kThreads];
    struct Job jobs[kThreads];
    for (int t = 0; t < kThreads; t++) {
      jobs[t] = (struct Job){parts[p], (unsigned)(t + 2) * 7u, 0};
      if (pthread_create(&threads[t], NULL, Worker, &jobs[t]) != 0) return 1;
    }
    for (int t = 0; t < kThreads; t++) {
      pthread_join(threads[t], NULL);
      printf("%s new thread %d, partition %d: %d bad blocks\n", jobs[t].bad ? "FAIL" : "ok  ", t, p,
             jobs[t].bad);
      failures += jobs[t].bad != 0;
    }

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) _exit(Churn(parts[p], 99) == 0 ? 0 : 1);
    int status = 0;
    int ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("%s forked child, partition %d (status %d)\n", ok ? "ok  " : "FAIL", p, status);
    failures += !ok;
  }
  return failures == 0 ? 0 : 1;
}
