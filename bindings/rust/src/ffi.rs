//! The C API of `abi/include/nitroheap/{rust,nitroheap}.h`, declared once.

use std::os::raw::{c_char, c_int, c_void};

/// `nitro_partition_t`: only ever behind a pointer.
#[repr(C)]
pub struct RawPartition {
    _private: [u8; 0],
}

pub const STATS_VERSION: u32 = 1;
pub const STATS_MAX_PARTITIONS: usize = 16;
pub const STATS_CLASSES: usize = 88;

/// A heap's counters (`nitro_counters_t`), for all partitions or one. Byte
/// counts are bytes; "live" bytes count whole size-class slots, "requested"
/// what callers asked for (exact for large allocations, estimated for small
/// objects: see docs/telemetry.md).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Allocations ever made.
    pub allocations: u64,
    /// Allocations ever freed.
    pub frees: u64,
    pub live_objects: u64,
    /// Usable bytes of live objects.
    pub live_bytes: u64,
    pub live_requested_bytes: u64,
    /// Address space reserved.
    pub mapped_bytes: u64,
    /// Pages in use, or free but not yet returned.
    pub committed_bytes: u64,
    /// Bytes ever returned to the OS (madvise).
    pub returned_bytes: u64,
    /// Free pages kept committed (decay returns them).
    pub free_cached_bytes: u64,
    pub slabs: u64,
    /// Capacity of all slabs, in objects.
    pub slab_objects: u64,
    /// Free objects inside slabs.
    pub slab_free_objects: u64,
    /// Objects cached by threads, in bytes.
    pub thread_cache_bytes: u64,
    /// Objects in the middle layer's batches, in bytes.
    pub middle_layer_bytes: u64,
    /// Objects freed into batches, not yet reused.
    pub remote_free_backlog: u64,
    /// Large runs waiting before reuse, in bytes.
    pub quarantine_bytes: u64,
    /// Contended lock acquisitions.
    pub lock_contention: u64,
    /// Flight-recorder samples and guarded allocations.
    pub sampled_allocations: u64,
}

/// `nitro_partition_stats_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawPartitionStats {
    pub name: [c_char; 32],
    pub counters: Counters,
}

/// One size class of the default partition (`nitro_class_stats_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per object.
    pub size: u32,
    reserved: u32,
    pub allocations: u64,
    pub frees: u64,
    pub live_objects: u64,
    pub slabs: u64,
    pub slab_objects: u64,
    pub slab_free_objects: u64,
    pub thread_cache_objects: u64,
    pub middle_layer_objects: u64,
}

/// `nitro_stats_t` (version 1).
#[repr(C)]
pub struct RawStats {
    pub version: u32,
    pub size: u32,
    pub pid: u64,
    pub threads: u64,
    pub total: Counters,
    pub partition_count: u32,
    pub reserved: u32,
    pub partitions: [RawPartitionStats; STATS_MAX_PARTITIONS],
    pub classes: [ClassStats; STATS_CLASSES],
}

extern "C" {
    pub fn nitro_rust_alloc(size: usize, align: usize) -> *mut c_void;
    pub fn nitro_rust_alloc_zeroed(size: usize, align: usize) -> *mut c_void;
    pub fn nitro_rust_dealloc(ptr: *mut c_void, size: usize, align: usize);
    pub fn nitro_rust_realloc(ptr: *mut c_void, old_size: usize, align: usize, new_size: usize) -> *mut c_void;

    pub fn nitro_is_active() -> c_int;
    pub fn nitro_heap_mode() -> *const c_char;
    pub fn nitro_owns(p: *const c_void) -> c_int;

    pub fn nitro_partition_create(name: *const c_char) -> *mut RawPartition;
    pub fn nitro_partition_destroy(partition: *mut RawPartition) -> c_int;
    pub fn nitro_partition_malloc(partition: *mut RawPartition, size: usize) -> *mut c_void;
    pub fn nitro_partition_aligned_alloc(partition: *mut RawPartition, align: usize, size: usize) -> *mut c_void;
    pub fn nitro_partition_realloc(partition: *mut RawPartition, p: *mut c_void, size: usize) -> *mut c_void;
    pub fn nitro_partition_free(partition: *mut RawPartition, p: *mut c_void);
    pub fn nitro_partition_of(p: *const c_void) -> *mut RawPartition;

    pub fn nitro_release_free_memory() -> usize;

    pub fn nitro_stats_snapshot(out: *mut RawStats) -> c_int;
    pub fn nitro_stats_json(buf: *mut c_char, len: usize) -> usize;

    pub fn nitro_ctl(
        name: *const c_char,
        oldp: *mut c_void,
        oldlenp: *mut usize,
        newp: *const c_void,
        newlen: usize,
    ) -> c_int;

    pub fn nitro_flight_recorder_dump(path: *const c_char) -> c_int;
    pub fn nitro_heap_profile_dump(path: *const c_char) -> c_int;
}

extern "C" {
    /// glibc's errno, to clear it before a call that reports through it.
    pub fn __errno_location() -> *mut c_int;
}
