#!/usr/bin/python3
"""External benchmark suites for run_bench.py: mimalloc-bench's programs,
built from that project's own sources, Debian's redis-server driven by
redis-benchmark, and the scaling of throughput per thread from 1 to 32
threads (scaling.py). Each allocator runs by LD_PRELOAD, interleaved in
rounds as in run_bench.py; the report gives medians, NitroHeap's ratio to the
best peer, and issue 13's targets for each suite (run_bench.py adds them to
its target table). A suite whose programs are not here says so, its targets
are reported as not measured, and it is skipped: nothing is downloaded.

mimalloc-bench sources: the directory `bench/` of
https://github.com/daanx/mimalloc-bench (MIT license; the programs keep
their own licenses), looked up in $NITRO_MIMALLOC_BENCH_SRC, else in
~/.cache/nitroheap/mimalloc-bench/bench. To fill the cache from a clone or
a bare git directory of that repository (no network needed):

    /usr/bin/python3 testing/bench/suites.py fetch-mimalloc-bench GIT_DIR

Standalone use (the same sections run_bench.py --suites appends):

    /usr/bin/python3 testing/bench/suites.py run [--suites mimalloc-bench,redis,scaling] [--rounds N] [--quick]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "nitroheap", "mimalloc-bench")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", None),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
]
NITRO = "nitroheap"
SUITES = ("mimalloc-bench", "redis", "scaling")
# Issue 13's targets for the suites; run_bench.py passes its own (the same).
LIMITS = {"time_geomean": 1.00, "time_row": 1.30, "mem_geomean": 1.10}
SCALING_THREADS = (1, 2, 4, 8, 16, 32)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def md_table(header, rows, align):
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return float(statistics.geometric_mean(xs))


# ---- mimalloc-bench --------------------------------------------------------

def mb_source():
    for d in (os.environ.get("NITRO_MIMALLOC_BENCH_SRC"), os.path.join(CACHE, "bench")):
        if d and os.path.isfile(os.path.join(d, "CMakeLists.txt")):
            return d
    return None


def fetch_mimalloc_bench(git_dir):
    """Extracts bench/ of a mimalloc-bench clone or bare git directory into the cache."""
    os.makedirs(CACHE, exist_ok=True)
    dest = os.path.join(CACHE, "bench")
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    archive = subprocess.run(["git", "--git-dir=" + git_dir, "archive", "HEAD", "bench"],
                             stdout=subprocess.PIPE, check=True).stdout
    subprocess.run(["tar", "x", "-C", CACHE], input=archive, check=True)
    rev = subprocess.run(["git", "--git-dir=" + git_dir, "rev-parse", "HEAD"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    with open(os.path.join(CACHE, "REVISION"), "w") as f:
        f.write(rev + "\n")
    log("suites: mimalloc-bench %s extracted into %s" % (rev[:12], dest))


def mb_programs(src, procs, quick):
    """(name, argv after the binary, stdin file, metric parser or None for wall time)."""
    # Time-boxed programs report a rate; it becomes a relative time (lower is
    # better) as mimalloc-bench's bench.sh does.
    def larson(out):
        m = re.search(r"Throughput\s*=\s*([\d.]+)", out)
        return 1e8 / float(m.group(1)) if m else None

    def xmalloc(out):
        m = re.search(r"rtime:\s*([\d.]+)", out)
        return float(m.group(1)) if m else None

    def glibc_thread(out):
        m = re.search(r"^\s*([\d.]+)", out)
        return 1e9 / float(m.group(1)) if m else None

    larson_secs = "1" if quick else "5"
    progs = [
        ("cfrac", "cfrac", ["17545186520507317056371138836327483792789528"], None, None),
        ("espresso", "espresso", [os.path.join(src, "espresso", "largest.espresso")], None, None),
        ("barnes", "barnes", [], os.path.join(src, "barnes", "input"), None),
        ("larsonN", "larson", [larson_secs, "8", "1000", "5000", "100", "4141", str(procs)], None, larson),
        ("alloc-test1", "alloc-test", ["1"], None, None),
        ("alloc-testN", "alloc-test", [str(min(procs, 16))], None, None),
        ("cache-scratch1", "cache-scratch", ["1", "1000", "1", "2000000", str(procs)], None, None),
        ("cache-scratchN", "cache-scratch", [str(procs), "1000", "1", "2000000", str(procs)], None, None),
        ("cache-thrash1", "cache-thrash", ["1", "1000", "1", "2000000", str(procs)], None, None),
        ("cache-thrashN", "cache-thrash", [str(procs), "1000", "1", "2000000", str(procs)], None, None),
        ("mstressN", "mstress", [str(procs), "50", "25"], None, None),
        ("rptestN", "rptest", [str(procs), "0", "1", "2", "500", "1000", "100", "8", "16000"], None, None),
        ("xmalloc-testN", "xmalloc-test", ["-w", str(procs), "-t", larson_secs, "-s", "64"], None, xmalloc),
        ("glibc-simple", "glibc-simple", [], None, None),
        ("glibc-thread", "glibc-thread", [str(procs)], None, glibc_thread),
        ("malloc-large", "malloc-large", [], None, None),
        ("mleak10", "mleak", ["5"], None, None),
        ("mleak100", "mleak", ["50"], None, None),
    ]
    return progs


def mb_build_commands(src, build):
    """Compiler commands for the programs, as mimalloc-bench's CMakeLists.txt
    builds them (its own list of cfrac, espresso and barnes sources; shbench,
    whose sources it downloads separately, is not among the programs)."""
    with open(os.path.join(src, "CMakeLists.txt")) as f:
        cmake = f.read()
    lists = {m.group(1): m.group(2).split()
             for m in re.finditer(r"set\((\w+)_sources\s+(.*?)\)", cmake, re.S)}
    cc = ["gcc", "-O2", "-w"]
    cxx = ["g++", "-O2", "-w", "-std=c++17"]
    old_c = cc + ["-std=gnu89", "-Wno-implicit-function-declaration", "-Wno-implicit-int",
                  "-Wno-int-conversion", "-Wno-incompatible-pointer-types"]
    p = lambda d, names: [os.path.join(src, d, n) for n in names]
    out = lambda name: ["-o", os.path.join(build, name)]
    return {
        "cfrac": old_c + ["-DNOMEMOPT=1"] + p("cfrac", lists["cfrac"]) + out("cfrac") + ["-lm"],
        "espresso": old_c + p("espresso", lists["espresso"]) + out("espresso") + ["-lm"],
        "barnes": old_c + p("barnes", lists["barnes"]) + out("barnes") + ["-lm"],
        "larson": cxx + ["-DCPP=1"] + p("larson", ["larson.cpp"]) + out("larson") + ["-lpthread"],
        "alloc-test": cxx + ["-DBENCH=4"] + p("alloc-test", ["test_common.cpp", "allocator_tester.cpp"])
                      + out("alloc-test") + ["-lpthread"],
        "cache-scratch": cxx + p("cache-scratch", ["cache-scratch.cpp"]) + out("cache-scratch") + ["-lpthread"],
        "cache-thrash": cxx + p("cache-thrash", ["cache-thrash.cpp"]) + out("cache-thrash") + ["-lpthread"],
        "xmalloc-test": cc + p("xmalloc-test", ["xmalloc-test.c"]) + out("xmalloc-test") + ["-lpthread"],
        "malloc-large": cxx + p("malloc-large", ["malloc-large.cpp"]) + out("malloc-large") + ["-lpthread"],
        "mstress": cc + p("mstress", ["mstress.c"]) + out("mstress") + ["-lpthread"],
        "mleak": cc + p("mleak", ["mleak.c"]) + out("mleak") + ["-lpthread"],
        "rptest": cc + ["-I" + os.path.join(src, "rptest")] + p("rptest", ["rptest.c", "thread.c", "timer.c"])
                  + out("rptest") + ["-lpthread", "-lm"],
        "glibc-simple": cc + p("glibc-bench", ["bench-malloc-simple.c"]) + out("glibc-simple") + ["-lpthread"],
        "glibc-thread": cc + p("glibc-bench", ["bench-malloc-thread.c"]) + out("glibc-thread") + ["-lpthread"],
    }


def mb_build(src, workdir):
    """Builds the programs once per source revision into the cache (else into workdir)."""
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        return None, "gcc or g++ is not installed"
    build = os.path.join(os.path.dirname(src), "build")
    try:
        os.makedirs(build, exist_ok=True)
    except OSError:
        build = os.path.join(workdir, "mimalloc-bench-build")
        os.makedirs(build, exist_ok=True)
    try:
        commands = mb_build_commands(src, build)
    except (OSError, KeyError) as e:
        return None, "cannot read its CMakeLists.txt: %s" % e
    pending = [(name, cmd) for name, cmd in sorted(commands.items())
               if not os.path.exists(os.path.join(build, name))]
    running = []
    errors = []
    while pending or running:
        while pending and len(running) < (os.cpu_count() or 2):
            name, cmd = pending.pop()
            running.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                   text=True)))
        name, proc = running.pop(0)
        text = proc.communicate()[0]
        if proc.returncode != 0:
            errors.append("%s: %s" % (name, text[-300:].strip().replace("\n", " ")))
    if errors:
        return None, "build failed: " + "; ".join(errors)
    return build, None


def run_timed(spawn, argv, env, cwd, stdin_path, timeout):
    """(wall s, maxrss KiB, rc, stdout+stderr) through spawn_rusage."""
    result = os.path.join(cwd, ".spawn_result")
    try:
        os.unlink(result)
    except FileNotFoundError:
        pass
    stdin = open(stdin_path) if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.run([spawn, result] + argv, env=env, cwd=cwd, stdin=stdin,
                           capture_output=True, text=True, timeout=timeout, errors="replace")
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return None, None, "timeout", ""
    finally:
        if stdin_path:
            stdin.close()
    try:
        with open(result) as f:
            m = re.match(r"^status=(-?\d+) wall=([\d.]+) user=([\d.]+) sys=([\d.]+) maxrss_kib=(\d+)(?: minflt=\d+)?$",
                         f.read().strip())
    except OSError:
        m = None
    if not m:
        return None, None, "no result", out
    return float(m.group(2)), int(m.group(5)), int(m.group(1)), out


# The programs over the time limit that get a profile of their gap (the
# slowest first) when the caller passes a profiler.
MB_PROFILED = 3


def suite_mimalloc_bench(allocs, spawn, rounds, quick, workdir, only=None, limits=LIMITS, profiler=None):
    lines = ["## mimalloc-bench programs\n"]
    src = mb_source()
    if src is None:
        lines.append("Not run: mimalloc-bench's sources were not found (set "
                     "`NITRO_MIMALLOC_BENCH_SRC` to its `bench/` directory, or fill the cache with "
                     "`/usr/bin/python3 testing/bench/suites.py fetch-mimalloc-bench GIT_DIR`).\n")
        return lines, [], not_run_checks("mimalloc-bench", "its sources were not found", limits)
    build, err = mb_build(src, workdir)
    if build is None:
        lines.append("Not run: %s.\n" % err)
        return lines, [], not_run_checks("mimalloc-bench", err, limits)
    procs = os.cpu_count() or 2
    progs = mb_programs(src, procs, quick)
    if only:
        unknown = sorted(set(only) - {p[0] for p in progs})
        if unknown:
            raise ValueError("unknown mimalloc-bench program(s): %s" % ", ".join(unknown))
        progs = [p for p in progs if p[0] in only]
    rev = ""
    try:
        with open(os.path.join(os.path.dirname(src), "REVISION")) as f:
            rev = f.read().strip()[:12]
    except OSError:
        pass
    time_s = {p[0]: {a: [] for a, _ in allocs} for p in progs}
    rss = {p[0]: {a: [] for a, _ in allocs} for p in progs}
    failures = []
    for r in range(rounds):
        for name, binary, args, stdin_path, metric in progs:
            for alloc, lib in allocs:
                env = dict(os.environ)
                env.pop("LD_PRELOAD", None)
                if lib:
                    env["BENCH_LD_PRELOAD"] = lib
                wall, maxrss, rc, out = run_timed(spawn, [os.path.join(build, binary)] + args, env,
                                                  workdir, stdin_path, 300)
                if rc != 0:
                    failures.append("%s under %s: %s" % (name, alloc, rc))
                    log("suites: FAIL %s %s: %s %s" % (name, alloc, rc, out[-200:]))
                    continue
                value = metric(out) if metric else wall
                if value is None:
                    failures.append("%s under %s: unparsable output" % (name, alloc))
                    continue
                time_s[name][alloc].append(value)
                rss[name][alloc].append(maxrss / 1024.0)
                log("suites: round %d %-15s %-10s %.3f %.1f MiB" % (r + 1, name, alloc, value, maxrss / 1024.0))
    lines.append("Sources: mimalloc-bench %s (`bench/`, built as its CMakeLists.txt "
                 "builds them, -O2); arguments as in its `bench.sh` with %d threads (the machine's cores)%s. "
                 "Medians of %d round(s), each allocator by LD_PRELOAD, interleaved. Time is the "
                 "wall time, except larsonN, xmalloc-testN and glibc-thread, which run for a fixed "
                 "time and report a rate, shown as a relative time (lower is better, as in "
                 "bench.sh). *ratio*: NitroHeap against the best peer.\n"
                 % (rev or "(revision unknown)", procs, ", time-boxed runs shortened to 1 s (--quick)" if quick else "",
                    rounds))
    tl, t_ratios, t_gm = table_with_ratios(progs, allocs, time_s)
    lines += tl
    lines.append("")
    lines.append("Peak RSS (MiB, median of ru_maxrss):\n")
    ml, _, m_gm = table_with_ratios(progs, allocs, rss)
    lines += ml
    lines.append("")
    over = mb_profiled(t_ratios, time_s, limits)
    if profiler and over:
        lines.append("### Where the gaps are: the slowest programs over %.2f\n" % limits["time_row"])
        lines.append("One `perf record -e cpu-clock` run of NitroHeap and of the fastest peer on each "
                     "(the time-boxed programs run for their fixed time under both, so there the "
                     "split, not the total, is what differs).\n")
        lib_of = dict(allocs)
        for name, ratio, peer in over:
            prog = next(p for p in progs if p[0] == name)
            title = "%s: x%.2f against %s" % (name, ratio, peer)
            lines += profiler(title, [os.path.join(build, prog[1])] + prog[2], prog[3],
                              (NITRO, "NitroHeap", lib_of[NITRO]), (peer, peer, lib_of[peer]))
    return lines, failures, mb_checks(t_ratios, t_gm, m_gm, limits)


def mb_profiled(t_ratios, time_s, limits):
    """(program, ratio, fastest peer) of the MB_PROFILED slowest programs over the time limit."""
    over = sorted(((r, n) for n, r in t_ratios.items() if r > limits["time_row"]), reverse=True)
    out = []
    for ratio, name in over[:MB_PROFILED]:
        peers = [(statistics.median(v), a) for a, v in time_s[name].items() if a != NITRO and v]
        if peers:
            out.append((name, ratio, min(peers)[1]))
    return out


def mb_checks(t_ratios, t_gm, m_gm, limits):
    """The harness's three targets on mimalloc-bench's programs (None: not measured)."""
    over = ["%s %.2f" % (n, r) for n, r in t_ratios.items() if r > limits["time_row"]]
    return [
        ("mimalloc-bench: time geomean (NitroHeap / fastest peer) <= %.2f" % limits["time_geomean"],
         t_gm <= limits["time_geomean"] if t_gm else None, "%.3f" % t_gm if t_gm else "no ratio"),
        ("mimalloc-bench: no program time ratio above %.2f" % limits["time_row"],
         not over if t_ratios else None, ("over: " + ", ".join(over)) if over else
         ("worst: %s %.2f" % max(t_ratios.items(), key=lambda kv: kv[1]) if t_ratios else "no ratio")),
        ("mimalloc-bench: memory geomean (NitroHeap peak RSS / leanest peer) <= %.2f" % limits["mem_geomean"],
         m_gm <= limits["mem_geomean"] if m_gm else None, "%.3f" % m_gm if m_gm else "no ratio"),
    ]


def not_run_checks(suite, why, limits):
    """The targets of a suite that did not run: each one unmeasured, with the reason."""
    if suite == "mimalloc-bench":
        return [(c[0], None, "not run: %s" % why) for c in mb_checks({}, None, None, limits)]
    if suite == "redis":
        return [(c[0], None, "not run: %s" % why) for c in redis_checks({})]
    return [(c, None, "not run: %s" % why) for c in [SCALING_TARGET]]


def table_with_ratios(progs, allocs, data):
    """Markdown lines, NitroHeap's ratio to the best peer per program, and their geomean."""
    names = [a for a, _ in allocs]
    rows, ratios, per_alloc = [], {}, {a: [] for a in names}
    for p in progs:
        name = p[0]
        med = {a: statistics.median(data[name][a]) if data[name][a] else None for a in names}
        peers = [med[a] for a in names if a != NITRO and med[a]]
        best_all = min([v for v in med.values() if v] or [0]) or None
        ratio = med[NITRO] / min(peers) if med.get(NITRO) and peers else None
        if ratio:
            ratios[name] = ratio
        for a in names:
            if med[a] and best_all:
                per_alloc[a].append(med[a] / best_all)
        rows.append([name] + ["%.3f" % med[a] if med[a] else "FAIL" for a in names]
                    + ["%.2f" % ratio if ratio else "-"])
    g = geomean(list(ratios.values()))
    rows.append(["**geomean vs best peer**"] + [""] * len(names) + ["**%.2f**" % g if g else "-"])
    rows.append(["geomean vs best of all"] + ["%.2f" % geomean(per_alloc[a]) if geomean(per_alloc[a]) else "-"
                                              for a in names] + [""])
    return [md_table(["program"] + names + ["ratio"], rows, ["l"] + ["r"] * (len(names) + 1))], ratios, g


