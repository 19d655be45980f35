/* A program written against jemalloc's own header (jemalloc/jemalloc.h)
 * that prints only what every allocator serving jemalloc's *allocx API must
 * agree on: nallocx == sallocx(mallocx), alignment, zeroing, contents kept
 * by rallocx, xallocx never moving, sized frees; and what mallctl's
 * statistics and controls must say about the heap (as redis reads them for
 * INFO memory and MEMORY PURGE), with jemalloc's error codes. Built twice
 * (jemalloc_api_test.sh): linked with -ljemalloc (the reference), and
 * linked with a stub that aborts, run under LD_PRELOAD=libnitroheap.so.
 * Usable sizes themselves differ between allocators and are not printed. */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The probe makes impossible requests on purpose. */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

static int all_zero(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0) return 0;
  }
  return 1;
}

static int pattern_kept(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != (unsigned char)(i * 7 + 3)) return 0;
  }
  return 1;
}

static void fill(unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 3);
}

static const size_t kSizes[] = {1, 7, 16, 24, 100, 1000, 4096, 5000, 65536, 131072, 200000, 1 << 20};
#define NSIZES (sizeof(kSizes) / sizeof(kSizes[0]))

/* stats.<name> after an epoch refresh, as jemalloc's documentation says to
 * read it (redis's zmalloc_get_allocator_info). */
static size_t stat(const char* name) {
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  if (mallctl("epoch", &epoch, &len, &epoch, len) != 0) return 0;
  size_t value = 0;
  len = sizeof(value);
  return mallctl(name, &value, &len, NULL, 0) == 0 ? value : 0;
}

