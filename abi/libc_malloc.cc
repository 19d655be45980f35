// The C library's malloc family, and the glibc-internal names that glibc and
// some programs call directly, so that no allocation escapes to the system
// heap. Each is a one-line call into core/heap.h.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/heap.h"

using nitro::kPageSize;

#define NITRO_ALIAS(target) __attribute__((alias(#target), used, visibility("default")))

extern "C" {

NITRO_EXPORT void* malloc(size_t size) noexcept { return nitro::Malloc(size); }
NITRO_EXPORT void free(void* p) noexcept { nitro::Free(p); }
NITRO_EXPORT void* calloc(size_t n, size_t size) noexcept { return nitro::Calloc(n, size); }
NITRO_EXPORT void* realloc(void* p, size_t size) noexcept { return nitro::Reallocate(p, size); }

NITRO_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return nitro::Reallocate(p, total);
}

NITRO_EXPORT int posix_memalign(void** out, size_t align, size_t size) noexcept {
  if (!nitro::IsPowerOfTwo(align) || align % sizeof(void*) != 0) return EINVAL;
  int saved = errno;
  void* p = nitro::AllocateAligned(align, size);
  if (p == nullptr) {
    errno = saved;  // POSIX returns the error; errno is left as it was
    return ENOMEM;
  }
  *out = p;
  return 0;
}

NITRO_EXPORT void* aligned_alloc(size_t align, size_t size) noexcept {
  return nitro::AllocateAligned(align, size);
}

NITRO_EXPORT void* memalign(size_t align, size_t size) noexcept {
  // glibc rounds a non-power-of-two alignment up rather than failing.
  if (align < nitro::kMinAlign) align = nitro::kMinAlign;
  if (!nitro::IsPowerOfTwo(align)) {
    if (align > (SIZE_MAX >> 1) + 1) {
      errno = EINVAL;
      return nullptr;
    }
    align = size_t{1} << (64 - __builtin_clzll(align));
  }
  return nitro::AllocateAligned(align, size);
}

NITRO_EXPORT void* valloc(size_t size) noexcept { return nitro::AllocateAligned(kPageSize, size); }

NITRO_EXPORT void* pvalloc(size_t size) noexcept {
  size_t rounded = nitro::RoundUp(size == 0 ? 1 : size, kPageSize);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return nitro::AllocateAligned(kPageSize, rounded);
}

NITRO_EXPORT size_t malloc_usable_size(void* p) noexcept { return nitro::UsableSize(p); }
NITRO_EXPORT int malloc_trim(size_t) noexcept { return nitro::Trim() ? 1 : 0; }

// C23 sized frees.
NITRO_EXPORT void free_sized(void* p, size_t size) noexcept { nitro::FreeSized(p, size, 0); }
NITRO_EXPORT void free_aligned_sized(void* p, size_t align, size_t size) noexcept {
  nitro::FreeSized(p, size, align);
}
NITRO_EXPORT void cfree(void* p) noexcept { nitro::Free(p); }

NITRO_EXPORT struct mallinfo2 mallinfo2() noexcept {
  nitro::HeapStats st = nitro::GetHeapStats();
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = st.committed_bytes;
  mi.hblks = st.large_allocations;
  mi.hblkhd = st.large_bytes;
  mi.uordblks = st.allocated_bytes;
  mi.fordblks = st.committed_bytes > st.allocated_bytes ? st.committed_bytes - st.allocated_bytes : 0;
  mi.fsmblks = st.thread_cache_bytes + st.transfer_bytes;
  mi.keepcost = st.free_committed_bytes;
  return mi;
}

NITRO_EXPORT struct mallinfo mallinfo() noexcept {
  struct mallinfo2 m2 = mallinfo2();
  auto clamp = [](size_t v) { return static_cast<int>(v > INT32_MAX ? INT32_MAX : v); };
  struct mallinfo mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = clamp(m2.arena);
  mi.hblks = clamp(m2.hblks);
  mi.hblkhd = clamp(m2.hblkhd);
  mi.uordblks = clamp(m2.uordblks);
  mi.fordblks = clamp(m2.fordblks);
  mi.fsmblks = clamp(m2.fsmblks);
  mi.keepcost = clamp(m2.keepcost);
  return mi;
}

NITRO_EXPORT int mallopt(int param, int value) noexcept {
  // glibc's tuning parameters describe ptmalloc's arenas and mmap threshold,
  // which NitroHeap does not have: report them as not applied (0), as mallopt
  // does for parameters it does not know, rather than pretend.
  (void)param;
  (void)value;
  return 0;
}

NITRO_EXPORT void malloc_stats() noexcept { nitro::PrintHeapReport(2); }

NITRO_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0 || fp == nullptr) {
    errno = EINVAL;
    return -1;
  }
  nitro::HeapStats st = nitro::GetHeapStats();
  fprintf(fp,
          "<malloc version=\"nitroheap-1\">\n"
          "<total type=\"allocated\" size=\"%zu\"/>\n"
          "<total type=\"committed\" size=\"%zu\"/>\n"
          "<total type=\"free_cached\" size=\"%zu\"/>\n"
          "<total type=\"released\" size=\"%zu\"/>\n"
          "<total type=\"reserved\" size=\"%zu\"/>\n"
          "<total type=\"large\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "</malloc>\n",
          st.allocated_bytes, st.committed_bytes, st.free_committed_bytes,
          st.released_total_bytes, st.reserved_bytes, st.large_allocations, st.large_bytes,
          st.committed_bytes);
  return 0;
}

// glibc-internal names. The aliases share the target's code; the header
// attributes (malloc, alloc_size) only matter to callers, hence the pragma.
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wmissing-attributes"
void* __libc_malloc(size_t) noexcept NITRO_ALIAS(malloc);
void __libc_free(void*) noexcept NITRO_ALIAS(free);
void* __libc_calloc(size_t, size_t) noexcept NITRO_ALIAS(calloc);
void* __libc_realloc(void*, size_t) noexcept NITRO_ALIAS(realloc);
void* __libc_memalign(size_t, size_t) noexcept NITRO_ALIAS(memalign);
void* __libc_valloc(size_t) noexcept NITRO_ALIAS(valloc);
void* __libc_pvalloc(size_t) noexcept NITRO_ALIAS(pvalloc);
int __posix_memalign(void**, size_t, size_t) noexcept NITRO_ALIAS(posix_memalign);

}  // extern "C"
