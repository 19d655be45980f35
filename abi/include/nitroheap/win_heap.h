/* The Windows heap API on Linux (docs/regions.md, "Windows-style heaps").
 *
 * Code written for HeapCreate/HeapAlloc/HeapFree/... builds against this
 * header and runs on NitroHeap. The library exports the functions as
 * nitro_win_<Name> (so no Win32 name ever enters a process that preloads
 * NitroHeap); this header maps the Win32 names onto them with static inline
 * functions, unless NITRO_WIN_HEAP_NO_WIN32_NAMES is defined first.
 *
 * What each heap is:
 *  - HeapCreate(flags, initial, 0): a growable heap, a NitroHeap partition
 *    of its own (named "winheap-<n>"), so statistics, hardening and
 *    telemetry apply to it as to any partition. `initial` is only a hint.
 *  - HeapCreate(flags, initial, maximum != 0): a fixed-size heap: one
 *    mapping of `maximum` bytes (rounded up to pages) made at creation,
 *    with a free-list region heap inside (nitroheap/region.h), whose
 *    header and block headers take their share of it. When it is
 *    full HeapAlloc fails cleanly; the heap stays usable.
 *  - GetProcessHeap(): malloc's heap (the default partition).
 *
 * Flags:
 *  - HEAP_ZERO_MEMORY: the whole block (HeapSize bytes) reads as zero; on
 *    HeapReAlloc, the bytes beyond the old HeapSize do.
 *  - HEAP_NO_SERIALIZE (HeapCreate, or per call): the call does not take
 *    the heap's lock, so it is not held back by another thread's HeapLock.
 *    The heap itself stays safe for concurrent use either way (partitions
 *    and regions lock internally), except a fixed-size heap created with
 *    it, whose region is single-threaded (NITRO_REGION_SINGLE_THREADED).
 *  - HEAP_REALLOC_IN_PLACE_ONLY: HeapReAlloc never moves the block; if it
 *    cannot resize in place it fails (NULL, ERROR_NOT_ENOUGH_MEMORY) and
 *    the block is unchanged.
 *  - HEAP_GENERATE_EXCEPTIONS (HeapCreate, or per call): Linux has no
 *    structured exceptions, so where Windows raises STATUS_NO_MEMORY
 *    (HeapAlloc, HeapReAlloc failing) NitroHeap prints one line
 *    "nitroheap: HeapAlloc: STATUS_NO_MEMORY (0xc0000017) in heap <handle>
 *    (HEAP_GENERATE_EXCEPTIONS)" to stderr and raises SIGABRT. A program
 *    that catches SIGABRT and returns from the handler gets NULL, as
 *    without the flag; otherwise the process ends.
 *  - HEAP_CREATE_ENABLE_EXECUTE: not supported (NULL, ERROR_NOT_SUPPORTED).
 *
 * Errors: every function that fails sets the calling thread's last error
 * (GetLastError; SetLastError sets it): ERROR_INVALID_HANDLE for a handle
 * that is not a live heap (NULL, destroyed, or never one),
 * ERROR_INVALID_PARAMETER for unknown flags or bad sizes,
 * ERROR_NOT_ENOUGH_MEMORY when memory runs out, ERROR_NO_MORE_ITEMS at the
 * end of a HeapWalk. Successful calls leave it alone. A pointer that is not
 * a live block of that heap given to HeapFree or HeapReAlloc is a heap
 * misuse: reported (one line, the stack) and the process aborts, as free()
 * does. HeapSize answers (SIZE_T)-1 with ERROR_INVALID_PARAMETER, and
 * HeapValidate FALSE, for such a pointer: they never abort. On the process
 * heap they only know whether NitroHeap owns the address (malloc's blocks
 * may sit in thread caches), and HeapSize of a pointer that is not a block
 * start is reported as malloc_usable_size reports it.
 * HeapSize returns the block's usable size (at least what was asked for).
 * HeapWalk: a fixed-size heap first returns one PROCESS_HEAP_REGION entry
 * (the whole region committed), then every block, busy
 * (PROCESS_HEAP_ENTRY_BUSY) or free (wFlags 0); a growable heap returns
 * its busy blocks, in address order; the process heap cannot be walked
 * (ERROR_NOT_SUPPORTED). Each step costs a walk up to the previous entry,
 * so walking n blocks is O(n^2): it is a debugging tool.
 * HeapCompact returns the largest free block a fixed-size heap could hand
 * out; for growable heaps it returns free memory to the kernel and
 * returns 0 with the last error set to 0 (their free space is not one
 * block: partitions grow on demand).
 * HeapLock/HeapUnlock: the heap's lock is recursive, as on Windows: the
 * thread holding it may call into the heap. Another thread's HeapLock
 * also holds back fork() until HeapUnlock. */
#ifndef NITROHEAP_WIN_HEAP_H_
#define NITROHEAP_WIN_HEAP_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void* HANDLE;
typedef HANDLE* PHANDLE;
typedef void* LPVOID;
typedef const void* LPCVOID;
typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef uint8_t BYTE;
typedef int BOOL;
typedef size_t SIZE_T;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define HEAP_NO_SERIALIZE 0x00000001u
#define HEAP_GENERATE_EXCEPTIONS 0x00000004u
#define HEAP_ZERO_MEMORY 0x00000008u
#define HEAP_REALLOC_IN_PLACE_ONLY 0x00000010u
#define HEAP_CREATE_ENABLE_EXECUTE 0x00040000u

