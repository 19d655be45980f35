/* Heaps over a fixed region: a heap inside memory the caller owns (a static
 * array, a shared-memory mapping, a huge-page buffer). NitroHeap never maps,
 * unmaps or protects memory for a region after nitro_region_create: every
 * byte a region hands out, and all of its metadata, lies inside the caller's
 * `memory` (docs/regions.md, "Layout").
 *
 * Two kinds:
 *  - NITRO_REGION_BUMP: O(1) allocation from a cursor; free only marks the
 *    block freed (its bytes come back with nitro_region_reset); realloc of
 *    the last block grows or shrinks it in place.
 *  - NITRO_REGION_FREE_LIST: first fit with splitting, freed blocks reused,
 *    neighbours coalesced at once (after every block is freed the region is
 *    one free block again), any power-of-two alignment.
 *
 * Every block has a 16-byte header just below it (size, the previous
 * block's size and a check value keyed per region). Misuse — freeing a
 * block twice, a pointer from elsewhere or into the middle of a block, or a
 * block whose header was overwritten by its neighbour — is reported like
 * every other heap misuse: one line "nitroheap: <kind> at <address> in
 * partition region@<address>: ...", the stack, then abort.
 *
 * Regions are thread-safe (one lock each) unless created with
 * NITRO_REGION_SINGLE_THREADED, which drops the lock: then the caller makes
 * sure one thread at a time uses the region. A thread-safe region's lock is
 * taken by the fork handler, so a child can use the region; at most 4096
 * thread-safe regions are live at once.
 *
 * A handle that is not a live region (NULL, destroyed, or overwritten) is a
 * misuse too: "invalid region handle", then abort. */
#ifndef NITROHEAP_REGION_H_
#define NITROHEAP_REGION_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nitro_region nitro_region_t;

enum {
  NITRO_REGION_BUMP = 1,
  NITRO_REGION_FREE_LIST = 2,
  /* Or-ed into `kind`: no lock; one thread at a time. */
  NITRO_REGION_SINGLE_THREADED = 0x100
};

/* The region's own header at the start of `memory` takes at most this many
 * bytes (alignment included); the rest is for blocks. */
#define NITRO_REGION_HEADER_BYTES 256
/* The smallest `length` nitro_region_create accepts. */
#define NITRO_REGION_MIN_BYTES 512

/* Makes a heap of kind `kind` in [memory, memory + length). Returns the
 * handle (it lies at the start of `memory`), or NULL with errno = EINVAL
 * (NULL memory, length below NITRO_REGION_MIN_BYTES, unknown kind or flag),
 * EBUSY (a live thread-safe region already starts there: destroy it first)
 * or ENOMEM (4096 thread-safe regions are already live). The memory must
 * stay readable and writable until nitro_region_destroy. */
nitro_region_t* nitro_region_create(void* memory, size_t length, int kind);

/* 16-byte aligned; size 0 gets a minimal block. NULL with errno = ENOMEM
 * when no free space fits: the region stays fully usable. */
void* nitro_region_alloc(nitro_region_t* region, size_t size);
/* Any power-of-two alignment (below 16 means 16); otherwise NULL with
 * errno = EINVAL. */
void* nitro_region_aligned_alloc(nitro_region_t* region, size_t align, size_t size);
/* NULL is ignored. */
void nitro_region_free(nitro_region_t* region, void* p);
/* realloc's contract: NULL p allocates; size 0 shrinks to a minimal block
 * (p stays valid); on ENOMEM returns NULL and p is untouched. */
void* nitro_region_realloc(nitro_region_t* region, void* p, size_t size);
/* Usable bytes of the live block p (at least what was asked for). */
size_t nitro_region_usable_size(nitro_region_t* region, const void* p);
/* Frees every block at once, O(1): all pointers into the region become
 * invalid and the whole capacity is one free block again. */
void nitro_region_reset(nitro_region_t* region);

typedef struct nitro_region_stats_s {
  int kind;              /* NITRO_REGION_BUMP or NITRO_REGION_FREE_LIST */
  size_t capacity;       /* bytes for blocks and their headers */
  size_t used;           /* bytes not available to allocations: live blocks
                            and headers, and for bump freed blocks too */
  size_t free;           /* capacity - used */
  size_t largest_free;   /* the largest request that succeeds now */
  size_t live_blocks;    /* allocated and not freed */
  size_t live_bytes;     /* usable bytes of those */
  size_t free_blocks;    /* free runs an allocation can come from */
  double fragmentation;  /* 1 - largest free run / free bytes (0 if none free) */
  uint64_t allocations;  /* successful alloc/aligned_alloc/realloc moves */
  uint64_t frees;
  uint64_t failures;     /* requests answered with ENOMEM */
  uint64_t resets;
} nitro_region_stats_t;
/* Fills *out; 0, or -1 with errno = EINVAL for a NULL out. */
int nitro_region_stats(nitro_region_t* region, nitro_region_stats_t* out);

/* Calls cb for every block in address order, live and free (in_use 0):
 * the block's first usable byte and its usable bytes. Runs under the
 * region's lock: cb must not call into the same region. Returns the number
 * of blocks visited. */
typedef void (*nitro_region_visit_fn)(void* block, size_t usable, int in_use, void* ctx);
size_t nitro_region_visit(nitro_region_t* region, nitro_region_visit_fn cb, void* ctx);

/* Ends the region: the handle becomes invalid, and the memory is the
 * caller's again (NitroHeap writes nothing to it afterwards). */
void nitro_region_destroy(nitro_region_t* region);

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_REGION_H_ */
