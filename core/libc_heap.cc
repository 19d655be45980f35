#include "core/libc_heap.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/base.h"
#include "core/lock.h"
#include "core/os.h"

#include <errno.h>

namespace nitro {
namespace {

alignas(64) char g_bootstrap[64 * 1024];
size_t g_bootstrap_used = 0;
SpinLock g_resolve_lock{LockRank::kLibcResolve};
LibcHeap g_libc;
bool g_resolved = false;
__thread bool tls_resolving __attribute__((tls_model("initial-exec"))) = false;

template <typename T>
void Resolve(T* fn, const char* name) {
  *fn = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}

// The start of the brk heap (field 47 of /proc/self/stat), read once.
uintptr_t g_start_brk = 0;
bool g_start_brk_read = false;

uintptr_t StartBrk() {
  if (__atomic_load_n(&g_start_brk_read, __ATOMIC_ACQUIRE)) return g_start_brk;
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0) close(fd);
  uintptr_t value = 0;
  if (n > 0) {
    buf[n] = '\0';
    // Fields after the command name (which may contain spaces) start after ')'.
    char* p = buf;
    for (char* q = buf; *q; q++) if (*q == ')') p = q + 1;
    int field = 2;
    while (*p && field < 47) {
      if (*p == ' ') field++;
      p++;
    }
    if (field == 47) value = strtoul(p, nullptr, 10);
  }
  g_start_brk = value;
  __atomic_store_n(&g_start_brk_read, true, __ATOMIC_RELEASE);
  return value;
}

bool Mapped(uintptr_t addr, size_t len) {
  uintptr_t first = RoundDown(addr, kPageSize);
  uintptr_t last = RoundUp(addr + len, kPageSize);
  unsigned char vec[4];
  if ((last - first) / kPageSize > sizeof(vec)) return false;
  // mincore fails with ENOMEM for unmapped pages; it never faults.
  int saved = errno;
  bool ok = mincore(reinterpret_cast<void*>(first), last - first, vec) == 0;
  errno = saved;
  return ok;
}

}  // namespace

bool LibcMayOwn(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  size_t header[2];
  if (a % kMinAlign != 0 || a < 4096 || !os::ReadWithoutFault(reinterpret_cast<const void*>(a - 16), header, sizeof(header))) return false;
  size_t prev_size = header[0];
  size_t size_field = header[1];
  size_t chunk = size_field & ~size_t{7};
  if (chunk < 32 || chunk % 16 != 0 || chunk > (size_t{1} << 46)) return false;
  if (size_field & 2) {  // IS_MMAPPED: the chunk is its own mapping
    uintptr_t map_start = a - 16 - prev_size;
    return prev_size % 16 == 0 && map_start % kPageSize == 0 &&
           (prev_size + chunk) % kPageSize == 0 && Mapped(map_start, 1);
  }
  if (size_field & 4) return true;  // NON_MAIN_ARENA: a thread arena's heap, header is sane
  uintptr_t lo = StartBrk();
  uintptr_t hi = reinterpret_cast<uintptr_t>(sbrk(0));
  return lo != 0 && a > lo && a + chunk - 16 <= hi;
}

bool IsBootstrapPointer(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  auto base = reinterpret_cast<uintptr_t>(g_bootstrap);
  return a >= base && a < base + sizeof(g_bootstrap);
}

size_t BootstrapBytesAfter(const void* p) {
  return static_cast<size_t>(g_bootstrap + g_bootstrap_used - static_cast<const char*>(p));
}

void* BootstrapAllocate(size_t size, size_t align) {
  if (!tls_resolving) return nullptr;
  if (align < kMinAlign) align = kMinAlign;
  size_t start = RoundUp(g_bootstrap_used, align);
  if (start + size > sizeof(g_bootstrap) || start + size < start) return nullptr;
  g_bootstrap_used = start + size;
  return g_bootstrap + start;
}

SpinLock& LibcResolveLock() { return g_resolve_lock; }

const LibcHeap* Libc() {
  if (__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE)) return g_libc.malloc ? &g_libc : nullptr;
  if (tls_resolving) return nullptr;  // dlsym called back into us
  LockGuard g(g_resolve_lock);
  if (!g_resolved) {
    tls_resolving = true;
    Resolve(&g_libc.malloc, "malloc");
    Resolve(&g_libc.free, "free");
    Resolve(&g_libc.calloc, "calloc");
    Resolve(&g_libc.realloc, "realloc");
    Resolve(&g_libc.memalign, "memalign");
    Resolve(&g_libc.usable_size, "malloc_usable_size");
    Resolve(&g_libc.trim, "malloc_trim");
    tls_resolving = false;
    if (!g_libc.malloc || !g_libc.free || !g_libc.calloc || !g_libc.realloc || !g_libc.memalign ||
        !g_libc.usable_size) {
      g_libc.malloc = nullptr;
    }
    __atomic_store_n(&g_resolved, true, __ATOMIC_RELEASE);
  }
  return g_libc.malloc ? &g_libc : nullptr;
}

}  // namespace nitro
