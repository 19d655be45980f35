// Constants, branch hints and the two assertion levels every engine file uses.
//
// NITRO_CHECK guards security and correctness properties and is always on;
// NITRO_ASSERT guards internal invariants and compiles away unless
// NITRO_DEBUG is defined. Neither allocates: the message is formatted on the
// stack and written with write(2).
#ifndef NITROHEAP_CORE_BASE_H_
#define NITROHEAP_CORE_BASE_H_

#include <stddef.h>
#include <stdint.h>

#define NITRO_LIKELY(x) __builtin_expect(!!(x), 1)
#define NITRO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NITRO_ALWAYS_INLINE inline __attribute__((always_inline))
#define NITRO_NOINLINE __attribute__((noinline))
#define NITRO_EXPORT __attribute__((visibility("default")))

namespace nitro {

inline constexpr size_t kPageShift = 12;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
// Every pointer NitroHeap returns is aligned at least to alignof(max_align_t).
inline constexpr size_t kMinAlign = 16;
// User-space addresses on x86-64 and AArch64 (4-level tables) fit in 47 bits.
inline constexpr int kAddressBits = 47;
// Requests above this cannot be satisfied (they exceed the address space).
inline constexpr size_t kMaxRequest = size_t{1} << 46;

inline constexpr uintptr_t RoundUp(uintptr_t x, uintptr_t align) {
  return (x + align - 1) & ~(align - 1);
}
inline constexpr uintptr_t RoundDown(uintptr_t x, uintptr_t align) {
  return x & ~(align - 1);
}
inline constexpr bool IsPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }
inline constexpr size_t PagesFor(size_t bytes) { return (bytes + kPageSize - 1) >> kPageShift; }

// One step of xorshift64 (state must be non-zero): cheap randomness for
// sampling and placement decisions, not for secrets (os::RandomBytes).
inline uint64_t XorShift64(uint64_t* state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

// Output. Every line NitroHeap writes to stderr goes through WriteOutput:
// to the callback registered with SetOutputCallback, or else to fd 2.
// Lines written to stderr before a callback is registered (start-up option
// errors) are also kept, up to 4 KiB, and handed to the first callback.
using OutputCallback = void (*)(const char* line, void* arg);
void SetOutputCallback(OutputCallback fn, void* arg);
// Writes `len` bytes of whole lines to `fd`; for fd 2 the callback, if any,
// receives them one line at a time (NUL-terminated, ending in '\n').
void WriteOutput(int fd, const char* text, size_t len);

// Misuse. NotifyMisuse runs the registered error callback (once per thread:
// a misuse inside the callback does not call it again); the caller aborts
// afterwards whatever the callback does.
using ErrorCallback = void (*)(const char* kind, const void* addr, void* arg);
void SetErrorCallback(ErrorCallback fn, void* arg);
void NotifyMisuse(const char* kind, const void* addr);

// Writes one line to stderr without touching the heap.
void LogLine(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints "nitroheap: <message>" and aborts.
[[noreturn]] void Fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace nitro

#define NITRO_CHECK(cond, ...)                    \
  do {                                            \
    if (NITRO_UNLIKELY(!(cond))) ::nitro::Fatal(__VA_ARGS__); \
  } while (0)

#ifdef NITRO_DEBUG
#define NITRO_ASSERT(cond)                                                     \
  do {                                                                         \
    if (NITRO_UNLIKELY(!(cond)))                                               \
      ::nitro::Fatal("internal assertion failed: %s (%s:%d)", #cond, __FILE__, \
                     __LINE__);                                                \
  } while (0)
#else
#define NITRO_ASSERT(cond) \
  do {                     \
  } while (0 && (cond))
#endif

#endif  // NITROHEAP_CORE_BASE_H_