# ---- redis -----------------------------------------------------------------

REDIS_LOADS = [
    # name, redis-benchmark arguments (mixed commands, random keys among
    # 100,000), share of the requests (LPUSH grows one list by every request
    # before LPOP empties it: 4 KiB values get a fifth of the requests).
    ("small", ["-t", "set,get,incr,lpush,lpop,sadd,hset", "-d", "16"], 1.0),
    ("4KiB", ["-t", "set,get,lpush,lpop", "-d", "4096"], 0.2),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def redis_cli(port, *args):
    try:
        return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True,
                              timeout=120).stdout.strip()
    except subprocess.TimeoutExpired:
        return "(timed out)"


def redis_once(lib, requests, workdir):
    """Starts redis-server under `lib`, runs the loads; returns {metric: value} or an error."""
    port = free_port()
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", workdir],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if redis_cli(port, "ping") == "PONG":
                break
            if server.poll() is not None:
                return None, "redis-server exited: %s" % server.stderr.read()[-300:]
            time.sleep(0.05)
        else:
            return None, "redis-server did not answer"
        result = {}
        for name, args, share in REDIS_LOADS:
            try:
                out = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(int(requests * share)),
                                      "-r", "100000", "-P", "16", "-c", "50", "--csv"] + args,
                                     capture_output=True, text=True, timeout=600).stdout
            except subprocess.TimeoutExpired:
                return None, "redis-benchmark timed out on %s" % name
            rps = [float(m.group(1)) for m in re.finditer(r'^"[^"]+","([\d.]+)"', out, re.M)]
            if not rps:
                return None, "redis-benchmark printed no result for %s" % name
            result["%s rps" % name] = geomean(rps)
        result["RSS loaded MiB"] = (rss_kib(server.pid) or 0) / 1024.0
        if redis_cli(port, "flushall") != "OK":
            return None, "FLUSHALL failed"
        time.sleep(1.0)
        result["RSS after FLUSHALL MiB"] = (rss_kib(server.pid) or 0) / 1024.0
        redis_cli(port, "shutdown", "nosave")
        server.wait(timeout=30)
        return result, None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def suite_redis(allocs, rounds, quick, workdir):
    lines = ["## redis-server under redis-benchmark\n"]
    missing = [b for b in ("redis-server", "redis-benchmark", "redis-cli") if shutil.which(b) is None]
    if missing:
        lines.append("Not run: %s not installed (Debian packages `redis-server` and `redis-tools`; "
                     "tools/install_deps.sh installs them).\n" % ", ".join(missing))
        return lines, [], not_run_checks("redis", "%s not installed" % ", ".join(missing), LIMITS)
    # Debian's redis-server links jemalloc: with nothing preloaded it runs on
    # jemalloc (redis's own default), so there is no glibc row.
    allocs = [(a, l) for a, l in allocs if a != "glibc"]
    requests = 20000 if quick else 100000
    metrics = ["small rps", "4KiB rps", "RSS loaded MiB", "RSS after FLUSHALL MiB"]
    data = {a: {m: [] for m in metrics} for a, _ in allocs}
    failures = []
    for r in range(rounds):
        for alloc, lib in allocs:
            res, err = redis_once(lib, requests, workdir)
            if err:
                failures.append("redis under %s: %s" % (alloc, err))
                log("suites: FAIL redis %s: %s" % (alloc, err))
                continue
            for m in metrics:
                data[alloc][m].append(res[m])
            log("suites: round %d redis %-10s %s" % (r + 1, alloc,
                                                     " ".join("%s=%.1f" % (m, res[m]) for m in metrics)))
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    lines.append("%s; redis-benchmark `-r 100000 -P 16 -c 50`, two loads: *small* (`-n %d`: SET, GET, "
                 "INCR, LPUSH, LPOP, SADD, HSET with 16-byte values) and *4KiB* (a fifth of the requests: "
                 "SET, GET, LPUSH, LPOP with 4096-byte values); throughput is the geomean of the commands' requests "
                 "per second; RSS (VmRSS) with the data loaded and 1 s after FLUSHALL. Medians of "
                 "%d round(s). jemalloc is redis's own allocator (nothing preloaded: Debian links "
                 "it), the others by LD_PRELOAD; no glibc row for that reason.\n"
                 % (version.split(" sha=")[0], requests, rounds))
    names = [a for a, _ in allocs]
    rows = []
    for m in metrics:
        med = {a: statistics.median(data[a][m]) if data[a][m] else None for a in names}
        ref = med.get("jemalloc")
        ratio = med[NITRO] / ref if med.get(NITRO) and ref else None
        rows.append([m] + ["%.1f" % med[a] if med[a] else "FAIL" for a in names]
                    + ["%.2f" % ratio if ratio else "-"])
    lines.append(md_table(["metric"] + names + ["nitroheap / jemalloc"], rows,
                          ["l"] + ["r"] * (len(names) + 1)))
    lines.append("")
    meds = {m: {a: statistics.median(data[a][m]) if data[a][m] else None for a in ("jemalloc", NITRO)}
            for m in metrics}
    return lines, failures, redis_checks(meds)


