// The OS layer: address space reserved, committed and returned with mmap and
// madvise. Nothing above this file calls the kernel for memory.
#ifndef NITROHEAP_CORE_OS_H_
#define NITROHEAP_CORE_OS_H_

#include <stddef.h>

namespace nitro::os {

// Reserves `size` bytes aligned to `align` (a power of two >= page size),
// readable and writable, backed lazily (MAP_NORESERVE): pages cost memory only
// once touched. Returns nullptr when the kernel refuses.
void* Reserve(size_t size, size_t align);
// Gives the range back to the kernel entirely.
void Unmap(void* p, size_t size);
// Returns the physical pages of a range to the kernel; the range stays mapped
// and reads as zero afterwards.
void Release(void* p, size_t size);
// Maps `size` bytes of the file `fd` from `offset` over the reserved range at
// `at` (MAP_SHARED, so dirty pages are written back to the file), growing
// the file to cover them. False when the file cannot grow or be mapped.
bool MapFile(void* at, size_t size, int fd, size_t offset);
// Frees the file's blocks in [offset, offset + size) (they read as zero).
void PunchHole(int fd, size_t offset, size_t size);
void TruncateFile(int fd, size_t size);
void Close(int fd);
// Asks for small pages only in a range (metadata written sparsely, where a
// transparent huge page would make 2 MiB resident for a few entries).
void NoHugePages(void* p, size_t size);
// Makes a range inaccessible (guard pages) or accessible again.
bool ProtectNone(void* p, size_t size);
// Makes a range of a reservation inaccessible AND returns its pages, in one
// system call where ProtectNone + Release take two: a fresh PROT_NONE
// mapping replaces it (mmap MAP_FIXED), so it reads as zero once made
// accessible again. False when the kernel refuses: the range's state is then
// unknown (Linux may have unmapped part of it) and it must not be used again.
bool MapInaccessible(void* p, size_t size);
bool ProtectReadWrite(void* p, size_t size);
// Asks for transparent huge pages on a range (a hint; false if refused).
bool AdviseHugePages(void* p, size_t size);
// Copies `len` bytes at `addr` into `out` without ever faulting: the kernel
// reads them on our behalf (process_vm_readv) and says EFAULT for memory
// that is unmapped or inaccessible (mincore alone would pass a PROT_NONE
// page, which then faults). False when they cannot be read, or when the
// system call is refused (seccomp): then nothing is known.
bool ReadWithoutFault(const void* addr, void* out, size_t len);

// getpid() of the process, also inside a clone child that does work for it
// with its own descriptor table (telemetry), where getpid() is the child's:
// file names and recordings must carry the process's pid. The override is
// set around such a child's life and is the process's pid anyway.
int ProcessId();
void SetProcessIdOverride(int pid);  // 0: none
// Fills `buf` with random bytes from the kernel (getrandom, never blocking
// after boot); falls back to address/time entropy.
void RandomBytes(void* buf, size_t len);

}  // namespace nitro::os

#endif  // NITROHEAP_CORE_OS_H_
