/* NitroHeap's extension API: what a program can ask of the allocator beyond
 * the malloc family. Every function is safe to call when NitroHeap does not
 * serve the process (see nitro_is_active). */
#ifndef NITROHEAP_NITROHEAP_H_
#define NITROHEAP_NITROHEAP_H_

#include <stddef.h>
#include <stdint.h>

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
/* NULL with errno = ENOMEM when no partition can be created (at most 255),
 * or EEXIST when a live partition already has this name. */
nitro_partition_t* nitro_partition_create(const char* name);
/* Unmaps everything the partition holds; its pointers become invalid. The
 * default partition and those trait sets name cannot be destroyed (EINVAL,
 * returns -1). Other threads' cached objects of it are dropped; no thread
 * may use it, or have it as its current partition, meanwhile. */
int nitro_partition_destroy(nitro_partition_t* partition);
const char* nitro_partition_name(const nitro_partition_t* partition);
void* nitro_partition_malloc(nitro_partition_t* partition, size_t size);
void* nitro_partition_aligned_alloc(nitro_partition_t* partition, size_t align, size_t size);
void* nitro_partition_realloc(nitro_partition_t* partition, void* p, size_t size);
/* free() also accepts partition pointers; this form checks the partition. */
void nitro_partition_free(nitro_partition_t* partition, void* p);
/* The partition that owns `p`, or NULL. */
nitro_partition_t* nitro_partition_of(const void* p);

/* calloc, malloc_usable_size, strdup and strndup in a partition (as
 * mimalloc's mi_heap_*). nitro_partition_usable_size: 0 for NULL and for a
 * pointer the partition does not own. */
void* nitro_partition_calloc(nitro_partition_t* partition, size_t n, size_t size);
size_t nitro_partition_usable_size(nitro_partition_t* partition, const void* p);
char* nitro_partition_strdup(nitro_partition_t* partition, const char* s);
char* nitro_partition_strndup(nitro_partition_t* partition, const char* s, size_t n);
/* A typed partition (Slitter's type stability): it serves objects of one
 * size only, and its memory is never used by another partition or size
 * class. Requests for more than object_size bytes (or over-aligned) fail
 * with NULL and EINVAL. object_size: 1 to 32 KiB (EINVAL otherwise). */
nitro_partition_t* nitro_partition_create_typed(const char* name, size_t object_size);
/* free for a typed partition, checking both the partition and the size:
 * a pointer of another partition, or a size other than the partition's
 * object size, is reported as a misuse (the process aborts). */
void nitro_partition_free_typed(nitro_partition_t* partition, void* p, size_t size);
/* The partition a trait set names (NITRO_TRAIT_* flags or-ed, see below):
 * one per set and process, made on first use, never destroyed; 0 names the
 * default partition. NULL with errno = EINVAL for NITRO_TRAIT_MOVABLE, for
 * conflicting traits (SECURE_STRICT with LOW_LATENCY) and for other bits. */
nitro_partition_t* nitro_partition_for_traits(int flags);
/* The thread's current partition: malloc, calloc, realloc(NULL, n),
 * operator new and mallocx without a partition flag allocate there
 * (mimalloc's mi_heap_set_default). NULL or the default partition: back to
 * the default. Returns the previous one (the default partition when none
 * was set). Frees always go to the partition that owns the block. */
nitro_partition_t* nitro_set_thread_partition(nitro_partition_t* partition);
nitro_partition_t* nitro_thread_partition(void);

/* The partition's number (1 to 255, unique among live partitions; the
 * default partition's too), for NITRO_MALLOCX_PARTITION; -1 for NULL. */
int nitro_partition_id(const nitro_partition_t* partition);

/* Arenas (docs/regions.md). Reset frees every block of the partition at
 * once, in O(slabs and large blocks), and returns its memory to the kernel;
 * the partition stays usable and every pointer into it becomes invalid.
 * Visit calls cb(block, usable bytes, ctx) for each live block in address
 * order until cb returns 0, and returns how many blocks it called cb for;
 * cb runs with the partition locked, so it must not allocate or free in
 * that partition. Threads' cached objects of the partition are returned
 * to it first (visit) or dropped (reset); no other thread may use the
 * partition meanwhile, as for destroy. Both return -1 with errno = EINVAL
 * for NULL, a NULL cb, or the default partition (malloc's, never an arena). */
