#!/usr/bin/python3
"""NitroHeap's benchmark harness: NitroHeap against glibc, jemalloc, tcmalloc
and mimalloc, each by LD_PRELOAD, on the same workloads, interleaved.

For each round, for each workload, every allocator runs once in a fixed
order (glibc jemalloc tcmalloc mimalloc nitroheap, then again), so slow
drifts of the machine hit every allocator alike. Each run records the wall
time, the CPU time (user + sys) and the peak RSS of the child from wait4's
rusage, taken by the small launcher spawn_rusage (a child forked straight
from this Python process would count the harness's own pages in ru_maxrss,
which Linux carries across exec). That rusage covers the child and every
descendant it waited for, so for g++ (driver -> cc1plus -> as) the CPU time
is the whole tree's and the peak RSS the largest single process's. The report
gives medians over the rounds, NitroHeap's ratio to the best peer and
geometric means, checks the targets, and with --write puts it all in
docs/benchmarks.md.

NitroHeap also runs under extra option sets (--nitroheap-variants; by default
fast, strict and no-telemetry): the same library with NITROHEAP_OPTIONS set,
right after the default NitroHeap run of each workload in each round. The
variants are not peers: the ratios, target checks and geomeans above are the
default NitroHeap against the four peers, exactly as without them; the
variants get their own section, their wall time and peak RSS against the
default's. Their output is checked like every other run's.

Standard library only; runs with /usr/bin/python3:

    /usr/bin/python3 testing/bench/run_bench.py --rounds 3 --write
    /usr/bin/python3 testing/bench/run_bench.py --quick          # smoke run

Exit status: 0 when every run succeeded with the expected output (target
misses are reported, and fail the run only with --strict), 1 when a run
crashed, hung, or printed wrong output, 2 on a usage or build error.
"""
import argparse
import atexit
import datetime
import hashlib
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
]
NITRO = "nitroheap"
DEFAULT_SO = "bazel-bin/abi/libnitroheap.so"
PACKAGES = ["libc6", "libjemalloc2", "libgoogle-perftools4", "libmimalloc2.0"]

# Targets for NitroHeap against the best peer of each workload (issue 13,
# "safe and fastest": at least as fast as the fastest peer overall).
TIME_GEOMEAN_MAX = 1.00
TIME_WORKLOAD_MAX = 1.30
MEM_GEOMEAN_MAX = 1.10
RETURN_MAX = 1.10  # RSS after the free, relative to the pre-allocation RSS
STRICT_MAX = 2.0   # mode=strict's wall time over the default's

# NitroHeap under other options, run beside the default (--nitroheap-variants):
# NAME=OPTIONS;NAME=OPTIONS, OPTIONS being a NITROHEAP_OPTIONS value.
DEFAULT_VARIANTS = ("fast=mode=fast;strict=mode=strict;"
                    "no-telemetry=telemetry=0,profile_rate=0,sample_rate=0")
VARIANT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")
# What each option setting changes against the default (balanced, telemetry
# on, flight-recorder and guarded sampling on), for the report.
OPTION_EFFECTS = {
    "mode=fast": "no small-object quarantine (balanced holds back 64 KiB per thread), a minimal "
                 "large quarantine (2 freed large runs instead of 8) and no guarded sampling "
                 "(sample_rate 0 unless given)",
    "mode=strict": "every call through the checked slow path (zero on free, canaries, checked free "
                   "lists, randomized reuse, a 4 MiB quarantine per thread)",
    "mode=balanced": "the default mode (no change)",
    "telemetry=0": "no shared-memory publishing of live statistics (`/dev/shm/nitroheap.<pid>`)",
    "profile_rate=0": "no flight-recorder sampling",
    "sample_rate=0": "no guarded sampling",
}
TELEMETRY_OFF = {"telemetry=0", "profile_rate=0", "sample_rate=0"}


class Variant:
    """NitroHeap run with NITROHEAP_OPTIONS=opts."""

    def __init__(self, name, opts):
        self.name = name
        self.opts = opts
        self.label = NITRO + ":" + name  # its key in the results and in --allocators

    def effect(self):
        items = [i.strip() for i in self.opts.split(",") if i.strip()]
        text = "; ".join(OPTION_EFFECTS.get(i, "`%s`" % i) for i in items)
        if set(items) == TELEMETRY_OFF:
            text += ": the cost of statistics export and sampling"
        return text


# Everything from this line to the end of the output file is hand-recorded
# history that a new report keeps (see main's --write).
HAND_MARKER = "<!-- hand-recorded sections (kept by run_bench.py --write) -->"


def parse_variants(spec):
    """'NAME=OPTS;NAME=OPTS' -> [Variant]; raises ValueError on a malformed spec."""
    out = []
    for item in spec.split(";"):
        item = item.strip()
        if not item:
            continue
        name, eq, opts = item.partition("=")
        name, opts = name.strip(), opts.strip()
        if not eq or not opts:
            raise ValueError("%r is not NAME=OPTIONS" % item)
        if not VARIANT_NAME_RE.match(name) or name == "default":
            raise ValueError("bad variant name %r (letters, digits, _ . + -; not 'default')" % name)
        if any(v.name == name for v in out):
            raise ValueError("variant %r given twice" % name)
        out.append(Variant(name, opts))
    return out


RESULT_RE = re.compile(r"^(\S+) ok checksum=([0-9a-f]+) ops=(\d+)$")
MEMRETURN_RE = re.compile(
    r"^memreturn rss_kib before=(\d+) peak=(\d+) after_free=(\d+) after_1s=(\d+)"
    r" after_trim=(\d+|n/a) malloc_from=(\S+)$")


class Workload:
    """One benchmark program: how to run it and how to check its output."""

    def __init__(self, name, what, argv, env=None, output_file=None):
        self.name = name
        self.what = what
        self.argv = argv          # function(paths, scale, workdir) -> argv list
        self.env = env or {}
        self.output_file = output_file  # checksum this file instead of stdout


def workloads(paths, quick):
    w = paths["workloads"]

    def mode(name, *extra):
        return lambda scale, workdir: [w, name, "--scale=%g" % scale] + list(extra)

    def python(scale, workdir):
        return ["/usr/bin/python3", paths["py_workload"], "%g" % scale]

    def gcc(scale, workdir):
        opt = ["-O0"] if quick else ["-O1"]
        return ["g++", "-std=c++17"] + opt + ["-c", paths["gcc_input"], "-o",
                                              os.path.join(workdir, "gcc_input.o")]

    return [
        Workload("fastpath", "(a) malloc/free pairs cycling through 16 small classes (16..256 B)",
                 mode("fastpath")),
        Workload("working_set", "(b) random replacement, 100k live objects, 16 B..64 KiB log-uniform",
                 mode("working_set")),
        Workload("prodcons", "(c) producer allocates, consumer frees, batches of 256 via a queue",
                 mode("prodcons")),
        Workload("larson", "(d) larson: 2 threads replace random slots of a shared array",
                 mode("larson", "--threads=2")),
        Workload("realloc", "(e) 64 strings grown by 1..16-byte reallocs to 4..64 KiB",
                 mode("realloc")),
        Workload("large", "(f) 16 live blocks of 64 KiB..8 MiB, replaced and filled",
                 mode("large")),
        Workload("large_cycle", "(f) 100k cycles: 16 live blocks of 64 KiB..4 MiB, one replaced "
                 "per cycle, untouched (system calls per cycle)", mode("large_cycle")),
        Workload("large_trap", "(f) allocate, zero-fill, free 5..25 MiB blocks",
                 mode("large_trap")),
        Workload("stl", "(g) map<string, vector<int>>, unordered_map, string concatenation",
                 mode("stl")),
        Workload("larson_8t", "(h) larson with 8 threads on %d cores" % os.cpu_count(),
                 mode("larson", "--threads=8")),
        Workload("larson_32t", "(h) larson with 32 threads on %d cores" % os.cpu_count(),
                 mode("larson", "--threads=32")),
        Workload("python", "(i) python3: dicts, lists, json, strings (default pymalloc)",
                 python, env={"PYTHONHASHSEED": "0"}),
        Workload("python_malloc", "(i) the same with PYTHONMALLOC=malloc (every object via malloc)",
                 python, env={"PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc"}),
        Workload("gcc", "(i) g++ -std=c++17 -O1 -c of a medium file (<regex>, <map>, templates)",
                 gcc, output_file="gcc_input.o"),
    ]


