/* Movable allocations: objects reached through handles, which the heap may
 * relocate (compact) so that sparse slabs are emptied and their pages go back
 * to the kernel. docs/movable.md explains the rules with an example; in
 * short:
 *
 *   nitro_handle_t h = nitro_halloc(100, NITRO_TRAIT_MOVABLE);
 *   char* p = nitro_hptr(h);      // valid until this thread's next
 *   memcpy(p, "hello", 6);        // quiescent point (see below)
 *   nitro_quiescent();            // p may now be stale: call nitro_hptr again
 *   char* q = nitro_hpin(h);      // pinned: q never moves ...
 *   ...
 *   nitro_hunpin(h);              // ... until the matching unpin
 *   nitro_hfree(h);
 *
 * Handles are a table index with a generation. Every call validates its
 * handle: a handle that was freed, or never returned by nitro_halloc, is a
 * misuse reported with NitroHeap's one-line diagnostic (then abort), never a
 * wild pointer.
 *
 * Epoch validity. A pointer from nitro_hptr stays valid until the calling
 * thread's next quiescent point: nitro_quiescent(), nitro_thread_offline(),
 * nitro_compact(), or nitro_hfree / nitro_hrealloc of that handle (by any
 * thread). The other calls (nitro_halloc, nitro_hptr, nitro_hpin,
 * nitro_hunpin, nitro_hsize) are not quiescent points. The compactor moves
 * an object only after every thread that called nitro_hptr has passed a
 * quiescent point (or is offline), so a thread never reads or writes a
 * half-moved object through a valid pointer. A thread that calls nitro_hptr
 * and then never reaches a quiescent point keeps every object in place
 * (compaction times out and moves nothing); long-lived threads call
 * nitro_quiescent() between units of work, or nitro_thread_offline() before
 * they block. Pinned pointers (nitro_hpin) are valid until the matching
 * nitro_hunpin, whatever the quiescent points.
 *
 * Today one movable heap serves the whole process (the seam for partitions
 * with the MOVABLE trait); mallocx(size, NITRO_TRAIT_MOVABLE) still fails
 * with EINVAL: movable memory is reached through handles only. */
#ifndef NITROHEAP_MOVABLE_H_
#define NITROHEAP_MOVABLE_H_

#include <stddef.h>
#include <stdint.h>

#include "nitroheap/nitroheap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A handle: a 20-bit generation in bits 32-51 (odd while live), the table
 * index in bits 0-31. 0 is never a handle. */
typedef uint64_t nitro_handle_t;
#define NITRO_HANDLE_NULL ((nitro_handle_t)0)

/* A new movable object of `size` bytes (contents unspecified; size 0 gives
 * a minimal object). `traits`: 0 or NITRO_TRAIT_MOVABLE; anything else
 * returns NITRO_HANDLE_NULL with errno = EINVAL. Out of memory:
 * NITRO_HANDLE_NULL with errno = ENOMEM. */
nitro_handle_t nitro_halloc(size_t size, int traits);
/* The object's current address: valid until the calling thread's next
 * quiescent point (see above). */
void* nitro_hptr(nitro_handle_t h);
/* Pins the object (pins nest, up to 2047: each pin needs one unpin) and
 * returns its address, which stays valid until the matching nitro_hunpin. */
void* nitro_hpin(nitro_handle_t h);
/* Unpinning an object that is not pinned is a misuse (reported). */
void nitro_hunpin(nitro_handle_t h);
/* Resizes the object, keeping its handle and its first min(old, new) bytes:
 * in place when the new size fits the object's slot, else by moving it.
 * Returns 0; ENOMEM (object unchanged); EBUSY when it is pinned and would
 * have to move (object unchanged). Pointers to the object from before the
 * call are no longer valid. */
int nitro_hrealloc(nitro_handle_t h, size_t size);
/* Frees the object; the handle becomes stale. NITRO_HANDLE_NULL: nothing.
 * Freeing a pinned object is a misuse (reported). */
void nitro_hfree(nitro_handle_t h);
/* Usable bytes of the object (at least the size asked for). */
size_t nitro_hsize(nitro_handle_t h);

/* A quiescent point of the calling thread: it holds no unpinned pointer
 * from nitro_hptr any more. Cheap (two atomic operations). */
void nitro_quiescent(void);
/* A quiescent point that lasts: the compactor does not wait for this thread
 * until its next nitro_h* call (call before blocking or sleeping). */
void nitro_thread_offline(void);

/* Compacts now: evacuates the sparsest slabs into denser ones (pinned
 * objects stay), returns emptied slabs' pages to the kernel. `partition`:
 * NULL for every movable heap (a non-NULL partition has no movable heap
 * yet: returns 0 with errno = EINVAL). `budget`: most bytes to move,
 * SIZE_MAX for no bound. A quiescent point of the caller. Returns the bytes
 * moved. */
size_t nitro_compact(nitro_partition_t* partition, size_t budget);

/* Counters of the movable heap: nitro_movable_stats_t (nitroheap.h, also in
 * nitro_stats_t's `movable`, the statistics document's "movable_<name>"
 * fields and nitro_ctl "stats.movable.<name>"). */
void nitro_movable_stats_snapshot(nitro_movable_stats_t* out);

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_MOVABLE_H_ */