static void probe_mallctl(void) {
  /* 32 MiB the program holds are in allocated; active, resident and mapped
   * are at least allocated. */
  size_t before = stat("stats.allocated");
  enum { kBlocks = 32 };
  void* blocks[kBlocks];
  for (int i = 0; i < kBlocks; i++) {
    blocks[i] = mallocx(1 << 20, 0);
    memset(blocks[i], 1, 1 << 20);
  }
  size_t small_before = stat("stats.allocated");
  void* smalls[4096];
  for (int i = 0; i < 4096; i++) smalls[i] = mallocx(256, 0);
  size_t held = stat("stats.allocated");
  printf("mallctl stats.allocated: grew by at least 32M %d, grew for 4096 x 256 by at least 1M %d\n",
         held >= before + (32u << 20), held >= small_before + (1u << 20));
  size_t active = stat("stats.active"), resident = stat("stats.resident"), mapped = stat("stats.mapped");
  printf("mallctl stats: active>=allocated %d, resident>=active %d, mapped>=active %d\n", active >= held,
         resident >= active, mapped >= active);
  for (int i = 0; i < 4096; i++) dallocx(smalls[i], 0);
  for (int i = 0; i < kBlocks; i++) dallocx(blocks[i], 0);
  printf("mallctl stats.allocated: back down by at least 32M %d\n", stat("stats.allocated") + (32u << 20) <= held);

  /* The calling thread's counters. */
  uint64_t allocated0 = 0, allocated1 = 0, freed0 = 0, freed1 = 0;
  size_t len = sizeof(uint64_t);
  int rc = mallctl("thread.allocated", &allocated0, &len, NULL, 0);
  rc |= mallctl("thread.deallocated", &freed0, &len, NULL, 0);
  void* p = mallocx(5000, 0);
  dallocx(p, 0);
  rc |= mallctl("thread.allocated", &allocated1, &len, NULL, 0);
  rc |= mallctl("thread.deallocated", &freed1, &len, NULL, 0);
  printf("mallctl thread.allocated/deallocated: rc %d, allocated grew by at least 5000 %d, deallocated grew by at "
         "least 5000 %d\n",
         rc, allocated1 >= allocated0 + 5000, freed1 >= freed0 + 5000);

  /* MEMORY PURGE's sequence, and the arena count. */
  unsigned narenas = 0;
  len = sizeof(narenas);
  rc = mallctl("arenas.narenas", &narenas, &len, NULL, 0);
  char purge[64];
  snprintf(purge, sizeof purge, "arena.%u.purge", narenas);
  printf("mallctl arenas.narenas: rc %d, at least 1 %d; arena.<narenas>.purge (redis) rc %d; arena.4096.purge rc %d; "
         "thread.tcache.flush rc %d\n",
         rc, narenas >= 1, mallctl(purge, NULL, NULL, NULL, 0), mallctl("arena.4096.purge", NULL, NULL, NULL, 0),
         mallctl("thread.tcache.flush", NULL, NULL, NULL, 0));
  size_t page = 0;
  len = sizeof(page);
  rc = mallctl("arenas.page", &page, &len, NULL, 0);
  bool stats_enabled = false;
  len = sizeof(stats_enabled);
  int rc2 = mallctl("config.stats", &stats_enabled, &len, NULL, 0);
  printf("mallctl arenas.page: rc %d, is 4096 %d; config.stats: rc %d, true %d\n", rc, page == 4096, rc2,
         stats_enabled);

  /* The same names by MIB, with the arena index put in its place. */
  size_t mib[3];
  size_t miblen = 3;
  rc = mallctlnametomib("arena.0.purge", mib, &miblen);
  mib[1] = narenas;
  printf("mallctlnametomib(arena.0.purge): rc %d, length is 3 %d; by mib with arena narenas: rc %d\n", rc,
         miblen == 3, mallctlbymib(mib, miblen, NULL, NULL, NULL, 0));
  miblen = 2;
  rc = mallctlnametomib("stats.allocated", mib, &miblen);
  size_t by_mib = 0;
  len = sizeof(by_mib);
  rc2 = mallctlbymib(mib, miblen, &by_mib, &len, NULL, 0);
  printf("mallctlnametomib(stats.allocated): rc %d, length is 2 %d; by mib rc %d, nonzero %d\n", rc, miblen == 2,
         rc2, by_mib > 0);

  /* Bad input gets jemalloc's answers. */
  size_t value = 0;
  len = sizeof(value);
  printf("mallctl unknown name: %s\n", mallctl("stats.no_such_counter", &value, &len, NULL, 0) == ENOENT ? "ENOENT" : "other");
  printf("mallctl arena index out of range: %s\n", mallctl("arena.77.purge", NULL, NULL, NULL, 0) == ENOENT ? "ENOENT" : "other");
  printf("mallctl write of stats.allocated: %s\n",
         mallctl("stats.allocated", NULL, NULL, &value, sizeof(value)) == EPERM ? "EPERM" : "other");
  uint32_t narrow = 0;
  len = sizeof(narrow);
  rc = mallctl("stats.allocated", &narrow, &len, NULL, 0);
  printf("mallctl stats.allocated into 4 bytes: %s, length now %zu\n", rc == EINVAL ? "EINVAL" : "other", len);
  uint32_t epoch_narrow = 1;
  printf("mallctl epoch written with 4 bytes: %s\n",
         mallctl("epoch", NULL, NULL, &epoch_narrow, sizeof(epoch_narrow)) == EINVAL ? "EINVAL" : "other");
  printf("mallctl purge with a value to read: %s\n", mallctl(purge, &value, &len, NULL, 0) == EPERM ? "EPERM" : "other");
  /* A short buffer gets the name's first components (a prefix MIB), which
   * names no value. */
  miblen = 1;
  rc = mallctlnametomib("stats.allocated", mib, &miblen);
  printf("mallctlnametomib into a 1-entry buffer: rc %d, length %zu; by that mib: %s\n", rc, miblen,
         mallctlbymib(mib, miblen, &value, &len, NULL, 0) == ENOENT ? "ENOENT" : "other");
  printf("mallctlbymib with no entries: %s\n", mallctlbymib(mib, 0, &value, &len, NULL, 0) == ENOENT ? "ENOENT" : "other");
}

