#!/usr/bin/python3
"""Reads `bazel aquery --output=jsonproto` of a consumer's compile actions
and checks every compile of NitroHeap's own sources (@nitroheap//...) was
optimized (the last -O flag is -O2), keeps frame pointers, is C++17, and does
not turn warnings into errors. Prints one line per finding and a summary;
exit status 1 when any compile breaks a rule or none was found.

usage: check_flags.py AQUERY.json EXPECTED_CONFIG COMPILER
  EXPECTED_CONFIG: the output directory's name, e.g. k8-fastbuild
  COMPILER: the compiler the toolchain must run, e.g. gcc or clang
"""
import json
import sys


def main():
    if len(sys.argv) != 4:
        print("usage: check_flags.py AQUERY.json EXPECTED_CONFIG COMPILER", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        graph = json.load(f)
    expected_config, compiler = sys.argv[2], sys.argv[3]
    labels = {str(t["id"]): t["label"] for t in graph.get("targets", [])}
    checked = 0
    problems = []
    for action in graph.get("actions", []):
        if action.get("mnemonic") != "CppCompile":
            continue
        label = labels.get(str(action.get("targetId")), "?")
        if not label.startswith("@nitroheap//"):
            continue
        args = action.get("arguments", [])
        source = args[args.index("-c") + 1] if "-c" in args else "?"
        levels = [a for a in args if a.startswith("-O")]
        rules = {
            "last -O is -O2 (got %s)" % (levels or "none"): levels[-1:] == ["-O2"],
            "-fno-omit-frame-pointer": "-fno-omit-frame-pointer" in args,
            "-std=c++17": "-std=c++17" in args,
            "no -Werror": not any(a == "-Werror" or a.startswith("-Werror=") for a in args),
            "built in " + expected_config: any("/%s/" % expected_config in a for a in args),
            "compiled by %s (got %s)" % (compiler, args[:1]): (
                bool(args) and args[0].rsplit("/", 1)[-1] == compiler),
        }
        for rule, ok in rules.items():
            if not ok:
                problems.append("%s (%s): %s" % (source, label, rule))
        checked += 1
    for problem in problems:
        print("FAIL:", problem)
    if checked == 0:
        print("FAIL: no compile action of @nitroheap// found")
        return 1
    print("%d compiles of @nitroheap checked: -O2, frame pointers, C++17, no -Werror, %s, %s; "
          "%d problems" % (checked, expected_config, compiler, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
