"""Protobuf macros using the system /usr/bin/protoc (no @com_google_protobuf).

Conventions:
  * Import paths are workspace-relative: a .proto in //telemetry is imported
    as `import "telemetry/foo.proto";` (protoc runs with --proto_path=.).
  * Python modules are imported by their workspace path:
    `from telemetry import foo_pb2`. No `imports` attr is needed because
    Bazel puts the workspace runfiles root on sys.path.
  * Only for .proto files in the main repository.

Each macro also creates `<name>_srcs`, a filegroup with the .proto and those
of its deps, so protoc can see transitive imports.
"""

_PROTOC = "/usr/bin/protoc"

def _srcs_label(dep):
    # "//a:b" -> "//a:b_srcs", ":b" -> ":b_srcs", "//a" -> "//a:a_srcs".
    if ":" not in dep:
        dep = dep + ":" + dep.rsplit("/", 1)[-1]
    return dep + "_srcs"

def _proto_srcs(name, src, deps, visibility):
    native.filegroup(
        name = name + "_srcs",
        srcs = [src] + [_srcs_label(d) for d in deps],
        visibility = visibility,
    )

def _stem(src):
    if not src.endswith(".proto"):
        fail("src must be a .proto file: " + src)
    return src[:-len(".proto")]

def nitro_cc_proto(name, src, deps = [], visibility = None, **kwargs):
    """C++ library for one .proto.

    Args:
      name: cc_library name; `#include "<pkg>/<stem>.pb.h"`.
      src: the .proto file (in this package).
      deps: other nitro_cc_proto targets that `src` imports.
      visibility: as usual.
      **kwargs: forwarded to the cc_library (e.g. testonly).
    """
    stem = _stem(src)
    _proto_srcs(name, src, deps, visibility)
    native.genrule(
        name = name + "_gen",
        srcs = [src, name + "_srcs"],
        outs = [stem + ".pb.h", stem + ".pb.cc"],
        cmd = "%s --proto_path=. --cpp_out=$(GENDIR) %s" % (
            _PROTOC,
            "$(location %s)" % src,
        ),
        message = "protoc (C++) " + src,
    )
    native.cc_library(
        name = name,
        srcs = [stem + ".pb.cc"],
        hdrs = [stem + ".pb.h"],
        deps = deps + ["//third_party:protobuf"],
        # Generated code is not warning-clean under NITRO_COPTS.
        copts = ["-w"],
        visibility = visibility,
        **kwargs
    )

def nitro_py_proto(name, src, deps = [], visibility = None, **kwargs):
    """Python library with `<stem>_pb2.py` for one .proto.

    Args:
      name: py_library name; use `from <pkg path> import <stem>_pb2`.
      src: the .proto file (in this package).
      deps: other nitro_py_proto targets that `src` imports.
      visibility: as usual.
      **kwargs: forwarded to the py_library.
    The runtime is Debian's python3-protobuf (matches /usr/bin/protoc).
    """
    stem = _stem(src)
    _proto_srcs(name, src, deps, visibility)
    native.genrule(
        name = name + "_gen",
        srcs = [src, name + "_srcs"],
        outs = [stem + "_pb2.py"],
        cmd = "%s --proto_path=. --python_out=$(GENDIR) %s" % (
            _PROTOC,
            "$(location %s)" % src,
        ),
        message = "protoc (Python) " + src,
    )
    native.py_library(
        name = name,
        srcs = [stem + "_pb2.py"],
        deps = deps,
        srcs_version = "PY3",
        visibility = visibility,
        **kwargs
    )
