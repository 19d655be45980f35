//! Allocation from many threads, and objects freed by a thread other than
//! the one that allocated them.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

const THREADS: usize = 8;

fn pattern(thread: usize, i: usize) -> u64 {
    ((thread as u64) << 32) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[test]
fn many_threads_allocate() {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut total = 0usize;
                for round in 0..20 {
                    // Mixed sizes: small objects, medium buffers, a map.
                    let boxes: Vec<Box<u64>> = (0..2_000)
                        .map(|i| Box::new(pattern(t, i + round)))
                        .collect();
                    let bufs: Vec<Vec<u8>> =
                        (0..64).map(|i| vec![(t + i) as u8; 1 + i * 997]).collect();
                    let mut map = HashMap::new();
                    for i in 0..500 {
                        map.insert(i, format!("t{t}-r{round}-{i}"));
                    }
                    for (i, b) in boxes.iter().enumerate() {
                        assert!(nitroheap::owns((&**b as *const u64).cast()));
                        assert_eq!(**b, pattern(t, i + round));
                    }
                    for (i, v) in bufs.iter().enumerate() {
                        assert!(nitroheap::owns(v.as_ptr()));
                        assert_eq!(v.len(), 1 + i * 997);
                        assert!(v.iter().all(|&x| x == (t + i) as u8));
                    }
                    for i in 0..500 {
                        assert_eq!(map[&i], format!("t{t}-r{round}-{i}"));
                        assert!(nitroheap::owns(map[&i].as_ptr()));
                    }
                    total += boxes.len() + bufs.len() + map.len();
                }
                total
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 20 * (2_000 + 64 + 500));
    }
}

/// Producers allocate, one consumer verifies and drops.
#[test]
fn cross_thread_free_many_to_one() {
    const PER_THREAD: usize = 5_000;
    let (tx, rx) = mpsc::channel::<(usize, usize, Box<[u64]>, String)>();
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let len = 1 + (i * 31) % 300;
                    let data: Box<[u64]> = (0..len).map(|j| pattern(t, i + j)).collect();
                    let label = format!("{t}:{i}:{}", "#".repeat(i % 50));
                    tx.send((t, i, data, label)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);

    let mut seen = vec![0usize; THREADS];
    for (t, i, data, label) in rx {
        assert!(nitroheap::owns(data.as_ptr().cast()));
        assert!(nitroheap::owns(label.as_ptr()));
        assert_eq!(data.len(), 1 + (i * 31) % 300);
        for (j, &x) in data.iter().enumerate() {
            assert_eq!(x, pattern(t, i + j));
        }
        assert_eq!(label, format!("{t}:{i}:{}", "#".repeat(i % 50)));
        seen[t] += 1;
        // `data` and `label` are freed here, on the consumer thread.
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(seen, vec![PER_THREAD; THREADS]);
}

/// Each thread allocates objects and hands them to the next thread in a ring,
/// which checks and frees them; then the memory is reused by everyone.
#[test]
fn cross_thread_free_ring() {
    const ROUNDS: usize = 200;
    const BATCH: usize = 100;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..THREADS {
        let (tx, rx) = mpsc::sync_channel::<Vec<Vec<u32>>>(4);
        senders.push(tx);
        receivers.push(rx);
    }
    // Thread t sends to t + 1 and receives from t - 1.
    receivers.rotate_right(1);
    let handles: Vec<_> = senders
        .into_iter()
        .zip(receivers)
        .enumerate()
        .map(|(t, (tx, rx))| {
            thread::spawn(move || {
                let from = (t + THREADS - 1) % THREADS;
                for round in 0..ROUNDS {
                    let batch: Vec<Vec<u32>> = (0..BATCH)
                        .map(|i| {
                            vec![(t * 1_000_000 + round * 1_000 + i) as u32; 1 + (i * 13) % 2_000]
                        })
                        .collect();
                    tx.send(batch).unwrap();
                    let got = rx.recv().unwrap();
                    assert!(nitroheap::owns(got.as_ptr().cast()));
                    assert_eq!(got.len(), BATCH);
                    for (i, v) in got.iter().enumerate() {
                        assert!(nitroheap::owns(v.as_ptr().cast()));
                        assert_eq!(v.len(), 1 + (i * 13) % 2_000);
                        let want = (from * 1_000_000 + round * 1_000 + i) as u32;
                        assert!(v.iter().all(|&x| x == want));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Objects allocated by threads that have already exited are freed later by
/// the main thread.
#[test]
fn free_after_allocating_thread_exits() {
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                (0..1_000)
                    .map(|i| vec![pattern(t, i); 1 + i % 100])
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Vec<Vec<u64>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (t, vs) in all.iter().enumerate() {
        for (i, v) in vs.iter().enumerate() {
            assert!(nitroheap::owns(v.as_ptr().cast()));
            assert_eq!(v.len(), 1 + i % 100);
            assert!(v.iter().all(|&x| x == pattern(t, i)));
        }
    }
    drop(all);
    // The freed memory is usable again.
    let again: Vec<Vec<u64>> = (0..8_000).map(|i| vec![i as u64; 1 + i % 100]).collect();
    for (i, v) in again.iter().enumerate() {
        assert!(v.iter().all(|&x| x == i as u64));
    }
}
