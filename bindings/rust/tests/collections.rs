//! Standard collections are served by NitroHeap and keep their contents.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::collections::{BTreeMap, HashMap, VecDeque};

fn assert_owned<T>(ptr: *const T) {
    assert!(
        nitroheap::owns(ptr.cast()),
        "{ptr:p} is not NitroHeap memory"
    );
}

#[test]
fn heap_is_active() {
    assert!(nitroheap::is_active());
}

#[test]
fn foreign_pointers_are_not_owned() {
    static STATIC: u64 = 7;
    let local = 7u64;
    assert!(!nitroheap::owns(std::ptr::null()));
    assert!(!nitroheap::owns((&STATIC as *const u64).cast()));
    assert!(!nitroheap::owns((&local as *const u64).cast()));
}

#[test]
fn boxes() {
    let small = Box::new(42u8);
    let medium = Box::new([7u64; 100]);
    let large = vec![3u32; 1 << 20].into_boxed_slice();
    assert_owned(&*small);
    assert_owned(medium.as_ptr());
    assert_owned(large.as_ptr());
    assert_eq!(*small, 42);
    assert!(medium.iter().all(|&x| x == 7));
    assert!(large.iter().all(|&x| x == 3));
}

#[test]
fn vec_many_elements() {
    const N: u64 = 200_000;
    let mut v = Vec::new();
    for i in 0..N {
        v.push(i * 3 + 1);
        if i.is_power_of_two() {
            assert_owned(v.as_ptr());
        }
    }
    assert_owned(v.as_ptr());
    assert_eq!(v.len() as u64, N);
    for (i, &x) in v.iter().enumerate() {
        assert_eq!(x, i as u64 * 3 + 1);
    }

    // A vector of heap objects: every element is a separate allocation.
    let boxes: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
    assert_owned(boxes.as_ptr());
    for (i, b) in boxes.iter().enumerate() {
        assert_owned(&**b);
        assert_eq!(**b, i as u64);
    }

    v.truncate(10);
    v.shrink_to_fit();
    assert_owned(v.as_ptr());
    assert_eq!(v, (0..10).map(|i| i * 3 + 1).collect::<Vec<u64>>());
}

#[test]
fn hashmap_many_entries() {
    const N: u64 = 50_000;
    let mut m: HashMap<u64, String> = HashMap::new();
    for i in 0..N {
        m.insert(i, format!("value-{i}"));
    }
    assert_eq!(m.len() as u64, N);
    for i in 0..N {
        let s = &m[&i];
        assert_eq!(*s, format!("value-{i}"));
        assert_owned(s.as_ptr());
    }
    // The table itself lives on the heap too: entries are inside it.
    let (k, _) = m.iter().next().unwrap();
    assert_owned(k);

    for i in (0..N).step_by(2) {
        assert_eq!(m.remove(&i), Some(format!("value-{i}")));
    }
    m.shrink_to_fit();
    assert_eq!(m.len() as u64, N / 2);
    for i in 0..N {
        assert_eq!(m.contains_key(&i), i % 2 == 1);
    }
}

#[test]
fn btreemap_many_entries() {
    const N: u32 = 50_000;
    let mut m = BTreeMap::new();
    // Insert in a scrambled order.
    for i in 0..N {
        let k = (u64::from(i) * 7_919 % u64::from(N)) as u32; // a permutation of 0..N
        m.insert(k, vec![k as u8; (k % 64) as usize + 1]);
    }
    assert_eq!(m.len() as u32, N);
    for (expect, (k, v)) in m.iter().enumerate() {
        assert_eq!(*k, expect as u32);
        assert_eq!(v.len(), (*k % 64) as usize + 1);
        assert!(v.iter().all(|&b| b == *k as u8));
        assert_owned(v.as_ptr());
        assert_owned(k); // keys live in heap-allocated tree nodes
    }
    m.retain(|k, _| k % 3 == 0);
    assert_eq!(m.len() as u32, (N + 2) / 3);
    assert!(m.keys().all(|k| k % 3 == 0));
}

#[test]
fn vecdeque_many_elements() {
    const N: i64 = 100_000;
    let mut d = VecDeque::new();
    for i in 0..N {
        d.push_back(i);
        d.push_front(-i - 1);
    }
    assert_eq!(d.len() as i64, 2 * N);
    let (a, b) = d.as_slices();
    assert_owned(a.as_ptr());
    if !b.is_empty() {
        assert_owned(b.as_ptr());
    }
    for (idx, &x) in d.iter().enumerate() {
        assert_eq!(x, idx as i64 - N);
    }
    // Move the negative half to the back, wrapping around the ring buffer.
    for _ in 0..N {
        let x = d.pop_front().unwrap();
        d.push_back(x);
    }
    for (idx, &x) in d.iter().enumerate() {
        let idx = idx as i64;
        assert_eq!(x, if idx < N { idx } else { idx - 2 * N });
    }
    d.make_contiguous();
    assert_owned(d.as_slices().0.as_ptr());
    d.truncate(5);
    d.shrink_to_fit();
    assert_eq!(d, [0, 1, 2, 3, 4]);
    assert_owned(d.as_slices().0.as_ptr());
}
