"""Central compiler flags for NitroHeap's own code.

Third-party wrappers and generated code do not use these.
Usage: load("//:copts.bzl", "NITRO_COPTS"); cc_library(..., copts = NITRO_COPTS)

The flags travel with the targets, so a workspace that builds
@nitroheap//abi:malloc gets the same allocator whatever its own .bazelrc and
-c mode say: C++17, frame pointers (the sampler and profilers walk them), and
-O2. Warnings are errors only where --//:werror is set, which this
repository's .bazelrc does: another workspace's build never fails on a
warning a newer or older compiler finds in NitroHeap.
"""

# Labels are strings resolved in the package of the target that uses them,
# which is always inside this repository.
_WERROR = select({
    "//:werror_enabled": ["-Werror"],
    "//conditions:default": [],
})

# -c opt already means -O2 from the toolchain, and this repository's
# sanitizer configs lower it with --copt=-O1, which a rule's -O2 (placed after
# --copt) would override. Any other mode (another workspace's default
# fastbuild, or dbg) gets -O2 here.
_OPTIMIZE = select({
    "//:compilation_mode_opt": [],
    "//conditions:default": ["-O2"],
})

# What the allocator needs in every build, wherever it is built from.
NITRO_BUILD_COPTS = [
    "-std=c++17",
    "-fno-omit-frame-pointer",
] + _OPTIMIZE

NITRO_COPTS = NITRO_BUILD_COPTS + [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wshadow",
    "-Wnon-virtual-dtor",
    "-Wcast-align",
    "-Wformat=2",
    "-Wimplicit-fallthrough",
    "-Wvla",
] + _WERROR

# Tests: same -Werror baseline minus the noisy style checks. gtest/gmock
# macros and test-local helpers commonly trip -Wshadow, -Wsign-compare
# (EXPECT_EQ(size_t, int)) and -Wunused-function.
NITRO_TEST_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-sign-compare",
    "-Wno-missing-field-initializers",
    "-Wno-unused-function",
] + _WERROR

# The allocator's own code: no builtin folding of malloc/memset into calloc
# (which would recurse into ourselves), and only the ABI is exported.
# No exceptions either: the heap never throws, so it needs no C++ runtime
# (operator new throws through a runtime function found at run time;
# unwind tables are still emitted, so exceptions pass through its frames).
# No SLP vectorization: it turned the fast path's two sampling countdowns
# into SSE code. Register renaming after allocation: without it GCC 12 kept
# a copy of nitro_partition_malloc's partition argument on the fast path
# (one instruction of 35; docs/architecture.md).
NITRO_HEAP_COPTS = NITRO_COPTS + [
    "-fno-builtin",
    "-fvisibility=hidden",
    "-fno-exceptions",
    "-fasynchronous-unwind-tables",
    "-fno-tree-slp-vectorize",
    "-frename-registers",
]
