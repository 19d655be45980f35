#!/usr/bin/env bash
# A hostile local user against NitroHeap (issue 9): every attack that worked
# once, run as user `nobody` against victims running as root, in private
# mount and PID namespaces (a tmpfs of its own at /dev/shm, pids from 1), with
# fs.protected_regular/_symlinks/_fifos at 0 for the duration (restored
# after), so that the kernel's own protections hide nothing.
#
#   attack_test.sh LIBNITROHEAP VICTIM PYTHON_PACKAGE_PARENT VICTIM_LINKED
#
# Needs root (namespaces, setpriv to another user). Each check prints
# "ok - ..." or "FAIL - ..."; the exit status is the number of failures.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [[ -z "${NH_SECURITY_INNER:-}" ]]; then
  if [[ $# -ne 4 ]]; then
    echo "usage: $0 LIBNITROHEAP VICTIM PYTHON_PACKAGE_PARENT VICTIM_LINKED" >&2
    exit 2
  fi
  if [[ "$(id -u)" != 0 ]]; then
    echo "FAIL - the security suite needs root: it runs the attacker as another user (setpriv)" \
         "in private mount and PID namespaces (unshare); run the tests as root (sudo ./nitro test)" >&2
    exit 1
  fi
  for tool in unshare setpriv mkfifo python3 timeout; do
    command -v "$tool" >/dev/null || { echo "FAIL - $tool is missing" >&2; exit 1; }
  done
  # Scratch space the unprivileged user can read (Bazel's runfiles live
  # under /root, which it cannot): the library, the victim and the Python
  # package are copied there.
  scratch="$(mktemp -d /tmp/nitroheap-security.XXXXXX)"
  chmod 755 "$scratch"
  mkdir -p "$scratch/bin"
  cp "$1" "$scratch/bin/libnitroheap.so"
  cp "$2" "$scratch/bin/victim"
  cp -rL "$3/nitroheap" "$scratch/bin/nitroheap"
  cp "$4" "$scratch/bin/victim_linked"
  chmod -R a+rX "$scratch/bin"
  # The kernel's protections are global: set to 0 for the run, restored after.
  declare -A saved=()
  for k in protected_regular protected_symlinks protected_fifos; do
    f=/proc/sys/fs/$k
    v="$(cat "$f" 2>/dev/null || echo unknown)"
    saved[$k]="$v"
    if [[ "$v" != 0 && "$v" != unknown ]]; then
      if ! echo 0 > "$f" 2>/dev/null; then
        echo "note - fs.$k is $v and cannot be changed here: the kernel may block some attacks by itself"
      fi
    fi
  done
  NH_SECURITY_INNER=1 NH_SCRATCH="$scratch" \
    unshare --mount --pid --fork --mount-proc --propagation private bash "$0"
  rc=$?
  for k in "${!saved[@]}"; do
    [[ "${saved[$k]}" != unknown ]] && echo "${saved[$k]}" > "/proc/sys/fs/$k" 2>/dev/null
  done
  rm -rf "$scratch"
  exit "$rc"
fi

# ---- inside the namespaces ------------------------------------------------------
S="$NH_SCRATCH"
mount -t tmpfs -o mode=1777,size=4g nitroheap-shm /dev/shm || { echo "FAIL - cannot mount a private /dev/shm"; exit 1; }
mkdir -p "$S/work" && mount -t tmpfs -o mode=755 nitroheap-scratch "$S/work" || { echo "FAIL - cannot mount a scratch tmpfs"; exit 1; }
cp -r "$S/bin" "$S/work/bin"
BIN="$S/work/bin"
LIB="$BIN/libnitroheap.so"
VICTIM="$BIN/victim"
PUBLIC="$S/work/public"        # a world-writable sticky directory, like /tmp
mkdir -m 1777 "$PUBLIC"
export PYTHONPATH="$BIN"
failures=0
ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
preload() { env LD_PRELOAD="$LIB" "$@"; }
no_escape() { ! LC_ALL=C grep -aq $'\x1b' "$@" && ! LC_ALL=C grep -aq $'\xc2\x9b' "$@"; }

echo "# fs.protected_regular=$(cat /proc/sys/fs/protected_regular) protected_symlinks=$(cat /proc/sys/fs/protected_symlinks) protected_fifos=$(cat /proc/sys/fs/protected_fifos); pid namespace: this shell is pid $$"

# ---- 1. denial of service through /dev/shm -------------------------------------
# FIFOs at every name a victim can get, and 50,000 other planted files: every
# start must go on (the sweep never opens a FIFO and runs on the background
# thread, bounded), and nothing of the planter's is removed.
as_nobody python3 - <<'EOF'
import os
for pid in range(1, 3000):
    os.mkfifo("/dev/shm/nitroheap.%d" % pid)
for i in range(50000):
    fd = os.open("/dev/shm/nitroheap.%d" % (100000 + i), os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    os.utime("/dev/shm/nitroheap.%d" % (100000 + i), (1, 1))
EOF
planted=$(ls /dev/shm | wc -l)
hung=0; bad=0
t0=$(date +%s%N)
for i in $(seq 20); do
  timeout 20 env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 20 2>"$S/work/dos.err"
  rc=$?
  if [[ $rc == 124 ]]; then hung=$((hung + 1)); elif [[ $rc != 0 ]]; then bad=$((bad + 1)); fi
done
t1=$(date +%s%N)
if [[ $hung == 0 && $bad == 0 ]]; then ok "20 victims start and finish with a FIFO at their segment's name and $planted planted files ($(( (t1 - t0) / 20000000 )) ms per run)"; else fail "victims with planted FIFOs: $hung hung, $bad failed: $(head -c 300 "$S/work/dos.err")"; fi
if grep -q "not this user's segment" "$S/work/dos.err"; then ok "a victim whose segment name is taken says so ($(wc -l < "$S/work/dos.err") lines): $(head -1 "$S/work/dos.err")"; else fail "no diagnostic for a taken segment name: $(head -c 300 "$S/work/dos.err")"; fi
# A victim held long enough for its background thread to sweep.
timeout 30 env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 1500 || fail "a victim running 1.5 s among planted files failed"
left=$(ls /dev/shm | wc -l)
if [[ $left -ge $planted ]]; then ok "nothing of the planter's was removed ($left files)"; else fail "the sweep removed $((planted - left)) files of another user"; fi
find /dev/shm -mindepth 1 -delete

# Start-up does not read /dev/shm: the directory is listed (getdents64) only
# by the background thread, never by the thread that runs main.
if command -v strace >/dev/null; then
  as_nobody python3 -c 'import os
for i in range(2000): open("/dev/shm/nitroheap.%d" % (200000 + i), "w").close()'
  timeout 30 strace -f -qq -e trace=execve,getdents64 -o "$S/work/strace.out" env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 600 >/dev/null 2>&1
  # Lines are "TID syscall(...)"; the first is the execve of the main thread.
  main_tid=$(awk 'NR == 1 {print $1}' "$S/work/strace.out")
  main_lists=$(awk -v t="$main_tid" '$1 == t && /getdents64/' "$S/work/strace.out" | wc -l)
  other_lists=$(awk -v t="$main_tid" '$1 != t && /getdents64/' "$S/work/strace.out" | wc -l)
  if [[ $other_lists -gt 0 && $main_lists == 0 ]]; then ok "the stale-segment sweep lists /dev/shm on the background thread only ($other_lists getdents64 calls there, none on the main thread)"
  elif [[ $main_lists != 0 ]]; then fail "the main thread listed /dev/shm $main_lists times (the sweep is on the start-up path)"
  else fail "no sweep within 600 ms (expected one on the background thread)"; fi
  find /dev/shm -mindepth 1 -delete
fi

# ---- 2. segment hijack ------------------------------------------------------------
# The attacker plants 0666 files at every name a fork child can get and
# truncates them over and over while the victim's children run: no child
# may map them (they are not root's), so none dies of SIGBUS, and none of
# them is written.
as_nobody python3 - <<'EOF'
import os
for pid in range(1, 4000):
    fd = os.open("/dev/shm/nitroheap.%d" % pid, os.O_CREAT | os.O_WRONLY, 0o666)
    os.fchmod(fd, 0o666)
    os.ftruncate(fd, 512 * 1024)
    os.write(fd, b"PLANTED!")
    os.close(fd)
EOF
as_nobody python3 - <<'EOF' &
import os, time
end = time.time() + 6
while time.time() < end:
    for name in os.listdir("/dev/shm"):
        try:
            os.truncate("/dev/shm/" + name, 0)
            os.truncate("/dev/shm/" + name, 512 * 1024)
        except OSError:
            pass
EOF
truncator=$!
hijack_bad=0
for round in 1 2 3; do
  timeout 60 env LD_PRELOAD="$LIB" "$VICTIM" --fork 40 --alloc-ms 300 2>"$S/work/hijack.err" || { hijack_bad=1; break; }
done
wait "$truncator"
if [[ $hijack_bad == 0 ]]; then ok "3 x 40 fork children survive planted 0666 segments truncated under them"; else fail "fork children under hijack: $(head -c 300 "$S/work/hijack.err")"; fi
written=$(grep -l "NITROHP" /dev/shm/nitroheap.* 2>/dev/null | wc -l)
foreign=$(find /dev/shm -name 'nitroheap.*' ! -user nobody | wc -l)
if [[ $written == 0 ]]; then ok "no planted file was written by a victim"; else fail "$written planted files hold a segment header"; fi
if [[ $foreign == 0 ]]; then ok "no victim segment took a planted name"; else fail "$foreign root segments found among planted names"; fi
find /dev/shm -mindepth 1 -delete

# ---- 3. lost segments -----------------------------------------------------------
# 100 victims at once, each checking every 50 ms for 1.5 s that its segment
# is there and its own, while segments of killed processes are around.
for i in $(seq 10); do
  env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 10000 & k=$!
  sleep 0.05; kill -9 $k; wait $k 2>/dev/null
done
stale=$(ls /dev/shm | wc -l)
pids=()
for i in $(seq 100); do
  env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 1500 --check-segment 2>>"$S/work/lost.err" & pids+=($!)
done
lost=0
for p in "${pids[@]}"; do wait "$p" || lost=$((lost + 1)); done
if [[ $lost == 0 ]]; then ok "100 victims started at once keep their segments ($stale stale segments around)"; else fail "$lost of 100 victims lost their segment: $(sort "$S/work/lost.err" | uniq -c | head -3)"; fi
left=$(ls /dev/shm | wc -l)
# The killed processes' segments were written seconds ago: a sweep keeps
# them for a minute (their writer may live in another pid namespace).
if [[ $left == "$stale" ]]; then ok "every live victim removed its segment at exit; the $stale recent dead ones stay"; else fail "$left segments in /dev/shm, expected the $stale of killed processes: $(ls /dev/shm | head -5 | tr '\n' ' ')"; fi
find /dev/shm -mindepth 1 -delete

# ---- 4. links and FIFOs at output paths -------------------------------------------
echo "root's secret" > "$S/work/secret"; chmod 600 "$S/work/secret"
as_nobody ln -s "$S/work/secret" "$PUBLIC/rec.pb"
as_nobody mkfifo "$PUBLIC/prof.pb"
timeout 30 env LD_PRELOAD="$LIB" NITROHEAP_OPTIONS="flight_recorder=$PUBLIC/rec.pb,heap_profile=$PUBLIC/prof.pb,profile_rate=4096" \
  "$VICTIM" --alloc-ms 100 2>"$S/work/out.err"
rc=$?
if [[ $rc == 0 ]]; then ok "a victim with a symlink and a FIFO at its output paths exits normally"; else fail "victim with planted output paths: exit $rc: $(head -c 300 "$S/work/out.err")"; fi
if [[ "$(cat "$S/work/secret")" == "root's secret" ]]; then ok "the symlink's target is untouched"; else fail "the victim wrote through the symlink into root's file"; fi
for f in rec.pb prof.pb; do
  if [[ -f "$PUBLIC/$f" && ! -L "$PUBLIC/$f" && "$(stat -c '%a %U' "$PUBLIC/$f")" == "600 root" ]]; then ok "$f replaced by a regular file, 0600, root's"; else fail "$f: $(stat -c '%F %a %U' "$PUBLIC/$f")"; fi
done
timeout 30 env LD_PRELOAD="$LIB" NITROHEAP_OPTIONS="heap_profile=$PUBLIC/p640.pb,output_mode=0640" "$VICTIM" --alloc-ms 20
if [[ "$(stat -c '%a' "$PUBLIC/p640.pb" 2>/dev/null)" == 640 ]]; then ok "output_mode=0640 gives 0640"; else fail "output_mode=0640 gave $(stat -c '%a' "$PUBLIC/p640.pb" 2>&1)"; fi
# A planted hard link to root's file (possible with protected_hardlinks=0).
if as_nobody ln "$S/work/secret" "$PUBLIC/hard.pb" 2>/dev/null; then
  timeout 30 env LD_PRELOAD="$LIB" NITROHEAP_OPTIONS="heap_profile=$PUBLIC/hard.pb" "$VICTIM" --alloc-ms 20
  if [[ "$(cat "$S/work/secret")" == "root's secret" ]]; then ok "a hard link at the output path is replaced, its target untouched"; else fail "the victim wrote through a hard link"; fi
else
  ok "a hard link to root's file cannot be planted here (fs.protected_hardlinks)"
fi
leftover=$(find "$PUBLIC" -name '*.tmp' | wc -l)
if [[ $leftover == 0 ]]; then ok "no temporary output files left behind"; else fail "$leftover temporary files left in $PUBLIC"; fi

# A set-user-ID root program with NitroHeap linked in, started by nobody
# with options naming root's file: the options are ignored, and said so.
install -o root -m 4755 "$BIN/victim_linked" "$S/work/suid_victim"
as_nobody env NITROHEAP_OPTIONS="flight_recorder=$S/work/secret,heap_profile=$S/work/secret,stats_print=1" \
  timeout 30 "$S/work/suid_victim" --alloc-ms 20 2>"$S/work/suid.err"
rc=$?
if [[ $rc == 0 && "$(cat "$S/work/secret")" == "root's secret" ]] && grep -q "NITROHEAP_OPTIONS is ignored" "$S/work/suid.err"; then
  ok "a set-user-ID program ignores NITROHEAP_OPTIONS: $(head -1 "$S/work/suid.err" | cut -c1-120)"
else
  fail "set-user-ID program: exit $rc, secret now '$(head -c 40 "$S/work/secret")': $(head -c 300 "$S/work/suid.err")"
fi

# ---- 5. hostile segments against the readers ---------------------------------------
reader() {  # reader LABEL EXPECTED_RC ARGS...: runs python3 -m nitroheap ARGS as root, 1 GB of address space
  local label="$1" expect="$2"; shift 2
  ( ulimit -v 1000000; timeout 20 python3 -m nitroheap "$@" >"$S/work/r.out" 2>"$S/work/r.err" )
  local rc=$?
  if [[ $rc == 124 ]]; then fail "$label: the reader hung"; return; fi
  if grep -q Traceback "$S/work/r.err"; then fail "$label: a traceback: $(tail -1 "$S/work/r.err")"; return; fi
  if ! no_escape "$S/work/r.out" "$S/work/r.err"; then fail "$label: control sequences reached the terminal"; return; fi
  if [[ $rc != "$expect" ]]; then fail "$label: exit $rc, expected $expect: $(head -c 300 "$S/work/r.err")"; return; fi
  ok "$label (exit $rc$( [[ -s "$S/work/r.err" ]] && echo ": $(head -1 "$S/work/r.err" | cut -c1-150)"))"
}
plant_segment() {  # plant_segment PID NAME_WITH_ESCAPES: a well-formed segment, as nobody
  as_nobody python3 - "$@" <<'EOF'
import json, os, struct, sys, time
pid, name = int(sys.argv[1]), sys.argv[2]
doc = {"version": 1, "pid": pid, "time_ns": time.time_ns(), "heap_mode": "nitro\x1b]0;owned\x07",
       "hardening_mode": "balanced", "threads": 1, "allocations": 5, "frees": 1,
       "partitions": {name: {"live_objects": 1, "live_bytes": 16}, "default": {"live_objects": 3}},
       "size_classes": [{"size": 16, "live_objects": 1, "slabs": 1, "slab_objects": 256}]}
body = json.dumps(doc, ensure_ascii=False).encode()
hdr = struct.pack("<8sIIQQQIIQ8s", b"NITROHP\0", 1, 64, pid, 2, time.time_ns(), 512 * 1024 - 64, len(body), 1, b"")
fd = os.open("/dev/shm/nitroheap.%d" % pid, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.write(fd, hdr + body)
os.ftruncate(fd, 512 * 1024)
os.close(fd)
EOF
}
sleep 60 & root_sleeper=$!                 # a root process without a segment
as_nobody mkfifo "/dev/shm/nitroheap.$root_sleeper"
reader "FIFO at a root process's segment name: stats" 1 stats "$root_sleeper"
rm -f "/dev/shm/nitroheap.$root_sleeper"
as_nobody python3 -c "import os; f=open('/dev/shm/nitroheap.$root_sleeper','wb'); os.truncate(f.fileno(), 2<<30)"
reader "2 GiB sparse file at a root process's segment name: stats" 1 stats "$root_sleeper"
rm -f "/dev/shm/nitroheap.$root_sleeper"
as_nobody ln -s /proc/self/mem "/dev/shm/nitroheap.$root_sleeper"
reader "symlink at a root process's segment name: stats" 1 stats "$root_sleeper"
rm -f "/dev/shm/nitroheap.$root_sleeper"
plant_segment "$root_sleeper" $'evil\x1b[2J\x1b[31m'
reader "well-formed segment planted by nobody for a root process: top" 1 top "$root_sleeper" -n 1 --no-clear
if grep -q "owned by uid 65534" "$S/work/r.err"; then ok "the reader names the planted segment's owner"; else fail "no owner in the refusal: $(cat "$S/work/r.err")"; fi
rm -f "/dev/shm/nitroheap.$root_sleeper"
kill "$root_sleeper"; wait "$root_sleeper" 2>/dev/null
# The same user's hostile segment (nobody's process, nobody's segment), read by root.
setpriv --reuid=65534 --regid=65534 --clear-groups -- sleep 60 & nobody_sleeper=$!
sleep 0.2
plant_segment "$nobody_sleeper" $'evil\x1b[2J\xc2\x9b31m\xe2\x80\xaegnp.exe'
reader "a user's own hostile segment read by root: top" 0 top "$nobody_sleeper" -n 1 --no-clear
if grep -q 'evil\\x1b\[2J' "$S/work/r.out"; then ok "top shows the hostile partition name escaped"; else fail "top output lacks the escaped name: $(grep -a evil "$S/work/r.out" | head -2)"; fi
reader "a user's own hostile segment read by root: stats" 0 stats "$nobody_sleeper"
as_nobody python3 -c "
import os, struct
p='/dev/shm/nitroheap.$nobody_sleeper'
d=open(p,'rb').read(); e=d.replace(b'\"allocations\": 5', b'\"allocations\":\"\"')
assert len(e) == len(d) and e != d
open(p,'r+b').write(e)"
reader "hostile JSON (a string where a number goes): stats" 1 stats "$nobody_sleeper"
if grep -q "expected a non-negative integer" "$S/work/r.err"; then ok "the reader names the bad field"; else fail "no field named: $(cat "$S/work/r.err")"; fi
kill "$nobody_sleeper" 2>/dev/null; wait "$nobody_sleeper" 2>/dev/null
find /dev/shm -mindepth 1 -delete
# A planted recording: FIFO and sparse file.
as_nobody mkfifo "$PUBLIC/fifo-rec.pb"
reader "report of a FIFO" 1 report "$PUBLIC/fifo-rec.pb"
as_nobody python3 -c "import os; f=open('$PUBLIC/big-rec.pb','wb'); os.truncate(f.fileno(), 2<<30)"
reader "report of a 2 GiB sparse recording" 1 report "$PUBLIC/big-rec.pb"

# ---- 6. who may read ------------------------------------------------------------------
env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 60000 & root_victim=$!
sleep 0.5
mode=$(stat -c '%a %U' "/dev/shm/nitroheap.$root_victim" 2>&1)
if [[ "$mode" == "600 root" ]]; then ok "a root process's segment is 0600 root"; else fail "root's segment: $mode"; fi
( ulimit -v 1000000; timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups -- python3 -m nitroheap stats "$root_victim" >"$S/work/r.out" 2>"$S/work/r.err" )
rc=$?
if [[ $rc == 1 ]] && grep -q "readable only by its owner" "$S/work/r.err" && ! grep -q Traceback "$S/work/r.err"; then
  ok "nobody cannot read root's statistics: $(head -1 "$S/work/r.err" | cut -c1-150)"
else
  fail "nobody reading root's segment: exit $rc: $(head -c 300 "$S/work/r.err")"
fi
reader "root reads root's statistics" 0 stats "$root_victim"
kill "$root_victim"; wait "$root_victim" 2>/dev/null

echo "# $failures failures"
exit "$failures"
