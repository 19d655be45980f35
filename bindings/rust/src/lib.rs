//! Rust bindings for NitroHeap, a C++ malloc replacement.
//!
//! [`NitroHeap`] implements [`GlobalAlloc`] on top of NitroHeap's Rust API
//! (`nitroheap/rust.h`), which honours Rust's contracts: any power-of-two
//! alignment (over-aligned types included), sized deallocation, and a null
//! return on failure.
//!
//! # Usage
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;
//!
//! fn main() {
//!     let v = vec![1u32, 2, 3];
//!     assert!(nitroheap::owns(v.as_ptr().cast()));
//! }
//! ```
//!
//! # Building
//!
//! The build script links `libnitroheap.so` from the directory named by the
//! `NITROHEAP_LIB_DIR` environment variable (a relative path is taken from the
//! NitroHeap repository root):
//!
//! ```text
//! bazel build //abi:libnitroheap.so
//! NITROHEAP_LIB_DIR=bazel-bin/abi cargo test
//! ```
//!
//! This crate's own tests, examples and binaries get an rpath to that
//! directory. Binaries of dependent crates do not: give them
//! `LD_LIBRARY_PATH`, or their own `-Wl,-rpath` (the directory is exported to
//! their build scripts as `DEP_NITROHEAP_LIB_DIR`).
//!
//! Loading the library also replaces `malloc`/`free` for the whole process.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};

mod ffi {
    use super::*;

    extern "C" {
        pub fn nitro_rust_alloc(size: usize, align: usize) -> *mut c_void;
        pub fn nitro_rust_alloc_zeroed(size: usize, align: usize) -> *mut c_void;
        pub fn nitro_rust_dealloc(ptr: *mut c_void, size: usize, align: usize);
        pub fn nitro_rust_realloc(
            ptr: *mut c_void,
            old_size: usize,
            align: usize,
            new_size: usize,
        ) -> *mut c_void;
        pub fn nitro_owns(p: *const c_void) -> c_int;
        pub fn nitro_is_active() -> c_int;
    }
}

/// The NitroHeap global allocator.
///
/// ```no_run
/// #[global_allocator]
/// static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NitroHeap;

unsafe impl GlobalAlloc for NitroHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ffi::nitro_rust_alloc(layout.size(), layout.align()).cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ffi::nitro_rust_alloc_zeroed(layout.size(), layout.align()).cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ffi::nitro_rust_dealloc(ptr.cast(), layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ffi::nitro_rust_realloc(ptr.cast(), layout.size(), layout.align(), new_size).cast()
    }
}

/// Returns `true` if `ptr` points into memory NitroHeap manages (live or free).
///
/// Only the address is inspected; `ptr` is never dereferenced.
#[inline]
pub fn owns(ptr: *const u8) -> bool {
    // SAFETY: nitro_owns only compares the address against NitroHeap's maps.
    unsafe { ffi::nitro_owns(ptr.cast()) != 0 }
}

/// Returns `true` if NitroHeap serves `malloc` in this process (mode
/// `"nitro"`); `false` when it routes calls to the C library
/// (`NITROHEAP=legacy`).
#[inline]
pub fn is_active() -> bool {
    // SAFETY: takes no arguments and is safe to call at any time.
    unsafe { ffi::nitro_is_active() != 0 }
}
