// Every operator new / operator delete form, over the heap's one allocation
// path (nitro::Allocate). The C++ failure rule is added here: new calls the
// new-handler until it succeeds and throws std::bad_alloc when there is none;
// the nothrow forms return nullptr instead, also when the handler throws.
//
// The C++ runtime is reached at run time, not linked: only C++ programs call
// operator new, and they have libstdc++ loaded. So the preload library adds
// no libstdc++ to C programs (about 1 MiB of resident memory each), and it is
// built without exceptions. A handler that throws inside a nothrow new is
// caught by libstdc++'s own nothrow operator new, which calls back into the
// throwing operator new below and turns the exception into nullptr, exactly
// as it does without NitroHeap.
#include <dlfcn.h>

#include <atomic>
#include <new>

#include "core/heap.h"

namespace {

using GetNewHandler = std::new_handler (*)();
using ThrowBadAlloc = void (*)();
using NothrowNew = void* (*)(size_t, const std::nothrow_t&) noexcept;
using NothrowAlignedNew = void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept;

struct Runtime {
  GetNewHandler get_handler;
  ThrowBadAlloc throw_bad_alloc;
  NothrowNew nothrow_new;
  NothrowAlignedNew nothrow_aligned_new;
};

// Looked up once; racing first calls look up the same values, and each
// field is published with an atomic store.
std::atomic<bool> g_resolved{false};
std::atomic<GetNewHandler> g_get_handler{nullptr};
std::atomic<ThrowBadAlloc> g_throw{nullptr};
std::atomic<NothrowNew> g_nothrow_new{nullptr};
std::atomic<NothrowAlignedNew> g_nothrow_aligned_new{nullptr};

Runtime GetRuntime() {
  if (!g_resolved.load(std::memory_order_acquire)) {
    g_get_handler.store(reinterpret_cast<GetNewHandler>(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv")),
                        std::memory_order_relaxed);
    g_throw.store(reinterpret_cast<ThrowBadAlloc>(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv")),
                  std::memory_order_relaxed);
    // The C++ runtime's own nothrow forms, found past this object.
    g_nothrow_new.store(reinterpret_cast<NothrowNew>(dlsym(RTLD_NEXT, "_ZnwmRKSt9nothrow_t")),
                        std::memory_order_relaxed);
    g_nothrow_aligned_new.store(
        reinterpret_cast<NothrowAlignedNew>(dlsym(RTLD_NEXT, "_ZnwmSt11align_val_tRKSt9nothrow_t")),
        std::memory_order_relaxed);
    g_resolved.store(true, std::memory_order_release);
  }
  return Runtime{g_get_handler.load(std::memory_order_relaxed), g_throw.load(std::memory_order_relaxed),
                 g_nothrow_new.load(std::memory_order_relaxed),
                 g_nothrow_aligned_new.load(std::memory_order_relaxed)};
}

[[noreturn]] void FailNew(const Runtime& rt, size_t size) {
  if (rt.throw_bad_alloc == nullptr) {
    nitro::Fatal("operator new(%zu) failed and the C++ runtime is not loaded", size);
  }
  rt.throw_bad_alloc();
  __builtin_unreachable();
}

// An alignment that is not a power of two (undefined in C++; no compiler
// makes one) is refused as libstdc++'s own aligned new refuses it:
// bad_alloc from the throwing forms, nullptr from the nothrow ones, and no
// new-handler, since no retry can satisfy it. align 0: the natural one.
bool RefusedAlignment(size_t align) { return align != 0 && !nitro::IsPowerOfTwo(align); }

NITRO_NOINLINE void* NewSlow(size_t size, size_t align) {
  Runtime rt = GetRuntime();
  if (RefusedAlignment(align)) FailNew(rt, size);
  for (;;) {
    void* p = nitro::Allocate(size, align, false);
    if (p != nullptr) return p;
    std::new_handler handler = rt.get_handler != nullptr ? rt.get_handler() : nullptr;
    if (handler == nullptr) break;
    handler();  // may throw: that is the caller's exception
  }
  FailNew(rt, size);
}

NITRO_NOINLINE void* NewNothrowSlow(size_t size, size_t align) {
  if (RefusedAlignment(align)) return nullptr;
  void* p = nitro::Allocate(size, align, false);
  if (p != nullptr) return p;
  Runtime rt = GetRuntime();
  if (rt.get_handler == nullptr || rt.get_handler() == nullptr) return nullptr;
  // A handler is installed, and it may throw: let the C++ runtime's nothrow
  // new run the retry loop (through the throwing forms here) and catch.
  if (align <= nitro::kMinAlign) {
    if (rt.nothrow_new != nullptr) return rt.nothrow_new(size, std::nothrow_t{});
  } else if (rt.nothrow_aligned_new != nullptr) {
    return rt.nothrow_aligned_new(size, static_cast<std::align_val_t>(align), std::nothrow_t{});
  }
  return nullptr;  // no C++ runtime to catch with: never let an exception out
}

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

// Aligned new: the aligned fast path for an alignment that is a power of
// two (every one a compiler makes); the slow forms refuse any other.
NITRO_ALWAYS_INLINE void* NewAligned(size_t size, size_t align) {
  if (NITRO_LIKELY(nitro::IsPowerOfTwo(align))) {
    void* p = nitro::Allocate(size, align, false);
    if (NITRO_LIKELY(p != nullptr)) return p;
  }
  return NewSlow(size, align);
}

NITRO_ALWAYS_INLINE void* NewAlignedNothrow(size_t size, size_t align) noexcept {
  if (NITRO_LIKELY(nitro::IsPowerOfTwo(align))) {
    void* p = nitro::Allocate(size, align, false);
    if (NITRO_LIKELY(p != nullptr)) return p;
  }
  return NewNothrowSlow(size, align);
}

}  // namespace

NITRO_EXPORT void* operator new(size_t size) { return New(size); }
NITRO_EXPORT void* operator new[](size_t size) { return New(size); }
NITRO_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
NITRO_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }

NITRO_EXPORT void* operator new(size_t size, std::align_val_t al) {
  return NewAligned(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new[](size_t size, std::align_val_t al) {
  return NewAligned(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new(size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(size, static_cast<size_t>(al));
}
NITRO_EXPORT void* operator new[](size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(size, static_cast<size_t>(al));
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