def redis_checks(meds):
    """Issue 13's redis targets from {metric: {allocator: median}} (None: not measured)."""
    checks = []
    for m, higher in (("small rps", True), ("4KiB rps", True), ("RSS after FLUSHALL MiB", False)):
        n, j = meds.get(m, {}).get(NITRO), meds.get(m, {}).get("jemalloc")
        target = "redis: %s %s jemalloc's" % (m, "at least" if higher else "at most")
        if not n or not j:
            checks.append((target, None, "not measured"))
        else:
            checks.append((target, n >= j if higher else n <= j, "%.1f vs %.1f (x%.2f)" % (n, j, n / j)))
    return checks


SCALING_TARGET = "scaling: throughput per thread T=32 / T=1 at least the best peer's"


def suite_scaling(allocs, workloads, rounds, quick, profiler=None):
    """Throughput per thread from 1 to 32 threads (testing/bench/scaling.py)."""
    import scaling  # testing/bench/scaling.py, beside this file
    lines = ["## Scaling: throughput per thread from 1 to %d threads\n" % SCALING_THREADS[-1]]
    counts = [1, SCALING_THREADS[-1]] if quick else list(SCALING_THREADS)
    scale = 0.05 if quick else 1.0
    runs = [(a, l or "", None) for a, l in allocs]
    try:
        walls, cpus, ops = scaling.measure(workloads, runs, counts, rounds, scale)
    except SystemExit as e:  # scaling.run_once's verdict on a failed run
        return lines + ["Failed: %s\n" % e], [str(e)], not_run_checks("scaling", "a run failed", LIMITS)
    table, verdict = scaling.report(runs, counts, walls, cpus, ops, rounds)
    lines.append("`workloads scaling --threads=T --scale=%g` (each thread the same fixed work: random "
                 "replacement in its own array, every 16th object freed by another thread), each allocator "
                 "by LD_PRELOAD, rounds interleaved, %d round(s), %d cores: past %d threads the ideal "
                 "retention is cores/T, so what counts is NitroHeap's against the best peer's. Million "
                 "operations per second per thread (median wall time):\n"
                 % (scale, rounds, os.cpu_count() or 0, os.cpu_count() or 0))
    lines += table + [""]
    if verdict is None:
        return lines, [], not_run_checks("scaling", "NitroHeap or every peer missing", LIMITS)
    if verdict[3] != "met":
        lines += scaling_gap(allocs, workloads, counts, scale, walls, ops, verdict, profiler)
    return lines, [], [(SCALING_TARGET, verdict[3] == "met",
                        "%.3f vs %s %.3f" % (verdict[0], verdict[1], verdict[2]))]


