/* Heap contracts as a C program uses them (nitroheap.h): partition limits,
 * the pressure callback, the process limit, nitro_ctl and the statistics.
 * Linked with malloc = "//abi:malloc"; the BUILD file gives it
 * NITROHEAP_OPTIONS with a contract for the partition named "configured".
 * Exits 0 when every check holds, else 1 after printing the failures. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nitroheap/nitroheap.h"

static int failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                          \
    }                                                                      \
  } while (0)

#define BLOCK (256u << 10)

struct pressure_log {
  int calls;
  size_t used, soft;
  nitro_partition_t* partition;
};

/* Runs outside NitroHeap's locks: it may allocate, also in the partition
 * that crossed its soft limit. */
static void on_pressure(nitro_partition_t* partition, size_t used, size_t soft_limit, void* ctx) {
  struct pressure_log* log = (struct pressure_log*)ctx;
  log->calls++;
  log->used = used;
  log->soft = soft_limit;
  CHECK(partition == log->partition);
  void* volatile a = malloc(100);
  void* volatile b = nitro_partition_malloc(partition, 100);
  CHECK(a != NULL && b != NULL);
  free(a);
  nitro_partition_free(partition, b);
}

static uint64_t ctl_read(const char* name) {
  uint64_t v = 0;
  size_t len = sizeof(v);
  int err = nitro_ctl(name, &v, &len, NULL, 0);
  if (err != 0) fprintf(stderr, "nitro_ctl(%s) = %d\n", name, err);
  CHECK(err == 0);
  return v;
}

