"""One static archive holding a cc_library and everything it links.

A cc_library's own .a holds only that library's objects; a program linking
NitroHeap statically needs the whole allocator: the ABI, the engine and the
telemetry runtime. This rule merges the archives of every library in the
transitive link of `deps` into one (GNU ar's MRI script, ADDLIB), and writes
the link flags those libraries ask for (-ldl, -pthread, ...) to a text file,
for the pkg-config and CMake files (tools/install.sh).
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _static_archive_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    archives = []
    flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            for library in linker_input.libraries:
                # Position-independent objects, so the archive also links
                # into shared objects and PIE executables.
                archive = library.pic_static_library or library.static_library
                if archive == None:
                    fail("%s: %s has no static archive (linkstatic = True?)" %
                         (ctx.label, linker_input.owner))
                if archive not in archives:
                    archives.append(archive)
            for flag in linker_input.user_link_flags:
                if flag not in flags:
                    flags.append(flag)

    out = ctx.actions.declare_file(ctx.attr.name + ".a")
    script = ctx.actions.declare_file(ctx.attr.name + ".mri")
    ctx.actions.write(
        script,
        "\n".join(["CREATE " + out.path] +
                  ["ADDLIB " + a.path for a in archives] +
                  ["SAVE", "END", ""]),
    )
    ctx.actions.run_shell(
        inputs = depset([script] + archives, transitive = [cc_toolchain.all_files]),
        outputs = [out],
        command = '"$1" -M < "$2"',
        arguments = [cc_toolchain.ar_executable, script.path],
        mnemonic = "StaticArchive",
        progress_message = "Merging %d archives into %s" % (len(archives), out.short_path),
    )

    linkopts = ctx.actions.declare_file(ctx.attr.name + ".linkopts")
    ctx.actions.write(linkopts, " ".join(flags) + "\n")
    return [DefaultInfo(
        files = depset([out, linkopts]),
        runfiles = ctx.runfiles(files = [out, linkopts]),
    )]

static_archive = rule(
    implementation = _static_archive_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo], mandatory = True),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    doc = "NAME.a: every library in the link of deps; NAME.linkopts: their link flags.",
)
