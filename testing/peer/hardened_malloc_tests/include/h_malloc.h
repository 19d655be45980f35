/* Shim for NitroHeap's peer-test runner (not part of hardened_malloc).
 *
 * The vendored tests include "../include/h_malloc.h" only for the C23
 * free_sized/free_aligned_sized declarations, which glibc 2.36 lacks.
 * NitroHeap exports both. They are declared weak, so the programs link
 * without NitroHeap and resolve to it at run time under LD_PRELOAD; without
 * it (the glibc reference run) the macros fall back to free().
 * hardened_malloc's own extensions (malloc_object_size, h_malloc_*) are not
 * declared: the tests that need them are not vendored. */
#ifndef NITROHEAP_PEER_H_MALLOC_SHIM_H_
#define NITROHEAP_PEER_H_MALLOC_SHIM_H_

#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((weak)) void free_sized(void *ptr, size_t size);
__attribute__((weak)) void free_aligned_sized(void *ptr, size_t alignment,
                                              size_t size);

#ifdef __cplusplus
}
#endif

#define free_sized(p, size) \
    (free_sized ? free_sized((p), (size)) : free(p))
#define free_aligned_sized(p, alignment, size) \
    (free_aligned_sized ? free_aligned_sized((p), (alignment), (size)) \
                        : free(p))

#endif