def scaling_gap(allocs, workloads, counts, scale, walls, ops, verdict, profiler):
    """Why the retention target is missed: the retention is a ratio of two
    throughputs, so each side against the best peer's, and a profile of the
    most threads under NitroHeap and under the fastest peer there."""
    def per_thread(name, t):
        return ops[(name, t)] / t / statistics.median(walls[(name, t)]) / 1e6
    top, best = counts[-1], verdict[1]
    n1, nt = per_thread(NITRO, 1), per_thread(NITRO, top)
    b1, bt = per_thread(best, 1), per_thread(best, top)
    fastest = max((a for a, _ in allocs if a != NITRO), key=lambda a: per_thread(a, top))
    lines = ["### Why the retention target is missed\n",
             "The retention is throughput per thread at T=%d over T=1. NitroHeap's: %.2f / %.2f = %.3f; "
             "%s's (the best peer's retention): %.2f / %.2f = %.3f. At T=1 NitroHeap does %.2fx %s's "
             "throughput, at T=%d %.2fx; the fastest peer at T=%d is %s (%.2f M operations per second "
             "per thread, NitroHeap %.2fx of it).\n"
             % (top, nt, n1, verdict[0], best, bt, b1, verdict[2], n1 / b1, best, top, nt / bt, top, fastest,
                per_thread(fastest, top), nt / per_thread(fastest, top))]
    if profiler:
        lib_of = dict(allocs)
        lines += profiler("scaling T=%d: NitroHeap %.2f, %s %.2f M operations per second per thread"
                          % (top, nt, fastest, per_thread(fastest, top)),
                          [workloads, "scaling", "--threads=%d" % top, "--scale=%g" % scale], None,
                          (NITRO, "NitroHeap", lib_of[NITRO]), (fastest, fastest, lib_of[fastest] or ""))
    return lines


