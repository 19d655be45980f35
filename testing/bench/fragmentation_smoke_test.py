#!/usr/bin/python3
"""The fragmentation benchmark at 256 MiB, under glibc and with NitroHeap's
movable allocations, through its runner: both runs succeed with the same
checksum, glibc's RSS stays near the peak after the frees, and compaction
brings the movable heap's RSS down to a small multiple of the live bytes.
Memory, never time, is checked.

Usage: fragmentation_smoke_test.py FRAGMENTATION_PY FRAGMENTATION LIBNITROHEAP_SO
"""
import re
import subprocess
import sys


def main():
    runner, binary, lib = sys.argv[1:4]
    p = subprocess.run([sys.executable, runner, "--mib=256", "--only=glibc,movable",
                        "--binary=" + binary, "--lib=" + lib],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=600)
    print(p.stdout)
    if p.returncode != 0:
        print("FAIL: the runner exited with %d" % p.returncode)
        return 1
    rows = {}
    for m in re.finditer(r"^(\w+)\s+live (\d+) MiB\s+peak (\d+)\s+freed (\d+)\s+compact (\S+)\s+churn (\d+) MiB",
                         p.stdout, re.M):
        rows[m.group(1)] = [int(m.group(i)) if m.group(i).isdigit() else None for i in range(2, 7)]
    problems = []
    if set(rows) != {"glibc", "movable"}:
        problems.append("expected rows for glibc and movable, got %s" % sorted(rows))
    else:
        live, peak, freed, _, churn = rows["glibc"]
        if freed < 5 * live:
            problems.append("glibc returned memory after random frees (%d MiB for %d live)?" % (freed, live))
        live, peak, freed, compact, churn = rows["movable"]
        if compact is None or compact * 3 > freed:
            problems.append("compaction did not return memory: %s MiB after, %d before" % (compact, freed))
        if churn > 2 * live + 16:
            problems.append("movable RSS %d MiB for %d MiB live after the churn" % (churn, live))
    for x in problems:
        print("FAIL: " + x)
    if problems:
        return 1
    # Bad input gets a one-line error and status 2.
    bad = subprocess.run([sys.executable, runner, "--only=nosuch", "--binary=" + binary, "--lib=" + lib],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if bad.returncode != 2 or "unknown allocator" not in bad.stderr:
        print("FAIL: --only=nosuch gave %d %r" % (bad.returncode, bad.stderr))
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