int main(void) {
  probe_mallctl();
  const struct {
    const char* name;
    int flags;
    size_t align;
  } kFlags[] = {
      {"0", 0, 1},
      {"ZERO", MALLOCX_ZERO, 1},
      {"LG_ALIGN(6)", MALLOCX_LG_ALIGN(6), 64},
      {"ALIGN(4096)|ZERO", MALLOCX_ALIGN(4096) | MALLOCX_ZERO, 4096},
      {"ALIGN(65536)", MALLOCX_ALIGN(65536), 65536},
      {"TCACHE_NONE", MALLOCX_TCACHE_NONE, 1},
  };
  for (size_t f = 0; f < sizeof(kFlags) / sizeof(kFlags[0]); f++) {
    for (size_t i = 0; i < NSIZES; i++) {
      size_t size = kSizes[i];
      int flags = kFlags[f].flags;
      unsigned char* p = mallocx(size, flags);
      size_t usable = p ? sallocx(p, 0) : 0;
      printf("mallocx(%zu, %s): %s, nallocx==sallocx %d, usable>=size %d, aligned %d", size,
             kFlags[f].name, p ? "block" : "NULL", nallocx(size, flags) == usable, usable >= size,
             (uintptr_t)p % kFlags[f].align == 0);
      if (flags & MALLOCX_ZERO) printf(", zero %d", p && all_zero(p, usable));
      printf("\n");
      if (p == NULL) continue;
      fill(p, usable);
      /* Growing moves when it must and keeps the contents and alignment. */
      size_t bigger = size * 3 + 1;
      unsigned char* q = rallocx(p, bigger, flags);
      size_t q_usable = q ? sallocx(q, 0) : 0;
      size_t kept = usable < bigger ? usable : bigger;
      printf("  rallocx(%zu): %s, kept %d, usable>=size %d, aligned %d", bigger, q ? "block" : "NULL",
             q && pattern_kept(q, kept), q_usable >= bigger, (uintptr_t)q % kFlags[f].align == 0);
      /* Bytes past the old usable size are new, whether it moved or not
       * (what lies between the new size and the old usable size after a
       * move differs: jemalloc and NitroHeap copy different amounts). */
      if (flags & MALLOCX_ZERO) {
        printf(", grown part zero %d", q && (q_usable <= usable || all_zero(q + usable, q_usable - usable)));
      }
      printf("\n");
      /* Shrinking keeps the prefix. */
      unsigned char* r = rallocx(q, size / 2 + 1, flags);
      printf("  rallocx(%zu): kept %d\n", size / 2 + 1, r && pattern_kept(r, size / 2 + 1));
      /* A sized free with the size asked for. */
      sdallocx(r, size / 2 + 1, flags);
    }
  }

  /* xallocx: in place only, never moves, returns the usable size. */
  unsigned char* p = mallocx(100, 0);
  fill(p, 100);
  size_t usable = sallocx(p, 0);
  size_t same = xallocx(p, 100, 0, 0);
  printf("xallocx(100 -> 100): unchanged %d\n", same == usable && sallocx(p, 0) == usable);
  size_t huge = xallocx(p, 1 << 20, 0, 0);
  printf("xallocx(100 -> 1M): not grown %d, still usable %d, kept %d\n", huge < (1 << 20),
         sallocx(p, 0) == huge, pattern_kept(p, 100));
  size_t with_extra = xallocx(p, 50, 1 << 20, 0);
  printf("xallocx(100 -> 50 + 1M extra): at least 50 %d, reported %d\n", with_extra >= 50,
         sallocx(p, 0) == with_extra);
  dallocx(p, 0);

  unsigned char* big = mallocx(1 << 20, 0);
  fill(big, 1 << 20);
  size_t shrunk = xallocx(big, 1 << 19, 0, 0);
  printf("xallocx(1M -> 512K): at least 512K %d, reported %d, kept %d\n", shrunk >= (1 << 19),
         sallocx(big, 0) == shrunk, pattern_kept(big, 1 << 19));
  size_t grown = xallocx(big, 1 << 20, 0, MALLOCX_ZERO);
  printf("xallocx(512K -> 1M): reported %d, kept %d, grown part zero %d\n", sallocx(big, 0) == grown,
         pattern_kept(big, 1 << 19), grown <= shrunk || all_zero(big + shrunk, grown - shrunk));
  dallocx(big, MALLOCX_TCACHE_NONE);

  /* A sized free of a small block with any size from the request up to its
   * usable size (NitroHeap checks large blocks' sizes exactly: README). */
  for (size_t n = 1; n <= 2048; n = n * 2 + 1) {
    void* a = mallocx(n, 0);
    void* b = mallocx(n, 0);
    sdallocx(a, n, 0);
    sdallocx(b, sallocx(b, 0), 0);
  }
  printf("sdallocx(request or usable size): accepted\n");

  /* Requests no allocator can serve. */
  size_t impossible = (SIZE_MAX >> 1) + 1;
  printf("nallocx(2^63): %zu\n", nallocx(impossible, 0));
  printf("mallocx(2^63): %s\n", mallocx(impossible, 0) == NULL ? "NULL" : "block");
  void* small = mallocx(64, 0);
  printf("rallocx(64 -> 2^63): %s, old block intact %d\n",
         rallocx(small, impossible, 0) == NULL ? "NULL" : "block", sallocx(small, 0) >= 64);
  dallocx(small, 0);
  return 0;
}
