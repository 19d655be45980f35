//! Over-aligned types: 64 bytes, a page (4096), and 1 MiB.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::mem::{align_of, size_of};

#[repr(align(64))]
#[derive(Clone, Copy)]
struct A64([u8; 64]);

#[repr(align(4096))]
#[derive(Clone, Copy)]
struct A4096([u8; 100]);

#[repr(align(1048576))]
struct A1M([u8; 1 << 20]);

fn check<T>(ptr: *const T) {
    let addr = ptr as usize;
    assert_eq!(
        addr % align_of::<T>(),
        0,
        "{ptr:p} not aligned to {}",
        align_of::<T>()
    );
    assert!(
        nitroheap::owns(ptr.cast()),
        "{ptr:p} is not NitroHeap memory"
    );
}

#[test]
fn layouts() {
    assert_eq!(align_of::<A64>(), 64);
    assert_eq!(align_of::<A4096>(), 4096);
    assert_eq!(size_of::<A4096>(), 4096);
    assert_eq!(align_of::<A1M>(), 1 << 20);
    assert_eq!(size_of::<A1M>(), 1 << 20);
}

#[test]
fn align_64() {
    let boxes: Vec<Box<A64>> = (0..10_000).map(|i| Box::new(A64([i as u8; 64]))).collect();
    for (i, b) in boxes.iter().enumerate() {
        check(&**b);
        assert!(b.0.iter().all(|&x| x == i as u8));
    }
    // A growing Vec reallocates with align 64.
    let mut v = Vec::new();
    for i in 0..50_000 {
        v.push(A64([i as u8; 64]));
        check(v.as_ptr());
    }
    for (i, a) in v.iter().enumerate() {
        assert!(a.0.iter().all(|&x| x == i as u8));
    }
    v.truncate(3);
    v.shrink_to_fit();
    check(v.as_ptr());
    assert!(v.iter().enumerate().all(|(i, a)| a.0 == [i as u8; 64]));
}

#[test]
fn align_4096() {
    let boxes: Vec<Box<A4096>> = (0..1_000)
        .map(|i| Box::new(A4096([i as u8; 100])))
        .collect();
    for (i, b) in boxes.iter().enumerate() {
        check(&**b);
        assert!(b.0.iter().all(|&x| x == i as u8));
    }
    let mut v = Vec::new();
    for i in 0..5_000 {
        v.push(A4096([(i * 7) as u8; 100]));
        check(v.as_ptr());
    }
    for (i, a) in v.iter().enumerate() {
        assert!(a.0.iter().all(|&x| x == (i * 7) as u8));
    }
    v.truncate(2);
    v.shrink_to_fit();
    check(v.as_ptr());
    assert!(v
        .iter()
        .enumerate()
        .all(|(i, a)| a.0 == [(i * 7) as u8; 100]));
}

fn new_a1m(fill: u8) -> Box<A1M> {
    // Built in place: a 1 MiB value would not fit on a test thread's stack.
    // (Box::new_uninit needs Rust 1.82; this crate builds with 1.63.)
    let layout = std::alloc::Layout::new::<A1M>();
    unsafe {
        let p = std::alloc::alloc(layout).cast::<A1M>();
        assert!(!p.is_null());
        std::ptr::write_bytes(p, fill, 1);
        Box::from_raw(p)
    }
}

#[test]
fn align_1mib() {
    let boxes: Vec<Box<A1M>> = (0..16).map(|i| new_a1m(i as u8 + 1)).collect();
    for (i, b) in boxes.iter().enumerate() {
        check(&**b);
        assert!(b.0.iter().all(|&x| x == i as u8 + 1));
    }
    drop(boxes);

    // Vec<A1M> grown element by element: realloc at 1 MiB alignment.
    let mut v: Vec<A1M> = Vec::new();
    for i in 0..8u8 {
        v.reserve(1);
        check(v.as_ptr());
        unsafe {
            std::ptr::write_bytes(v.as_mut_ptr().add(v.len()), i + 1, 1);
            v.set_len(v.len() + 1);
        }
    }
    check(v.as_ptr());
    for (i, a) in v.iter().enumerate() {
        assert!(a.0.iter().all(|&x| x == i as u8 + 1));
    }
    v.truncate(1);
    v.shrink_to_fit();
    check(v.as_ptr());
    assert!(v[0].0.iter().all(|&x| x == 1));
}

#[test]
fn mixed_alignments_interleaved() {
    let mut keep = Vec::new();
    for i in 0..200 {
        let a = Box::new(A64([i as u8; 64]));
        let b = Box::new(A4096([i as u8; 100]));
        let c = Box::new(i as u8);
        check(&*a);
        check(&*b);
        check(&*c);
        if i % 3 == 0 {
            keep.push((a, b, c));
        }
    }
    for (a, b, c) in &keep {
        assert!(a.0.iter().all(|&x| x == **c));
        assert!(b.0.iter().all(|&x| x == **c));
    }
}
