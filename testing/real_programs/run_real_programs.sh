#!/usr/bin/env bash
# Runs real, allocation-heavy programs twice -- plainly and with
# LD_PRELOAD=libnitroheap.so -- and checks that stdout and exit status are
# identical. Also proves that NitroHeap really served the preloaded runs and
# that NITROHEAP=legacy mode still works.
#
# Usage: run_real_programs.sh [path/to/libnitroheap.so]
#        (or set NITROHEAP_SO). Set KEEP_TMP=1 to keep the work directory.
#
# Output: one "PASS name" / "FAIL name" line per case, then "N passed, M failed".
# Exit status is non-zero if any case failed.
set -euo pipefail

SO="${1:-${NITROHEAP_SO:-}}"
if [[ -z "$SO" ]]; then
  echo "usage: $0 path/to/libnitroheap.so   (or set NITROHEAP_SO)" >&2
  exit 2
fi
if [[ ! -f "$SO" ]]; then
  echo "error: preload library '$SO' not found" >&2
  exit 2
fi
SO="$(cd "$(dirname "$SO")" && pwd)/$(basename "$SO")"   # absolute: cases cd around

PY=/usr/bin/python3            # Debian's python, not a pyenv shim on PATH
CASE_TIMEOUT="${CASE_TIMEOUT:-120}"
for tool in "$PY" g++ git sort sha256sum timeout awk tr uniq diff redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "error: required tool '$tool' not found" >&2; exit 2; }
done

WORK="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/nitroheap_real_programs.XXXXXX")"
cleanup() {
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "(work directory kept: $WORK)" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# Options for every preloaded run (second argument), e.g. "mode=strict" or
# "sample_rate=1"; read before the environment is cleaned.
EXTRA_OPTS="${2:-}"
OPTS="${EXTRA_OPTS:-mode=balanced}"
STATS_OPTS="stats_print=1${EXTRA_OPTS:+,$EXTRA_OPTS}"

# Deterministic, hermetic environment for every run (both modes).
unset LD_PRELOAD NITROHEAP NITROHEAP_OPTIONS
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export PY

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1"; }

# run_in DIR FUNC [VAR=value...]: runs case function FUNC in a fresh bash inside
# DIR (HOME=DIR) under a time limit, with the given extra environment. The extra
# environment (e.g. LD_PRELOAD) applies to bash and everything it spawns.
run_in() {
  local dir=$1 fn=$2
  shift 2
  (cd "$dir" && HOME="$dir" timeout -k 10 "$CASE_TIMEOUT" env "$@" bash -euo pipefail -c "$fn")
}

# describe_rc RC: human-readable exit status.
describe_rc() {
  case "$1" in
    124) echo "124 (timed out after ${CASE_TIMEOUT}s)" ;;
    137) echo "137 (killed, SIGKILL)" ;;
    *) if (($1 > 128)); then echo "$1 (signal $(($1 - 128)))"; else echo "$1"; fi ;;
  esac
}

show_stderr() {  # show_stderr LABEL FILE
  if [[ -s "$2" ]]; then
    echo "  --- $1 stderr (last 30 lines) ---"
    tail -n 30 "$2" | sed 's/^/  /'
  fi
}

# compare_case NAME FUNC: runs FUNC plainly and with LD_PRELOAD and compares.
compare_case() {
  local name=$1 fn=$2
  local dir
  dir="$(mktemp -d "$WORK/$name.XXXXXX")"
  mkdir "$dir/plain" "$dir/preload"
  local rc_plain=0 rc_pre=0
  run_in "$dir/plain" "$fn" >"$dir/plain.out" 2>"$dir/plain.err" || rc_plain=$?
  run_in "$dir/preload" "$fn" LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$OPTS" >"$dir/preload.out" 2>"$dir/preload.err" || rc_pre=$?
  compare_outputs "$name" "$dir" "$rc_plain" "$rc_pre" preload
}

