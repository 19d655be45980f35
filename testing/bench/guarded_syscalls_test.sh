#!/bin/sh
# System calls per guarded sample (issue 13): the workload `fastpath`
# (malloc/free pairs of 16..256 bytes, each freed at once) runs under
# strace -f -c with libnitroheap.so preloaded, once with sample_rate=1 (every
# allocation goes to the guarded pool) and once with sample_rate=0, and every
# system call of the whole process is counted (not only the memory ones, so
# that a lock, clock or random-number call added per sample shows too). A
# count, not a time. The difference divided by the pairs is what one sampled
# allocation and its free cost:
#   two today: mprotect(PROT_READ|PROT_WRITE) to open the slot at malloc,
#   mmap(MAP_FIXED, PROT_NONE) to close it and drop its pages at free
#   (core/guarded_pool.cc); it was three (mprotect, mprotect, madvise).
# Bounds: at least 1.8 per pair (shows that the samples happen and that the
# count sees them), below 2.3 (a third call per sample fails; the margin is
# for the background thread's ticks in a run slowed by strace).
# Usage: guarded_syscalls_test.sh WORKLOADS LIBNITROHEAP_SO
set -eu
workloads=$1
lib=$2
if ! command -v strace >/dev/null 2>&1; then
  echo "guarded_syscalls_test: strace is not installed (tools/install_deps.sh installs it)" >&2
  exit 1
fi
tmp=${TEST_TMPDIR:-$(mktemp -d)}
pairs=7000  # fastpath's count at --scale=0.0001

# count NAME OPTIONS: prints the run's total number of system calls.
count() {
  name=$1 opts=$2
  out=$tmp/strace.$name
  if ! NITROHEAP_OPTIONS=$opts LD_PRELOAD=$lib strace -f -c -o "$out" \
      "$workloads" fastpath --scale=0.0001 > "$tmp/stdout.$name" 2> "$tmp/stderr.$name"; then
    echo "FAIL $name: the workload failed:" >&2
    cat "$tmp/stdout.$name" "$tmp/stderr.$name" >&2
    exit 1
  fi
  if ! grep -q "^fastpath ok .* ops=$pairs\$" "$tmp/stdout.$name"; then
    echo "FAIL $name: unexpected output:" >&2
    cat "$tmp/stdout.$name" >&2
    exit 1
  fi
  echo "$name ($opts):" >&2
  sed 's/^/    /' "$out" >&2
  # strace -c's total row: % time, seconds, usecs/call, calls, [errors], "total".
  awk '$NF == "total" { print $4 }' "$out"
}

failures=0
for mode in balanced fast strict; do
  sampled=$(count "$mode-s1" "mode=$mode,sample_rate=1")
  unsampled=$(count "$mode-s0" "mode=$mode,sample_rate=0")
  per100=$(((sampled - unsampled) * 100 / pairs))
  echo "$mode: $sampled system calls with sample_rate=1, $unsampled with 0, $pairs pairs:" \
       "$per100/100 per sampled malloc+free (bounds 180..229)"
  if [ "$per100" -lt 180 ] || [ "$per100" -ge 230 ]; then
    echo "FAIL $mode: $per100/100 system calls per sampled malloc+free is outside 180..229"
    failures=$((failures + 1))
  fi
done

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
