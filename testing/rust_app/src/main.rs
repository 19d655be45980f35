//! Proves that a program depending on the nitroheap crate starts and that
//! NitroHeap serves its Rust and C allocations. Prints one line per check;
//! exits 1 when any fails.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::os::raw::c_void;
use std::process::ExitCode;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
}

#[derive(Default)]
struct Checks {
    failed: Vec<String>,
    passed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) {
        println!("{} {what}", if ok { "ok:    " } else { "FAILED:" });
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what.to_string());
        }
    }
}

fn allocations() -> u64 {
    nitroheap::stats().map(|s| s.total.allocations).unwrap_or(0)
}

fn main() -> ExitCode {
    let mut checks = Checks::default();
    checks.check("nitroheap::is_active() is true", nitroheap::is_active());

    let before = allocations();
    let words: Vec<String> = (0..10_000).map(|i| format!("word number {i}")).collect();
    let after = allocations();
    println!("        allocations: {before} -> {after}");
    checks.check("10000 Strings moved stats().total.allocations by >= 10000", after >= before + 10_000);
    checks.check("a String's buffer is NitroHeap's", nitroheap::owns(words[9_999].as_ptr()));

    let c = unsafe { malloc(256) };
    checks.check("C malloc's block is NitroHeap's (one heap)", nitroheap::owns(c.cast()));
    unsafe { free(c) };

    let sessions = nitroheap::Partition::new("sessions").expect("a partition");
    let session = sessions.boxed([0u8; 128]).expect("a block in it");
    checks.check(
        "a PartitionBox lives in its partition",
        sessions.owns(nitroheap::PartitionBox::as_ptr(&session).cast()),
    );

    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    checks.check(
        "NitroHeap is compiled in: LINKED_STATICALLY, no libnitroheap.so mapped",
        nitroheap::LINKED_STATICALLY && !maps.contains("libnitroheap.so"),
    );

    if checks.failed.is_empty() {
        println!("rust_app: all {} checks passed", checks.passed);
        ExitCode::SUCCESS
    } else {
        eprintln!("rust_app: {} checks failed: {}", checks.failed.len(), checks.failed.join("; "));
        ExitCode::FAILURE
    }
}
