//! alloc_zeroed (vec![0; n]) returns zeroed memory, including memory that was
//! dirtied and freed just before.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::alloc::{GlobalAlloc, Layout};

/// Keeps `value` from being optimized away (std::hint::black_box needs Rust
/// 1.66; this crate builds with Debian 12's 1.63).
fn black_box<T>(value: T) -> T {
    // SAFETY: a volatile bitwise copy; the original is forgotten, not dropped.
    let copy = unsafe { std::ptr::read_volatile(&value) };
    std::mem::forget(value);
    copy
}

/// `true` when every byte of the `len` bytes at `p` is 0: compared a page
/// at a time (memcmp), so that 64 MiB take milliseconds in a debug build.
fn all_zero<T>(p: *const T, len: usize) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    // SAFETY: the callers pass live allocations of len bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    bytes.chunks(ZEROS.len()).all(|chunk| chunk == &ZEROS[..chunk.len()])
}

const SIZES: &[usize] = &[
    1,
    8,
    15,
    16,
    17,
    64,
    100,
    128,
    1000,
    4096,
    10_000,
    65_536,
    100_000,
    131_072,
    131_073,
    262_144,
    1 << 20,
    3 << 20,
    16 << 20,
    64 << 20,
];

#[test]
fn vec_zeroed_is_zero() {
    for &n in SIZES {
        let v = vec![0u8; n];
        assert!(nitroheap::owns(v.as_ptr()), "size {n}");
        assert!(all_zero(v.as_ptr(), n), "vec![0u8; {n}] not zeroed");
    }
}

#[test]
fn vec_zeroed_after_dirty_reuse() {
    for &n in SIZES {
        for round in 0..4 {
            // Dirty blocks of this size, free them, then ask for zeroed ones:
            // the allocator will likely hand the same memory back.
            let dirty: Vec<Vec<u8>> = (0..4).map(|_| vec![0xFFu8; n]).collect();
            let dirty = black_box(dirty);
            let addrs: Vec<*const u8> = dirty.iter().map(|v| v.as_ptr()).collect();
            drop(dirty);
            let zeroed: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; n]).collect();
            for v in &zeroed {
                assert!(nitroheap::owns(v.as_ptr()));
                if all_zero(v.as_ptr(), n) {
                    continue;
                }
                if let Some(pos) = v.iter().position(|&x| x != 0) {
                    panic!(
                        "vec![0u8; {n}] (round {round}) has {:#x} at offset {pos}; reused: {}",
                        v[pos],
                        addrs.contains(&v.as_ptr())
                    );
                }
            }
        }
    }
}

#[test]
fn vec_zeroed_wider_types() {
    for &n in &[1usize, 10, 1000, 100_000, 1 << 20] {
        drop(black_box(vec![u64::MAX; n]));
        let v = vec![0u64; n];
        assert!(nitroheap::owns(v.as_ptr().cast()));
        assert!(all_zero(v.as_ptr(), n * 8), "vec![0u64; {n}] not zeroed");
        drop(black_box(vec![f32::NAN; n]));
        let f = vec![0.0f32; n];
        assert!(all_zero(f.as_ptr(), n * 4), "vec![0.0f32; {n}] not zeroed");
    }
}

#[test]
fn alloc_zeroed_over_aligned() {
    for &align in &[32usize, 64, 256, 4096, 1 << 16, 1 << 20] {
        for &size in &[1usize, 64, 1000, 4096, 100_000, 1 << 20, 4 << 20] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let dirty = GLOBAL.alloc(layout);
                assert!(!dirty.is_null());
                dirty.write_bytes(0xAB, size);
                black_box(dirty);
                GLOBAL.dealloc(dirty, layout);

                let p = GLOBAL.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(nitroheap::owns(p));
                assert!(all_zero(p, size), "alloc_zeroed({size}, {align}) not zeroed");
                GLOBAL.dealloc(p, layout);
            }
        }
    }
}