# compare_outputs NAME DIR RC_PLAIN RC_OTHER OTHER_LABEL
compare_outputs() {
  local name=$1 dir=$2 rc_plain=$3 rc_other=$4 other=$5
  local why=()
  ((rc_plain == 0)) || why+=("baseline (plain) run failed: exit $(describe_rc "$rc_plain")")
  [[ -s "$dir/plain.out" ]] || why+=("baseline (plain) run printed nothing")
  ((rc_plain == rc_other)) || why+=("exit status differs: plain=$(describe_rc "$rc_plain") $other=$(describe_rc "$rc_other")")
  cmp -s "$dir/plain.out" "$dir/$other.out" || why+=("stdout differs")
  if ((${#why[@]} == 0)); then
    pass "$name"
    return
  fi
  fail "$name"
  local w
  for w in "${why[@]}"; do echo "  $w"; done
  if ! cmp -s "$dir/plain.out" "$dir/$other.out"; then
    echo "  --- diff -u plain $other (first 60 lines) ---"
    diff -u --label plain --label "$other" "$dir/plain.out" "$dir/$other.out" | head -n 60 | sed 's/^/  /' || true
  fi
  show_stderr plain "$dir/plain.err"
  show_stderr "$other" "$dir/$other.err"
}

###############################################################################
# Case bodies. Each runs in an empty temp dir, prints deterministic output to
# stdout, and exits 0 on success. They are exported so that `bash -c` sees them.
###############################################################################

case_python_threads() {
  cat >prog.py <<'EOF'
import queue
import threading

results = {}
lock = threading.Lock()

def worker(n):
    d = {}
    lst = []
    for i in range(30000 + 1000 * n):
        k = "k%d_%d" % (n, i)
        d[k] = [i, str(i * n), (i, n), {"v": i}]
        lst.append(k * (i % 7 + 1))
        if i % 3 == 0:
            d.pop("k%d_%d" % (n, i // 2), None)
    s = sum(len(x) for x in lst) + sum(v[0] for v in d.values())
    with lock:
        results[n] = (len(d), len(lst), s)

threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for n in sorted(results):
    print("worker", n, *results[n])

# Producer/consumer: objects allocated in one thread, freed in another.
q = queue.Queue(maxsize=64)
totals = []
def producer(seed):
    for i in range(4000):
        q.put([bytearray((seed + i) % 97 + 1) for _ in range(8)] + [str(i) * 20])
    q.put(None)
def consumer():
    total = 0
    done = 0
    while done < 3:
        item = q.get()
        if item is None:
            done += 1
            continue
        total += sum(len(x) for x in item)
        del item
    totals.append(total)
ps = [threading.Thread(target=producer, args=(s,)) for s in (1, 2, 3)]
c = threading.Thread(target=consumer)
c.start()
for p in ps:
    p.start()
for p in ps:
    p.join()
c.join()
print("cross-thread total", totals)
EOF
  "$PY" prog.py
}

case_python_json() {
  cat >prog.py <<'EOF'
import hashlib
import json
import random

rng = random.Random(42)

def build(depth):
    if depth == 0:
        r = rng.random()
        if r < 0.3:
            return rng.randint(-10**9, 10**9)
        if r < 0.6:
            return "".join(rng.choice("abcdefghij\u00e9\u4e2d") for _ in range(rng.randint(0, 40)))
        if r < 0.8:
            return round(rng.uniform(-1e6, 1e6), 6)
        return rng.choice([True, False, None])
    if rng.random() < 0.5:
        return [build(depth - 1) for _ in range(rng.randint(1, 8))]
    return {"key%d_%d" % (depth, i): build(depth - 1) for i in range(rng.randint(1, 8))}

data = {"items": [build(5) for _ in range(40)], "meta": {"version": 3, "name": "nitro"}}
for rnd in range(3):
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    back = json.loads(text)
    assert back == data, "round trip mismatch"
    text2 = json.dumps(back, sort_keys=True, ensure_ascii=False)
    assert text2 == text
    data = back
pretty = json.dumps(data, sort_keys=True, indent=2)
print("compact bytes", len(text.encode()))
print("pretty bytes", len(pretty))
print("sha256", hashlib.sha256(text.encode()).hexdigest())
print("sha256 pretty", hashlib.sha256(pretty.encode()).hexdigest())
EOF
  "$PY" prog.py
}

case_python_sqlite3() {
  cat >prog.py <<'EOF'
import sqlite3

con = sqlite3.connect("test.db")
cur = con.cursor()
cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, cat TEXT, val INTEGER, name TEXT)")
rows = []
s = 12345
for i in range(10000):
    s = (s * 1103515245 + 12345) % 2**31
    rows.append((i, "cat%d" % (s % 13), s % 100000, "name-%d-%s" % (i, "x" * (s % 50))))
cur.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
con.commit()
cur.execute("CREATE INDEX t_cat ON t(cat)")
print("count", cur.execute("SELECT COUNT(*) FROM t").fetchone()[0])
print("sum/min/max", cur.execute("SELECT SUM(val), MIN(val), MAX(val) FROM t").fetchone())
print("avg", "%.4f" % cur.execute("SELECT AVG(val) FROM t").fetchone()[0])
for row in cur.execute("SELECT cat, COUNT(*), SUM(val), MAX(LENGTH(name)) FROM t GROUP BY cat ORDER BY cat"):
    print("group", *row)
print("top", cur.execute("SELECT id, val FROM t ORDER BY val DESC, id LIMIT 5").fetchall())
print("join", cur.execute(
    "SELECT COUNT(*) FROM t a JOIN t b ON a.val = b.val AND a.id < b.id").fetchone()[0])
cur.execute("UPDATE t SET val = val + 1 WHERE id % 7 = 0")
cur.execute("DELETE FROM t WHERE val % 5 = 0")
con.commit()
print("after update/delete", cur.execute("SELECT COUNT(*), SUM(val) FROM t").fetchone())
con.execute("VACUUM")
print("distinct names", cur.execute("SELECT COUNT(DISTINCT name) FROM t").fetchone()[0])
con.close()
EOF
  "$PY" prog.py
}

case_cxx_compile() {
  cat >prog.cc <<'EOF'
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

int main() {
  std::map<std::string, std::vector<int>> index;
  std::vector<std::string> words;
  unsigned s = 1;
  for (int i = 0; i < 50000; ++i) {
    s = s * 1103515245u + 12345u;
    int len = 1 + (s >> 16) % 6;
    std::string w;
    for (int j = 0; j < len; ++j) {
      s = s * 1103515245u + 12345u;
      w.push_back(static_cast<char>('a' + (s >> 16) % 5));
    }
    index[w].push_back(i);
    words.push_back(std::move(w));
  }
  std::cout << "words " << words.size() << " distinct " << index.size() << "\n";
  std::vector<std::pair<size_t, std::string>> by_count;
  for (const auto& kv : index) by_count.emplace_back(kv.second.size(), kv.first);
  std::sort(by_count.begin(), by_count.end(),
            [](const auto& a, const auto& b) {
              return a.first != b.first ? a.first > b.first : a.second < b.second;
            });
  for (size_t i = 0; i < 10 && i < by_count.size(); ++i)
    std::cout << by_count[i].second << " " << by_count[i].first << "\n";
  std::ostringstream os;
  for (size_t i = 0; i < 20; ++i) os << words[i] << (i + 1 < 20 ? "," : "");
  std::cout << os.str() << "\n";
  long long total = 0;
  for (const auto& kv : index)
    for (int v : kv.second) total += v % 1000;
  std::cout << "total " << total << std::endl;
  return 0;
}
EOF
  # The compiler driver, cc1plus, as, collect2 and ld all inherit LD_PRELOAD.
  local rc=0
  g++ -O1 -std=c++17 -Wall -o prog prog.cc || rc=$?
  echo "compile rc=$rc"
  [[ $rc == 0 ]] || exit 1
  # Run the produced binary without the preload: this checks the compiler's output.
  env -u LD_PRELOAD ./prog
}

case_git() {
  export GIT_AUTHOR_NAME="Nitro Tester" GIT_AUTHOR_EMAIL="nitro@example.com"
  export GIT_COMMITTER_NAME="Nitro Tester" GIT_COMMITTER_EMAIL="nitro@example.com"
  export GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"
  git init -q -b main repo
  cd repo
  git config user.name "Nitro Tester"
  git config user.email "nitro@example.com"
  git config commit.gpgsign false
  local c f
  for c in 1 2 3 4 5 6; do
    for f in $(seq 1 20); do
      awk -v c="$c" -v f="$f" 'BEGIN { for (i = 0; i < 200; i++) if ((i * f + c) % 5 != 0 || c == 1) print "file", f, "line", i, "rev", (i % c) }' \
        >"file_$f.txt"
    done
    mkdir -p "dir$c"
    seq 1 $((c * 100)) >"dir$c/numbers.txt"
    git add -A
    git commit -q -m "commit number $c"
  done
  git rm -q file_20.txt
  git mv file_19.txt renamed_19.txt
  git commit -q -m "remove and rename"
  echo "commits: $(git log --oneline | wc -l)"
  git log --oneline
  git diff HEAD~1 --stat
  git diff HEAD~3 HEAD~2 --stat
  git diff HEAD~2 HEAD~1 -- file_3.txt | sha256sum
  git gc --quiet
  git fsck --no-progress 2>&1
  echo "objects: $(git rev-list --all --objects | wc -l)"
  git status --short | wc -l
  git blame -s file_7.txt | sha256sum
  git archive --format=tar HEAD | tar -tf - | sort | sha256sum
}

case_sort() {
  # 200k pseudo-random lines (Park-Miller generator keeps values exact in awk).
  awk 'BEGIN { s = 12345; for (i = 0; i < 200000; i++) { s = (s * 16807) % 2147483647;
               printf "%d key%d %s\n", s % 1000003, s % 977, substr("abcdefghijklmnopqrstuvwxyz", s % 26 + 1, s % 9 + 1) } }' >input.txt
  wc -l <input.txt
  sha256sum <input.txt
  sort input.txt | sha256sum
  sort -n -r input.txt | sha256sum
  sort -k2,2 -k1,1n input.txt | sha256sum
  sort -u -k3,3 input.txt | wc -l
  # Small buffer forces temp files and a multi-way merge.
  sort -S 1M -T . --parallel=2 -n input.txt | sha256sum
}

case_shell_pipeline() {
  local i
  for i in $(seq 50); do echo "$i" | tr 0-9 a-j; done | sort | uniq -c
  for i in $(seq 200); do echo $((i * 7919 % 1000)); done | sort -n | uniq -c | sort -k1,1nr -k2,2n | head -n 5
  seq 1 20000 | awk '{ print $1 % 17, $1 }' | sort -k1,1n -s | cut -d' ' -f1 | uniq -c
  printf '%s\n' {a..z}{a..z} | xargs -n 50 echo | wc -l
}

case_python_fork_subprocess() {
  cat >prog.py <<'EOF'
import os
import subprocess
import sys
import threading

def child_work(k):
    data = [str(i) * 3 for i in range(100000 + k)]
    d = {s: len(s) for s in data}
    return sum(d.values()) % 251

# subprocess (fork + exec)
r = subprocess.run(["/bin/echo", "hello", "from", "echo"], capture_output=True, text=True, check=True)
print("echo:", r.stdout.strip())
out = subprocess.check_output(["sort", "-n"], input="\n".join(str((i * 37) % 101) for i in range(101)) + "\n", text=True)
print("sort lines:", len(out.splitlines()), "first/last:", out.splitlines()[0], out.splitlines()[-1])
r = subprocess.run([sys.executable, "-c", "import sys; x=[list(range(i)) for i in range(500)]; sys.exit(sum(map(len,x)) % 200)"])
print("python child exit:", r.returncode)
p1 = subprocess.Popen(["seq", "1", "5000"], stdout=subprocess.PIPE)
p2 = subprocess.Popen(["awk", "{s += $1} END {print s}"], stdin=p1.stdout, stdout=subprocess.PIPE, text=True)
p1.stdout.close()
print("pipeline sum:", p2.communicate()[0].strip(), p1.wait(), p2.returncode)

# os.fork: the child allocates and exits with a code derived from its work.
for k in range(5):
    pid = os.fork()
    if pid == 0:
        os._exit(child_work(k))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print("fork child", k, "exit", code, "ok" if code == child_work(k) else "MISMATCH")

# fork while other threads are busy allocating (allocator state must survive fork).
stop = threading.Event()
def churn(n):
    while not stop.is_set():
        x = [bytes(64 + (j % 300)) for j in range(500)]
        y = {j: str(j) for j in range(200)}
        del x, y
ts = [threading.Thread(target=churn, args=(n,)) for n in range(2)]
for t in ts:
    t.start()
codes = []
for k in range(20):
    pid = os.fork()
    if pid == 0:
        x = [str(i) for i in range(20000)]
        os._exit(len(x) % 256 == 32 and 7 or 1)
    _, status = os.waitpid(pid, 0)
    codes.append(os.waitstatus_to_exitcode(status))
stop.set()
for t in ts:
    t.join()
print("fork-with-threads child exits:", sorted(set(codes)), len(codes))

# nested: forked child itself spawns a subprocess
pid = os.fork()
if pid == 0:
    r = subprocess.run(["/bin/sh", "-c", "exit 42"])
    os._exit(r.returncode)
_, status = os.waitpid(pid, 0)
print("nested exit:", os.waitstatus_to_exitcode(status))
EOF
  "$PY" prog.py
}

case_python_multiprocessing() {
  cat >prog.py <<'EOF'
import multiprocessing

def work(n):
    d = {}
    for i in range(5000 + n * 100):
        d.setdefault(i % 101, []).append(str(i * n))
    return n, len(d), sum(len(v) for v in d.values()), sum(len(s) for v in d.values() for s in v)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        res = pool.map(work, range(40))
        res2 = sorted(pool.imap_unordered(work, range(40, 60), chunksize=3))
    for r in res + res2:
        print(*r)
    q = ctx.Queue()
    p = ctx.Process(target=lambda q: q.put(sorted(str(i) for i in range(10000))[:5]), args=(q,))
    p.start()
    print("process result:", q.get())
    p.join()
    print("process exit:", p.exitcode)
EOF
  "$PY" prog.py
}

IS_ACTIVE_PY='import ctypes; print(ctypes.CDLL(None).nitro_is_active())'
export IS_ACTIVE_PY
# redis-server (Debian's, linked with libjemalloc) reports its heap from
# jemalloc's mallctl: INFO memory's allocator_* fields and MEMORY PURGE. Under
# the preload NitroHeap must answer them about the heap that serves redis
# (before abi/mallctl.cc, the jemalloc redis still loads answered about an
# empty heap: allocator_allocated 28672 with 68 MiB of keys). Plain, jemalloc
# answers; the printed properties must be the same.
case_redis_memory() {
  # A relative socket path: an absolute one under Bazel's sandbox exceeds
  # the 107 bytes of sun_path.
  redis-server --port 0 --unixsocket redis.sock --save "" --appendonly no \
    --daemonize no >redis.log 2>&1 &
  local pid=$! i
  for i in $(seq 100); do [[ -S redis.sock ]] && break; sleep 0.05; done
  cli() { redis-cli -s redis.sock "$@"; }
  field() { cli info memory | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }
  # INFO's allocator_* fields are copies that serverCron refreshes every
  # 100 ms, so a reading right after a command can predate it (CI read
  # jemalloc's heap before FLUSHALL after it). Read once three periods have
  # passed and two readings 200 ms apart agree (10 s at most).
  settled_field() {
    local prev cur n
    sleep 0.3; prev=$(field "$1")
    for n in $(seq 50); do
      sleep 0.2; cur=$(field "$1")
      [[ "$cur" == "$prev" ]] && break
      prev=$cur
    done
    echo "$cur"
  }
  # 20,000 keys of 1000 bytes (about 20 MB of values), by a Lua loop.
  cli eval "for i=1,20000 do redis.call('set', 'key:' .. i, string.rep('v', 1000)) end return 1" 0 >/dev/null
  local used alloc active resident
  alloc=$(settled_field allocator_allocated); used=$(field used_memory)
  active=$(field allocator_active); resident=$(field allocator_resident)
  echo "allocated within 80-125% of used_memory: $(( alloc * 100 >= used * 80 && alloc * 100 <= used * 125 ))"
  echo "active >= allocated: $(( active >= alloc )); resident >= active: $(( resident >= active ))"
  echo "memory purge: $(cli memory purge | tr -d '\r')"
  cli flushall >/dev/null
  local after
  after=$(settled_field allocator_allocated)
  echo "allocated after FLUSHALL below a quarter of before: $(( after * 4 < alloc ))"
  cli shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
}

case_is_active() {
  "$PY" -c "$IS_ACTIVE_PY"
}

case_stats_print_program() {
  "$PY" -c 'd = {i: str(i) * 10 for i in range(100000)}; print(len(d), sum(map(len, d.values())))'
}

export -f case_redis_memory case_python_threads case_python_json case_python_sqlite3 case_cxx_compile case_git \
  case_sort case_shell_pipeline case_python_fork_subprocess case_python_multiprocessing \
  case_is_active case_stats_print_program

###############################################################################
# 1-5: plain vs LD_PRELOAD comparisons
###############################################################################
compare_case python_threads case_python_threads
compare_case python_json case_python_json
compare_case python_sqlite3 case_python_sqlite3
compare_case cxx_compile case_cxx_compile
compare_case git case_git
compare_case sort case_sort
compare_case shell_pipeline case_shell_pipeline
compare_case python_fork_subprocess case_python_fork_subprocess
compare_case python_multiprocessing case_python_multiprocessing
compare_case redis_memory case_redis_memory

###############################################################################
# 6: proof that NitroHeap really served the preloaded runs
###############################################################################
# expect_output NAME EXPECTED FUNC [VAR=value...]: FUNC's stdout must equal EXPECTED, exit 0.
expect_output() {
  local name=$1 expected=$2 fn=$3
  shift 3
  local dir rc=0
  dir="$(mktemp -d "$WORK/$name.XXXXXX")"
  run_in "$dir" "$fn" "$@" >"$dir/out" 2>"$dir/err" || rc=$?
  if ((rc == 0)) && [[ "$(cat "$dir/out")" == "$expected" ]]; then
    pass "$name"
  else
    fail "$name"
    echo "  expected stdout '$expected' and exit 0; got exit $(describe_rc "$rc"), stdout:"
    sed 's/^/  | /' "$dir/out"
    show_stderr "$name" "$dir/err"
  fi
}

expect_output nitro_is_active 1 case_is_active LD_PRELOAD="$SO"

# The preload is inherited by a whole process tree: every g++ toolchain process
# (g++ driver, cc1plus, as, collect2, ld) must print its own heap report.
toolchain_case() {
  local name=stats_print_toolchain dir rc=0 n
  dir="$(mktemp -d "$WORK/$name.XXXXXX")"
  printf '#include <iostream>\nint main() { std::cout << "hi" << std::endl; }\n' >"$dir/t.cc"
  (cd "$dir" && timeout -k 10 "$CASE_TIMEOUT" env LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$STATS_OPTS" \
    g++ -O1 -o t t.cc) >"$dir/out" 2>"$dir/err" || rc=$?
  n="$(grep -E '^---- NitroHeap heap report \(pid [0-9]+\) ----$' "$dir/err" | sort -u | wc -l)"
  if ((rc == 0 && n >= 4)) && [[ "$("$dir/t")" == hi ]]; then
    pass "$name"
  else
    fail "$name"
    echo "  g++ under LD_PRELOAD+stats_print=1: exit $(describe_rc "$rc"), $n distinct heap reports (want >= 4)"
    show_stderr g++ "$dir/err"
  fi
}
toolchain_case

# stats_print=1: stdout unchanged, stderr carries the heap report.
stats_case() {
  local name=stats_print dir rc_plain=0 rc_pre=0
  dir="$(mktemp -d "$WORK/$name.XXXXXX")"
  mkdir "$dir/plain" "$dir/preload"
  run_in "$dir/plain" case_stats_print_program >"$dir/plain.out" 2>"$dir/plain.err" || rc_plain=$?
  run_in "$dir/preload" case_stats_print_program LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$STATS_OPTS" \
    >"$dir/preload.out" 2>"$dir/preload.err" || rc_pre=$?
  if ! grep -Eq '^---- NitroHeap heap report \(pid [0-9]+\) ----$' "$dir/preload.err"; then
    fail "$name"
    echo "  stderr of the NITROHEAP_OPTIONS=stats_print=1 run lacks the '---- NitroHeap heap report (pid N) ----' header"
    show_stderr preload "$dir/preload.err"
    return
  fi
  compare_outputs "$name" "$dir" "$rc_plain" "$rc_pre" preload
}
stats_case

###############################################################################
# 7: legacy mode (NITROHEAP=legacy forwards everything to glibc)
###############################################################################
expect_output legacy_is_active 0 case_is_active LD_PRELOAD="$SO" NITROHEAP=legacy

legacy_json_case() {
  local name=legacy_json dir rc_plain=0 rc_legacy=0
  dir="$(mktemp -d "$WORK/$name.XXXXXX")"
  mkdir "$dir/plain" "$dir/legacy"
  run_in "$dir/plain" case_python_json >"$dir/plain.out" 2>"$dir/plain.err" || rc_plain=$?
  run_in "$dir/legacy" case_python_json LD_PRELOAD="$SO" NITROHEAP=legacy \
    >"$dir/legacy.out" 2>"$dir/legacy.err" || rc_legacy=$?
  compare_outputs "$name" "$dir" "$rc_plain" "$rc_legacy" legacy
}
legacy_json_case

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
