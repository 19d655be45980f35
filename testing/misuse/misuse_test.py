#!/usr/bin/python3
"""The misuse suite: runs every case of misuse_cases in a child process under
LD_PRELOAD=libnitroheap.so, once per hardening mode it applies to, and checks
how the process ended and what NitroHeap printed:

  * the exit signal (SIGABRT for misuse found in a call, SIGSEGV for a fault
    on a guard page, freed large run, guarded slot or malloc(0) pointer), or
    the exit status when the misuse is documented as out of reach;
  * stderr's first line is exactly
      nitroheap: <kind> at <address> in partition <name>: <details>
    with the expected kind and partition, and an address inside the range
    the case announced on stdout (EXPECT lo hi) before misbehaving;
  * a stack follows (every stderr line starts with "nitroheap:", at least one
    frame, the frame of the case function itself among them), with the
    section titles the kind needs (allocation and free stacks for guarded
    allocations);
  * the control case (correct use of everything, across threads) exits 0
    with empty stderr in every mode, with sample_rate=1, and without
    NitroHeap at all.

Usage: misuse_test.py MISUSE_CASES LIBNITROHEAP_SO [-v] [-k SUBSTRING]
Prints one PASS/FAIL line per run, the table of what each mode detected,
then "N passed, M failed"; exits 1 if anything failed.
"""

import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

SIGABRT = signal.SIGABRT
SIGSEGV = signal.SIGSEGV

# The modes misuse cases run in. Sampling is off in the three plain modes so
# that no case lands in the guarded pool by chance (by default 1 in 100000
# in balanced, 1 in 10000 in strict);
# the sampled modes guard every allocation.
MODES = {
    "fast": "mode=fast,sample_rate=0",
    "balanced": "mode=balanced,sample_rate=0",
    "strict": "mode=strict,sample_rate=0",
}
SAMPLED = {
    "fast+s1": "mode=fast,sample_rate=1",
    "balanced+s1": "mode=balanced,sample_rate=1",
    "strict+s1": "mode=strict,sample_rate=1",
}
PLAIN = tuple(MODES)

# The control runs everywhere, with default sampling in the plain modes.
CONTROL_RUNS = {
    "fast": "mode=fast",
    "balanced": "mode=balanced",
    "strict": "mode=strict",
    "fast+s1": "mode=fast,sample_rate=1",
    "balanced+s1": "mode=balanced,sample_rate=1",
    "strict+s1": "mode=strict,sample_rate=1",
    "balanced+q0": "mode=balanced,quarantine=0",
    "balanced+q16M": "mode=balanced,quarantine=16M",
    "no-preload": None,
}

FIRST_LINE = re.compile(
    r"^nitroheap: (?P<kind>.+?) at (?P<addr>0x[0-9a-f]+|\(nil\)) "
    r"in partition (?P<part>\S+): (?P<details>.+)$")
FRAME = re.compile(r"^nitroheap:   #\d+ 0x[0-9a-f]+")

# Cases listed here are known engine bugs: a failure is reported as XFAIL and
# does not count; a pass is reported as XPASS and counts as a failure (take
# the case off the list). Keep it empty unless a bug is tracked elsewhere.
XFAIL = {}


class Report:
    """Dies of `sig` after printing a diagnostic of `kind`."""

    def __init__(self, sig, kind, partition="default", details=None, titles=(),
                 stdout_has=(), stdout_lacks=()):
        self.sig, self.kind, self.partition = sig, kind, partition
        self.details, self.titles = details, titles
        self.stdout_has, self.stdout_lacks = stdout_has, stdout_lacks

    def describe(self):
        return "%s %s" % (signal.Signals(self.sig).name, self.kind)


class Exits:
    """Exits with `code`, stderr empty: not detected (or not a detection)."""

    def __init__(self, code=0, stdout_has=(), stdout_lacks=(), stderr_empty=True):
        self.code, self.stdout_has, self.stdout_lacks = code, stdout_has, stdout_lacks
        self.stderr_empty = stderr_empty

    def describe(self):
        return "exit %d" % self.code


class Observe:
    """Runs, nothing asserted: what happens goes into the table."""

    def describe(self):
        return "(observed)"


def abort(kind, partition="default", **kw):
    return Report(SIGABRT, kind, partition, titles=("stack:",), **kw)