int nitro_partition_reset(nitro_partition_t* partition);
typedef int (*nitro_block_visitor)(void* block, size_t usable_size, void* ctx);
long nitro_partition_visit(nitro_partition_t* partition, nitro_block_visitor cb, void* ctx);

/* Backing memory (docs/regions.md, "Backing memory"), chosen when the
 * partition is created:
 *   NITRO_BACKING_ANONYMOUS  anonymous mappings, as nitro_partition_create.
 *   NITRO_BACKING_HUGE_PAGES the same with madvise(MADV_HUGEPAGE).
 *   NITRO_BACKING_FILE       MAP_SHARED mappings of one unlinked file made
 *                            (O_TMPFILE) in `directory` (NULL: $TMPDIR, else
 *                            /tmp): cold pages go back to the file, not to
 *                            swap; freed pages released (decay,
 *                            nitro_release_free_memory) are punched out of
 *                            the file. Parent and child share the memory
 *                            after fork: use the partition in one of them.
 *   NITRO_BACKING_FIXED      the caller's memory [memory, memory + length),
 *                            page-aligned, at least 64 KiB, readable and
 *                            writable: the only memory the partition ever
 *                            uses (no mmap: when it is full, allocation
 *                            fails with ENOMEM). It is never unmapped nor
 *                            returned to the kernel; guard pages are made in
 *                            it (mprotect) and opened again by reset and
 *                            destroy, after which the caller owns it again.
 * config NULL: anonymous. NULL with errno = EINVAL for an unknown backing, a
 * FIXED range that is NULL, unaligned, too small or NitroHeap's already
 * (memory from malloc: map it with mmap instead), or a directory that
 * cannot hold such a file (else the error of open(2)); ENOMEM or EEXIST as
 * for nitro_partition_create. Nothing is left behind on failure. */
#define NITRO_BACKING_ANONYMOUS 0
#define NITRO_BACKING_HUGE_PAGES 1
#define NITRO_BACKING_FILE 2
#define NITRO_BACKING_FIXED 3
typedef struct nitro_partition_config {
  int backing;           /* NITRO_BACKING_* */
  const char* directory; /* FILE */
  void* memory;          /* FIXED */
  size_t length;         /* FIXED */
} nitro_partition_config_t;
nitro_partition_t* nitro_partition_create_with(const char* name,
                                               const nitro_partition_config_t* config);

/* ---- NitroHeap's flags for the jemalloc-style API -----------------------
 * (mallocx and friends: nitroheap/mallocx.h, or jemalloc's own header.)
 * jemalloc's flag word: bits 0-5 the log2 of the alignment, bit 6
 * MALLOCX_ZERO, bits 8-19 MALLOCX_TCACHE, bits 20-31 MALLOCX_ARENA; bit 7 is
 * unused. NitroHeap's flags set bit 7, NITRO_MALLOCX_FLAGS, which makes
 * bits 14-19 traits and bits 20-31 a partition number instead of an arena
 * (bits 8-13 keep their jemalloc meaning, so MALLOCX_TCACHE_NONE still
 * combines). A program written for jemalloc never sets bit 7.
 *
 * Traits (several may be or-ed): each set names one partition whose policy
 * fits (nitro_partition_for_traits), so the call allocates there:
 *   SECURE_STRICT     every strict-mode check whatever the process mode:
 *                     zero on free and checked on reuse (a write after free
 *                     is reported), canaries, checked links, large quarantine,
 *                     guarded sampling 16 times as often as malloc's
 *   LOW_LATENCY       four times the thread-cache size, no quarantine
 *   MOVABLE           reserved: NULL with errno = EINVAL (not ignored)
 *   SHARED_RW         each object on cache lines of its own (64-byte multiples)
 *   PERSISTENT        transparent huge pages asked for, no decay, NUMA
 *                     interleaved where the process may use two nodes or more
 *   TELEMETRY_SILENT  never sampled into the flight recorder
 * SECURE_STRICT with LOW_LATENCY conflict: NULL with errno = EINVAL. A trait
 * set with NITRO_MALLOCX_PARTITION(id) is refused the same way. */
