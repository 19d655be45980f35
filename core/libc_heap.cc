#include "core/libc_heap.h"

#include <dlfcn.h>
#include <stdint.h>

#include "core/base.h"
#include "core/lock.h"

namespace nitro {
namespace {

alignas(64) char g_bootstrap[64 * 1024];
size_t g_bootstrap_used = 0;
SpinLock g_resolve_lock;
LibcHeap g_libc;
bool g_resolved = false;
__thread bool tls_resolving __attribute__((tls_model("initial-exec"))) = false;

template <typename T>
void Resolve(T* fn, const char* name) {
  *fn = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}

}  // namespace

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

void LockLibcResolve() { g_resolve_lock.Lock(); }
void UnlockLibcResolve() { g_resolve_lock.Unlock(); }
void ResetLibcResolveAfterFork() { g_resolve_lock.ResetAfterFork(); }

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