def mode_argv(paths, name):
    return lambda scale, workdir: [paths["workloads"], name, "--scale=%g" % scale]


MEMRETURN = Workload("memreturn", "(j) 1 GiB in 64 B..4 KiB objects and 1 MiB blocks, freed, idle",
                     None)

# Workload scale factors: 1 for the benchmark, tiny for --quick.
QUICK_SCALE = 0.02


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


class Run:
    def __init__(self):
        self.rc = None
        self.timed_out = False
        self.wall = self.cpu = 0.0
        self.maxrss_kib = 0
        self.minflt = None  # minor page faults of the command's tree
        self.stdout = self.stderr = ""
        self.checksum = None
        self.error = None
        self.extra = None  # parsed memreturn line


SPAWN_RE = re.compile(r"^status=(-?\d+) wall=([\d.]+) user=([\d.]+) sys=([\d.]+) maxrss_kib=(\d+)"
                      r"(?: minflt=(\d+))?$")


def run_child(spawn, argv, env, cwd, timeout):
    """Runs argv through the spawn_rusage launcher in its own session.

    The launcher's wait4 gives the rusage of the command's tree alone (a
    child forked from this Python process would count the harness's own
    resident pages in ru_maxrss, which Linux carries across exec).
    """
    r = Run()
    result_path = os.path.join(cwd, ".spawn_result")
    try:
        os.unlink(result_path)
    except FileNotFoundError:
        pass
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([spawn, result_path] + argv, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)

        def kill():
            r.timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, _ = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = launcher_rc = os.waitstatus_to_exitcode(status)
        try:  # leftovers of the group, if any
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        r.stdout = out.read().decode(errors="replace")
        r.stderr = err.read().decode(errors="replace")
    try:
        with open(result_path) as f:
            m = SPAWN_RE.match(f.read().strip())
    except OSError:
        m = None
    if m:
        r.rc = int(m.group(1))
        r.wall = float(m.group(2))
        r.cpu = float(m.group(3)) + float(m.group(4))
        r.maxrss_kib = int(m.group(5))
        r.minflt = int(m.group(6)) if m.group(6) is not None else None
    else:
        r.rc = launcher_rc if launcher_rc != 0 else -1
    return r


UNSTAGE = {}  # private copy -> the file it was copied from, for reproduction commands


def repro(argv, env_extra):
    un = lambda s: UNSTAGE.get(s, s)
    return " ".join(["env"] + ["%s=%s" % (k, shlex.quote(un(v))) for k, v in sorted(env_extra.items())]
                    + [shlex.quote(un(a)) for a in argv])


def run_one(wl, alloc, lib, paths, scale, workdir, timeout, base_env, nitro_opts=None):
    env = dict(base_env)
    env.update(wl.env)
    if lib:
        env["BENCH_LD_PRELOAD"] = lib  # the launcher passes it on as LD_PRELOAD
    env_extra = dict(wl.env)
    if lib:
        env_extra["LD_PRELOAD"] = lib
    if nitro_opts is not None:  # a variant
        env["NITROHEAP_OPTIONS"] = env_extra["NITROHEAP_OPTIONS"] = nitro_opts
    if wl is MEMRETURN:
        argv = [paths["workloads"], "memreturn", "--scale=%g" % scale]
    else:
        argv = wl.argv(scale, workdir)
    if wl.output_file:
        try:
            os.unlink(os.path.join(workdir, wl.output_file))
        except FileNotFoundError:
            pass
    r = run_child(paths["spawn"], argv, env, workdir, timeout)
    r.repro = repro(argv, env_extra)
    rejected = [l for l in r.stderr.splitlines() if "NITROHEAP_OPTIONS:" in l]
    if r.timed_out:
        r.error = "timed out after %d s" % timeout
    elif rejected:  # NitroHeap ran with (partly) default options: not the variant asked for
        r.error = "options rejected: %s" % rejected[0].strip()
    elif r.rc != 0:
        r.error = "exit status %d" % r.rc
    elif wl.output_file:
        try:
            with open(os.path.join(workdir, wl.output_file), "rb") as f:
                r.checksum = hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError as e:
            r.error = "no output file: %s" % e
    else:
        lines = r.stdout.strip().splitlines()
        m = RESULT_RE.match(lines[-1]) if lines else None
        if not m:
            r.error = "unexpected output: %r" % (lines[-1] if lines else "")
        else:
            r.checksum = m.group(2)
        if wl is MEMRETURN and r.error is None:
            mm = next((MEMRETURN_RE.match(l) for l in lines if MEMRETURN_RE.match(l)), None)
            if not mm:
                r.error = "no rss line"
            else:
                g = mm.groups()
                r.extra = {"before": int(g[0]), "peak": int(g[1]), "after_free": int(g[2]),
                           "after_1s": int(g[3]),
                           "after_trim": None if g[4] == "n/a" else int(g[4]),
                           "malloc_from": g[5]}
                if lib and os.path.basename(lib) not in g[5] and alloc != "glibc":
                    r.error = "malloc came from %s, not the preload" % g[5]
    return r


def display_path(p):
    p = os.path.abspath(p)
    return os.path.relpath(p, ROOT) if p.startswith(ROOT + "/") else p


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt_ratio(x, limit=None):
    if x is None or math.isnan(x):
        return "n/a"
    s = "%.2f" % x
    return "**%s**" % s if limit is not None and x > limit else s


def md_table(header, rows, align=None):
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "mem": mem,
            "kernel": platform.release(), "load": " ".join("%.2f" % x for x in os.getloadavg())}


def versions(nitro_so):
    v = {"glibc": " ".join(os.confstr("CS_GNU_LIBC_VERSION").split()[1:]) or "?"}
    for pkg in PACKAGES:
        v[pkg] = sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"
    v["g++"] = (sh(["g++", "--version"]).splitlines() or ["?"])[0]
    v["python3"] = sh(["/usr/bin/python3", "--version"]) or "?"
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"]) or "unknown"
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--", "core", "abi"])
    n_dirty = len(dirty.splitlines()) if dirty else 0
    v["nitroheap"] = commit + (" + %d uncommitted change(s) in core/ abi/" % n_dirty if n_dirty else "")
    if nitro_so and os.path.exists(nitro_so):
        with open(nitro_so, "rb") as f:
            v["nitroheap_so"] = hashlib.sha256(f.read()).hexdigest()[:16]
    return v


