/* jemalloc's non-standard API as NitroHeap serves it: mallocx, rallocx,
 * xallocx, sallocx, dallocx, sdallocx and nallocx with jemalloc's
 * signatures and flag encoding (the MALLOCX_* macros below are jemalloc's,
 * bit for bit), so a program built against <jemalloc/jemalloc.h> runs
 * unchanged under NitroHeap. NitroHeap's own flags (NITRO_TRAIT_*,
 * NITRO_MALLOCX_PARTITION) are in nitroheap/nitroheap.h. See README,
 * "The jemalloc-style API", for what each flag does here. */
#ifndef NITROHEAP_MALLOCX_H_
#define NITROHEAP_MALLOCX_H_

#include <stddef.h>

#include "nitroheap/nitroheap.h"

/* jemalloc's header declares the same functions and macros; include either. */
#ifndef JEMALLOC_H_

#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ALIGN(a) ((int)(__builtin_ffsl((long)(a)) - 1))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define MALLOCX_TCACHE_NONE MALLOCX_TCACHE(-1)
#define MALLOCX_ARENA(a) ((((int)(a)) + 1) << 20)

#ifdef __cplusplus
extern "C" {
#define NITRO_MALLOCX_NOTHROW throw()
#else
#define NITRO_MALLOCX_NOTHROW
#endif

void* mallocx(size_t size, int flags) NITRO_MALLOCX_NOTHROW;
void* rallocx(void* ptr, size_t size, int flags) NITRO_MALLOCX_NOTHROW;
size_t xallocx(void* ptr, size_t size, size_t extra, int flags) NITRO_MALLOCX_NOTHROW;
size_t sallocx(const void* ptr, int flags) NITRO_MALLOCX_NOTHROW;
void dallocx(void* ptr, int flags) NITRO_MALLOCX_NOTHROW;
void sdallocx(void* ptr, size_t size, int flags) NITRO_MALLOCX_NOTHROW;
size_t nallocx(size_t size, int flags) NITRO_MALLOCX_NOTHROW;
/* jemalloc's statistics call: NitroHeap's heap report through write_cb (to
 * standard error when it is NULL). opts, as jemalloc's: "J" writes the
 * statistics JSON (nitro_stats_json's document) instead; g, m, a, b, l
 * leave out the general part, the totals, the partitions, the size classes
 * and the large line; other letters are ignored. */
void malloc_stats_print(void (*write_cb)(void*, const char*), void* opaque,
                        const char* opts) NITRO_MALLOCX_NOTHROW;
/* jemalloc's control interface for the names programs read to learn about
 * their heap (README, "mallctl"): epoch, stats.allocated, stats.active,
 * stats.resident, stats.mapped, stats.retained (size_t), thread.allocated,
 * thread.deallocated (uint64_t), thread.tcache.flush, arenas.narenas
 * (unsigned, 1), arenas.page, arenas.quantum (size_t), arena.<i>.purge and
 * arena.<i>.decay (i: 0, 1 or 4096, MALLCTL_ARENAS_ALL: return free memory
 * to the kernel), background_thread, config.stats (bool). jemalloc's error
 * codes: ENOENT for any other name, EINVAL for a wrong size (a read copies
 * what fits), EPERM for writing a read-only name; ENOSYS in legacy mode.
 * NitroHeap's own names are nitro_ctl's (nitroheap/nitroheap.h). */
int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen) NITRO_MALLOCX_NOTHROW;
int mallctlnametomib(const char* name, size_t* mibp, size_t* miblenp) NITRO_MALLOCX_NOTHROW;
int mallctlbymib(const size_t* mib, size_t miblen, void* oldp, size_t* oldlenp, void* newp,
                 size_t newlen) NITRO_MALLOCX_NOTHROW;

#ifdef __cplusplus
}
#endif
#undef NITRO_MALLOCX_NOTHROW

#endif /* JEMALLOC_H_ */
#endif /* NITROHEAP_MALLOCX_H_ */