#define NITRO_MALLOCX_FLAGS ((int)0x80)
#define NITRO_TRAIT_SECURE_STRICT (NITRO_MALLOCX_FLAGS | (1 << 14))
#define NITRO_TRAIT_LOW_LATENCY (NITRO_MALLOCX_FLAGS | (1 << 15))
#define NITRO_TRAIT_MOVABLE (NITRO_MALLOCX_FLAGS | (1 << 16))
#define NITRO_TRAIT_SHARED_RW (NITRO_MALLOCX_FLAGS | (1 << 17))
#define NITRO_TRAIT_PERSISTENT (NITRO_MALLOCX_FLAGS | (1 << 18))
#define NITRO_TRAIT_TELEMETRY_SILENT (NITRO_MALLOCX_FLAGS | (1 << 19))
/* The partition numbered `id` (nitro_partition_id): mallocx allocates there,
 * and rallocx, xallocx, dallocx and sdallocx check that the block is that
 * partition's (rallocx: NULL with EINVAL if not; the others report the
 * misuse). An id with no live partition: NULL with errno = EINVAL. */
#define NITRO_MALLOCX_PARTITION(id) (NITRO_MALLOCX_FLAGS | ((int)(((unsigned)(id) + 1u) << 20)))

/* Returns free memory of every partition to the kernel; bytes released. */
size_t nitro_release_free_memory(void);

/* ---- Heap contracts -------------------------------------------------------
 * A partition's "use" is the bytes of pages it holds for slabs and large
 * blocks: it grows when a slab or a large block is carved (not per object),
 * so it includes the free objects still inside slabs and thread caches, and
 * excludes free pages (the decay cache) and the guarded sampling pool. A
 * large block counts its pages, its guard page included. README, "Heap
 * contracts". */

/* hard_bytes: allocations that would take the partition's use past it fail
 * (NULL with errno = ENOMEM, std::bad_alloc from operator new); the rest of
 * the process is unaffected. soft_bytes: reaching it raises the pressure
 * signal (the callback below and the configured actions), once per
 * crossing: the next crossing counts only after use fell below 7/8 of it.
 * 0 = none. Returns 0, or -1 with errno = EINVAL for a NULL partition or
 * soft_bytes > hard_bytes (both non-zero); the limits are then unchanged.
 * Lowering a hard limit below the current use frees nothing: allocations
 * that need new pages fail until frees bring use under it. */
int nitro_partition_set_limit(nitro_partition_t* partition, size_t hard_bytes, size_t soft_bytes);

/* Called once per soft-limit crossing, by the thread whose allocation
 * crossed, after that allocation is done and outside every NitroHeap lock:
 * it may allocate and free (in any partition). `used` is the use when
 * called, `soft_limit` the soft limit. NULL removes the callback. Returns 0,
 * or -1 with errno = EINVAL for a NULL partition. */
typedef void nitro_pressure_fn(nitro_partition_t* partition, size_t used, size_t soft_limit, void* ctx);
int nitro_partition_on_pressure(nitro_partition_t* partition, nitro_pressure_fn* cb, void* ctx);

/* The process-wide limit (like tcmalloc's SetMemoryLimit), over the use of
 * all partitions together: when use reaches 7/8 of it, every partition
 * returns its free pages to the kernel (once per crossing, as above); an
 * allocation that would take use past it first returns the calling
 * thread's cached objects and empty slabs, and fails with ENOMEM if that is
 * not enough. 0 removes the limit. By default the limit is the cgroup v2
 * memory.max of the process's cgroup (the tightest of its ancestors), with
 * memory.high as the point where free pages go back. Returns 0 (never
 * fails: any size is a limit). */