def run_suites(which, nitro_so, spawn, rounds, quick, programs=None, workloads=None, limits=LIMITS,
               profiler=None):
    """Markdown lines, failures and target checks (target, True/False/None, measured) for the
    suites named in `which`. profiler(title, argv, stdin_path, (label, display, lib) of NitroHeap,
    the same of a peer) returns the Markdown lines of a program's gap profile (run_bench.py's)."""
    unknown = [s for s in which if s not in SUITES]
    if unknown:
        raise ValueError("unknown suite %r (known: %s)" % (unknown[0], ", ".join(SUITES)))
    allocs = PEERS + [(NITRO, nitro_so)]
    allocs = [(a, l) for a, l in allocs if l is None or os.path.exists(l)]
    lines, failures, checks = [], [], []
    with tempfile.TemporaryDirectory(prefix="nitro-suites-") as workdir:
        for s in which:
            if s == "mimalloc-bench":
                l, f, c = suite_mimalloc_bench(allocs, spawn, rounds, quick, workdir, programs, limits,
                                               profiler)
            elif s == "redis":
                l, f, c = suite_redis(allocs, rounds, quick, workdir)
            elif workloads is None or not os.path.exists(workloads):
                l, f = ["## Scaling\n", "Not run: the workloads binary was not found.\n"], []
                c = not_run_checks("scaling", "the workloads binary was not found", limits)
            else:
                l, f, c = suite_scaling(allocs, workloads, rounds, quick, profiler)
            if f:
                l += ["Failed runs (not in the medians):\n"] + ["* %s" % x for x in f] + [""]
            lines += l
            failures += f
            checks += c
    return lines, failures, checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch-mimalloc-bench", help="extract bench/ from a mimalloc-bench git directory")
    f.add_argument("git_dir")
    r = sub.add_parser("run", help="run the suites and print their report sections")
    r.add_argument("--suites", default=",".join(SUITES))
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--programs", default="", help="mimalloc-bench programs to run (default: all)")
    r.add_argument("--nitroheap-so", default=os.path.join(ROOT, "bazel-bin", "abi", "libnitroheap.so"))
    r.add_argument("--spawn", default=os.path.join(ROOT, "bazel-bin", "testing", "bench", "spawn_rusage"))
    r.add_argument("--workloads-bin", default=os.path.join(ROOT, "bazel-bin", "testing", "bench", "workloads"),
                   help="for the scaling suite")
    args = ap.parse_args()
    if args.cmd == "fetch-mimalloc-bench":
        fetch_mimalloc_bench(args.git_dir)
        return 0
    for p in (args.nitroheap_so, args.spawn):
        if not os.path.exists(p):
            print("suites: %s not found (bazel build //abi:libnitroheap.so //testing/bench:spawn_rusage)" % p,
                  file=sys.stderr)
            return 2
    try:
        lines, failures, checks = run_suites([s for s in args.suites.split(",") if s],
                                             os.path.abspath(args.nitroheap_so), os.path.abspath(args.spawn),
                                             args.rounds, args.quick, [p for p in args.programs.split(",") if p]
                                             or None, os.path.abspath(args.workloads_bin))
    except ValueError as e:
        print("suites: %s" % e, file=sys.stderr)
        return 2
    print("\n".join(lines))
    for target, ok, measured in checks:
        print("target %s: %s (%s)" % ("PASS" if ok else "not measured" if ok is None else "FAIL", target, measured))
    for x in failures:
        log("suites: FAILED: " + x)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
