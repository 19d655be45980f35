// The C library's own allocator, reached with dlsym(RTLD_NEXT): the target of
// legacy mode (NITROHEAP=legacy) and of proxy frees (pointers allocated before
// NitroHeap took over). Resolved once; allocations that dlsym itself makes
// while resolving are served from a small static arena.
#ifndef NITROHEAP_CORE_LIBC_HEAP_H_
#define NITROHEAP_CORE_LIBC_HEAP_H_

#include <stddef.h>

#include "core/lock.h"

namespace nitro {

struct LibcHeap {
  void* (*malloc)(size_t);
  void (*free)(void*);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  void* (*memalign)(size_t, size_t);
  size_t (*usable_size)(void*);
  int (*trim)(size_t);
};

// Whether `p` looks like a live chunk of glibc's malloc: a readable,
// consistent chunk header, in the brk heap or in a chunk of its own mmap.
// Stack, globals and wild addresses fail it. Never faults.
bool LibcMayOwn(const void* p);

// Null when the C library's functions cannot be found (a static binary).
const LibcHeap* Libc();
// Whether `p` came from the resolution-time arena (such pointers are never freed).
bool IsBootstrapPointer(const void* p);
size_t BootstrapBytesAfter(const void* p);
// Serves an allocation made by dlsym while Libc() is resolving; null if not
// resolving on this thread.
void* BootstrapAllocate(size_t size, size_t align);
// For fork: the lock taken while resolving.
// Held while the C library's functions are looked up (fork takes it).
SpinLock& LibcResolveLock();

}  // namespace nitro

#endif  // NITROHEAP_CORE_LIBC_HEAP_H_
