// The C API behind Rust's GlobalAlloc (include/nitroheap/rust.h).
#include "nitroheap/rust.h"

#include <string.h>

#include "core/heap.h"

extern "C" {

NITRO_EXPORT void* nitro_rust_alloc(size_t size, size_t align) {
  if (align <= nitro::kMinAlign) return nitro::Malloc(size);
  return nitro::AllocateAligned(align, size);
}

NITRO_EXPORT void* nitro_rust_alloc_zeroed(size_t size, size_t align) {
  if (align <= nitro::kMinAlign) return nitro::Calloc(1, size);
  void* p = nitro::AllocateAligned(align, size);
  if (p != nullptr) memset(p, 0, size);
  return p;
}

NITRO_EXPORT void nitro_rust_dealloc(void* ptr, size_t size, size_t align) {
  nitro::FreeSized(ptr, size, align);
}

NITRO_EXPORT void* nitro_rust_realloc(void* ptr, size_t old_size, size_t align, size_t new_size) {
  if (align <= nitro::kMinAlign) return nitro::Realloc(ptr, new_size);
  // realloc may move a block to an address of weaker alignment: keep the
  // block when it still fits, else move it to a block of the same alignment.
  size_t usable = nitro::UsableSize(ptr);
  if (new_size <= usable && new_size > usable / 2) return ptr;
  void* q = nitro::AllocateAligned(align, new_size);
  if (q == nullptr) return nullptr;
  memcpy(q, ptr, old_size < new_size ? old_size : new_size);
  nitro::Free(ptr);
  return q;
}

}  // extern "C"
