//! Rust bindings for NitroHeap, a hardened C++ malloc replacement.
//!
//! [`NitroHeap`] implements [`GlobalAlloc`] on top of NitroHeap's Rust API
//! (`nitroheap/rust.h`), which honours Rust's contracts: any power-of-two
//! alignment (over-aligned types included), sized deallocation, and a null
//! return on failure. Beyond allocation the crate exposes NitroHeap's
//! extension API (`nitroheap/nitroheap.h`): [statistics](stats),
//! [`nitro_ctl`](ctl_read_u64), [partitions](Partition), and the
//! [flight recorder](dump_flight_recording) and
//! [heap profile](dump_heap_profile) dumps.
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
//!     println!("{} allocations", nitroheap::stats().unwrap().total.allocations);
//! }
//! ```
//!
//! # Linking
//!
//! By default the build script compiles NitroHeap's C++ sources (from the
//! repository this crate lives in, with the system C++ compiler) and links
//! them into the program statically: `cargo run` needs no environment
//! variable and no `LD_LIBRARY_PATH`. The program's C `malloc`/`free` and
//! C++ `operator new`/`delete` are then NitroHeap's too, as with Bazel's
//! `malloc = "//abi:malloc"`: one heap serves Rust, C and C++ code alike.
//!
//! The cargo feature `dynamic`, or the environment variable
//! `NITROHEAP_LIB_DIR`, links `libnitroheap.so` instead (built by
//! `bazel build //abi:libnitroheap.so`); see the README for the run-time
//! search path that dependents then need. [`LINKED_STATICALLY`] says which
//! was built.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::CStr;

mod ctl;
mod error;
mod ffi;
mod partition;
mod stats;

pub use ctl::{
    ctl_read_string, ctl_read_u64, ctl_write, dump_flight_recording, dump_heap_profile, flush_thread_cache,
    release_free_memory,
};
pub use error::{errno, Error};
pub use partition::{Partition, PartitionBox, PARTITION_NAME_MAX};
pub use stats::{stats, stats_json, ClassStats, Counters, PartitionStats, Stats};

include!(concat!(env!("OUT_DIR"), "/linkage.rs"));

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

/// `"nitro"`, or `"legacy"` when every call goes to the C library.
pub fn heap_mode() -> &'static str {
    // SAFETY: nitro_heap_mode returns one of two static C strings.
    unsafe { CStr::from_ptr(ffi::nitro_heap_mode()) }.to_str().unwrap_or("unknown")
}
