"""Shared helpers of the nitroheap Python tests.

Every test gets its inputs as arguments from the BUILD file ($(rootpath ...),
relative to the runfiles workspace directory, which is the test's working
directory): --lib=libnitroheap.so, --workload=alloc_workload,
--child=live_child.py, and for some --proto=flight_recorder.proto.
parse_args() takes them off sys.argv before unittest sees it.

The package under test is the one assembled by //bindings/python:nitroheap,
found in the runfiles tree (<runfiles>/nitroheap/bindings/python/nitroheap):
import_nitroheap() puts its parent first on sys.path and checks that this is
the copy Python imported; child processes get the same directory as
PYTHONPATH (package_parent()).
"""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"
ARGS = {}


def parse_args():
    rest = [sys.argv[0]]
    for a in sys.argv[1:]:
        if a.startswith("--") and "=" in a and a[2:].split("=", 1)[0] in ("lib", "workload", "child", "proto"):
            k, v = a[2:].split("=", 1)
            ARGS[k] = os.path.abspath(v)
        else:
            rest.append(a)
    sys.argv[:] = rest
    for k in ("lib", "workload", "child"):
        if k not in ARGS:
            raise SystemExit("testlib: missing --%s=PATH (set in BUILD.bazel)" % k)
        if not os.path.exists(ARGS[k]):
            raise SystemExit("testlib: --%s=%s does not exist" % (k, ARGS[k]))
    return ARGS


def runfiles_dir():
    for var in ("TEST_SRCDIR", "RUNFILES_DIR"):
        if os.environ.get(var):
            return os.environ[var]
    main = os.path.abspath(sys.argv[0])
    marker = ".runfiles" + os.sep
    if marker in main:
        return main[:main.index(marker) + len(".runfiles")]
    raise RuntimeError("cannot find the runfiles directory")


def package_parent():
    """The directory that holds the built nitroheap/ package (a PYTHONPATH entry)."""
    ws = os.environ.get("TEST_WORKSPACE", "nitroheap")
    parent = os.path.join(runfiles_dir(), ws, "bindings", "python")
    if not os.path.isfile(os.path.join(parent, "nitroheap", "__init__.py")):
        raise RuntimeError("the nitroheap package is not in the runfiles at %s" % parent)
    return parent


def import_nitroheap():
    parent = package_parent()
    if sys.path[0] != parent:
        sys.path.insert(0, parent)
    import nitroheap
    where = os.path.dirname(getattr(nitroheap, "__file__", "") or "")
    assert where == os.path.join(parent, "nitroheap"), (
        "imported the wrong nitroheap: %r (wanted %s)" % (where, parent))
    return nitroheap


def clean_env(**extra):
    """The environment for child processes: no inherited preload or options."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NITROHEAP", "LD_PRELOAD", "PYTHON"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["LC_ALL"] = "C"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def preload_env(options=None, pythonpath=True, **extra):
    env = clean_env(**extra)
    env["LD_PRELOAD"] = ARGS["lib"]
    if options is not None:
        env["NITROHEAP_OPTIONS"] = options
    if pythonpath:
        env["PYTHONPATH"] = package_parent()
    return env


def tmpdir():
    return tempfile.mkdtemp(prefix="nitroheap_py_", dir=os.environ.get("TEST_TMPDIR"))


def record_workload(directory, rounds=4000, profile_rate=4096, timeout=60, extra_options="",
                    extra_args=()):
    """Runs alloc_workload under NitroHeap with the flight recorder on and
    returns (path of rec.<pid>.pb, pid, stdout). rounds may be "movable";
    extra_options are appended to NITROHEAP_OPTIONS (",name=value"),
    extra_args are alloc_workload's flags (--silent)."""
    pattern = os.path.join(directory, "rec.%p.pb")
    env = preload_env("flight_recorder=%s,profile_rate=%d%s" % (pattern, profile_rate, extra_options),
                      pythonpath=False)
    p = subprocess.Popen([ARGS["workload"], str(rounds)] + list(extra_args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("alloc_workload failed (%d): %s" % (p.returncode, err.decode()))
    path = os.path.join(directory, "rec.%d.pb" % p.pid)
    if not os.path.isfile(path):
        raise AssertionError("no recording at %s; files: %s; stderr: %s"
                             % (path, os.listdir(directory), err.decode()))
    return path, p.pid, out.decode()


class LiveChild:
    """The live_child.py Python process under LD_PRELOAD (context manager)."""

    def __init__(self, options="telemetry=1", partition=None, seconds=60, ready_timeout=20):
        cmd = [PY, ARGS["child"], "--seconds", str(seconds)]
        if partition:
            cmd += ["--partition", partition]
        env = preload_env(options, PYTHONMALLOC="malloc")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        line = self._readline(ready_timeout)
        if line.strip() != b"ready":
            self.kill()
            raise AssertionError("child did not get ready: %r; stderr: %s"
                                 % (line, self.proc.stderr.read().decode(errors="replace")))
        # The segment exists from the child's start and is rewritten at least
        # every 100 ms: give it two periods to show what the child did.
        import time
        time.sleep(0.25)

    def _readline(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
        return self.proc.stdout.readline()

    def wait_for_segment(self, timeout=10):
        path = "/dev/shm/nitroheap.%d" % self.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return path
            time.sleep(0.02)
        raise AssertionError("no segment %s after %.0f s" % (path, timeout))

    def finish(self, timeout=20):
        """Closes stdin: the child exits normally. Returns its exit status."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        # A killed child leaves its segment behind; do not leave it in /dev/shm.
        with contextlib.suppress(OSError):
            os.unlink("/dev/shm/nitroheap.%d" % self.pid)
        return False


def run_py(code, env, timeout=60):
    """Runs /usr/bin/python3 -c CODE; returns CompletedProcess (text)."""
    return subprocess.run([PY, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
