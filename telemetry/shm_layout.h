/* The live-statistics segment: /dev/shm/nitroheap.<pid> (shm_open name
 * "/nitroheap.<pid>"), created by a process running NitroHeap with
 * telemetry=1, rewritten at least every 100 ms while it allocates, and
 * removed at exit. Readers open it read-only; no ptrace, no stopping.
 *
 * Version 1: a 64-byte header, then `payload_length` bytes of JSON (the
 * document of nitro_stats_json). The writer bumps `sequence` to an odd value
 * before writing and to the next even value after: a reader copies the
 * payload and retries if `sequence` was odd or changed meanwhile. A reader
 * must check magic and version, and ignore header bytes it does not know. */
#ifndef NITROHEAP_TELEMETRY_SHM_LAYOUT_H_
#define NITROHEAP_TELEMETRY_SHM_LAYOUT_H_

#include <stdint.h>

#define NITRO_SHM_MAGIC "NITROHP"  /* 8 bytes with the terminating NUL */
#define NITRO_SHM_VERSION 1u
#define NITRO_SHM_HEADER_SIZE 64u
#define NITRO_SHM_SIZE (512u * 1024u)

struct nitro_shm_header {
  char magic[8];             /* "NITROHP\0" */
  uint32_t version;          /* NITRO_SHM_VERSION */
  uint32_t header_size;      /* NITRO_SHM_HEADER_SIZE */
  uint64_t pid;
  uint64_t sequence;         /* odd while the payload is being written */
  uint64_t update_time_ns;   /* CLOCK_REALTIME of the last update */
  uint32_t payload_capacity; /* bytes available after the header */
  uint32_t payload_length;   /* bytes of JSON after the header */
  uint64_t updates;          /* how many times the payload was written */
  uint64_t pid_namespace;    /* the writer's pid namespace (inode of /proc/self/ns/pid); 0: unknown */
};

#ifdef __cplusplus
static_assert(sizeof(nitro_shm_header) == NITRO_SHM_HEADER_SIZE, "layout v1 is 64 bytes");
#endif

#endif /* NITROHEAP_TELEMETRY_SHM_LAYOUT_H_ */
