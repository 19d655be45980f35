#!/usr/bin/python3
"""Region heaps against malloc on parse-and-discard (parse_discard.cc).

Rows: the malloc heap under glibc, jemalloc, tcmalloc, mimalloc and
NitroHeap (each by LD_PRELOAD, as in run_bench.py), then the bump and the
free-list region heaps (no preload: a region never calls malloc after its
buffer is allocated). Runs interleaved, prints a Markdown table of medians;
every row must print the same checksum, or the script exits 1.

  /usr/bin/python3 testing/bench/region_bench.py [--rounds N] [--scale F] [--callgrind]

--callgrind adds each row's instruction count (valgrind, scale 0.02): on a
loaded machine the one number that does not move between runs.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_bench import PEERS, ROOT, DEFAULT_SO  # noqa: E402

LINE = re.compile(r"parse_discard heap=(\S+) docs=(\d+) nodes=(\d+) seconds=([\d.]+) checksum=(\w+)")


def rows(nitro_so):
    out = [("malloc (%s)" % name, "malloc", lib) for name, lib in PEERS]
    out.append(("malloc (NitroHeap)", "malloc", nitro_so))
    out.append(("region, bump (reset per document)", "bump", None))
    out.append(("region, free list (block by block)", "free_list", None))
    return out


def run(binary, heap, lib, scale, callgrind=False):
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    argv = [binary, "--heap=" + heap, "--scale=%g" % scale]
    if lib:
        env["LD_PRELOAD"] = lib
    if callgrind:
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    m = LINE.search(p.stdout.decode())
    if p.returncode != 0 or not m:
        raise SystemExit("region_bench: %s --heap=%s failed (exit %d): %s"
                         % (binary, heap, p.returncode, p.stderr.decode()[-300:]))
    # NitroHeap's background work runs in a clone of its own, which
    # valgrind counts apart: the program is the largest count.
    refs = [int(x.replace(",", "")) for x in re.findall(r"I\s+refs:\s+([\d,]+)", p.stderr.decode())]
    return float(m.group(4)), m.group(5), int(m.group(3)), max(refs) if refs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--binary", default=os.path.join(ROOT, "bazel-bin/testing/bench/parse_discard"))
    ap.add_argument("--nitroheap-so", default=os.path.join(ROOT, DEFAULT_SO))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["bazel", "build", "//testing/bench:parse_discard", "//abi:libnitroheap.so"],
                       cwd=ROOT, check=True)
    table = rows(args.nitroheap_so)
    table = [r for r in table if r[2] is None or os.path.exists(r[2])]
    times = {r[0]: [] for r in table}
    sums = {}
    nodes = 0
    for rnd in range(args.rounds):
        for label, heap, lib in table:
            secs, csum, nodes, _ = run(args.binary, heap, lib, args.scale)
            times[label].append(secs)
            sums.setdefault(csum, []).append(label)
        print("round %d/%d done" % (rnd + 1, args.rounds), file=sys.stderr)
    if len(sums) > 1:
        print("region_bench: checksums differ: %s" % sums, file=sys.stderr)
        return 1
    refs = {}
    if args.callgrind:
        for label, heap, lib in table:
            refs[label] = run(args.binary, heap, lib, 0.02, callgrind=True)[3]
    base = statistics.median(times[table[0][0]])
    docs = int(20000 * args.scale)
    print("parse_discard: %d documents of ~8 KiB, %d nodes in all (a node per value, a block per "
          "key and string); %d rounds, medians\n" % (docs, nodes, args.rounds))
    head = "| heap | seconds | ns per node | vs glibc malloc |" + (" instructions (scale 0.02) |"
                                                                   if refs else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, _, _ in table:
        t = statistics.median(times[label])
        line = "| %s | %.3f | %.0f | %.2f |" % (label, t, t * 1e9 / max(nodes, 1), t / base)
        if refs:
            line += " %s |" % ("{:,}".format(refs[label]) if refs[label] else "n/a")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
