#!/usr/bin/python3
"""What stays resident after `workloads memreturn` frees its heap, mapping by
mapping: the growth in Rss from just before the allocation to 1 s after the
free, from two copies of /proc/self/smaps the workload saves when
MEMRETURN_SMAPS is set.

    /usr/bin/python3 testing/bench/memreturn_breakdown.py [--scale 0.25] \
        [--so bazel-bin/abi/libnitroheap.so] [--options NITROHEAP_OPTIONS]

Each mapping that grew is printed with its size, flags and growth, and named
from what the kernel shows (anonymous mappings have no name on kernels
without CONFIG_ANON_VMA_NAME, this machine's included), so the kind is a
guess from its shape: NitroHeap maps its metadata with MADV_NOHUGEPAGE
("nh" in VmFlags): page-map leaves are 2 MiB, span-descriptor areas and
metadata-arena chunks (thread-cache rings, middle layer, partitions) 4 MiB
with a guard page at each end; page-heap regions start 2 MiB-aligned
(their first part, up to the first PROT_NONE page, is the mapping shown);
the flight recorder's ring at its default 2048 events is 628 KiB. NitroHeap's
heap report at 1 s (malloc_stats_print) follows, with the same figures
from the inside (span descriptors committed, page map resident).
Standard library only.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(path):
    maps = []
    cur = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = dict(start=int(m[1], 16), end=int(m[2], 16), perm=m[3], name=m[4].strip(),
                           rss=0, flags="")
                maps.append(cur)
            elif line.startswith("Rss:"):
                cur["rss"] = int(line.split()[1])
            elif line.startswith("VmFlags:"):
                cur["flags"] = line[8:].split()
    return maps


def kind(m):
    size = m["end"] - m["start"]
    if m["name"]:
        base = os.path.basename(m["name"])
        return "program and libraries (%s)" % base if not base.startswith("[") else base
    if "nh" in m["flags"]:
        if size == 2 << 20:
            return "NitroHeap page-map leaf"
        if size == (4 << 20) - 8192:
            return "NitroHeap span descriptors or metadata arena (4 MiB, guard pages)"
        if size == 628 << 10:  # telemetry/event_ring.h at 2048 events: records, index, sites
            return "flight-recorder ring (2048 events)"
        return "NitroHeap metadata (nohugepage)"
    if m["start"] % (2 << 20) == 0:
        return "NitroHeap page-heap region (2 MiB-aligned)"
    return "anonymous (flight-recorder ring, telemetry stack, other)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="0.25", help="workloads --scale (0.25: 256 MiB, 1: 1 GiB)")
    ap.add_argument("--so", default=os.path.join(ROOT, "bazel-bin/abi/libnitroheap.so"),
                    help="allocator to preload")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bazel-bin/testing/bench/workloads"))
    ap.add_argument("--options", default=None, help="NITROHEAP_OPTIONS for the run")
    args = ap.parse_args()
    for path in (args.bin, args.so):
        if not os.path.exists(path):
            sys.exit("memreturn_breakdown: %s not found (bazel build //abi:libnitroheap.so "
                     "//testing/bench:workloads)" % path)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MEMRETURN_SMAPS=os.path.join(tmp, "smaps"), LD_PRELOAD=args.so)
        if args.options is not None:
            env["NITROHEAP_OPTIONS"] = args.options
        run = subprocess.run([args.bin, "memreturn", "--scale=" + args.scale], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit("memreturn_breakdown: the workload failed (%d): %s" % (run.returncode, run.stderr))
        before = parse(os.path.join(tmp, "smaps.before"))
        after = parse(os.path.join(tmp, "smaps.after_1s"))
    print(next(l for l in run.stdout.splitlines() if l.startswith("memreturn rss_kib")))
    old = {(m["start"], m["end"]): m["rss"] for m in before}
    # A mapping split or merged since (mprotect) is matched by its start only.
    old_by_start = {m["start"]: m["rss"] for m in before}
    total_before = sum(m["rss"] for m in before)
    total_after = sum(m["rss"] for m in after)
    print("smaps Rss: %d KiB before, %d KiB 1 s after the free (+%d KiB)"
          % (total_before, total_after, total_after - total_before))
    by_kind = {}
    print("%-33s %9s %5s %7s %7s  %s" % ("mapping", "size KiB", "perm", "rss", "grown", "kind"))
    for m in after:
        was = old.get((m["start"], m["end"]), old_by_start.get(m["start"], 0))
        grown = m["rss"] - was
        if grown == 0:
            continue
        k = kind(m)
        by_kind[k] = by_kind.get(k, 0) + grown
        print("%016x-%016x %9d %5s %7d %+7d  %s" % (m["start"], m["end"], (m["end"] - m["start"]) >> 10,
                                                 m["perm"], m["rss"], grown, k))
    gone = sum(m["rss"] for m in before if not any(a["start"] <= m["start"] < a["end"] for a in after))
    if gone:
        print("unmapped since: -%d KiB" % gone)
    print("\ngrowth by kind (KiB):")
    for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print("  %+7d  %s" % (v, k))
    report = [l for l in run.stderr.splitlines() if l.strip()]
    if report:
        print("\nthe allocator's report at 1 s:")
        print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