def segv(kind, partition="default", **kw):
    titles = kw.pop("titles", ())
    return Report(SIGSEGV, kind, partition, titles=("faulting access at:",) + tuple(titles), **kw)


def every(expectation, modes=PLAIN):
    return {m: expectation for m in modes}


NOT_DETECTED = Exits(0, stdout_has=("NOT DETECTED",))
DOUBLE = "double free"
INVALID = "invalid free"
FOREIGN = "free of memory not from the heap"
SIZE = "sized free with the wrong size"
WAF = "write after free"
OVERFLOW = "heap buffer overflow"
UNDERFLOW = "heap buffer underflow"
UAF = "use after free"
CORRUPT = "corrupted free list"
BAD_REGION = "invalid region handle"
# Region heaps report in their own name (the region's address varies).
REGION = re.compile(r"region@0x[0-9a-f]+")

GUARD_ALLOC = ("allocated by thread",)
GUARD_FREE = ("allocated by thread", "freed by thread")

CASES = {
    # ---- every mode ---------------------------------------------------------
    "double_free_small": every(abort(DOUBLE)),
    "double_free_small_other_sizes": every(abort(DOUBLE)),
    "double_free_small_same_size": every(abort(DOUBLE)),
    # The second free hits the object's new owner and passes; the owner's
    # own free is then reported.
    "double_free_after_reuse": every(abort(DOUBLE, stdout_has=("SECOND FREE NOT DETECTED",))),
    "double_free_large": every(abort(DOUBLE)),
    "double_free_large_after_alloc": every(abort(DOUBLE)),
    "invalid_free_interior": every(abort(INVALID)),
    "invalid_free_unaligned": every(abort(INVALID)),
    "invalid_free_large_interior": every(abort(INVALID)),
    "realloc_interior": every(abort(INVALID)),
    "realloc_after_free": every(abort(DOUBLE)),
    "realloc_in_place_interior": every(abort(INVALID)),
    "realloc_in_place_after_free": every(abort(DOUBLE)),
    "usable_size_interior": every(abort(INVALID)),
    "sized_delete_interior": every(abort(INVALID)),
    "free_stack": every(abort(FOREIGN, "(none)")),
    "free_global": every(abort(FOREIGN, "(none)")),
    "free_wild": every(abort(FOREIGN, "(none)")),
    "realloc_stack": every(abort(FOREIGN, "(none)")),
    "usable_size_wild": every(abort(FOREIGN, "(none)")),
    "sized_free_wrong_size": every(abort(SIZE)),
    "sized_free_below_half": every(abort(SIZE)),
    "sized_free_class_granularity": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED, "strict": abort(SIZE)},
    "sized_free_large_wrong_size": every(abort(SIZE)),
    "aligned_sized_free_wrong_size": every(abort(SIZE)),
    "sized_delete_wrong_size": every(abort(SIZE)),
    "sized_delete_array_wrong_size": every(abort(SIZE)),
    "rust_dealloc_wrong_size": every(abort(SIZE)),
    # Freed large blocks are PROT_NONE in strict; in fast and balanced while
    # the partition's token bucket lasts (full at start: a process's first
    # 16 frees are all protected), whatever sample_rate says.
    "large_uaf_write": every(segv(UAF), PLAIN + tuple(SAMPLED)),
    "large_uaf_read": every(segv(UAF), PLAIN + tuple(SAMPLED)),
    "large_overflow": every(segv(OVERFLOW)),
    # ---- strict additionally ------------------------------------------------
    "write_after_free_small": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED, "strict": abort(WAF)},
    "overflow_small_canary": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED,
        "strict": abort(OVERFLOW, details=r"canary")},
    # An in-place realloc checks the slack it hands over at once, the rest
    # at the free (strict6: no longer the whole slack at every realloc).
    "overflow_small_canary_realloc": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED,
        "strict": abort(OVERFLOW, details=r"canary")},
    "overflow_small_canary_after_realloc": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED,
        "strict": abort(OVERFLOW, details=r"canary")},
    # malloc(0) has no accessible byte in every mode, sampled or not
    # (kZeroSizeClass's PROT_NONE slabs; strict's zero-size region).
    "write_zero_size": every(segv(OVERFLOW, details=r"malloc\(0\)"), PLAIN + tuple(SAMPLED)),
    "read_zero_size": every(segv(OVERFLOW, details=r"malloc\(0\)"), PLAIN + tuple(SAMPLED)),
    "double_free_zero_size": every(abort(DOUBLE), PLAIN + tuple(SAMPLED)),
    # No link lives in a freed object (thread caches are magazines): the
    # garbage is harmless outside strict, and strict sees the write (every
    # byte of a freed object must still be zero when it is reused).
    "corrupt_free_list": {"fast": NOT_DETECTED, "balanced": NOT_DETECTED, "strict": abort(WAF)},
    "uaf_write_redirect": {
        "fast": Exits(0, stdout_has=("NOT REDIRECTED",)),
        "balanced": Exits(0, stdout_has=("NOT REDIRECTED",)),
        "strict": abort(WAF)},
    "double_free_after_wipe": every(abort(DOUBLE)),
    # The first free came from another thread, which still caches the object.
    "double_free_other_thread": every(abort(DOUBLE)),
    "read_after_free_small": {
        "fast": Exits(0, stdout_has=("STALE",)), "balanced": Exits(0, stdout_has=("STALE",)),
        "strict": Exits(0, stdout_has=("ZEROED",))},
    # ---- partitions of nitro_partition_create ------------------------------
    "partition_double_free": every(abort(DOUBLE, "misuse-part")),
    # A partition's malloc(0) faults outside strict; strict partitions serve
    # 0 bytes with a canary at byte 0, checked at free.
    "partition_zero_size_write": {
        "fast": segv(OVERFLOW, "misuse-part", details=r"malloc\(0\)"),
        "balanced": segv(OVERFLOW, "misuse-part", details=r"malloc\(0\)"),
        "strict": abort(OVERFLOW, "misuse-part", details=r"canary")},
    "partition_interior_free": every(abort(INVALID, "misuse-part")),
    "partition_wrong_partition": every(abort(FOREIGN, "misuse-b")),
    # NITRO_TRAIT_SECURE_STRICT brings strict's checks to its partition in
    # every process mode.
    "secure_strict_write_after_free": every(abort(WAF, "traits:strict")),
    # Other partitions protect freed large blocks as the default one does
    # (each with its own token bucket).
    "partition_large_uaf": every(segv(UAF, "misuse-part"), PLAIN + tuple(SAMPLED)),
    # strict mode covers every partition (a partition made without a policy
    # takes the process's mode).
    "partition_overflow_slack": {
        "fast": NOT_DETECTED, "balanced": NOT_DETECTED,
        "strict": abort(OVERFLOW, "misuse-part", details=r"canary")},
    # ---- heaps over a fixed region (nitroheap/region.h), each kind ----------
    "region_bump_double_free": every(abort(DOUBLE, REGION)),
    "region_free_list_double_free": every(abort(DOUBLE, REGION)),
    "region_bump_interior_free": every(abort(INVALID, REGION)),
    "region_free_list_interior_free": every(abort(INVALID, REGION)),
    "region_bump_foreign_free": every(abort(FOREIGN, REGION)),
    "region_free_list_foreign_free": every(abort(FOREIGN, REGION)),
    "region_bump_overflow": every(abort(OVERFLOW, REGION)),
    "region_free_list_overflow": every(abort(OVERFLOW, REGION)),
    "region_free_list_overflow_victim_freed": every(abort(OVERFLOW, REGION)),
    "region_free_list_corrupt_link": every(abort(CORRUPT, REGION)),
    "region_destroyed_handle": every(abort(BAD_REGION, "(none)")),
    # ---- guarded sampling ---------------------------------------------------
    "guarded_overflow": every(segv(OVERFLOW, titles=GUARD_ALLOC, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_overflow_far": every(segv(OVERFLOW, titles=GUARD_ALLOC, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_underflow": every(segv(UNDERFLOW, titles=GUARD_ALLOC, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_overflow_new": every(segv(OVERFLOW, titles=GUARD_ALLOC, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_uaf_write": every(segv(UAF, titles=GUARD_FREE, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_uaf_read": every(segv(UAF, titles=GUARD_FREE, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_double_free": every(abort(DOUBLE, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_invalid_free": every(abort(INVALID, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_usable_size_interior": every(abort(INVALID, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_usable_size_freed": every(abort(INVALID, stdout_has=("GUARDED",)), SAMPLED),
    "guarded_free_into_freed_slot": every(abort(INVALID, stdout_has=("GUARDED",)), SAMPLED),
    # A mode's checks hold for every object it serves: strict's canaries
    # cover guarded objects' slack too.
    "guarded_overflow_slack": {
        "fast+s1": NOT_DETECTED, "balanced+s1": NOT_DETECTED,
        "strict+s1": abort(OVERFLOW, details=r"canary", stdout_has=("GUARDED",))},
    "free_prot_none": dict(every(abort(FOREIGN, "(none)")), **every(abort(FOREIGN, "(none)"), SAMPLED)),
    # ---- the program's own SIGSEGV handler -----------------------------------
    # Installed first: faults that are not NitroHeap's reach it.
    "chain_nonheap_fault": dict(every(Exits(42, stdout_has=("OWN HANDLER",))),
                                **{"balanced+s1": Exits(42, stdout_has=("OWN HANDLER",))}),
    # Installed first: NitroHeap's own faults are reported, the handler not run.
    "chain_heap_fault": every(segv(OVERFLOW, stdout_lacks=("OWN HANDLER",))),
    # Installed after NitroHeap's: it gets every fault, NitroHeap reports nothing.
    "handler_installed_after": every(Exits(42, stdout_has=("OWN HANDLER",))),
}


def parse_expect(stdout):
    for line in stdout.splitlines():
        if line.startswith("EXPECT "):
            parts = line.split()
            if parts[1] == "any":
                return "any"
            return int(parts[1], 16), int(parts[2], 16)
    return None


def check_report(case, exp, rc, out, err):
    """Returns a list of problems (empty: the run is as expected)."""
    problems = []
    if rc != -exp.sig:
        problems.append("expected death by %s, got %s" % (signal.Signals(exp.sig).name, describe_rc(rc)))
    lines = err.splitlines()
    if not lines:
        return problems + ["stderr is empty"]
    m = FIRST_LINE.match(lines[0])
    if not m:
        return problems + ["first stderr line is not a diagnostic: %r" % lines[0][:200]]
    if m.group("kind") != exp.kind:
        problems.append("kind %r, expected %r" % (m.group("kind"), exp.kind))
    if (not exp.partition.fullmatch(m.group("part")) if isinstance(exp.partition, re.Pattern)
            else m.group("part") != exp.partition):
        problems.append("partition %r, expected %r" % (m.group("part"), exp.partition))
    if exp.details and not re.search(exp.details, m.group("details")):
        problems.append("details %r lack %r" % (m.group("details"), exp.details))
    want = parse_expect(out)
    if want is None:
        problems.append("the case announced no EXPECT address")
    elif want != "any":
        addr = int(m.group("addr"), 16) if m.group("addr") != "(nil)" else 0
        if not want[0] <= addr <= want[1]:
            problems.append("address %#x outside the expected [%#x, %#x]" % (addr, want[0], want[1]))
    stray = [l for l in lines[1:] if not l.startswith("nitroheap:")]
    if stray:
        problems.append("stderr line not from NitroHeap: %r" % stray[0][:200])
    frames = [l for l in lines[1:] if FRAME.match(l)]
    if not frames:
        problems.append("no stack follows the diagnostic")
    elif not any(("case_%s+" % case) in l for l in frames):
        problems.append("the stack does not name case_%s" % case)
    for title in exp.titles:
        if not any(l.startswith("nitroheap: " + title) for l in lines[1:]):
            problems.append("no %r section in the report" % title)
    return problems


def check_exit(exp, rc, out, err):
    problems = []
    if rc != exp.code:
        problems.append("expected exit %d, got %s" % (exp.code, describe_rc(rc)))
    if exp.stderr_empty and err:
        problems.append("stderr not empty: %r" % err.splitlines()[0][:200])
    return problems


def describe_rc(rc):
    if rc is None:
        return "timeout"
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return "signal %d" % -rc
    return "exit %d" % rc


def observed(rc, err):
    """A short cell for the detection table."""
    if rc is None:
        return "TIMEOUT"
    first = err.splitlines()[0] if err else ""
    m = FIRST_LINE.match(first)
    kind = m.group("kind") if m else ""
    short = {
        "double free": "double", "invalid free": "invalid", "free of memory not from the heap": "foreign",
        "sized free with the wrong size": "size", "write after free": "WAF",
        "heap buffer overflow": "overflow", "heap buffer underflow": "underflow",
        "use after free": "UAF", "corrupted free list": "corrupt-list",
    }.get(kind, kind)
    if rc == -SIGABRT:
        return "ABRT " + short if short else "ABRT"
    if rc == -SIGSEGV:
        return "SEGV " + short if short else "SEGV (no report)"
    return "exit %d" % rc


def run(binary, preload, case, options, timeout):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "NITROHEAP", "NITROHEAP_OPTIONS")}
    if options is not None:
        env["LD_PRELOAD"] = preload
        env["NITROHEAP_OPTIONS"] = options
    try:
        p = subprocess.run([binary, case], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("preload")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's output")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    preload = os.path.abspath(args.preload)
    for path in (binary, preload):
        if not os.path.exists(path):
            print("error: %s not found" % path)
            return 2

    listed = subprocess.run([binary, "list"], stdout=subprocess.PIPE, check=True).stdout.decode().split()
    problems_at_start = []
    for name in listed:
        if name != "control" and name not in CASES:
            problems_at_start.append("case %s of misuse_cases has no expectations here" % name)
    for name in CASES:
        if name not in listed:
            problems_at_start.append("case %s is not in misuse_cases" % name)

    jobs = []
    for case, by_mode in CASES.items():
        if args.k in case:
            for mode, exp in by_mode.items():
                jobs.append((case, mode, MODES.get(mode) or SAMPLED[mode], exp))
    if args.k in "control":
        for mode, options in CONTROL_RUNS.items():
            jobs.append(("control", mode, options, Exits(0, stdout_has=("CONTROL OK",))))

    start = time.time()
    workers = max(2, min(16, os.cpu_count() or 2))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, binary, preload, case, options, args.timeout)
                   for case, mode, options, exp in jobs]
        results = [f.result() for f in futures]

    passed = failed = 0
    table = {}
    for (case, mode, options, exp), (rc, out, err) in zip(jobs, results):
        if isinstance(exp, Report):
            problems = check_report(case, exp, rc, out, err)
        elif isinstance(exp, Exits):
            problems = check_exit(exp, rc, out, err)
        else:
            problems = []
        for s in getattr(exp, "stdout_has", ()):
            if s not in out:
                problems.append("stdout lacks %r" % s)
        for s in getattr(exp, "stdout_lacks", ()):
            if s in out:
                problems.append("stdout has %r" % s)
        cell = observed(rc, err)
        if "NOT DETECTED" in out and rc == 0:
            cell = "not detected"
        for word in ("ZEROED", "STALE"):
            if word in out:
                cell += " " + word.lower()
        table.setdefault(case, {})[mode] = cell
        label = "%s [%s]" % (case, mode)
        xfail = (case, mode) in XFAIL or case in XFAIL
        if problems and xfail:
            print("XFAIL %s: %s" % (label, "; ".join(problems)))
            passed += 1
        elif problems:
            failed += 1
            print("FAIL %s: %s" % (label, "; ".join(problems)))
            print("     NITROHEAP_OPTIONS=%s, expected %s; stdout %r" % (options, exp.describe(), out[-300:]))
            if err:
                print("     stderr: " + "\n             ".join(err.splitlines()[:12]))
        elif xfail:
            failed += 1
            print("XPASS %s: passes now; take it off XFAIL" % label)
        else:
            passed += 1
            print("PASS %s: %s" % (label, cell))
        if args.verbose:
            print("     stdout: %r\n     stderr: %r" % (out[-500:], err[-2000:]))

    for p in problems_at_start:
        failed += 1
        print("FAIL " + p)

    columns = list(MODES) + list(SAMPLED) + [m for m in CONTROL_RUNS if m not in MODES and m not in SAMPLED]
    columns = [c for c in columns if any(c in row for row in table.values())]
    print("\nWhat each mode did (ABRT/SEGV <kind> = reported and died; exit N = ran on):")
    width = max([len(c) for c in table] + [4])
    widths = [max([len(c)] + [len(row.get(c, "-")) for row in table.values()]) for c in columns]
    print("%-*s  %s" % (width, "case", "  ".join("%-*s" % (w, c) for w, c in zip(widths, columns))))
    for case, row in table.items():
        print("%-*s  %s" % (width, case, "  ".join("%-*s" % (w, row.get(c, "-"))
                                                   for w, c in zip(widths, columns))))
    print("\n%d runs in %.1f s" % (len(jobs), time.time() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
