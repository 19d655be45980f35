/* NitroHeap's extension API: what a program can ask of the allocator beyond
 * the malloc family. Every function is safe to call when NitroHeap does not
 * serve the process (see nitro_is_active). */
#ifndef NITROHEAP_NITROHEAP_H_
#define NITROHEAP_NITROHEAP_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when NitroHeap serves malloc in this process (mode "nitro"), else 0. */
int nitro_is_active(void);
/* "nitro" or "legacy" (NITROHEAP=legacy routes every call to the C library). */
const char* nitro_heap_mode(void);
/* 1 when `p` points into memory NitroHeap manages (live or free), else 0. */
int nitro_owns(const void* p);

/* Partitions: independent heaps with their own address space. Memory freed
 * in one is never reused by another. Names are copied (at most 31 bytes). */
typedef struct nitro_partition nitro_partition_t;
/* NULL with errno = ENOMEM when no partition can be created (at most 255). */
nitro_partition_t* nitro_partition_create(const char* name);
/* Unmaps everything the partition holds; its pointers become invalid. The
 * default partition cannot be destroyed (EINVAL, returns -1). */
int nitro_partition_destroy(nitro_partition_t* partition);
const char* nitro_partition_name(const nitro_partition_t* partition);
void* nitro_partition_malloc(nitro_partition_t* partition, size_t size);
void* nitro_partition_aligned_alloc(nitro_partition_t* partition, size_t align, size_t size);
void* nitro_partition_realloc(nitro_partition_t* partition, void* p, size_t size);
/* free() also accepts partition pointers; this form checks the partition. */
void nitro_partition_free(nitro_partition_t* partition, void* p);
/* The partition that owns `p`, or NULL. */
nitro_partition_t* nitro_partition_of(const void* p);

/* Returns free memory of every partition to the kernel; bytes released. */
size_t nitro_release_free_memory(void);
/* Writes the heap report to stderr. */
void nitro_stats_print(void);

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_NITROHEAP_H_ */
