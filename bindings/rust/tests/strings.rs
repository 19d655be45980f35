//! String growth and formatting are served by NitroHeap.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::fmt::Write;

fn assert_owned(s: &str) {
    assert!(
        nitroheap::owns(s.as_ptr()),
        "{:p} is not NitroHeap memory",
        s.as_ptr()
    );
}

#[test]
fn push_str_growth() {
    let mut s = String::new();
    let mut expected_len = 0;
    for i in 0..100_000usize {
        let piece = ["a", "bc", "def", "ghij", "klmnopqrstu"][i % 5];
        s.push_str(piece);
        expected_len += piece.len();
        if i.is_power_of_two() {
            assert_owned(&s);
        }
    }
    assert_eq!(s.len(), expected_len);
    assert_owned(&s);
    let mut rebuilt = String::with_capacity(expected_len);
    for i in 0..100_000usize {
        rebuilt.push_str(["a", "bc", "def", "ghij", "klmnopqrstu"][i % 5]);
    }
    assert_eq!(s, rebuilt);
    s.truncate(7);
    s.shrink_to_fit();
    assert_eq!(s, "abcdefg");
    assert_owned(&s);
}

#[test]
fn push_char_multibyte() {
    let mut s = String::new();
    for i in 0..50_000u32 {
        s.push(char::from_u32(0x4e00 + i % 1000).unwrap());
    }
    assert_owned(&s);
    assert_eq!(s.chars().count(), 50_000);
    for (i, c) in s.chars().enumerate() {
        assert_eq!(c as u32, 0x4e00 + i as u32 % 1000);
    }
}

#[test]
fn format_macro() {
    let strings: Vec<String> = (0..20_000)
        .map(|i| format!("{i:>8}|{:x}|{}", i * 7, "x".repeat(i % 100)))
        .collect();
    for (i, s) in strings.iter().enumerate() {
        assert_owned(s);
        assert_eq!(*s, format!("{i:>8}|{:x}|{}", i * 7, "x".repeat(i % 100)));
        assert_eq!(s.len(), 8 + 1 + format!("{:x}", i * 7).len() + 1 + i % 100);
    }

    // Widths are limited to u16, so pad repeatedly to get a large result.
    const W: usize = 60_000;
    let big = format!(
        "{:>W$}{:>W$}|{}",
        "end",
        "end",
        "0123456789".repeat(1 << 20)
    );
    assert_owned(&big);
    assert_eq!(big.len(), 2 * W + 1 + (10 << 20));
    let (pad, rest) = big.split_at(2 * W);
    assert_eq!(
        pad,
        format!("{}end{}end", " ".repeat(W - 3), " ".repeat(W - 3))
    );
    assert!(rest.as_bytes()[1..].chunks(10).all(|c| c == b"0123456789"));

    let mut w = String::new();
    for i in 0..10_000 {
        write!(w, "{i},").unwrap();
    }
    assert_owned(&w);
    let parsed: Vec<usize> = w
        .trim_end_matches(',')
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(parsed, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn concat_and_replace() {
    let base = "hello world ".repeat(10_000);
    assert_owned(&base);
    let replaced = base.replace("world", "NitroHeap");
    assert_owned(&replaced);
    assert_eq!(replaced, "hello NitroHeap ".repeat(10_000));
    let upper = replaced.to_uppercase();
    assert_owned(&upper);
    assert_eq!(upper, "HELLO NITROHEAP ".repeat(10_000));
    let joined = [upper.as_str(); 10].join("--");
    assert_owned(&joined);
    assert_eq!(joined.len(), upper.len() * 10 + 2 * 9);
}