int nitro_set_memory_limit(size_t bytes);

/* ---- Statistics ---------------------------------------------------------
 * Counters are kept per thread and merged on read. All byte counts are
 * bytes; "usable" counts whole size-class slots, "requested" what callers
 * asked for (exact for large allocations, estimated for small objects: see
 * docs/telemetry.md). */
#define NITRO_STATS_VERSION 1u
#define NITRO_STATS_MAX_PARTITIONS 16
#define NITRO_STATS_CLASSES 88

typedef struct nitro_counters {
  uint64_t allocations;          /* ever made */
  uint64_t frees;                /* ever freed */
  uint64_t live_objects;
  uint64_t live_bytes;           /* usable bytes of live objects */
  uint64_t live_requested_bytes;
  uint64_t mapped_bytes;         /* address space reserved */
  uint64_t committed_bytes;      /* pages in use, free but not yet returned, or of quarantined large blocks not yet returned */
  uint64_t returned_bytes;       /* ever returned to the OS (madvise) */
  uint64_t free_cached_bytes;    /* free pages kept committed (decay returns them) */
  uint64_t slabs;
  uint64_t slab_objects;         /* capacity of all slabs */
  uint64_t slab_free_objects;    /* free objects inside slabs */
  uint64_t thread_cache_bytes;   /* objects cached by threads */
  uint64_t middle_layer_bytes;   /* objects in the middle layer's batches */
  uint64_t remote_free_backlog;  /* objects freed into batches, not yet reused */
  uint64_t quarantine_bytes;     /* large runs waiting before reuse */
  uint64_t lock_contention;      /* contended lock acquisitions */
  uint64_t sampled_allocations;  /* flight-recorder samples + guarded allocations */
} nitro_counters_t;

typedef struct nitro_partition_stats {
  char name[32];
  nitro_counters_t counters;
} nitro_partition_stats_t;

typedef struct nitro_class_stats {
  uint32_t size;                 /* bytes per object */
  uint32_t reserved;
  uint64_t allocations, frees, live_objects;
  uint64_t slabs, slab_objects, slab_free_objects;
  uint64_t thread_cache_objects, middle_layer_objects;
} nitro_class_stats_t;

/* A heap contract's state (0 for limits not set). */
typedef struct nitro_contract_stats {
  uint64_t hard_limit;
  uint64_t soft_limit;
  uint64_t use;                  /* bytes of pages held for slabs and large blocks */
  uint64_t crossings;            /* soft-limit crossings */
  uint64_t callbacks;            /* pressure callback calls */
  uint64_t refusals;             /* allocations the hard limit refused */
  uint64_t last_pressure_ns;     /* CLOCK_REALTIME of the last crossing; 0: never */
} nitro_contract_stats_t;

/* Counters of the movable heap (nitroheap/movable.h; also nitro_ctl
 * "stats.movable.<name>" and the statistics document's "movable_<name>"). */
typedef struct nitro_movable_stats {
  uint64_t live_objects;     /* handles in use */
  uint64_t live_bytes;       /* usable bytes of live objects */
  uint64_t slabs;            /* slabs holding objects */
  uint64_t slab_bytes;       /* bytes of those slabs */
  uint64_t large_bytes;      /* bytes mapped for objects larger than a slab class */
  uint64_t handle_capacity;  /* handle table entries ever used */
  uint64_t objects_moved;
  uint64_t bytes_moved;
  uint64_t slabs_freed;      /* emptied by compaction */
  uint64_t pages_returned;   /* 4 KiB pages given back to the kernel (all causes) */
  uint64_t pinned_skipped;   /* objects compaction left because they were pinned */
  uint64_t busy_skipped;     /* objects left because a thread asked for them while marked */
  uint64_t grace_timeouts;   /* compactions that moved nothing: a thread never passed a quiescent point */
  uint64_t compactions;
  uint64_t compact_ns;       /* time spent compacting */
  uint64_t time_budget_stops;    /* compactions stopped by compact_budget_us (work left for later) */
  uint64_t pressure_compactions; /* compactions run by a heap contract's "compact" action */
} nitro_movable_stats_t;

