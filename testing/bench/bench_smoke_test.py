"""Smoke test of the benchmark harness: every workload once, tiny
(run_bench.py --quick), under glibc and NitroHeap. Checks that every run
exits 0 with the expected output and that the report has every section;
asserts nothing about timings.

Arguments (from BUILD.bazel): run_bench.py workloads spawn_rusage
libnitroheap.so py_workload.py gcc_input.cc
"""
import os
import re
import subprocess
import sys
import time


def main():
    run_bench, workloads, spawn, nitro_so, py_workload, gcc_input = [os.path.abspath(a) for a in sys.argv[1:7]]
    out = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "benchmarks_smoke.md")
    cmd = ["/usr/bin/python3", run_bench, "--quick", "--no-build", "--no-callgrind",
           "--allocators", "glibc,nitroheap", "--timeout", "30",
           "--workloads-bin", workloads, "--spawn-bin", spawn, "--nitroheap-so", nitro_so,
           "--py-workload", py_workload, "--gcc-input", gcc_input, "--write", "--out", out,
           # A suite that cannot run: its targets must read "not measured".
           "--suites", "mimalloc-bench"]
    env = dict(os.environ, NITRO_MIMALLOC_BENCH_SRC="/nonexistent",
               HOME=os.environ.get("TEST_TMPDIR", "/tmp"))
    print("running:", " ".join(cmd), flush=True)
    start = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    print(p.stderr)
    print("(%.1f s)" % (time.time() - start))
    failures = []
    if p.returncode != 0:
        failures.append("run_bench.py exited %d (a run crashed, hung or printed wrong output)"
                        % p.returncode)
    report = open(out).read() if os.path.exists(out) else ""
    for section in ["## Setup", "## Target checks", "## Wall time", "## CPU time", "## Peak RSS",
                    "## Memory return", "## Where the gaps are"]:
        if section not in report:
            failures.append("report lacks the section %r" % section)
    unmeasured = [l for l in report.splitlines() if l.startswith("| mimalloc-bench: ")]
    if len(unmeasured) != 3 or not all("| not measured | not run: " in l for l in unmeasured):
        failures.append("mimalloc-bench's targets without its sources: %r, expected 3 rows "
                        "'not measured | not run: ...'" % unmeasured)
    if not re.search(r"^\| \*start-up\* \(not in the geomean\) \| [\d.]+ \| [\d.]+ \|", report, re.M):
        failures.append("the peak-RSS table lacks the start-up row")
    # Each profiled row: a CPU table with a total, or the reason it is missing.
    gaps = report.split("## Where the gaps are", 1)[-1].split("\n## ", 1)[0]
    for part in gaps.split("\n### ")[1:]:
        title = part.splitlines()[0]
        if title.startswith("Peak RSS above") or title.startswith("NitroHeap's memory at exit"):
            continue
        if "not profiled: " not in part and not re.search(r"^\| \*\*total CPU\*\* \| \*\*\d+", part, re.M):
            failures.append("gap profile %r has neither a CPU table nor a reason" % title)
    # The rows over the memory limit get NitroHeap's heap report at exit:
    # numbers read from the report, committed never zero (a report that was
    # not found or not parsed leaves "?" or no row).
    if "### Peak RSS above the start-up's" in report:
        held = gaps.split("### NitroHeap's memory at exit", 1)
        rows = [l.split("|")[1:-1] for l in held[-1].splitlines() if l.startswith("| ")][2:] if len(held) == 2 else []
        if not rows:
            failures.append("rows over the memory limit but no 'NitroHeap's memory at exit' table")
        for cells in rows:
            if len(cells) != 11 or not all(re.match(r"^\d+\.\d+$", c.strip()) for c in cells[1:]) \
                    or float(cells[3]) <= 0:
                failures.append("memory-at-exit row without its numbers: %r" % cells)
    for name in ["fastpath", "working_set", "prodcons", "larson", "realloc", "large", "large_cycle",
                 "large_trap",
                 "stl", "larson_8t", "larson_32t", "python", "python_malloc", "gcc"]:
        # Rows of the wall, CPU and RSS tables (not the workload list, nor
        # the gap section's tables).
        tables = report.split("## Where the gaps are", 1)[0]
        rows = [l for l in tables.splitlines() if l.startswith("| %s |" % name)
                and re.match(r"^([\d.]+|FAIL)$", l.split("|")[2].strip())]
        if len(rows) != 3:
            failures.append("workload %s: %d table rows, expected 3" % (name, len(rows)))
        elif any("FAIL" in r for r in rows):
            failures.append("workload %s failed: %s" % (name, rows[0]))
    mr = [l for l in report.splitlines() if l.startswith("| nitroheap |") and "FAIL" not in l]
    if not any(len(l.split("|")) == 9 for l in mr):
        failures.append("no memory-return row for nitroheap")
    if "Failed runs" in report:
        failures.append("report lists failed runs")
    for f in failures:
        print("FAIL:", f)
    if failures:
        print(report)
        return 1
    print("PASS: every workload ran under glibc and NitroHeap with the expected output")
    return 0


if __name__ == "__main__":
    sys.exit(main())
