"""CPython's own regression tests with and without NitroHeap (LD_PRELOAD).

Called by run_cpython_tests.sh, which documents the command line. Each suite
runs as its own `python3 -m test SUITE` process (a regrtest per suite, so a
crash, a hang or a failure is pinned on one suite), SUITE-parallel with
--jobs workers: first without the preload (the reference), then once per
option set with LD_PRELOAD=SO and NITROHEAP_OPTIONS=<set>. The preload and
the options reach every process the tests start, as they would in a real
deployment.

Result per suite: passed, failed, crashed (SIGxxx), hang, env changed,
skipped, no tests, error. A suite that does not pass in the reference run
is excluded from the comparison (listed as such). Every other suite either
has the same result under NitroHeap or is reported with its failing test
names and the lines that explain them.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PYTHON = "/usr/bin/python3"  # Debian's python3.11, whose tests are installed

# Resources: everything that needs no network, no audio/GUI/terminal and no
# huge files or CPU-heavy loops.
RESOURCES = "all,-network,-urlfetch,-largefile,-audio,-gui,-curses,-cpu,-tzdata"

# (suite, extra regrtest arguments). Ordered longest first, so that the two
# workers finish together. Seconds: without the preload, 2 cores, -j2.
FULL_SUITES = [
    ("test_concurrent_futures", []),  # ~180 s; DeadlockTests kill workers with signals
    ("test_signal", []),  # ~50 s
    ("test_subprocess", []),  # ~40 s; fds, fork+exec, signals, pass_fds
    ("test_io", []),  # ~30 s
    # multiprocessing (fork start method) without the thread-backed
    # duplicates: ~60 s instead of ~95 s.
    ("test_multiprocessing_fork", [
        "-m", "WithProcesses*", "-m", "WithManagerTestQueue",
        "-m", "WithManagerTestPool", "-m", "TestSyncManagerTypes",
        "-m", "TestForkAwareThreadLock", "-m", "TestIgnoreEINTR",
        "-m", "TestCloseFds", "-m", "TestSimpleQueue", "-m", "TestWait",
    ]),
    # asyncio (the whole package: ~90 s): event loops, subprocesses,
    # threads, signals.
    ("test_asyncio.test_subprocess", []),
    ("test_asyncio.test_events", []),
    ("test_asyncio.test_tasks", []),
    ("test_asyncio.test_streams", []),
    ("test_asyncio.test_unix_events", []),
    ("test_asyncio.test_threads", []),
    ("test_logging", []),  # ~25 s
    ("test_threading", []),  # ~20 s
    ("test_faulthandler", []),  # ~20 s
    ("test_selectors", []),
    ("test_eintr", []),
    ("test_os", []),
    ("test_pickle", []),
    ("test_tarfile", []),
    ("test_zipfile", []),
    ("test_queue", []),
    ("test_lzma", []),
    ("test_cmd_line_script", []),
    ("test_cmd_line", []),
    ("test_embed", []),
    ("test_weakref", []),
    ("test_gc", []),
    ("test_decimal", []),
    ("test_json", []),  # json.tool in child processes
    ("test_re", []),
    ("test_unicode", []),
    ("test_bytes", []),
    ("test_collections", []),
    ("test_dict", []),
    ("test_list", []),
    ("test_set", []),
    ("test_deque", []),
    ("test_mmap", []),
    ("test_fork1", []),
    ("test_wait4", []),
    ("test_thread", []),
    ("test_threadsignals", []),
    ("test_threading_local", []),
    ("test_ctypes", []),  # C calls, libc malloc/free through ctypes
    ("test_tracemalloc", []),
    ("test_posix", []),
    ("test_pty", []),
    ("test_resource", []),
    ("test_sys", []),
    ("test_atexit", []),
    ("test_buffer", []),
    ("test_memoryview", []),
    ("test_array", []),
    ("test_struct", []),
    ("test_marshal", []),
    ("test_zlib", []),
    ("test_bz2", []),
    ("test_hashlib", []),
    ("test_xml_etree_c", []),
    ("test_datetime", []),
]

# The quick subset (about 1 minute per pass on 2 cores, so the reference
# run plus two option sets fit in 4 minutes): the tests that failed under
# NitroHeap before, reduced to the classes that matter, and fast suites that
# exercise fork, exec, threads, signals and C extensions.
QUICK_SUITES = [
    # processes killed by signals (faulthandler._sigsegv in the workers)
    ("test_concurrent_futures", ["-m", "ProcessPoolForkExecutorDeadlockTest",
                                 "-m", "ThreadPoolExecutorTest"]),
    # descriptors, fork+exec, signals
    ("test_subprocess", ["-m", "POSIXProcessTestCase"]),
    ("test_multiprocessing_fork", ["-m", "WithProcessesTestPool"]),
    # fork from threads, processes whose main thread ends first
    ("test_threading", ["-m", "ThreadTests", "-m", "ThreadJoinOnShutdown"]),
    # faults and signals the program raises itself
    ("test_faulthandler", ["-m", "test_sig*", "-m", "test_enable*",
                           "-m", "test_disable", "-m", "test_gil_released",
                           "-m", "test_fatal_error*", "-m", "test_read_null"]),
    ("test_json", []),  # json.tool children exit with threads around
    ("test_os", []),
    ("test_fork1", []),
    ("test_wait4", []),
    ("test_threadsignals", []),
    ("test_ctypes", []),
    ("test_mmap", []),
    ("test_gc", []),
    ("test_dict", []),
    ("test_re", []),
]

# Lines worth showing from a suite's log, besides each failure's exception.
INTERESTING = re.compile(
    r"Fatal Python error|Segmentation fault|^nitroheap:|Timeout \(\d|"
    r"core dumped|Warning -- reap_children|Bus error|Aborted|Killed|"
    r"^Current thread|^Thread 0x|^  File .*, line \d+ in ")
EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure)\b")
SUITE_RESULT_RE = re.compile(
    r"^(?:\d+:\d+:\d+ (?:load avg: [\d.]+ )?)?(?:\[[\s\d/]+\] )?(\S+) "
    r"(passed|failed|skipped|crashed|timed out|ran no tests|interrupted)\b(.*)$")


def signame(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


class Outcome:
    def __init__(self, result, detail, seconds, log_path, failing):
        self.result = result  # one word-ish category
        self.detail = detail  # short explanation
        self.seconds = seconds
        self.log_path = log_path
        self.failing = failing  # ["FAIL: test_x (module.Class.test_x)", ...]


def classify(rc, text, hard_timeout_hit):
    failing = []
    for line in text.splitlines():
        m = re.match(r"^(FAIL|ERROR): (\S+) \((\S+)\)", line)
        if m:
            entry = "%s: %s" % (m.group(1), m.group(3))
            if entry not in failing:
                failing.append(entry)
    if hard_timeout_hit:
        return "hang", "killed after the hard time limit", failing
    if re.search(r"Timeout \(\d+:\d+:\d+\)!", text):
        # regrtest's --timeout: faulthandler dumped the stacks and exited.
        return "hang", "regrtest --timeout fired (stacks in the log)", failing
    if rc < 0:
        return "crashed", "regrtest itself died of %s" % signame(-rc), failing
    m = re.search(r"^Tests result: (.*)$", text, re.M)
    summary = m.group(1).strip() if m else ""
    suite_line = ""
    for line in text.splitlines():
        sm = SUITE_RESULT_RE.match(line.strip())
        if sm:
            suite_line = "%s%s" % (sm.group(2), sm.group(3))
    if "FAILURE" in summary:
        if "crashed" in suite_line:
            return "crashed", suite_line, failing
        if "timed out" in suite_line:
            return "hang", suite_line, failing
        return "failed", suite_line or "FAILURE", failing
    if "ENV CHANGED" in summary or "env changed" in suite_line:
        return "env changed", suite_line or summary, failing
    if "INTERRUPTED" in summary:
        return "error", "interrupted", failing
    if "NO TEST" in summary or "ran no tests" in suite_line:
        return "no tests", suite_line or summary, failing
    if summary == "SUCCESS":
        if suite_line.startswith("skipped") or re.search(
                r"^\d+ tests? skipped", text, re.M):
            return "skipped", suite_line or "skipped", failing
        return "passed", "", failing
    return "error", "exit status %d, no regrtest summary" % rc, failing


def run_suite(suite, extra, env, workdir, log_path, timeout):
    # regrtest: one suite, verbose (the log names the test that was running
    # when something went wrong), its own per-suite watchdog (--timeout),
    # env-changed counts, and a hard limit above it in case even that hangs.
    cmd = [PYTHON, "-m", "test", "-v", "--timeout", str(timeout),
           "--fail-env-changed", "-u", RESOURCES, suite] + extra
    hard = timeout + 60
    start = time.monotonic()
    hard_hit = False
    os.makedirs(workdir, exist_ok=True)
    with open(log_path, "wb") as log:
        log.write(("$ %s\n" % " ".join(cmd)).encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                cwd=workdir, start_new_session=True)
        try:
            rc = proc.wait(timeout=hard)
        except subprocess.TimeoutExpired:
            hard_hit = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.wait()
    # Whatever the suite left behind in its session (a hung grandchild).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    seconds = time.monotonic() - start
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    result, detail, failing = classify(rc, text, hard_hit)
    return Outcome(result, detail, seconds, log_path, failing)


def base_env(tmpdir):
    env = {}
    for key, value in os.environ.items():
        # No Python or NitroHeap settings from the caller; LD_PRELOAD only
        # where this script puts it.
        if key.startswith(("PYTHON", "NITROHEAP")) or key in (
                "LD_PRELOAD", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "PYENV_VERSION"):
            continue
        env[key] = value
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env["TMPDIR"] = tmpdir
    env.setdefault("HOME", tmpdir)
    env["LC_ALL"] = "C.UTF-8"
    env.pop("LANG", None)
    env.pop("LANGUAGE", None)
    return env


def run_config(label, suites, env, root, scratch, jobs, timeout, log, repeat=1):
    outcomes = {}
    lock = threading.Lock()
    done = [0]
    name = re.sub(r"[^A-Za-z0-9_.=-]", "_", label)
    cfg_dir = os.path.join(root, name)
    os.makedirs(cfg_dir, exist_ok=True)
    start = time.monotonic()

    def one(item):
        suite, extra = item
        cwd = os.path.join(scratch, "cwd", name, suite)
        # Races show up in some runs only: up to `repeat` runs, the first
        # one that does not pass is the result.
        for attempt in range(repeat):
            o = run_suite(suite, extra, env, cwd,
                          os.path.join(cfg_dir, suite + ".log"), timeout)
            if o.result != "passed":
                if repeat > 1:
                    o.detail = ("%s, run %d of %d" % (o.detail, attempt + 1, repeat)
                                ).lstrip(", ")
                break
        with lock:
            done[0] += 1
            outcomes[suite] = o
            log("  [%2d/%d] %-32s %-11s %5.1fs %s" % (
                done[0], len(suites), suite, o.result, o.seconds,
                o.detail if o.result != "passed" else ""))
        shutil.rmtree(cwd, ignore_errors=True)
        return o

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, suites))
    return outcomes, time.monotonic() - start


def excerpt(outcome, limit=30):
    """What explains a result: each failing test with its exception line,
    then crash, timeout and NitroHeap lines, else the log's last lines."""
    try:
        with open(outcome.log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(FAIL|ERROR): (\S+) \((\S+)\)", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        exc = ""
        while j < len(lines) and not lines[j].startswith(("======", "FAIL: ", "ERROR: ")):
            if lines[j].startswith("------") and exc:
                break
            if EXCEPTION_LINE.match(lines[j]):
                exc = lines[j]
                # "AssertionError: Items in the first set ...:" says more
                # on the next line.
                if exc.endswith(":") and j + 1 < len(lines) and lines[j + 1].strip():
                    exc += " " + lines[j + 1].strip()
            j += 1
        entry = "%s %s: %s" % (m.group(1), m.group(3).rsplit(".", 2)[-2] + "." + m.group(2),
                               exc[:200] if exc else "(no exception line)")
        if entry not in out:
            out.append(entry)
        i = j
    seen = set(out)
    stacks = 0
    for line in lines:
        if line.startswith("$ ") or not INTERESTING.search(line):
            continue
        if line.startswith(("  File ", "Thread 0x", "Current thread")):
            stacks += 1
            if stacks > 12:  # the first stack of a timeout or crash dump
                continue
        if line not in seen:
            seen.add(line)
            out.append(line[:220])
    if len(out) > limit:
        out = out[:limit] + ["... (%d more lines; see the log)" % (len(out) - limit)]
    if not out:
        out = [l[:220] for l in lines[-10:]]
    return out


def main():
    ap = argparse.ArgumentParser(prog="run_cpython_tests.sh")
    ap.add_argument("--quick", action="store_true",
                    help="the quick subset (a few minutes in all)")
    ap.add_argument("--suites", default="",
                    help="space-separated suites instead of the built-in list")
    ap.add_argument("--jobs", type=int, default=2, help="suites run at once (2)")
    ap.add_argument("--timeout", type=int, default=0,
                    help="seconds per suite before it counts as a hang "
                         "(420; 120 with --quick)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each suite up to N times under the preload; "
                         "the first run that does not pass counts (1)")
    ap.add_argument("--logs", default="",
                    help="keep every suite's log here (default: a temporary "
                         "folder; only the logs of differing suites are kept)")
    ap.add_argument("so", help="path to libnitroheap.so")
    ap.add_argument("option_sets", nargs="*",
                    help='NITROHEAP_OPTIONS values (default: "" mode=strict)')
    args = ap.parse_args()

    so = os.path.abspath(args.so)
    if not os.path.isfile(so):
        print("error: preload library %r not found" % args.so, file=sys.stderr)
        return 2
    if args.timeout <= 0:
        args.timeout = 120 if args.quick else 420
    option_sets = args.option_sets if args.option_sets else ["", "mode=strict"]
    if args.suites:
        by_name = dict(FULL_SUITES + QUICK_SUITES)
        suites = [(s, by_name.get(s, [])) for s in args.suites.split()]
    else:
        suites = QUICK_SUITES if args.quick else FULL_SUITES
    if not os.path.exists("/usr/lib/python3.11/test/libregrtest"):
        print("error: CPython's tests are not installed "
              "(apt-get install libpython3.11-testsuite)", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, flush=True)

    scratch = tempfile.mkdtemp(prefix="nitroheap_cpython.",
                               dir=os.environ.get("TEST_TMPDIR") or None)
    if args.logs:
        logs_root, keep_all = os.path.abspath(args.logs), True
    elif os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR"):
        logs_root, keep_all = os.path.join(
            os.environ["TEST_UNDECLARED_OUTPUTS_DIR"], "cpython_logs"), False
    else:
        logs_root, keep_all = tempfile.mkdtemp(prefix="nitroheap_cpython_logs."), False
    os.makedirs(logs_root, exist_ok=True)

    def shown(path):
        # Under Bazel the logs end up in the test's outputs.zip.
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs and path.startswith(outputs + os.sep):
            return "outputs.zip: " + os.path.relpath(path, outputs)
        return path
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp)
    env0 = base_env(tmp)

    # The preload must really serve the python processes.
    probe = ("import ctypes; f = getattr(ctypes.CDLL(None), 'nitro_is_active', None); "
             "print(f() if f else -1)")
    for opts in option_sets:
        env = dict(env0, LD_PRELOAD=so, NITROHEAP_OPTIONS=opts)
        out = subprocess.run([PYTHON, "-c", probe], env=env, capture_output=True,
                             text=True, timeout=60)
        if out.stdout.strip() != "1":
            print("error: with NITROHEAP_OPTIONS=%r python does not run on NitroHeap "
                  "(nitro_is_active: %r; stderr: %s)" % (
                      opts, out.stdout.strip(), out.stderr.strip()[:300]),
                  file=sys.stderr)
            return 2

    log("CPython %s regression tests, %d suites, %d at a time, --timeout %ds" % (
        subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                       env=env0, capture_output=True, text=True).stdout.strip(),
        len(suites), args.jobs, args.timeout))
    log("NitroHeap: %s" % so)
    total_start = time.monotonic()

    log("\n== reference run (no preload)")
    ref, ref_s = run_config("reference", suites, env0, logs_root, scratch,
                            args.jobs, args.timeout, log)
    log("   took %.0fs" % ref_s)
    compared = [s for s, _ in suites if ref[s].result == "passed"]
    excluded = [s for s, _ in suites if ref[s].result != "passed"]

    runs = []
    for opts in option_sets:
        label = "NITROHEAP_OPTIONS=%s" % (opts if opts else '""')
        log("\n== LD_PRELOAD=%s %s" % (os.path.basename(so), label))
        env = dict(env0, LD_PRELOAD=so, NITROHEAP_OPTIONS=opts)
        outs, secs = run_config(label, [(s, e) for s, e in suites if s in compared],
                                env, logs_root, scratch, args.jobs, args.timeout, log,
                                repeat=max(1, args.repeat))
        log("   took %.0fs" % secs)
        runs.append((opts, label, outs))

    # Report.
    log("\n== summary")
    keep_logs = set()
    if excluded:
        log("excluded (not passing even without the preload, so not compared):")
        for s in excluded:
            o = ref[s]
            keep_logs.add(o.log_path)
            log("  %-32s %s%s" % (s, o.result, (" (%s)" % o.detail) if o.detail else ""))
            if o.result in ("failed", "crashed", "hang", "env changed", "error"):
                for name in o.failing[:6]:
                    log("      %s" % name)
    same = differ = regressions = 0
    for opts, label, outs in runs:
        diffs = [s for s in compared if outs[s].result != ref[s].result]
        same += len(compared) - len(diffs)
        differ += len(diffs)
        log("\n%s: %d of %d suites as without the preload%s" % (
            label, len(compared) - len(diffs), len(compared),
            "" if diffs else " (all)"))
        for s in compared:
            o, r = outs[s], ref[s]
            if o.result == r.result and o.seconds > max(3 * r.seconds, r.seconds + 60):
                # Same result, but something waited for a timeout (a process
                # that did not exit, a lost signal): worth a look.
                log("  SLOWER %s: %s in %.0fs, %.0fs without the preload (not "
                    "counted; log: %s)" % (s, o.result, o.seconds, r.seconds,
                                           shown(o.log_path)))
                keep_logs.add(o.log_path)
        for s in diffs:
            o = outs[s]
            regressions += 1
            keep_logs.add(o.log_path)
            keep_logs.add(ref[s].log_path)
            log("  DIFFERS %s: %s without the preload, %s with it%s" % (
                s, ref[s].result, o.result, (" (%s)" % o.detail) if o.detail else ""))
            for name in o.failing[:20]:
                log("      %s" % name)
            if len(o.failing) > 20:
                log("      ... %d more" % (len(o.failing) - 20))
            log("    lines from the log (%s):" % shown(o.log_path))
            for line in excerpt(o):
                log("      | %s" % line)

    if not keep_all:
        for dirpath, _, files in os.walk(logs_root):
            for name in files:
                path = os.path.join(dirpath, name)
                if path not in keep_logs:
                    os.unlink(path)
        for dirpath, dirs, files in sorted(os.walk(logs_root), reverse=True):
            if not dirs and not files and dirpath != logs_root:
                os.rmdir(dirpath)
    shutil.rmtree(scratch, ignore_errors=True)
    if keep_logs or keep_all:
        log("\nlogs: %s" % shown(logs_root))
    elif not os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR"):
        shutil.rmtree(logs_root, ignore_errors=True)

    log("(%d suites compared in %d option set(s), %d excluded; %.0fs in all)" % (
        len(compared), len(runs), len(excluded), time.monotonic() - total_start))
    log("cpython: %d passed, %d failed" % (same, differ))
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
