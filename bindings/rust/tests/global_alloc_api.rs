//! GlobalAlloc called directly with explicit Layouts.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::alloc::{GlobalAlloc, Layout};

use nitroheap::NitroHeap;

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        unsafe { p.add(i).write(seed.wrapping_add((i % 253) as u8)) };
    }
}

fn verify(p: *const u8, len: usize, seed: u8, what: &str) {
    for i in 0..len {
        let got = unsafe { p.add(i).read() };
        let want = seed.wrapping_add((i % 253) as u8);
        assert_eq!(got, want, "{what}: byte {i} of {len}");
    }
}

/// Reallocates through `sizes`, checking alignment, ownership and that the
/// common prefix survives each move.
fn realloc_chain(align: usize, sizes: &[usize]) {
    let a = NitroHeap;
    let mut layout = Layout::from_size_align(sizes[0], align).unwrap();
    let mut p = unsafe { a.alloc(layout) };
    assert!(!p.is_null());
    assert_eq!(p as usize % align, 0);
    assert!(nitroheap::owns(p));
    fill(p, layout.size(), align as u8);

    for &new_size in &sizes[1..] {
        let q = unsafe { a.realloc(p, layout, new_size) };
        let what = format!("align {align}: realloc {} -> {new_size}", layout.size());
        assert!(!q.is_null(), "{what} returned null");
        assert_eq!(q as usize % align, 0, "{what}: {q:p} misaligned");
        assert!(nitroheap::owns(q), "{what}");
        let kept = layout.size().min(new_size);
        verify(q, kept, align as u8, &what);
        layout = Layout::from_size_align(new_size, align).unwrap();
        fill(q, new_size, align as u8);
        p = q;
    }
    unsafe { a.dealloc(p, layout) };
}

const SIZES: &[usize] = &[
    1,
    64,
    65,
    200,
    4096,
    4097,
    10_000,
    131_072,
    200_000,
    1 << 20,
    5 << 20,
    3 << 20,
    100_000,
    5000,
    64,
    1,
    300_000,
    17,
];

#[test]
fn realloc_align_64() {
    realloc_chain(64, SIZES);
}

#[test]
fn realloc_align_4096() {
    realloc_chain(4096, SIZES);
}

#[test]
fn realloc_other_alignments() {
    for shift in 0..=21 {
        realloc_chain(1 << shift, SIZES);
    }
}

#[test]
fn realloc_align_64_and_4096_many() {
    // Many live blocks at once, so reallocations land in varied places.
    for &align in &[64usize, 4096] {
        let a = NitroHeap;
        let mut blocks: Vec<(*mut u8, Layout, u8)> = (0..200)
            .map(|i| {
                let layout = Layout::from_size_align(1 + i * 37, align).unwrap();
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null());
                fill(p, layout.size(), i as u8);
                (p, layout, i as u8)
            })
            .collect();
        for round in 0..6 {
            for (k, (p, layout, seed)) in blocks.iter_mut().enumerate() {
                let new_size = match (round + k) % 3 {
                    0 => layout.size() * 3 + 1,
                    1 => (layout.size() / 2).max(1),
                    _ => layout.size() + 4096,
                };
                let q = unsafe { a.realloc(*p, *layout, new_size) };
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "align {align} size {new_size}");
                assert!(nitroheap::owns(q));
                verify(q, layout.size().min(new_size), *seed, "many");
                *layout = Layout::from_size_align(new_size, align).unwrap();
                fill(q, new_size, *seed);
                *p = q;
            }
        }
        for (p, layout, seed) in blocks {
            verify(p, layout.size(), seed, "final");
            unsafe { a.dealloc(p, layout) };
        }
    }
}

#[test]
fn alloc_dealloc_every_alignment() {
    let a = NitroHeap;
    for shift in 0..=22 {
        let align = 1usize << shift;
        for &size in &[1usize, align / 2 + 1, align, align + 1, 3 * align, 100_000] {
            let layout = Layout::from_size_align(size.max(1), align).unwrap();
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(nitroheap::owns(p));
                p.write_bytes(0x5A, layout.size());
                a.dealloc(p, layout);
            }
        }
    }
}

#[test]
fn failure_returns_null() {
    let a = NitroHeap;
    // Far more than any machine has: must fail with null, not abort.
    let huge = Layout::from_size_align(1 << 62, 8).unwrap();
    assert!(unsafe { a.alloc(huge) }.is_null());
    assert!(unsafe { a.alloc_zeroed(huge) }.is_null());
    let huge_aligned = Layout::from_size_align(1 << 62, 4096).unwrap();
    assert!(unsafe { a.alloc(huge_aligned) }.is_null());

    // A failed realloc leaves the original block intact.
    for &align in &[8usize, 64, 4096] {
        let layout = Layout::from_size_align(1000, align).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            fill(p, 1000, 9);
            assert!(a.realloc(p, layout, 1 << 62).is_null(), "align {align}");
            verify(p, 1000, 9, "after failed realloc");
            a.dealloc(p, layout);
        }
    }

    // Safe code sees the same thing as an error.
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(1 << 62).is_err());
}
