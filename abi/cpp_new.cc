// Every operator new / operator delete form. new honours the new-handler
// and throws std::bad_alloc; the nothrow forms return nullptr instead.
#include <new>

#include "core/heap.h"

namespace {

NITRO_NOINLINE void* NewSlow(size_t size, size_t align) {
  for (;;) {
    void* p = align <= nitro::kMinAlign ? nitro::Malloc(size) : nitro::AllocateAligned(align, size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

NITRO_NOINLINE void* NewNothrowSlow(size_t size, size_t align) noexcept {
  try {
    return NewSlow(size, align);
  } catch (...) {
    return nullptr;
  }
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
