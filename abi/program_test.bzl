"""A test written as a user's program: linked with NitroHeap as its malloc
(public headers only), run once per option set."""

load("//:copts.bzl", "NITRO_TEST_COPTS")

def program_tests(src, option_sets, size = None):
    """One cc_test per (name, NITROHEAP_OPTIONS value) in option_sets.

    ThreadSanitizer and AddressSanitizer bring their own malloc, so these
    are tagged out of the sanitizer configurations.
    """
    for name, options in option_sets:
        native.cc_test(
            name = name,
            size = size,
            srcs = [src],
            copts = NITRO_TEST_COPTS,
            env = {"NITROHEAP_OPTIONS": options},
            malloc = ":malloc",
            tags = ["no_tsan", "no_asan"],
            deps = [
                ":headers",
                "//third_party:gtest_main",
            ],
        )