typedef struct nitro_stats {
  uint32_t version;              /* NITRO_STATS_VERSION */
  uint32_t size;                 /* sizeof(nitro_stats_t) of the writer */
  uint64_t pid;
  uint64_t threads;
  nitro_counters_t total;        /* all partitions */
  uint32_t partition_count;      /* entries used in partitions[] */
  uint32_t reserved;
  nitro_partition_stats_t partitions[NITRO_STATS_MAX_PARTITIONS];
  nitro_class_stats_t classes[NITRO_STATS_CLASSES]; /* default partition */
  /* Heap contracts (appended: the fields above keep their offsets). */
  nitro_contract_stats_t contracts[NITRO_STATS_MAX_PARTITIONS]; /* partitions[i]'s */
  nitro_contract_stats_t memory_limit; /* the process: soft_limit is the pressure point */
  uint32_t memory_limit_source;  /* 0 none, 1 cgroup, 2 NITROHEAP_OPTIONS, 3 nitro_set_memory_limit */
  uint32_t reserved2;
  /* The movable heap (appended after the contracts). */
  nitro_movable_stats_t movable;
} nitro_stats_t;

/* Fills *out; returns 0, EINVAL when out->size (set by the caller to
 * sizeof(nitro_stats_t)) is smaller than offsetof(nitro_stats_t,
 * contracts), or ENOSYS when NitroHeap does not serve the process. A size
 * from that offset up to sizeof(nitro_stats_t) (a program built before
 * the contracts were appended) gets that prefix, and out->size says so;
 * so does a size from offsetof(nitro_stats_t, movable) (built before the
 * movable heap's counters were appended). */
int nitro_stats_snapshot(nitro_stats_t* out);
/* Writes the statistics as a JSON document into buf (NUL-terminated when it
 * fits) and returns its length; call with len 0 to size the buffer. */
size_t nitro_stats_json(char* buf, size_t len);
/* Writes the heap report to stderr. */
void nitro_stats_print(void);

/* A named control and statistics interface in the spirit of mallctl.
 * Reading: oldp/oldlenp receive the value (uint64_t for counters, char[]
 * for strings); writing: newp/newlen. Names: "stats.<counter>",
 * "stats.partitions.<name>.<counter>", "stats.classes.<size>.<field>",
 * "stats.threads", "stats.movable.<counter>" (the movable heap:
 * nitroheap/movable.h), "version", "opt.<option>" (read; see below for
 * writes), "thread.allocated" and "thread.deallocated" (read, uint64_t:
 * see nitro_thread_allocated), "heap.release" (write, no value),
 * "thread.cache.flush" (write, no value), "flight_recorder.dump" (write:
 * a NUL-terminated path), "profile.dump" (write: a path, pprof format).
 * Returns 0, ENOENT for an unknown name, EINVAL for a wrong size or a value
 * out of range, EPERM for writing a read-only name, or the errno of a
 * failed dump.
 *
 * Writable options (newp: a uint64_t, newlen 8; oldp, if given, receives
 * the value before the write), safe while threads run:
 *   "opt.sample_rate"  each thread uses the new rate from its next sample
 *                      (lowering it from N takes up to about 2N of that
 *                      thread's allocations); EPERM when turning sampling
 *                      on after a start with sample_rate=0 (its guarded
 *                      pool is reserved only at start-up).
 *   "opt.decay_ms"     the background thread's next period; decay_ms=0
 *                      given at start-up also returns free pages at once,
 *                      written later it returns them within 10 ms.
 *   "opt.stats_print"  0 or 1: print the heap report at exit.
 *   "opt.memory_limit" the process limit (nitro_set_memory_limit).
 * Heap contracts: "contract.<partition>.hard" and ".soft" (read, write:
 * uint64_t, EINVAL for a soft limit above the hard one), ".use",
 * ".crossings", ".callbacks", ".refusals", ".last_pressure_ns" (read).
 * Every other option is fixed at start-up: writing it returns EPERM
 * (profile_rate weighs every recorded sample of a profile, telemetry and
 * background_thread decide what exists at start-up). */
