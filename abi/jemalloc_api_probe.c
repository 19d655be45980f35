/* A program written against jemalloc's own header (jemalloc/jemalloc.h)
 * that prints only what every allocator serving jemalloc's *allocx API must
 * agree on: nallocx == sallocx(mallocx), alignment, zeroing, contents kept
 * by rallocx, xallocx never moving, sized frees. Built twice
 * (jemalloc_api_test.sh): linked with -ljemalloc (the reference), and
 * linked with a stub that aborts, run under LD_PRELOAD=libnitroheap.so.
 * Usable sizes themselves differ between allocators and are not printed. */
#include <jemalloc/jemalloc.h>
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

int main(void) {
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
