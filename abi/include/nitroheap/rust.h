/* The allocator API behind Rust's GlobalAlloc, with Rust's contracts:
 * `align` is any power of two (over-aligned types included), deallocation
 * and reallocation receive the size and alignment the block was made with,
 * and a NULL return means failure (Rust then calls handle_alloc_error). */
#ifndef NITROHEAP_RUST_H_
#define NITROHEAP_RUST_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void* nitro_rust_alloc(size_t size, size_t align);
void* nitro_rust_alloc_zeroed(size_t size, size_t align);
void nitro_rust_dealloc(void* ptr, size_t size, size_t align);
void* nitro_rust_realloc(void* ptr, size_t old_size, size_t align, size_t new_size);

#ifdef __cplusplus
}
#endif

#endif /* NITROHEAP_RUST_H_ */
