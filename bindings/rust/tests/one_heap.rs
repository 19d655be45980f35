//! One heap per process: the Rust allocator, the C library's malloc (also
//! when glibc calls it internally) and C++ operator new all reach the same
//! NitroHeap, statically linked by default.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::path::PathBuf;
use std::process::Command;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
    fn strdup(s: *const c_char) -> *mut c_char;
}

#[test]
fn rust_and_c_allocations_share_the_heap() {
    let boxed = Box::new([1u8; 100]);
    assert!(nitroheap::owns(boxed.as_ptr()));
    unsafe {
        let c = malloc(100);
        assert!(nitroheap::owns(c.cast()), "malloc is not NitroHeap's");
        free(c);
        // strdup allocates inside glibc: its call to malloc is interposed too.
        let s = strdup(b"nitroheap\0".as_ptr().cast());
        assert!(nitroheap::owns(s.cast()), "glibc's internal malloc is not NitroHeap's");
        assert_eq!(CStr::from_ptr(s).to_bytes(), b"nitroheap");
        free(s.cast());
    }
}

#[test]
fn linkage_is_as_built() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert_eq!(maps.contains("libnitroheap.so"), !nitroheap::LINKED_STATICALLY);
}

/// Global function symbols of `nm` output for `file` (`nm_args` first).
fn functions(nm_args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm").args(nm_args).arg(file).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, "T", name] | [_, "W", name] | [_, "i", name] => Some(name.split('@').next().unwrap().to_string()),
                _ => None,
            }
        })
        .collect()
}

/// The executable re-exports the allocation functions the C library
/// defines, so calls from shared libraries (the C library's own included)
/// reach NitroHeap. `operator new` is exported only when a loaded library
/// names it (libstdc++ does); a C++ library's `new` without that export goes
/// through libstdc++'s `operator new`, which calls `malloc`: NitroHeap's.
#[test]
fn executable_exports_the_malloc_family() {
    let exe = std::env::current_exe().unwrap();
    let exported = functions(&["-D", "--defined-only"], &exe);
    let wanted = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
                  "malloc_usable_size", "__libc_malloc", "__libc_free"];
    for name in wanted {
        assert_eq!(exported.contains(name), nitroheap::LINKED_STATICALLY, "{name} exported by the executable");
    }
}

/// The static archive exports the ABI of //abi:libnitroheap.so, no more and
/// no less: the two builds compile the same sources. Needs the shared
/// library (`bazel build //abi:libnitroheap.so`, which ./nitro test does).
#[test]
fn static_archive_exports_what_the_shared_library_does() {
    let archive = match option_env!("NITROHEAP_STATIC_ARCHIVE") {
        Some(archive) => PathBuf::from(archive),
        None => return eprintln!("skipped: linked against the shared library"),
    };
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bazel-bin/abi/libnitroheap.so");
    if !shared.is_file() {
        return eprintln!("skipped: {} not built", shared.display());
    }
    let from_archive = functions(&["--defined-only"], &archive);
    let from_shared = functions(&["-D", "--defined-only"], &shared);
    assert!(from_archive.contains("malloc") && from_archive.contains("nitro_rust_alloc"));
    assert_eq!(from_archive, from_shared);
}
