"""Central compiler flags for NitroHeap's own code.

Third-party wrappers and generated code do not use these.
Usage: load("//:copts.bzl", "NITRO_COPTS"); cc_library(..., copts = NITRO_COPTS)
"""

NITRO_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wshadow",
    "-Wnon-virtual-dtor",
    "-Wcast-align",
    "-Wformat=2",
    "-Wimplicit-fallthrough",
    "-Wvla",
]

# Tests: same -Werror baseline minus the noisy style checks. gtest/gmock
# macros and test-local helpers commonly trip -Wshadow, -Wsign-compare
# (EXPECT_EQ(size_t, int)) and -Wunused-function.
NITRO_TEST_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-sign-compare",
    "-Wno-missing-field-initializers",
    "-Wno-unused-function",
]

# The allocator's own code: no builtin folding of malloc/memset into calloc
# (which would recurse into ourselves), and only the ABI is exported.
# No exceptions either: the heap never throws, so it needs no C++ runtime
# (operator new throws through a runtime function found at run time;
# unwind tables are still emitted, so exceptions pass through its frames).
# No SLP vectorization: it turned the fast path's two sampling countdowns
# into SSE code.
NITRO_HEAP_COPTS = NITRO_COPTS + [
    "-fno-builtin",
    "-fvisibility=hidden",
    "-fno-exceptions",
    "-fasynchronous-unwind-tables",
    "-fno-tree-slp-vectorize",
]
