// Every operator new / operator delete form. new honours the new-handler
// and throws std::bad_alloc; the nothrow forms return nullptr instead.
//
// The C++ runtime is reached at run time, not linked: only C++ programs call
// operator new, and they have libstdc++ loaded. So the preload library adds
// no libstdc++ to C programs (about 1 MiB of resident memory each).
#include <dlfcn.h>

#include <new>

#include "core/heap.h"

namespace {

using GetNewHandler = std::new_handler (*)();
using ThrowBadAlloc = void (*)();

GetNewHandler g_get_handler = nullptr;
ThrowBadAlloc g_throw = nullptr;

void ResolveRuntime() {
  if (g_throw != nullptr) return;
  g_get_handler = reinterpret_cast<GetNewHandler>(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv"));
  g_throw = reinterpret_cast<ThrowBadAlloc>(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv"));
}

void* AllocateOrNull(size_t size, size_t align) {
  return align <= nitro::kMinAlign ? nitro::Malloc(size) : nitro::AllocateAligned(align, size);
}

// Calls the new-handler until the allocation succeeds; nullptr when there is
// no handler. (A handler that throws propagates, as for plain new.)
void* RetryWithHandler(size_t size, size_t align) {
  ResolveRuntime();
  for (;;) {
    void* p = AllocateOrNull(size, align);
    if (p != nullptr) return p;
    std::new_handler handler = g_get_handler != nullptr ? g_get_handler() : nullptr;
    if (handler == nullptr) return nullptr;
    handler();
  }
}

NITRO_NOINLINE void* NewSlow(size_t size, size_t align) {
  void* p = RetryWithHandler(size, align);
  if (p != nullptr) return p;
  if (g_throw == nullptr) nitro::Fatal("operator new(%zu) failed and the C++ runtime is not loaded", size);
  g_throw();
  __builtin_unreachable();
}

NITRO_NOINLINE void* NewNothrowSlow(size_t size, size_t align) { return RetryWithHandler(size, align); }

NITRO_ALWAYS_INLINE void* New(size_t size) {
  void* p = nitro::Malloc(size);
  if (NITRO_LIKELY(p != nullptr)) return p;
  return NewSlow(size, 0);
}

NITRO_ALWAYS_INLINE void* NewNothrow(size_t size) noexcept {
  void* p = nitro::Malloc(size);
  if (NITRO_LIKELY(p != nullptr)) return p;
  return NewNothrowSlow(size, 0);
}

}  // namespace

NITRO_EXPORT void* operator new(size_t size) { return New(size); }
NITRO_EXPORT void* operator new[](size_t size) { return New(size); }
NITRO_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
NITRO_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }

NITRO_EXPORT void* operator new(size_t size, std::align_val_t al) {
  return NewSlow(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new[](size_t size, std::align_val_t al) {
  return NewSlow(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new(size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewNothrowSlow(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new[](size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewNothrowSlow(size, static_cast<size_t>(al));
}

NITRO_EXPORT void operator delete(void* p) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete[](void* p) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete(void* p, size_t size) noexcept { nitro::FreeSized(p, size, 0); }
NITRO_EXPORT void operator delete[](void* p, size_t size) noexcept { nitro::FreeSized(p, size, 0); }
NITRO_EXPORT void operator delete(void* p, std::align_val_t) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { nitro::Free(p); }
NITRO_EXPORT void operator delete(void* p, size_t size, std::align_val_t al) noexcept {
  nitro::FreeSized(p, size, static_cast<size_t>(al));
}
NITRO_EXPORT void operator delete[](void* p, size_t size, std::align_val_t al) noexcept {
  nitro::FreeSized(p, size, static_cast<size_t>(al));
}
NITRO_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  nitro::Free(p);
}
NITRO_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  nitro::Free(p);
}
