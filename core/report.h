// Heap-misuse diagnostics. Every detection prints, without touching the
// heap, one line
//   nitroheap: <kind> at <address> in partition <name>: <details>
// then the stack (frame-pointer walk, symbolized with dladdr), then aborts.
#ifndef NITROHEAP_CORE_REPORT_H_
#define NITROHEAP_CORE_REPORT_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro {

inline constexpr int kMaxFrames = 32;

// Captures up to `max` return addresses of the caller's stack, skipping
// `skip` frames. Never allocates; stops at the first implausible frame.
int CaptureStack(uintptr_t* frames, int max, int skip);
// How many frames this thread's walks read through the kernel (a system
// call each) because their page was not yet known to be readable.
uint64_t StackWalkKernelReads();
// The same as CaptureStack, starting from a given frame pointer and
// program counter (the state of a faulting thread, from its signal context).
int CaptureStackFrom(uintptr_t fp, uintptr_t pc, uintptr_t* frames, int max);
// Writes "nitroheap:   #i 0x... symbol+0x.. (object)" lines to fd.
void WriteStack(int fd, const char* title, const uintptr_t* frames, int n);

// The kinds of misuse, as they appear in the first line.
namespace misuse {
inline constexpr const char* kDoubleFree = "double free";
inline constexpr const char* kInvalidFree = "invalid free";  // interior, unaligned
inline constexpr const char* kForeignFree = "free of memory not from the heap";
inline constexpr const char* kSizeMismatch = "sized free with the wrong size";
inline constexpr const char* kWriteAfterFree = "write after free";
inline constexpr const char* kOverflow = "heap buffer overflow";
inline constexpr const char* kUnderflow = "heap buffer underflow";
inline constexpr const char* kUseAfterFree = "use after free";
inline constexpr const char* kCorruptFreeList = "corrupted free list";
inline constexpr const char* kBadRegion = "invalid region handle";  // core/region.h
}  // namespace misuse

[[noreturn]] void ReportMisuse(const char* kind, const void* addr, const char* partition,
                               const char* fmt, ...) __attribute__((format(printf, 4, 5)));

}  // namespace nitro

#endif  // NITROHEAP_CORE_REPORT_H_
