// The C API behind Rust's GlobalAlloc (include/nitroheap/rust.h): one-line
// calls into the process heap's allocation path with the layout's alignment
// as its policy.
#include "nitroheap/rust.h"

#include "core/heap.h"

extern "C" {

NITRO_EXPORT void* nitro_rust_alloc(size_t size, size_t align) {
  return nitro::Allocate(size, align, false);
}

NITRO_EXPORT void* nitro_rust_alloc_zeroed(size_t size, size_t align) {
  return nitro::Allocate(size, align, true);
}

NITRO_EXPORT void nitro_rust_dealloc(void* ptr, size_t size, size_t align) {
  nitro::FreeSized(ptr, size, align);
}

NITRO_EXPORT void* nitro_rust_realloc(void* ptr, size_t old_size, size_t align, size_t new_size) {
  (void)old_size;  // the heap knows the block's size
  // A layout's alignment is kept on every path (Reallocate's align), and a
  // block kept in place is one nitro_rust_dealloc(ptr, new_size) accepts.
  return nitro::Reallocate(ptr, new_size, align);
}

}  // extern "C"