int main(void) {
  nitro_partition_t* db = nitro_partition_create("db");
  CHECK(db != NULL);

  /* Bad input: -1 with EINVAL, limits unchanged. */
  errno = 0;
  CHECK(nitro_partition_set_limit(NULL, 1 << 20, 0) == -1 && errno == EINVAL);
  CHECK(nitro_partition_set_limit(db, 4u << 20, 3u << 20) == 0);
  errno = 0;
  CHECK(nitro_partition_set_limit(db, 1u << 20, 2u << 20) == -1 && errno == EINVAL);
  CHECK(ctl_read("contract.db.hard") == 4u << 20);
  CHECK(ctl_read("contract.db.soft") == 3u << 20);
  errno = 0;
  CHECK(nitro_partition_on_pressure(NULL, on_pressure, NULL) == -1 && errno == EINVAL);

  struct pressure_log log = {0, 0, 0, db};
  CHECK(nitro_partition_on_pressure(db, on_pressure, &log) == 0);

  /* Fill the partition: the soft limit calls back once, the hard limit
   * fails cleanly. */
  void* blocks[64];
  int n = 0;
  for (;;) {
    errno = 0;
    void* p = nitro_partition_malloc(db, BLOCK);
    if (p == NULL) {
      CHECK(errno == ENOMEM);
      break;
    }
    memset(p, 0x5a, BLOCK);
    blocks[n++] = p;
    if (n == 64) break;
  }
  CHECK(n > 0 && n < 64);
  CHECK((size_t)n * BLOCK <= 4u << 20);
  CHECK(log.calls == 1);
  CHECK(log.used >= 3u << 20);
  CHECK(log.soft == 3u << 20);

  /* Nothing else is affected: malloc and other partitions still work. */
  void* volatile big = malloc(8u << 20);
  CHECK(big != NULL);
  free(big);
  nitro_partition_t* other = nitro_partition_create("other");
  void* o = nitro_partition_malloc(other, 8u << 20);
  CHECK(o != NULL);
  nitro_partition_free(other, o);

  /* The statistics show the contract. */
  size_t len = nitro_stats_json(NULL, 0);
  char* json = malloc(len + 1);
  nitro_stats_json(json, len + 1);
  char expect[96];
  snprintf(expect, sizeof(expect), "\"contract_hard_limit\":%u,\"contract_soft_limit\":%u", 4u << 20, 3u << 20);
  CHECK(strstr(json, expect) != NULL);
  CHECK(strstr(json, "\"contract_crossings\":1,\"contract_callbacks\":1,") != NULL);
  CHECK(strstr(json, "\"memory_limit_source\":") != NULL);
  free(json);
  /* The typed snapshot: contracts[i] belongs to partitions[i]; a caller
   * with the struct before the contracts were appended gets that prefix. */
  nitro_stats_t* st = calloc(1, sizeof(*st));
  st->size = sizeof(*st);
  CHECK(nitro_stats_snapshot(st) == 0);
  int found = 0;
  for (uint32_t i = 0; i < st->partition_count; i++) {
    if (strcmp(st->partitions[i].name, "db") != 0) continue;
    found = 1;
    CHECK(st->contracts[i].hard_limit == 4u << 20);
    CHECK(st->contracts[i].crossings == 1 && st->contracts[i].callbacks == 1);
    CHECK(st->contracts[i].use > 0 && st->contracts[i].use <= 4u << 20);
  }
  CHECK(found);
  memset(st, 0, sizeof(*st));
  st->size = (uint32_t)offsetof(nitro_stats_t, contracts);
  CHECK(nitro_stats_snapshot(st) == 0);
  CHECK(st->size == offsetof(nitro_stats_t, contracts) && st->partition_count >= 2 && st->contracts[0].use == 0);
  st->size = (uint32_t)offsetof(nitro_stats_t, contracts) - 1;
  CHECK(nitro_stats_snapshot(st) == EINVAL);
  free(st);
  CHECK(ctl_read("contract.db.crossings") == 1);
  CHECK(ctl_read("contract.db.refusals") >= 1);
  CHECK(ctl_read("contract.db.use") <= 4u << 20);
  CHECK(ctl_read("contract.db.last_pressure_ns") != 0);

  /* Frees make room again; raising the limit through nitro_ctl too. */
  nitro_partition_free(db, blocks[--n]);
  void* again = nitro_partition_malloc(db, BLOCK);
  CHECK(again != NULL);
  blocks[n++] = again;
  uint64_t bigger = 64u << 20;
  CHECK(nitro_ctl("contract.db.hard", NULL, NULL, &bigger, sizeof(bigger)) == 0);
  uint64_t too_small_soft = 128u << 20;
  CHECK(nitro_ctl("contract.db.soft", NULL, NULL, &too_small_soft, sizeof(too_small_soft)) == EINVAL);
  CHECK(nitro_ctl("contract.db.use", NULL, NULL, &bigger, sizeof(bigger)) == EPERM);
  CHECK(nitro_ctl("contract.nosuch.hard", NULL, NULL, &bigger, sizeof(bigger)) == ENOENT);
  void* more = nitro_partition_malloc(db, 8u << 20);
  CHECK(more != NULL);
  nitro_partition_free(db, more);
  while (n > 0) nitro_partition_free(db, blocks[--n]);

  /* A contract from NITROHEAP_OPTIONS, applied when the partition is made. */
  nitro_partition_t* configured = nitro_partition_create("configured");
  CHECK(configured != NULL);
  CHECK(ctl_read("contract.configured.hard") == 2u << 20);
  CHECK(ctl_read("contract.configured.soft") == 1u << 20);
  errno = 0;
  CHECK(nitro_partition_malloc(configured, 4u << 20) == NULL && errno == ENOMEM);

  /* The process limit: past it malloc fails with ENOMEM; 0 removes it. */
  CHECK(nitro_set_memory_limit(1) == 0);
  CHECK(ctl_read("opt.memory_limit") == 1);
  errno = 0;
  void* volatile refused = malloc(32u << 20);
  int refused_errno = errno;
  CHECK(nitro_set_memory_limit(0) == 0);
  CHECK(refused == NULL && refused_errno == ENOMEM);
  void* volatile fine = malloc(32u << 20);
  CHECK(fine != NULL);
  free(fine);
  uint64_t limit = 1u << 30;
  CHECK(nitro_ctl("opt.memory_limit", NULL, NULL, &limit, sizeof(limit)) == 0);
  CHECK(ctl_read("opt.memory_limit") == 1u << 30);
  limit = 0;
  CHECK(nitro_ctl("opt.memory_limit", NULL, NULL, &limit, sizeof(limit)) == 0);

  nitro_partition_destroy(db);
  nitro_partition_destroy(other);
  nitro_partition_destroy(configured);
  if (failures) fprintf(stderr, "%d checks failed\n", failures);
  else printf("contract_api_test: all checks passed\n");
  return failures ? 1 : 0;
}