def run_callgrind(paths, quick, timeout, api="malloc"):
    """Runs callgrind_fastpath.sh; returns (rows, raw text) or (None, why).
    api: fastpath_pairs' pair loop (malloc, or NitroHeap's partition,
    mallocx, mallocx-trait); its rows name it beside the allocator."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callgrind_fastpath.sh")
    if not shutil.which("valgrind"):
        return None, "valgrind not installed"
    cmd = ["bash", script, "--no-build", "--bin", paths["fastpath_pairs"],
           "--nitroheap-so", paths["nitroheap_so"]]
    if quick:
        cmd += ["--n", "20000"]
    cmd += ["--api", api]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "callgrind_fastpath.sh timed out"
    rows = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "callgrind":
            if api != "malloc":
                parts[1] = "%s (%s)" % (parts[1], api)
            rows.append(parts[1:])
    if p.returncode != 0 or not rows:
        return None, "callgrind_fastpath.sh failed (%d): %s" % (p.returncode, p.stderr.strip()[-500:])
    return rows, p.stdout


# NitroHeap's heap report (core/heap_report.cc, stats_print=1): the lines
# read for *NitroHeap's memory at exit*, as "<label>  <MiB> MiB".
HEAP_REPORT_FIELDS = [
    ("allocated by program", "allocated"),
    ("committed", "committed"),
    ("thread caches", "thread_caches"),
    ("middle layer", "middle_layer"),
    ("free in slabs", "free_in_slabs"),
    ("free pages (cached)", "free_pages"),
    ("large quarantine", "large_quarantine"),
    ("span descriptors", "span_descriptors"),
    ("page map", "page_map"),
]
HEAP_REPORT_LINE_RE = re.compile(r"^\s*(%s)\s+(-?[0-9.]+) MiB" % "|".join(re.escape(f[0]) for f in HEAP_REPORT_FIELDS))


def parse_heap_reports(text):
    """Every heap report in `text` (one per process that printed one), as {field: MiB}."""
    names = dict(HEAP_REPORT_FIELDS)
    reports, cur = [], None
    for line in text.splitlines():
        if line.startswith("---- NitroHeap heap report"):
            cur = {}
            reports.append(cur)
            continue
        m = HEAP_REPORT_LINE_RE.match(line)
        if cur is not None and m:
            cur[names[m.group(1)]] = float(m.group(2))
    return [r for r in reports if "committed" in r]


# The profile of a gap: one `perf record` of each side after the rounds.
PERF_PERIOD_NS = 250000  # one cpu-clock sample per 0.25 ms of CPU time
GAP_PROFILE_ROWS = 8      # the slowest rows against their fastest peer, at most
PROFILE_WHERE = ["allocator", "kernel", "libc", "program"]
PROFILE_WHERE_TEXT = {
    "allocator": "the allocator's own library",
    "kernel": "the kernel (page faults, system calls)",
    "libc": "libc (for glibc: its malloc too)",
    "program": "the program and its other libraries",
}


def perf_profile(argv, lib, env, cwd, timeout, data, stdin_path=None):
    """CPU milliseconds by where the samples fell, and by symbol.

    Returns ({where: ms}, [(ms, where, symbol)], None) or (None, None, why).
    The command runs under `perf record -e cpu-clock` with a fixed period, so
    a sample is PERF_PERIOD_NS of CPU time of the command's tree.
    """
    cmd = ["perf", "record", "-e", "cpu-clock", "-c", str(PERF_PERIOD_NS), "-q", "-o", data, "--",
           "env"] + (["LD_PRELOAD=" + lib] if lib else []) + argv
    stdin = open(stdin_path) if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, stdin=stdin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout, text=True, errors="replace")
    except FileNotFoundError:
        return None, None, "perf not found (Debian: apt-get install linux-perf)"
    except subprocess.TimeoutExpired:
        return None, None, "perf record timed out after %d s" % timeout
    finally:
        if stdin_path:
            stdin.close()
    if p.returncode != 0:
        return None, None, "perf record exited %d: %s" % (p.returncode, p.stderr.strip()[-300:])
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                          "-F", "sample,dso,sym", "-q", "-t", "\t"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, errors="replace", timeout=timeout)
    if rep.returncode != 0:
        return None, None, "perf report exited %d: %s" % (rep.returncode, rep.stderr.strip()[-300:])
    # A peer's path may be a link (libmimalloc.so.2 -> libmimalloc.so.2.0): perf names the file.
    libnames = {os.path.basename(lib), os.path.basename(os.path.realpath(lib))} if lib else set()
    by_where = {w: 0.0 for w in PROFILE_WHERE}
    syms = []
    for line in rep.stdout.splitlines():
        f = [x.strip() for x in line.split("\t")]
        if len(f) < 3 or not f[0].isdigit():
            continue
        ms = int(f[0]) * PERF_PERIOD_NS / 1e6
        dso, sym = f[1], f[2]
        if dso.startswith("[kernel") or sym.startswith("[k]"):
            where = "kernel"
        elif os.path.basename(dso) in libnames:
            where = "allocator"
        elif os.path.basename(dso).startswith("libc.so"):
            where = "libc"
        else:
            where = "program"
        by_where[where] += ms
        syms.append((ms, where, re.sub(r"^\[[.k]\] ", "", sym)))
    if not syms:
        return None, None, "perf recorded no samples"
    syms.sort(key=lambda x: -x[0])
    return by_where, syms, None


def gap_section(pairs, profiles, minflt, heading="###"):
    """Markdown of the gap profiles: pairs are (title, (label, display, ...), (label, display, ...), ...)."""
    out = []
    for title, a, b, *_ in pairs:
        pa, pb = profiles.get(a[0] + "|" + title), profiles.get(b[0] + "|" + title)
        out.append("%s %s\n" % (heading, title))
        why = "no profile was taken" if pa is None or pb is None else next((p[2] for p in (pa, pb) if p[2]), None)
        if why:
            out.append("not profiled: %s\n" % why)
            continue
        rows = []
        for w in PROFILE_WHERE:
            x, y = pa[0][w], pb[0][w]
            rows.append((PROFILE_WHERE_TEXT[w], "%.0f" % x, "%.0f" % y, "%+.0f" % (x - y)))
        tx, ty = sum(pa[0].values()), sum(pb[0].values())
        rows.append(("**total CPU**", "**%.0f**" % tx, "**%.0f**" % ty, "**%+.0f**" % (tx - ty)))
        fa, fb = minflt.get(a[0] + "|" + title), minflt.get(b[0] + "|" + title)
        if fa is not None and fb is not None:
            rows.append(("minor page faults (median of the rounds)", "%d" % fa, "%d" % fb, "%+d" % (fa - fb)))
        out.append(md_table(["CPU ms, one perf run each", a[1], b[1], "difference"], rows,
                            ["l", "r", "r", "r"]))
        out.append("")
        for (label, prof) in ((a[1], pa), (b[1], pb)):
            parts = []
            for w in ("allocator", "kernel", "libc"):
                top = [t for t in prof[1] if t[1] == w and t[0] >= 1.0][:4]
                if top:
                    parts.append("%s: %s" % (w, ", ".join("`%s` %.0f" % (t[2], t[0]) for t in top)))
            out.append("- %s's largest symbols (ms): %s" % (label, "; ".join(parts) or "none of 1 ms or more"))
        out.append("")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the interleaved suite (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: 1 round, tiny workload sizes (timings meaningless)")
    ap.add_argument("--scale", type=float, default=None,
                    help="workload size factor (default 1, or %g with --quick)" % QUICK_SCALE)
    ap.add_argument("--no-build", action="store_true", help="do not run bazel build")
    ap.add_argument("--write", action="store_true", help="write the report to --out")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--workloads", default="", help="comma-separated subset of workloads")
    ap.add_argument("--allocators", default="",
                    help="comma-separated subset of glibc,jemalloc,tcmalloc,mimalloc,nitroheap and "
                    "the variants as nitroheap:NAME (given this, only the variants listed run)")
    ap.add_argument("--nitroheap-variants", default=DEFAULT_VARIANTS, metavar="NAME=OPTS;...",
                    help="NitroHeap under other NITROHEAP_OPTIONS, run after the default NitroHeap "
                    "in every round and compared with it, never with the peers; '' for none "
                    "(default: %(default)s)")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the callgrind fast-path count")
    ap.add_argument("--no-profile", action="store_true",
                    help="skip the profiles of the gaps (perf record of NitroHeap and the fastest peer "
                    "on the slowest rows, strict against the default) and the start-up RSS runs")
    ap.add_argument("--suites", default=None, metavar="NAME,...",
                    help="external suites after the workloads (testing/bench/suites.py): "
                         "mimalloc-bench, redis, scaling; default all three, none with --quick; a suite "
                         "whose programs are missing says so, its targets count as not measured")
    ap.add_argument("--suite-rounds", type=int, default=None, metavar="N",
                    help="rounds of the external suites (default: --rounds); mimalloc-bench takes "
                         "about 12 minutes a round on 2 cores")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds per run (default 300: strict mode's realloc run takes ~100 s; quick 60)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    # Where the built pieces are (defaults: the bazel-bin outputs of this tree).
    ap.add_argument("--workloads-bin", default=os.path.join(ROOT, "bazel-bin/testing/bench/workloads"))
    ap.add_argument("--spawn-bin", default=os.path.join(ROOT, "bazel-bin/testing/bench/spawn_rusage"))
    ap.add_argument("--fastpath-bin", default=os.path.join(ROOT, "bazel-bin/testing/bench/fastpath_pairs"))
    ap.add_argument("--nitroheap-so", default=os.path.join(ROOT, DEFAULT_SO))
    ap.add_argument("--py-workload", default=os.path.join(ROOT, "testing/bench/py_workload.py"))
    ap.add_argument("--gcc-input", default=os.path.join(ROOT, "testing/bench/gcc_input.cc"))
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1
    if args.rounds < 1 or (args.suite_rounds is not None and args.suite_rounds < 1):
        log("run_bench: --rounds and --suite-rounds must be at least 1")
        return 2
    suites = args.suites if args.suites is not None else ("" if args.quick else "mimalloc-bench,redis,scaling")
    suite_names = [x for x in suites.split(",") if x]
    if suite_names:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import suites as external  # testing/bench/suites.py
        unknown = [x for x in suite_names if x not in external.SUITES]
        if unknown:
            log("run_bench: unknown suites: %s (known: %s)" % (",".join(unknown), ",".join(external.SUITES)))
            return 2
    scale = args.scale if args.scale is not None else (QUICK_SCALE if args.quick else 1.0)
    timeout = args.timeout or (60 if args.quick else 300)
    command = shlex.join(["/usr/bin/python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)]
                         + sys.argv[1:])
    if os.environ.get("NITRO_BENCH_VIA"):
        command = "%s  (which ran: %s)" % (os.environ["NITRO_BENCH_VIA"].strip(), command)
    t_start = time.time()

    if not args.no_build:
        targets = ["//abi:libnitroheap.so", "//testing/bench:workloads", "//testing/bench:spawn_rusage",
                   "//testing/bench:fastpath_pairs"]
        log("== bazel build " + " ".join(targets))
        if subprocess.run(["bazel", "build"] + targets, cwd=ROOT).returncode != 0:
            log("run_bench: bazel build failed")
            return 2

    # Private copies: a rebuild in the shared bazel-bin during the run must
    # not change what is measured.
    stage = tempfile.mkdtemp(prefix="nitro_bench_")
    atexit.register(shutil.rmtree, stage, True)
    workdir = os.path.join(stage, "work")
    os.mkdir(workdir)
    paths = {}
    for key, src in [("workloads", args.workloads_bin), ("spawn", args.spawn_bin),
                     ("fastpath_pairs", args.fastpath_bin),
                     ("nitroheap_so", args.nitroheap_so), ("py_workload", args.py_workload),
                     ("gcc_input", args.gcc_input)]:
        if not os.path.exists(src):
            if key == "fastpath_pairs":
                paths[key] = None
                continue
            log("run_bench: missing %s: %s" % (key, src))
            return 2
        paths[key] = os.path.join(stage, os.path.basename(src))
        shutil.copy2(src, paths[key])
        UNSTAGE[paths[key]] = os.path.abspath(src)

    allocators = [(name, lib) for name, lib in PEERS] + [(NITRO, paths["nitroheap_so"])]
    try:
        variants = parse_variants(args.nitroheap_variants)
    except ValueError as e:
        log("run_bench: --nitroheap-variants: %s" % e)
        return 2
    if args.allocators:
        keep = set(a for a in args.allocators.split(",") if a)
        unknown = keep - {a[0] for a in allocators} - {v.label for v in variants}
        if unknown:
            log("run_bench: unknown allocators: %s (variants are nitroheap:NAME)" % ",".join(sorted(unknown)))
            return 2
        allocators = [a for a in allocators if a[0] in keep]
        variants = [v for v in variants if v.label in keep]
    missing = [name for name, lib in allocators if lib and not os.path.exists(lib)]
    for name in missing:
        log("run_bench: %s not found, skipped" % name)
    allocators = [a for a in allocators if a[0] not in missing]
    names = [a[0] for a in allocators]
    peers = [n for n in names if n != NITRO]
    if variants and NITRO not in names:
        log("run_bench: variants skipped: they are measured against the default NitroHeap, which "
            "does not run")
        variants = []

    suite = workloads(paths, args.quick) + [MEMRETURN]
    if args.workloads:
        keep = set(args.workloads.split(","))
        unknown = keep - {w.name for w in suite}
        if unknown:
            log("run_bench: unknown workloads: %s" % ",".join(sorted(unknown)))
            return 2
        suite = [w for w in suite if w.name in keep]

    base_env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LC_ALL": "C", "TZ": "UTC",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    machine = machine_info()
    log("== %d round(s) x %d workloads x %d allocators%s (scale %g) on %s, %s cores, load %s"
        % (args.rounds, len(suite), len(allocators),
           " + %d NitroHeap variant(s)" % len(variants) if variants else "", scale, machine["cpu"],
           machine["nproc"], machine["load"]))

    # A variant whose options NitroHeap rejects would silently measure the
    # defaults: try each one on a tiny run before spending the rounds.
    for v in variants:
        probe = run_one(Workload("probe", "", mode_argv(paths, "fastpath")), v.label,
                        paths["nitroheap_so"], paths, 0.001, workdir, 60, base_env, v.opts)
        if probe.error:
            log("run_bench: variant %s (NITROHEAP_OPTIONS=%s) does not work: %s\n  reproduce: %s%s"
                % (v.name, v.opts, probe.error, probe.repro,
                   ("\n  stderr: " + probe.stderr.strip()[-400:]) if probe.stderr.strip() else ""))
            return 2
    if variants:
        log("== NitroHeap variants (after nitroheap, not on memreturn): %s"
            % "; ".join("%s: NITROHEAP_OPTIONS=%s" % (v.name, v.opts) for v in variants))
    # Every run of a round, in order: the allocators, then the variants.
    runs = [(alloc, lib, None) for alloc, lib in allocators]
    runs += [(v.label, paths["nitroheap_so"], v.opts) for v in variants]

    results = {w.name: {a[0]: [] for a in runs if w is not MEMRETURN or a[2] is None} for w in suite}
    for rnd in range(args.rounds):
        for wl in suite:
            cells = []
            for alloc, lib, opts in runs:
                if alloc not in results[wl.name]:
                    continue  # variants skip memreturn
                r = run_one(wl, alloc, lib, paths, scale, workdir, timeout, base_env, opts)
                results[wl.name][alloc].append(r)
                cells.append("%s %.2fs %.0fM%s" % (alloc, r.wall, r.maxrss_kib / 1024,
                                                   " FAIL(%s)" % r.error if r.error else ""))
            log("round %d/%d %-13s %s" % (rnd + 1, args.rounds, wl.name, "  ".join(cells)))
    t_suite = time.time() - t_start

    callgrind = None
    if not args.no_callgrind and paths.get("fastpath_pairs"):
        log("== callgrind fast path")
        callgrind = run_callgrind(paths, args.quick, 600)
        # The same pair through a partition and the jemalloc-style API, and
        # the other entry points programs use on hot paths (every allocator).
        for api in ("partition", "partition-trait", "mallocx", "mallocx-trait", "usable", "aligned",
                    "sized-delete", "aligned-new"):
            extra = run_callgrind(paths, args.quick, 600, api)
            if callgrind[0] is not None and extra[0] is not None:
                callgrind[0].extend(extra[0])

    # External suites, whose targets join the table of target checks.
    suite_lines, suite_failures, suite_checks = [], [], []
    if suite_names:
        log("run_bench: external suites: %s" % ",".join(suite_names))
        def profile_program(title, argv, stdin_path, a, b):
            """Gap-profile lines of one suite program: a and b are (label, display, lib)."""
            if args.no_profile:
                return []
            log("== profile: " + title)
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            got = {x[0] + "|" + title: perf_profile(argv, x[2], env, workdir, timeout,
                                                     os.path.join(stage, "perf.data"), stdin_path)
                   for x in (a, b)}
            return gap_section([(title, a, b)], got, {}, heading="####")

        suite_lines, suite_failures, suite_checks = external.run_suites(
            suite_names, paths["nitroheap_so"], paths["spawn"], args.suite_rounds or args.rounds,
            args.quick, workloads=paths["workloads"],
            limits={"time_geomean": TIME_GEOMEAN_MAX, "time_row": TIME_WORKLOAD_MAX,
                    "mem_geomean": MEM_GEOMEAN_MAX}, profiler=profile_program)

    # ---- analysis
    failures = list(suite_failures)
    for wl in suite:
        sums = {}
        for alloc in results[wl.name]:  # the allocators and the variants
            for r in results[wl.name][alloc]:
                if r.error:
                    failures.append("%s under %s: %s\n  reproduce: %s%s" % (
                        wl.name, alloc, r.error, r.repro,
                        ("\n  stderr: " + r.stderr.strip()[-400:]) if r.stderr.strip() else ""))
                elif r.checksum and wl is not MEMRETURN:
                    sums.setdefault(r.checksum, []).append(alloc)
        if len(sums) > 1:
            ref = next((c for c, al in sums.items() if "glibc" in al), None)
            for c, al in sums.items():
                if c != ref:
                    failures.append("%s: output checksum %s under %s differs from %s" % (
                        wl.name, c, ",".join(sorted(set(al))),
                        "glibc's %s" % ref if ref else "the other runs"))

    def med(wl, alloc, attr):
        vals = [getattr(r, attr) for r in results[wl][alloc] if not r.error]
        return statistics.median(vals) if vals else None

    timed = [w for w in suite if w is not MEMRETURN]
    table = {}
    for wl in timed:
        row = {}
        for alloc in names:
            row[alloc] = (med(wl.name, alloc, "wall"), med(wl.name, alloc, "cpu"),
                          med(wl.name, alloc, "maxrss_kib"))
        table[wl.name] = row

    def best_peer(wname, idx):
        vals = [(table[wname][p][idx], p) for p in peers if table[wname][p][idx] is not None]
        return min(vals) if vals else (None, None)

    ratios = {}
    for wl in timed:
        t_best, t_peer = best_peer(wl.name, 0)
        c_best, c_peer = best_peer(wl.name, 1)
        m_best, m_peer = best_peer(wl.name, 2)
        n = table[wl.name].get(NITRO)
        if n and None not in n and t_best and m_best:
            ratios[wl.name] = (n[0] / t_best, t_peer, n[1] / c_best, c_peer, n[2] / m_best, m_peer)
    time_gm = geomean([r[0] for r in ratios.values()])
    cpu_gm = geomean([r[2] for r in ratios.values()])
    mem_gm = geomean([r[4] for r in ratios.values()])
    # Each allocator's geomean against the best of all five, for context.
    all_gm = {}
    for alloc in names:
        tr, mr = [], []
        for wl in timed:
            row = table[wl.name]
            ts = [row[a][0] for a in names if row[a][0] is not None]
            ms = [row[a][2] for a in names if row[a][2] is not None]
            if row[alloc][0] is not None and ts:
                tr.append(row[alloc][0] / min(ts))
                mr.append(row[alloc][2] / min(ms))
        all_gm[alloc] = (geomean(tr), geomean(mr))

    checks = []
    if NITRO in names and peers and ratios:
        checks.append(("time geomean (NitroHeap / fastest peer) <= %.2f" % TIME_GEOMEAN_MAX,
                       time_gm <= TIME_GEOMEAN_MAX, "%.3f" % time_gm))
        worst = max(ratios.items(), key=lambda kv: kv[1][0])
        over = ["%s %.2f (vs %s)" % (k, v[0], v[1]) for k, v in ratios.items() if v[0] > TIME_WORKLOAD_MAX]
        checks.append(("no workload time ratio above %.2f" % TIME_WORKLOAD_MAX, not over,
                       "over: " + ", ".join(over) if over else "worst: %s %.2f" % (worst[0], worst[1][0])))
        checks.append(("memory geomean (NitroHeap peak RSS / leanest peer) <= %.2f" % MEM_GEOMEAN_MAX,
                       mem_gm <= MEM_GEOMEAN_MAX, "%.3f" % mem_gm))
    mr_rows = []
    if MEMRETURN in suite:
        for alloc in names:
            ok = [r.extra for r in results["memreturn"][alloc] if not r.error and r.extra]
            if not ok:
                mr_rows.append((alloc, None))
                continue
            agg = {}
            for k in ("before", "peak", "after_free", "after_1s"):
                agg[k] = statistics.median(e[k] for e in ok)
            trims = [e["after_trim"] for e in ok if e["after_trim"] is not None]
            agg["after_trim"] = statistics.median(trims) if trims else None
            mr_rows.append((alloc, agg))
        nitro_mr = dict(mr_rows).get(NITRO)
        if nitro_mr:
            b = nitro_mr["before"]
            checks.append(("memory return: RSS 1 s after the free <= %.2f x pre-allocation RSS" % RETURN_MAX,
                           nitro_mr["after_1s"] <= RETURN_MAX * b,
                           "%.1f MiB vs %.1f MiB before (x%.2f)" % (nitro_mr["after_1s"] / 1024, b / 1024,
                                                                    nitro_mr["after_1s"] / b)))
            if nitro_mr["after_trim"] is None:
                checks.append(("memory return: RSS after malloc_trim(0) <= %.2f x pre-allocation RSS"
                               % RETURN_MAX, False, "malloc_trim not found in NitroHeap"))
            else:
                checks.append(("memory return: RSS after malloc_trim(0) <= %.2f x pre-allocation RSS"
                               % RETURN_MAX, nitro_mr["after_trim"] <= RETURN_MAX * b,
                               "%.1f MiB vs %.1f MiB before (x%.2f)" % (
                                   nitro_mr["after_trim"] / 1024, b / 1024, nitro_mr["after_trim"] / b)))

    # Variants against the default NitroHeap: medians of wall time and peak RSS.
    vrows = {}   # workload -> {label: (wall, rss)} for the default and each variant
    vratios = {v.label: ([], []) for v in variants}  # wall ratios, RSS ratios over the workloads
    if variants:
        for wl in timed:
            row = {lab: (med(wl.name, lab, "wall"), med(wl.name, lab, "maxrss_kib"))
                   for lab in [NITRO] + [v.label for v in variants]}
            vrows[wl.name] = row
            d = row[NITRO]
            for v in variants:
                x = row[v.label]
                if d[0] and x[0]:
                    vratios[v.label][0].append(x[0] / d[0])
                if d[1] and x[1]:
                    vratios[v.label][1].append(x[1] / d[1])

    # The modes against the default and the fast path's instruction count
    # (issue 13: strict within 2x of the default's time, fast measurably
    # faster, NitroHeap's malloc+free pair the cheapest of all).
    by_opts = {v.opts: v.label for v in variants}
    if "mode=strict" in by_opts and vratios[by_opts["mode=strict"]][0]:
        gm = geomean(vratios[by_opts["mode=strict"]][0])
        checks.append(("strict's wall time <= %.1f x the default's (geomean)" % STRICT_MAX, gm <= STRICT_MAX,
                       "%.3f" % gm))
    if "mode=fast" in by_opts and vratios[by_opts["mode=fast"]][0]:
        gm = geomean(vratios[by_opts["mode=fast"]][0])
        checks.append(("fast's wall time < the default's (geomean)", gm < 1.0, "%.3f" % gm))
    if callgrind is not None and callgrind[0] is not None:
        pairs = {r[0]: float(r[1]) for r in callgrind[0] if "(" not in r[0]}
        if NITRO in pairs and len(pairs) > 1:
            best_peer_name = min((a for a in pairs if a != NITRO), key=lambda a: pairs[a])
            checks.append(("instructions per malloc+free pair: NitroHeap's the lowest",
                           pairs[NITRO] <= pairs[best_peer_name],
                           "%.1f vs %s %.1f" % (pairs[NITRO], best_peer_name, pairs[best_peer_name])))

    checks += suite_checks

    # ---- where the gaps are: which targets are missed, and why
    # The start-up's peak RSS (a workload that does one operation) is the part
    # of every row's RSS that does not depend on the workload.
    startup = {}
    if not args.no_profile and ratios:
        su = Workload("start-up", "", lambda sc, wd: [paths["workloads"], "fastpath", "--scale=0.000001"])
        for alloc, lib in allocators:
            rs = [run_one(su, alloc, lib, paths, scale, workdir, timeout, base_env) for _ in range(3)]
            ok = [r.maxrss_kib for r in rs if not r.error]
            startup[alloc] = statistics.median(ok) if ok else None
            failures += ["start-up under %s: %s\n  reproduce: %s" % (alloc, r.error, r.repro)
                         for r in rs if r.error]
    # Where NitroHeap's memory sits on the rows over the memory limit: one more
    # run of each with its heap report at exit (stats_print=1), once the
    # program has freed what it frees. What the report shows as held in the
    # caches, the middle layer, free slab slots and free pages is memory the
    # program no longer uses that NitroHeap kept.
    held_at_exit = {}  # workload -> {field: MiB} of the largest report (g++: one per process)
    if not args.no_profile and ratios and NITRO in names:
        for wl in timed:
            rt = ratios.get(wl.name)
            if not rt or rt[4] <= MEM_GEOMEAN_MAX:
                continue
            r = run_one(wl, NITRO, paths["nitroheap_so"], paths, scale, workdir, timeout, base_env,
                        "stats_print=1")
            if r.error:
                failures.append("%s under NitroHeap with stats_print=1: %s\n  reproduce: %s"
                                % (wl.name, r.error, r.repro))
                continue
            reports = parse_heap_reports(r.stderr)
            if reports:
                held_at_exit[wl.name] = max(reports, key=lambda x: x.get("committed", 0.0))
    lib_of = dict(allocators)
    gap_pairs = []  # (title, (label, display, lib, opts), (label, display, lib, opts), workload)
    if not args.no_profile and ratios:
        slow = sorted((kv for kv in ratios.items() if kv[1][0] > TIME_GEOMEAN_MAX), key=lambda kv: -kv[1][0])
        for name, rt in slow[:GAP_PROFILE_ROWS]:
            wl = next(w for w in timed if w.name == name)
            gap_pairs.append(("%s: NitroHeap %.3f s, %s %.3f s (x%.2f)" % (
                name, table[name][NITRO][0], rt[1], table[name][rt[1]][0], rt[0]),
                (NITRO, "NitroHeap", paths["nitroheap_so"], None),
                (rt[1], rt[1], lib_of[rt[1]], None), wl))
        strict_label = {v.opts: v.label for v in variants}.get("mode=strict")
        if strict_label and vratios[strict_label][0] and geomean(vratios[strict_label][0]) > STRICT_MAX:
            worst = max((w for w in timed if vrows[w.name][strict_label][0] and vrows[w.name][NITRO][0]),
                        key=lambda w: vrows[w.name][strict_label][0] / vrows[w.name][NITRO][0])
            d, x = vrows[worst.name][NITRO][0], vrows[worst.name][strict_label][0]
            gap_pairs.append(("%s: strict %.3f s, default %.3f s (x%.2f, strict's worst row)" % (
                worst.name, x, d, x / d), (strict_label, "strict", paths["nitroheap_so"], "mode=strict"),
                (NITRO, "default", paths["nitroheap_so"], None), worst))
    profiles, gap_minflt = {}, {}
    for title, a, b, wl in gap_pairs:
        log("== profile: " + title)
        for label, _, lib, opts in (a, b):
            env = dict(base_env)
            env.update(wl.env)
            if opts:
                env["NITROHEAP_OPTIONS"] = opts
            key = label + "|" + title
            profiles[key] = perf_profile(wl.argv(scale, workdir), lib, env, workdir, timeout,
                                         os.path.join(stage, "perf.data"))
            flts = [r.minflt for r in results[wl.name][label] if not r.error and r.minflt is not None]
            gap_minflt[key] = statistics.median(flts) if flts else None

    # ---- report
    out = []
    out.append("# NitroHeap benchmarks\n")
    out.append("Generated by `testing/bench/run_bench.py` (see `testing/bench/README.md` for the "
               "workloads). NitroHeap against glibc's malloc, jemalloc, tcmalloc and mimalloc, each "
               "loaded by `LD_PRELOAD` into the same unmodified programs (glibc: nothing preloaded), "
               "run interleaved (every allocator once per workload per round), medians over the "
               "rounds. Ratios are NitroHeap's value divided by the best *peer's* (fastest wall "
               "time, smallest peak RSS); below 1 NitroHeap is better.%s%s\n"
               % (" NitroHeap also ran under %d other option set(s) in the same rounds; those are "
                  "not peers and appear only in *Cost of NitroHeap's modes and telemetry*."
                  % len(variants) if variants else "",
                  " **Quick mode: tiny sizes, one round; the numbers mean nothing.**" if args.quick
                  else ""))
    out.append("## Setup\n")
    v = versions(args.nitroheap_so)
    info = [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", "`%s`" % command),
        ("rounds", "%d (scale %g); suite wall time %.0f s" % (args.rounds, scale, t_suite)),
        ("machine", "%s cores (nproc), %s, %s RAM, Linux %s" % (machine["nproc"], machine["cpu"],
                                                               machine["mem"], machine["kernel"])),
        ("load average at start / end", "%s / %s" % (machine["load"],
                                                     " ".join("%.2f" % x for x in os.getloadavg()))),
        ("glibc", "%s (Debian libc6 %s)" % (v["glibc"], v["libc6"])),
        ("jemalloc", "Debian libjemalloc2 %s, `%s`" % (v["libjemalloc2"], PEERS[1][1])),
        ("tcmalloc", "Debian libgoogle-perftools4 %s, `%s`" % (v["libgoogle-perftools4"], PEERS[2][1])),
        ("mimalloc", "Debian libmimalloc2.0 %s, `%s`" % (v["libmimalloc2.0"], PEERS[3][1])),
        ("NitroHeap", ("git %s, `%s`" % (v["nitroheap"], display_path(args.nitroheap_so))
                       if os.path.abspath(args.nitroheap_so) == os.path.join(ROOT, DEFAULT_SO) else
                       "`%s` given by --nitroheap-so (this tree is at git %s)"
                       % (args.nitroheap_so, v["nitroheap"]))
         + " (sha256 %s), default options" % v.get("nitroheap_so", "?")),
    ]
    if variants:
        info.append(("NitroHeap variants", "the same library with "
                     + "; ".join("%s: `NITROHEAP_OPTIONS=%s`" % (x.name, x.opts) for x in variants)
                     + " (each workload but memreturn)"))
    info += [
        ("compiler / python", "%s; %s" % (v["g++"], v["python3"])),
    ]
    out.append(md_table(["", ""], info, ["l", "l"]))
    out.append("")
    out.append("Wall time is what the table ranks; CPU time is user + sys of the whole process tree; "
               "peak RSS is `ru_maxrss` from `wait4` in the launcher `spawn_rusage` (for g++, the "
               "largest process of its tree). "
               "The machine has %s cores: multi-threaded workloads are partly a test of behaviour "
               "under contention.\n" % machine["nproc"])

    out.append("## Target checks (NitroHeap)\n")
    if checks:
        out.append(md_table(["target", "result", "measured"],
                            [(c, "PASS" if ok else "not measured" if ok is None else "**FAIL**", m)
                             for c, ok, m in checks], ["l", "l", "l"]))
        if gap_pairs or startup:
            out.append("\nWhere the time and memory of the missed targets go: *Where the gaps are*, below.")
    else:
        out.append("(not checked: NitroHeap or every peer missing from this run)")
    out.append("")
    if failures:
        out.append("## Failed runs and wrong outputs\n")
        out.append("```")
        out.extend(failures)
        out.append("```\n")

    def cell(x, fmt):
        return fmt % x if x is not None else "FAIL"

    def spread(wname, allocs=None):
        """Largest (max - min) / median of wall time over the rounds, any allocator."""
        worst = 0.0
        for alloc in allocs or names:
            vals = [r.wall for r in results[wname][alloc] if not r.error]
            if len(vals) > 1 and statistics.median(vals) > 0:
                worst = max(worst, (max(vals) - min(vals)) / statistics.median(vals))
        return "%.0f%%" % (100 * worst) if args.rounds > 1 else "-"

    out.append("## Wall time (s, median)\n")
    out.append("*spread*: the largest (max - min) / median of one allocator's wall time over the "
               "rounds, a gauge of the noise.\n")
    hdr = ["workload"] + names + (["NitroHeap / fastest peer"] if ratios else []) + ["spread"]
    rows = []
    for wl in timed:
        row = [wl.name] + [cell(table[wl.name][a][0], "%.3f") for a in names]
        if ratios:
            rt = ratios.get(wl.name)
            row.append("%s (%s)" % (fmt_ratio(rt[0], TIME_WORKLOAD_MAX), rt[1]) if rt else "n/a")
        row.append(spread(wl.name))
        rows.append(row)
    if ratios:
        rows.append(["**geomean**"] + [""] * len(names) + ["**%.3f**" % time_gm, ""])
    out.append(md_table(hdr, rows))
    out.append("")
    out.append("## CPU time, user + sys (s, median)\n")
    hdr = ["workload"] + names + (["NitroHeap / lowest peer"] if ratios else [])
    rows = []
    for wl in timed:
        row = [wl.name] + [cell(table[wl.name][a][1], "%.3f") for a in names]
        if ratios:
            rt = ratios.get(wl.name)
            row.append("%s (%s)" % (fmt_ratio(rt[2]), rt[3]) if rt else "n/a")
        rows.append(row)
    if ratios:
        rows.append(["**geomean**"] + [""] * len(names) + ["**%.3f**" % cpu_gm])
    out.append(md_table(hdr, rows))
    out.append("")
    out.append("## Peak RSS (MiB, median of ru_maxrss)\n")
    hdr = ["workload"] + names + (["NitroHeap / leanest peer"] if ratios else [])
    rows = []
    for wl in timed:
        row = [wl.name] + [cell(table[wl.name][a][2] / 1024 if table[wl.name][a][2] else None, "%.1f")
                           for a in names]
        if ratios:
            rt = ratios.get(wl.name)
            row.append("%s (%s)" % (fmt_ratio(rt[4]), rt[5]) if rt else "n/a")
        rows.append(row)
    if ratios:
        rows.append(["**geomean**"] + [""] * len(names) + ["**%.3f**" % mem_gm])
    if startup and all(startup.get(a) for a in names):
        lean = min((startup[p], p) for p in peers) if peers else (None, None)
        rows.append(["*start-up* (not in the geomean)"] + ["%.1f" % (startup[a] / 1024) for a in names]
                    + (["%s (%s)" % (fmt_ratio(startup[NITRO] / lean[0]), lean[1])]
                       if ratios and NITRO in startup and lean[0] else []))
    out.append(md_table(hdr, rows))
    out.append("")
    if startup:
        out.append("*start-up*: `workloads fastpath --scale=0.000001` (its minimum, 1,000 malloc/free "
                   "pairs), median of 3 runs after the rounds: the part of every row that does not "
                   "depend on the workload "
                   "(the allocator's code and data pages, its first metadata).\n")
    out.append("## Every allocator against the best of all in this run (geomean over the workloads above)\n")
    out.append(md_table(["allocator", "wall time", "peak RSS"],
                        [(a, "%.3f" % all_gm[a][0], "%.3f" % all_gm[a][1]) for a in names]))
    out.append("")
    if mr_rows:
        out.append("## Memory return (RSS in MiB, median)\n")
        out.append("`workloads memreturn`: 512 MiB in 64 B..4 KiB objects and 512 MiB in 1 MiB blocks "
                   "(scaled by %g), touched, all freed, then idle. *before* is after a warm-up malloc/"
                   "free (the allocator's start-up counts as the baseline) and a run of the loop's own "
                   "code on memory that is not the heap's (libm's tables, memset, the `dlsym` lookups), "
                   "so that the program's code pages are not counted as growth; *after 1 s* is with no call "
                   "at all after the frees; *after trim* calls `malloc_trim(0)` found by `dlsym` when "
                   "it is the allocator's own (n/a: the allocator does not export one). Target: "
                   "NitroHeap within %d%% of *before* after 1 s and after trim.\n"
                   % (min(scale, 1.0), round((RETURN_MAX - 1) * 100)))
        rows = []
        for alloc, agg in mr_rows:
            if agg is None:
                rows.append([alloc] + ["FAIL"] * 6)
                continue
            mib = lambda k: "%.1f" % (agg[k] / 1024)
            trim = "%.1f" % (agg["after_trim"] / 1024) if agg["after_trim"] is not None else "n/a"
            rows.append([alloc, mib("before"), mib("peak"), mib("after_free"), mib("after_1s"), trim,
                         "%.2f" % (agg["after_1s"] / agg["before"])])
        out.append(md_table(["allocator", "before", "peak", "right after free", "after 1 s",
                             "after malloc_trim(0)", "after 1 s / before"], rows))
        out.append("")
    if variants and timed:
        gm3 = lambda xs: "%.3f" % geomean(xs) if xs else "n/a"
        out.append("## Cost of NitroHeap's modes and telemetry\n")
        out.append("The same NitroHeap library run with `NITROHEAP_OPTIONS` set, in the same "
                   "interleaved rounds, right after the default NitroHeap run of each workload (the "
                   "memory-return workload runs with the defaults only). These variants are not "
                   "peers: the ratios and targets above are the default's alone. *default* is "
                   "NitroHeap with `NITROHEAP_OPTIONS` unset: balanced mode (misuse detection, a "
                   "64 KiB small-object quarantine per thread), live statistics published in shared "
                   "memory, flight-recorder sampling (one allocation per 512 KiB allocated, on "
                   "average) and guarded sampling (one allocation in 100000). What each variant "
                   "changes:\n")
        for x in variants:
            out.append("- **%s** (`%s`): %s." % (x.name, x.opts, x.effect()))
        out.append("")
        out.append("The always-on statistics counters cannot be switched off, so no variant "
                   "measures them; their cost is in the fast path's instruction count, measured by "
                   "callgrind (`testing/bench/callgrind_fastpath.sh`%s). A ratio above 1 means the "
                   "variant is slower or larger than the default.\n"
                   % (", below" if callgrind is not None else ""))
        rows = []
        for x in variants:
            tr, mr = vratios[x.label]
            rows.append((x.name, "`%s`" % x.opts, gm3(tr), gm3(mr), "%d" % min(len(tr), len(mr))))
        out.append(md_table(["variant", "NITROHEAP_OPTIONS", "wall time / default (geomean)",
                             "peak RSS / default (geomean)", "workloads"], rows,
                            ["l", "l", "r", "r", "r"]))
        out.append("")
        out.append("Per workload (medians; the ratios are the variant's median over the default's; "
                   "*spread*: (max - min) / median of that row's wall time over the rounds):\n")
        rows = []
        for wl in timed:
            row = vrows[wl.name]
            d = row[NITRO]
            rows.append([wl.name, "default", cell(d[0], "%.3f"), "",
                         cell(d[1] / 1024 if d[1] else None, "%.1f"), "", spread(wl.name, [NITRO])])
            for x in variants:
                t, m = row[x.label]
                rows.append(["", x.name, cell(t, "%.3f"),
                             fmt_ratio(t / d[0]) if t and d[0] else "n/a",
                             cell(m / 1024 if m else None, "%.1f"),
                             fmt_ratio(m / d[1]) if m and d[1] else "n/a", spread(wl.name, [x.label])])
        for x in variants:
            tr, mr = vratios[x.label]
            rows.append(["**geomean**", x.name, "", "**%s**" % gm3(tr), "", "**%s**" % gm3(mr), ""])
        out.append(md_table(["workload", "NitroHeap", "wall time (s)", "/ default", "peak RSS (MiB)",
                             "/ default", "spread"], rows, ["l", "l", "r", "r", "r", "r", "r"]))
        out.append("")
    if callgrind is not None:
        out.append("## Fast path instruction count (callgrind)\n")
        rows_cg, raw = callgrind
        if rows_cg is None:
            out.append("not measured: %s\n" % raw)
        else:
            out.append("`testing/bench/callgrind_fastpath.sh`: instructions per malloc(64)+free pair, "
                       "(I(2N) - I(N)) / N under `valgrind --tool=callgrind`, start-up cancelled, "
                       "including about 12 instructions of the loop itself (two calls through the "
                       "PLT, a store, a load, the counter); each run checks that malloc came from "
                       "the preloaded library. Rows with an API name the pair loop: "
                       "`partition` is nitro_partition_malloc/free in a partition of its own, `partition-trait` "
                       "the same in nitro_partition_for_traits(NITRO_TRAIT_LOW_LATENCY), "
                       "`mallocx` mallocx/dallocx with flags 0, `mallocx-trait` with "
                       "NITRO_TRAIT_LOW_LATENCY; under every allocator, `usable` adds a "
                       "malloc_usable_size call to the pair (redis makes one per allocation and per free), "
                       "`aligned` is aligned_alloc(64)/free, `sized-delete` operator new and the sized "
                       "operator delete, `aligned-new` operator new(std::align_val_t(32)) and the sized "
                       "aligned delete.\n")
            staged = {paths["nitroheap_so"]: args.nitroheap_so}
            out.append(md_table(["allocator", "instructions / pair", "N", "malloc from"],
                                [(r[0], r[1], r[2], "`%s`" % display_path(staged.get(r[3], r[3])))
                                 for r in rows_cg], ["l", "r", "r", "l"]))
            out.append("")
    if gap_pairs or (startup and ratios):
        out.append("## Where the gaps are\n")
        out.append("Why the targets above are missed, measured after the rounds. Time: for the rows "
                   "where NitroHeap is slower than the fastest peer (the %d slowest at most), and for "
                   "strict's slowest row against the default, one `perf record -e cpu-clock` run of "
                   "each side (a sample per %.2f ms of CPU time of the whole process tree), the CPU "
                   "time split by where the samples fell, and the minor page faults of the rounds "
                   "(`ru_minflt`). CPU time is not wall time: in the threaded rows the two differ, and "
                   "one run of each is as noisy as one round.\n" % (GAP_PROFILE_ROWS, PERF_PERIOD_NS / 1e6))
        out.extend(gap_section(gap_pairs, profiles, gap_minflt))
        if startup and ratios and startup.get(NITRO):
            rows = []
            for wl in timed:
                rt = ratios.get(wl.name)
                if not rt or rt[4] <= MEM_GEOMEAN_MAX or not startup.get(rt[5]):
                    continue
                n, p = table[wl.name][NITRO][2], table[wl.name][rt[5]][2]  # peak RSS, KiB
                n0, p0 = startup[NITRO], startup[rt[5]]
                # Below 256 KiB the peer's part is page-level noise, and a ratio to it means nothing.
                above = "%.2f" % ((n - n0) / (p - p0)) if p - p0 >= 256 and n > n0 else "n/a"
                rows.append((wl.name, rt[5], "%.1f" % (n / 1024), "%.1f" % (p / 1024), "%.2f" % rt[4],
                             "%.1f" % ((n - n0) / 1024), "%.1f" % ((p - p0) / 1024), above))
            if rows:
                out.append("### Peak RSS above the start-up's\n")
                out.append("The rows whose peak RSS is over %.2f x the leanest peer's, with each side's "
                           "*start-up* (%.1f MiB for NitroHeap) taken off: what is left is what the "
                           "workload's heap costs under each.\n" % (MEM_GEOMEAN_MAX, startup[NITRO] / 1024))
                out.append(md_table(["workload", "leanest peer", "NitroHeap (MiB)", "peer (MiB)", "ratio",
                                     "NitroHeap above start-up", "peer above start-up", "ratio above start-up"],
                                    rows, ["l", "l", "r", "r", "r", "r", "r", "r"]))
                out.append("")
        if held_at_exit:
            out.append("### NitroHeap's memory at exit on the rows over the memory limit\n")
            out.append("One more run of each row whose peak RSS is over %.2f x the leanest peer's, with "
                       "`NITROHEAP_OPTIONS=stats_print=1`: NitroHeap's heap report at exit (for g++, the "
                       "process whose report shows the most committed), after the program freed what it "
                       "frees, in MiB. *kept*: committed memory the program no longer holds (thread "
                       "caches, middle layer, free slots in slabs, free pages not yet returned, the large "
                       "quarantine), which NitroHeap keeps for reuse. Committed is not resident: pages "
                       "never touched count here and not in RSS. The report is taken at exit, not at the "
                       "peak: it shows where kept memory sits, not how much of the peak it was.\n"
                       % MEM_GEOMEAN_MAX)
            hrows = []
            for wname, h in held_at_exit.items():
                kept = sum(h.get(k, 0.0) for k in ("thread_caches", "middle_layer", "free_in_slabs",
                                                    "free_pages", "large_quarantine"))
                hrows.append([wname, "%.1f" % (table[wname][NITRO][2] / 1024)] +
                             ["%.2f" % h[k] if k in h else "?" for k in
                              ("allocated", "committed", "thread_caches", "middle_layer", "free_in_slabs",
                               "free_pages", "large_quarantine")] +
                             ["%.2f" % kept,
                              "%.2f" % (h.get("span_descriptors", 0.0) + h.get("page_map", 0.0))])
            out.append(md_table(["workload", "peak RSS", "allocated", "committed", "thread caches",
                                 "middle layer", "free in slabs", "free pages", "large quarantine", "kept",
                                 "span descriptors + page map"], hrows,
                                ["l"] + ["r"] * 10))
            out.append("")
    out += suite_lines
    out.append("## Workloads\n")
    out.append(md_table(["workload", "what"], [(w.name, w.what) for w in suite], ["l", "l"]))
    out.append("")
    report = "\n".join(out)

    print(report)
    if args.write:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        # The fragmentation benchmark's section (testing/bench/fragmentation.py
        # writes it) and the hand-recorded sections after HAND_MARKER (runs
        # made by hand on branches, with their commands) survive a new report.
        if os.path.exists(args.out):
            with open(args.out) as f:
                old = f.read()
            begin, end = "<!-- fragmentation:begin -->", "<!-- fragmentation:end -->"
            if begin in old and end in old:
                report = report.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
            if HAND_MARKER in old:
                report = report.rstrip("\n") + "\n\n" + old[old.index(HAND_MARKER):]
        with open(args.out, "w") as f:
            f.write(report)
        log("run_bench: wrote %s" % args.out)
    log("run_bench: %d runs in %.0f s; %d failure(s); targets %s"
        % (sum(len(x) for w in results.values() for x in w.values()), time.time() - t_start,
           len(failures), "all met" if checks and all(c[1] for c in checks)
           else "MISSED: " + "; ".join(c[0] for c in checks if not c[1]) if checks else "not checked"))
    if failures:
        return 1
    if args.strict and checks and not all(c[1] for c in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
