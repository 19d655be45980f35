//! A Vec<u8> grown from 1 byte to 64 MiB through realloc, then shrunk.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

const MIB: usize = 1 << 20;

fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn check_prefix(v: &[u8], len: usize) {
    assert!(v.len() >= len);
    if let Some(pos) = v[..len].iter().enumerate().position(|(i, &x)| x != byte(i)) {
        panic!(
            "byte {pos} of {len} is {:#x}, expected {:#x}",
            v[pos],
            byte(pos)
        );
    }
}

#[test]
fn grow_to_64mib_and_shrink() {
    let mut v: Vec<u8> = Vec::with_capacity(1);
    v.push(byte(0));
    assert!(nitroheap::owns(v.as_ptr()));

    // One byte at a time up to 1 MiB: every doubling is a realloc.
    let mut cap = v.capacity();
    let mut reallocs = 0;
    for i in 1..MIB {
        v.push(byte(i));
        if v.capacity() != cap {
            cap = v.capacity();
            reallocs += 1;
            assert!(nitroheap::owns(v.as_ptr()));
            check_prefix(&v, v.len());
        }
    }
    assert!(reallocs >= 15, "only {reallocs} reallocations");
    check_prefix(&v, MIB);

    // Then by reserve in uneven steps up to 64 MiB.
    let mut step = 3 * MIB / 2 + 7;
    while v.len() < 64 * MIB {
        let add = step.min(64 * MIB - v.len());
        v.reserve(add);
        assert!(nitroheap::owns(v.as_ptr()));
        check_prefix(&v, v.len());
        let start = v.len();
        v.extend((start..start + add).map(byte));
        step = step * 3 / 2;
    }
    assert_eq!(v.len(), 64 * MIB);
    check_prefix(&v, v.len());
    // The last byte too (the loop above ends exactly at 64 MiB).
    assert_eq!(v[64 * MIB - 1], byte(64 * MIB - 1));

    // Exact reserve beyond the current capacity.
    v.reserve_exact(v.capacity() - v.len() + 12_345);
    assert!(nitroheap::owns(v.as_ptr()));
    check_prefix(&v, v.len());

    // Shrink in stages: large -> large, large -> small, small -> tiny.
    for &len in &[
        64 * MIB,
        40 * MIB,
        5 * MIB,
        200 * 1024,
        100_000,
        4_000,
        100,
        1,
    ] {
        v.truncate(len);
        v.shrink_to_fit();
        assert_eq!(v.len(), len);
        assert!(v.capacity() >= len);
        assert!(nitroheap::owns(v.as_ptr()), "after shrink to {len}");
        check_prefix(&v, len);
    }
    // And grow again from 1 byte.
    v.resize(32 * MIB, 0);
    assert!(nitroheap::owns(v.as_ptr()));
    assert_eq!(v[0], byte(0));
    assert!(v[1..].iter().all(|&x| x == 0));
}

#[test]
fn many_vecs_grow_interleaved() {
    // Several vectors growing in turn, so reallocations cannot extend in place.
    let mut vs: Vec<Vec<u32>> = (0..8).map(|_| Vec::new()).collect();
    for i in 0..(1 << 20) {
        for (k, v) in vs.iter_mut().enumerate() {
            v.push((i * 8 + k) as u32);
        }
    }
    for (k, v) in vs.iter().enumerate() {
        assert!(nitroheap::owns(v.as_ptr().cast()));
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i * 8 + k) as u32));
    }
}