#define ERROR_SUCCESS 0u
#define ERROR_INVALID_HANDLE 6u
#define ERROR_NOT_ENOUGH_MEMORY 8u
#define ERROR_NOT_SUPPORTED 50u
#define ERROR_INVALID_PARAMETER 87u
#define ERROR_NO_MORE_ITEMS 259u
#define STATUS_NO_MEMORY 0xC0000017u

#define PROCESS_HEAP_REGION 0x0001
#define PROCESS_HEAP_UNCOMMITTED_RANGE 0x0002
#define PROCESS_HEAP_ENTRY_BUSY 0x0004
#define PROCESS_HEAP_ENTRY_MOVEABLE 0x0010
#define PROCESS_HEAP_ENTRY_DDESHARE 0x0020

typedef struct _PROCESS_HEAP_ENTRY {
  LPVOID lpData;     /* the block (or the region's start) */
  DWORD cbData;      /* usable bytes (a region: its bytes) */
  BYTE cbOverhead;   /* header bytes: 16 in a fixed-size heap, 0 in a partition */
  BYTE iRegionIndex; /* always 0 */
  WORD wFlags;
  union {
    struct {
      HANDLE hMem;
      DWORD dwReserved[3];
    } Block;
    struct {
      DWORD dwCommittedSize;
      DWORD dwUnCommittedSize;
      LPVOID lpFirstBlock;
      LPVOID lpLastBlock;
    } Region;
  };
} PROCESS_HEAP_ENTRY, *LPPROCESS_HEAP_ENTRY, *PPROCESS_HEAP_ENTRY;

HANDLE nitro_win_HeapCreate(DWORD flOptions, SIZE_T dwInitialSize, SIZE_T dwMaximumSize);
BOOL nitro_win_HeapDestroy(HANDLE hHeap);
LPVOID nitro_win_HeapAlloc(HANDLE hHeap, DWORD dwFlags, SIZE_T dwBytes);
LPVOID nitro_win_HeapReAlloc(HANDLE hHeap, DWORD dwFlags, LPVOID lpMem, SIZE_T dwBytes);
BOOL nitro_win_HeapFree(HANDLE hHeap, DWORD dwFlags, LPVOID lpMem);
SIZE_T nitro_win_HeapSize(HANDLE hHeap, DWORD dwFlags, LPCVOID lpMem);
BOOL nitro_win_HeapValidate(HANDLE hHeap, DWORD dwFlags, LPCVOID lpMem);
SIZE_T nitro_win_HeapCompact(HANDLE hHeap, DWORD dwFlags);
BOOL nitro_win_HeapLock(HANDLE hHeap);
BOOL nitro_win_HeapUnlock(HANDLE hHeap);
BOOL nitro_win_HeapWalk(HANDLE hHeap, LPPROCESS_HEAP_ENTRY lpEntry);
HANDLE nitro_win_GetProcessHeap(void);
DWORD nitro_win_GetProcessHeaps(DWORD NumberOfHeaps, PHANDLE ProcessHeaps);
DWORD nitro_win_GetLastError(void);
void nitro_win_SetLastError(DWORD dwErrCode);

#ifndef NITRO_WIN_HEAP_NO_WIN32_NAMES
static inline HANDLE HeapCreate(DWORD o, SIZE_T i, SIZE_T m) { return nitro_win_HeapCreate(o, i, m); }
static inline BOOL HeapDestroy(HANDLE h) { return nitro_win_HeapDestroy(h); }
static inline LPVOID HeapAlloc(HANDLE h, DWORD f, SIZE_T n) { return nitro_win_HeapAlloc(h, f, n); }
static inline LPVOID HeapReAlloc(HANDLE h, DWORD f, LPVOID p, SIZE_T n) {
  return nitro_win_HeapReAlloc(h, f, p, n);
}
static inline BOOL HeapFree(HANDLE h, DWORD f, LPVOID p) { return nitro_win_HeapFree(h, f, p); }
static inline SIZE_T HeapSize(HANDLE h, DWORD f, LPCVOID p) { return nitro_win_HeapSize(h, f, p); }
static inline BOOL HeapValidate(HANDLE h, DWORD f, LPCVOID p) { return nitro_win_HeapValidate(h, f, p); }
static inline SIZE_T HeapCompact(HANDLE h, DWORD f) { return nitro_win_HeapCompact(h, f); }
static inline BOOL HeapLock(HANDLE h) { return nitro_win_HeapLock(h); }
static inline BOOL HeapUnlock(HANDLE h) { return nitro_win_HeapUnlock(h); }
static inline BOOL HeapWalk(HANDLE h, LPPROCESS_HEAP_ENTRY e) { return nitro_win_HeapWalk(h, e); }
static inline HANDLE GetProcessHeap(void) { return nitro_win_GetProcessHeap(); }
static inline DWORD GetProcessHeaps(DWORD n, PHANDLE heaps) { return nitro_win_GetProcessHeaps(n, heaps); }
static inline DWORD GetLastError(void) { return nitro_win_GetLastError(); }
static inline void SetLastError(DWORD e) { nitro_win_SetLastError(e); }
#endif

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_WIN_HEAP_H_ */
