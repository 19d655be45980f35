"""The repositories NitroHeap's build needs, for any workspace that builds it.

In a consumer's WORKSPACE (Bazel 4.x, WORKSPACE mode, offline):

    local_repository(name = "nitroheap", path = "/path/to/nitroheap")
    load("@nitroheap//:deps.bzl", "nitroheap_deps")
    nitroheap_deps()

Each repository is declared only when the workspace has not declared one of
that name already, so a workspace keeps its own rules_cc or rules_java. Paths
inside NitroHeap are found from the labels below, so the consumer can live
anywhere. Nothing is downloaded: Bazel 4.2.3 would otherwise fetch rules_cc,
rules_java and remote_coverage_tools on the first build.
"""

def _copy_of_package_impl(rctx):
    # The directory of the package holding `marker`, mirrored as this
    # repository (symlinks, so edits in NitroHeap are seen).
    source = rctx.path(rctx.attr.marker).dirname
    for child in source.readdir():
        rctx.symlink(child, child.basename)

_copy_of_package = repository_rule(
    implementation = _copy_of_package_impl,
    attrs = {"marker": attr.label(mandatory = True, allow_single_file = True)},
    local = True,
)

def nitroheap_deps(python_toolchain = True):
    """Declares what building @nitroheap targets needs.

    Args:
      python_toolchain: register NitroHeap's Python toolchain (Debian's
        /usr/bin/python3, which has python3-protobuf), needed by the Python
        module in //bindings/python and its tests. Pass False to keep the
        workspace's own Python toolchain; the C/C++ library needs none.
    """

    # Minimal stand-in: cc/defs.bzl forwards to the native C++ rules.
    if not native.existing_rule("rules_cc"):
        _copy_of_package(
            name = "rules_cc",
            marker = Label("//third_party/rules_cc:WORKSPACE"),
        )

    # Debian's bazel-rules-java package.
    if not native.existing_rule("rules_java"):
        native.local_repository(
            name = "rules_java",
            path = "/usr/share/bazel/rules/java",
        )

    # Stub coverage tools (@bazel_tools//tools/test:lcov_merger and
    # :coverage_report_generator alias into this repo; every test rule
    # depends on it).
    if not native.existing_rule("remote_coverage_tools"):
        _copy_of_package(
            name = "remote_coverage_tools",
            marker = Label("//third_party/remote_coverage_tools:WORKSPACE"),
        )

    # CPython headers for pybind11 extensions. A cc_library's `includes`
    # cannot point outside the workspace, so the system dir is mounted as a
    # repo. Debian 12 ships Python 3.11; bump the path together with the
    # interpreter.
    if not native.existing_rule("python3_headers"):
        native.new_local_repository(
            name = "python3_headers",
            build_file = str(Label("//third_party/python3_headers:BUILD.python3_headers")),
            path = "/usr/include/python3.11",
        )

    # Pin Python to Debian's /usr/bin/python3 (has python3-protobuf); the
    # pyenv shim first on PATH must never be used.
    if python_toolchain:
        native.register_toolchains(str(Label("//third_party/python:py_toolchain")))
