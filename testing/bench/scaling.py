#!/usr/bin/env python3
"""Throughput per thread from 1 to 32 threads, NitroHeap against its peers.

Runs `workloads scaling --threads=T` (each thread the same fixed work:
random replacement in its own array, every 16th object freed by another
thread) under LD_PRELOAD of each allocator, rounds interleaved, and prints a
Markdown table of million operations per second per thread (median wall
time of the rounds), CPU nanoseconds per operation, and the retention: throughput per thread at the largest
T over that at T=1. On a machine with fewer cores than threads the ideal
retention is cores/T; what counts is the allocator's retention against the
best peer's (issue 13: NitroHeap's must not fall faster).

Usage: testing/bench/scaling.py [--rounds N] [--threads 1,2,4,8,16,32]
           [--scale F] [--allocators a,b] [--nitroheap-so PATH]
           [--workloads-bin PATH] [--nitroheap-options OPTS]
Build first: bazel build //abi:libnitroheap.so //testing/bench:workloads
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIB = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", ""),
    ("jemalloc", LIB + "/libjemalloc.so.2"),
    ("tcmalloc", LIB + "/libtcmalloc_minimal.so.4"),
    ("mimalloc", LIB + "/libmimalloc.so.2"),
]


def run_once(workloads, preload, threads, scale, options):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    if options is not None:
        env["NITROHEAP_OPTIONS"] = options
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run([workloads, "scaling", "--threads=%d" % threads, "--scale=%g" % scale],
                         capture_output=True, text=True, env=env, timeout=600)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0 or "scaling ok" not in out.stdout:
        sys.exit("scaling.py: %s with %d threads failed (status %d): %s" %
                 (preload or "glibc", threads, out.returncode, out.stderr.strip()[:300]))
    ops = int(out.stdout.split("ops=")[1].split()[0])
    return wall, cpu, ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2,4,8,16,32")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--allocators", default="", help="subset, comma-separated (nitroheap, glibc, ...)")
    ap.add_argument("--nitroheap-so", default=os.path.join(ROOT, "bazel-bin/abi/libnitroheap.so"))
    ap.add_argument("--nitroheap-options", default=None,
                    help="NITROHEAP_OPTIONS for a second NitroHeap row (e.g. mode=fast)")
    ap.add_argument("--workloads-bin", default=os.path.join(ROOT, "bazel-bin/testing/bench/workloads"))
    args = ap.parse_args()
    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        sys.exit("scaling.py: --threads takes numbers separated by commas, not %r" % args.threads)
    if not counts or min(counts) < 1:
        sys.exit("scaling.py: every thread count must be at least 1")
    if args.rounds < 1:
        sys.exit("scaling.py: --rounds must be at least 1")
    for path in (args.workloads_bin, args.nitroheap_so):
        if not os.path.isfile(path):
            sys.exit("scaling.py: %s not found (bazel build //abi:libnitroheap.so "
                     "//testing/bench:workloads)" % path)
    allocs = [("nitroheap", args.nitroheap_so, None)]
    if args.nitroheap_options is not None:
        allocs.append(("nitroheap " + args.nitroheap_options, args.nitroheap_so, args.nitroheap_options))
    allocs += [(n, p, None) for n, p in PEERS if p == "" or os.path.isfile(p)]
    if args.allocators:
        wanted = args.allocators.split(",")
        allocs = [a for a in allocs if a[0].split()[0] in wanted]
    walls, cpus, ops = measure(args.workloads_bin, allocs, counts, args.rounds, args.scale)
    print("Million operations per second per thread (median of %d rounds, %d cores):" %
          (args.rounds, os.cpu_count()))
    print()
    lines, verdict = report(allocs, counts, walls, cpus, ops, args.rounds)
    print("\n".join(lines))
    if verdict:
        print()
        print("scaling: nitroheap retention %.3f, best peer %s %.3f: %s" % verdict)


def measure(workloads, allocs, counts, rounds, scale):
    """Wall and CPU seconds of every (allocator, T) run, rounds interleaved, and its ops."""
    walls = {(a[0], t): [] for a in allocs for t in counts}
    cpus = {(a[0], t): [] for a in allocs for t in counts}
    ops = {}
    for r in range(rounds):
        for t in counts:
            for name, so, opts in allocs:
                wall, cpu, n = run_once(workloads, so, t, scale, opts)
                walls[(name, t)].append(wall)
                cpus[(name, t)].append(cpu)
                ops[(name, t)] = n
                print("round %d: %-22s T=%-3d %.3f s" % (r + 1, name, t, wall), file=sys.stderr, flush=True)
    return walls, cpus, ops


def report(allocs, counts, walls, cpus, ops, rounds):
    """Markdown lines of the two tables, and (nitroheap retention, best peer, its retention,
    "met" or "MISSED") or None without NitroHeap or a peer."""
    lines = ["| allocator | " + " | ".join("T=%d" % t for t in counts) + " | retention T=%d/T=1 |" % counts[-1],
             "|" + "---|" * (len(counts) + 2)]
    retention = {}
    for name, _, _ in allocs:
        per = [ops[(name, t)] / t / statistics.median(walls[(name, t)]) / 1e6 for t in counts]
        retention[name] = per[-1] / per[0]
        lines.append("| %s | %s | %.3f |" % (name, " | ".join("%.2f" % x for x in per), retention[name]))
    # CPU time per operation does not depend on how busy the rest of the
    # machine is (the wall time does): what the allocator itself spends
    # (spinning included, blocked waits not) as threads are added.
    lines += ["", "CPU nanoseconds per operation (user + system, median of %d rounds):" % rounds, "",
              "| allocator | " + " | ".join("T=%d" % t for t in counts) + " | growth T=%d/T=1 |" % counts[-1],
              "|" + "---|" * (len(counts) + 2)]
    for name, _, _ in allocs:
        per = [statistics.median(cpus[(name, t)]) / ops[(name, t)] * 1e9 for t in counts]
        lines.append("| %s | %s | %.2f |" % (name, " | ".join("%.0f" % x for x in per), per[-1] / per[0]))
    peers = {n: v for n, v in retention.items() if not n.startswith("nitroheap")}
    if not peers or "nitroheap" not in retention:
        return lines, None
    best = max(peers, key=peers.get)
    return lines, (retention["nitroheap"], best, peers[best],
                   "met" if retention["nitroheap"] >= peers[best] else "MISSED")


if __name__ == "__main__":
    main()