int nitro_ctl(const char* name, void* oldp, size_t* oldlenp, const void* newp, size_t newlen);

/* Bytes the calling thread has allocated and freed through the malloc
 * family and operator new/delete (the default partition) since it started,
 * like jemalloc's thread.allocated / thread.deallocated: the size class's
 * bytes for small objects, the requested bytes for large and sampled ones
 * (a large block resized in place counts the difference). Cheap: read from
 * counters the thread cache keeps anyway (no cost on the malloc fast path).
 * Frees count on the freeing thread. 0 when NitroHeap does not serve the
 * process or the thread has not allocated yet. */
uint64_t nitro_thread_allocated(void);
uint64_t nitro_thread_deallocated(void);

/* ---- Callbacks ----------------------------------------------------------
 * Register at most one of each, from one thread at a time (typically at the
 * start of main); NULL restores the default. Neither may allocate with
 * this allocator's malloc or call back into NitroHeap: both can run with
 * one of NitroHeap's locks held, and the error callback also inside a
 * SIGSEGV handler. Use async-signal-safe work (write, a preallocated
 * buffer). */

/* Receives every line NitroHeap would write to stderr (heap reports, option
 * errors, misuse diagnostics and their stacks, NITROHEAP_OPTIONS=help), one
 * line per call, NUL-terminated and ending in '\n', instead of stderr.
 * Lines written before the registration (start-up option errors: up to
 * 4 KiB) went to stderr and are handed to the first callback registered, so
 * a program that registers in main still sees them. */
typedef void nitro_output_fn(const char* line, void* arg);
void nitro_register_output(nitro_output_fn* fn, void* arg);

/* Called when NitroHeap detects a heap misuse, after the diagnostic is
 * written and before the process aborts. `kind` is the misuse as in the
 * diagnostic's first line ("double free", "invalid free", "free of memory
 * not from the heap", "sized free with the wrong size", "write after free",
 * "heap buffer overflow", "heap buffer underflow", "use after free",
 * "corrupted free list", "fault"); `addr` the address it concerns. The
 * abort is unconditional: when the callback returns, the process dies of
 * SIGABRT (or, for a faulting access, of its SIGSEGV). The callback may end
 * the process itself (_exit) but must not longjmp or throw. It runs at most
 * once per thread: a misuse inside it does not call it again. */
typedef void nitro_error_fn(const char* kind, const void* addr, void* arg);
void nitro_register_error(nitro_error_fn* fn, void* arg);

/* ---- Built-in defaults ----------------------------------------------------
 * A program can build options in by defining (like jemalloc's malloc_conf)
 *     const char* nitroheap_options = "mode=strict,sample_rate=1000";
 * at file scope (C or C++, with or without this header).
 * NitroHeap reads it at start-up, before NITROHEAP_OPTIONS, which overrides
 * it key by key; its errors are reported as "nitroheap_options: ...".
 * Linked in (//abi:malloc) it is found at link time; under LD_PRELOAD the
 * program must export it (link with -rdynamic, or
 * -Wl,--export-dynamic-symbol=nitroheap_options). */
extern const char* nitroheap_options;

/* ---- Flight recorder ----------------------------------------------------
 * Writes the recording (telemetry/flight_recorder.proto, FlightRecording)
 * to `path` ("%p" becomes the pid). Returns 0 or an errno value. */
int nitro_flight_recorder_dump(const char* path);
/* Writes a gzip-compressed pprof profile.proto heap profile of the sampled
 * allocations (alloc_objects, alloc_space, inuse_objects, inuse_space;
 * pprof opens inuse_space), with mappings and build IDs, to `path` ("%p"
 * becomes the pid). Returns 0 or an errno value. */
int nitro_heap_profile_dump(const char* path);

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_NITROHEAP_H_ */
