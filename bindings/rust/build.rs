//! Links against NitroHeap's shared library, found in `NITROHEAP_LIB_DIR`.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=NITROHEAP_LIB_DIR");

    let dir = match env::var_os("NITROHEAP_LIB_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            eprintln!(
                "error: NITROHEAP_LIB_DIR is not set.\n\
                 Build the library first with `bazel build //abi:libnitroheap.so`, then set\n\
                 NITROHEAP_LIB_DIR=bazel-bin/abi (the directory holding libnitroheap.so)."
            );
            std::process::exit(1);
        }
    };
    // A relative directory is taken from the NitroHeap repository root (two
    // levels above this crate), so NITROHEAP_LIB_DIR=bazel-bin/abi works
    // wherever cargo runs. Symlinks are kept: the rpath stays <repo>/bazel-bin/abi.
    let dir = if dir.is_relative() {
        let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
        manifest.parent().and_then(Path::parent).unwrap().join(dir)
    } else {
        dir
    };
    let lib = dir.join("libnitroheap.so");
    if !lib.is_file() {
        eprintln!(
            "error: {} not found; run `bazel build //abi:libnitroheap.so` and set \
             NITROHEAP_LIB_DIR=bazel-bin/abi",
            lib.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed={}", lib.display());

    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=nitroheap");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // Exported to dependents' build scripts as DEP_NITROHEAP_LIB_DIR.
    println!("cargo:lib_dir={}", dir.display());
}
