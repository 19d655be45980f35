"""pybind11 extension macro (system pybind11 + CPython 3.11 headers)."""

load("//:copts.bzl", "NITRO_COPTS")

def nitro_pybind_extension(name, srcs, deps = [], copts = [], visibility = None, **kwargs):
    """Builds `<name>.so` plus a py_library `<name>` so that `import <name>` works.

    PYBIND11_MODULE(<name>, m) in srcs must use the same name.

    Args:
      name: Python module name.
      srcs: C++ sources.
      deps: extra cc deps (pybind11 is added).
      copts: extra compile flags.
      visibility: as usual.
      **kwargs: forwarded to both rules (e.g. testonly, tags).
    """
    native.cc_binary(
        name = name + ".so",
        srcs = srcs,
        deps = deps + ["//third_party:pybind11"],
        # pybind11 requires hidden visibility (only PyInit_<name> is exported).
        copts = NITRO_COPTS + ["-fvisibility=hidden"] + copts,
        # Shared object; libpython is deliberately not linked (symbols come
        # from the interpreter that dlopens us).
        linkshared = 1,
        linkstatic = 1,
        visibility = visibility,
        **kwargs
    )
    native.py_library(
        name = name,
        data = [name + ".so"],
        imports = ["."],  # put this package dir on sys.path -> `import name`
        srcs_version = "PY3",
        visibility = visibility,
        **kwargs
    )
