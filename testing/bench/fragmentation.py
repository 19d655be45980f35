#!/usr/bin/python3
"""The fragmentation benchmark: RSS after a program frees 90% of its small
objects at random, under glibc, jemalloc, tcmalloc, mimalloc and NitroHeap's
malloc (each by LD_PRELOAD into the same `fragmentation malloc` program), and
with NitroHeap's movable allocations (`fragmentation movable`: handles, then
nitro_compact).

    /usr/bin/python3 testing/bench/fragmentation.py [--mib=1024] [--write]
    /usr/bin/python3 testing/bench/fragmentation.py --mib=256 --only=glibc,nitroheap,movable

--write replaces the "Fragmentation" section of docs/benchmarks.md (between
its markers). Exit status: 0 when every run succeeded with matching
checksums; 1 when a run failed; 2 on a usage or build error. The goal (RSS
within 1.3 times the live bytes after compaction) is reported, and fails the
run only with --strict.
"""
import argparse
import datetime
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
RUNS = [
    ("glibc", "malloc", None),
    ("jemalloc", "malloc", LIBDIR + "/libjemalloc.so.2"),
    ("tcmalloc", "malloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
    ("mimalloc", "malloc", LIBDIR + "/libmimalloc.so.2"),
    ("nitroheap", "malloc", "NITRO"),
    ("movable", "movable", "NITRO"),
]
GOAL = 1.3
BEGIN = "<!-- fragmentation:begin -->"
END = "<!-- fragmentation:end -->"


def run(binary, mode, lib, mib, timeout):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    # The background compactor stays at its defaults; the program compacts
    # on demand after the frees and after the churn.
    p = subprocess.run([binary, mode, "--mib=%d" % mib], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("exit %d: %s" % (p.returncode, p.stderr.strip()[-500:]))
    out = {}
    for line in p.stdout.splitlines():
        k, v = line.split()
        out[k] = int(v)
    for k in ("live_bytes", "rss_peak", "rss_freed", "rss_churn", "checksum"):
        if k not in out:
            raise RuntimeError("no %s in the output: %r" % (k, p.stdout))
    return out


def mib(x):
    return "%.0f" % (x / 1048576.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="bytes to allocate, MiB (default 1024)")
    ap.add_argument("--only", default="", help="comma-separated subset of " +
                    ",".join(r[0] for r in RUNS))
    ap.add_argument("--binary", default=os.path.join(ROOT, "bazel-bin/testing/bench/fragmentation"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "bazel-bin/abi/libnitroheap.so"))
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--strict", action="store_true", help="fail when the goal is missed")
    a = ap.parse_args()
    if a.mib <= 0:
        print("fragmentation.py: --mib must be positive", file=sys.stderr)
        return 2
    only = [x for x in a.only.split(",") if x]
    names = [r[0] for r in RUNS]
    for x in only:
        if x not in names:
            print("fragmentation.py: unknown allocator %r (one of %s)" % (x, ",".join(names)), file=sys.stderr)
            return 2
    for path in (a.binary, a.lib):
        if not os.path.exists(path):
            print("fragmentation.py: %s is missing (bazel build //testing/bench:fragmentation "
                  "//abi:libnitroheap.so)" % path, file=sys.stderr)
            return 2
    results = []
    failed = False
    for name, mode, lib in RUNS:
        if only and name not in only:
            continue
        if lib == "NITRO":
            lib = a.lib
        if lib and not os.path.exists(lib):
            print("skip %s: %s not installed" % (name, lib))
            continue
        try:
            r = run(a.binary, mode, lib, a.mib, a.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print("FAIL %s: %s" % (name, e))
            failed = True
            continue
        results.append((name, r))
        print("%-10s live %s MiB  peak %s  freed %s  compact %s  churn %s MiB  (churn/live %.2f)" % (
            name, mib(r["live_bytes"]), mib(r["rss_peak"]), mib(r["rss_freed"]),
            mib(r["rss_compact"]) if "rss_compact" in r else "-", mib(r["rss_churn"]),
            r["rss_churn"] / r["live_bytes"]), flush=True)
    sums = {r["checksum"] for _, r in results}
    if len(sums) > 1:
        print("FAIL: checksums differ between runs: %s" % sorted(sums))
        failed = True
    movable = dict(results).get("movable")
    goal_met = None
    if movable:
        ratio = movable["rss_churn"] / movable["live_bytes"]
        goal_met = ratio <= GOAL
        print("movable: RSS %.2fx the live bytes after compaction (goal %.1fx): %s" % (
            ratio, GOAL, "met" if goal_met else "MISSED"))
    if a.write and results:
        write_doc(results, a.mib)
    if failed:
        return 1
    if a.strict and goal_met is False:
        return 1
    return 0


def write_doc(results, total_mib):
    rows = ["| allocator | live MiB | RSS peak | RSS after free | RSS after compaction | "
            "RSS after churn | after churn / live |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results:
        label = "NitroHeap movable + nitro_compact" if name == "movable" else (
            "NitroHeap malloc" if name == "nitroheap" else name)
        rows.append("| %s | %s | %s | %s | %s | %s | %.2fx |" % (
            label, mib(r["live_bytes"]), mib(r["rss_peak"]), mib(r["rss_freed"]),
            mib(r["rss_compact"]) if "rss_compact" in r else "-", mib(r["rss_churn"]),
            r["rss_churn"] / r["live_bytes"]))
    body = "\n".join([
        BEGIN,
        "## Fragmentation: movable allocations against every malloc",
        "",
        "`testing/bench/fragmentation.cc`: %d MiB in objects of 16..1024 bytes (uniform), every "
        "byte written; 90%% freed at random (the survivors' index moved to an array of their own); "
        "then as many operations as survivors, each reading one survivor and replacing it with a "
        "new object of the same size. The peers and NitroHeap's malloc run `fragmentation malloc` "
        "by `LD_PRELOAD`; *movable* runs `fragmentation movable` under NitroHeap: `nitro_halloc`/"
        "`nitro_hptr`/`nitro_hfree`, and `nitro_compact(NULL, SIZE_MAX)` after the frees and after "
        "the churn (the background compactor runs too, at its defaults). RSS from "
        "`/proc/self/statm`, in MiB; *live* is the bytes the program asked for and still holds; "
        "every run's checksum of the survivors' contents matched. Goal: movable within %.1f times "
        "the live bytes. Measured %s UTC, one run each:" % (
            total_mib, GOAL, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")),
        "",
    ] + rows + [
        "",
        "Command: `bazel build //testing/bench:fragmentation //abi:libnitroheap.so && "
        "/usr/bin/python3 testing/bench/fragmentation.py --mib=%d --write` (CI runs it at 256 MiB "
        "under glibc and movable: `//testing/bench:fragmentation_smoke_test`). Where the rest of "
        "the movable heap's RSS goes: docs/movable.md, *What it costs*." % total_mib,
        END])
    path = os.path.join(ROOT, "docs/benchmarks.md")
    with open(path) as f:
        text = f.read()
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    with open(path, "w") as f:
        f.write(text)
    print("wrote %s" % path)


if __name__ == "__main__":
    sys.exit(main())
