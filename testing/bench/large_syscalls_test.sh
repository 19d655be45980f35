#!/bin/sh
# System calls per large alloc/free cycle (issue 13): the workload
# `large_cycle` (16 live blocks of 64 KiB..4 MiB, one replaced per cycle)
# runs under strace -c with libnitroheap.so preloaded, and the memory system
# calls (mprotect, madvise, mmap, munmap) of the whole process are counted.
# A count, not a time:
#   balanced (the default options): fewer than 0.05 per cycle (one freed
#     block in 256 is protected, two mprotect each; the rest reuse guard-tail
#     runs with none);
#   sample_rate=0: fewer than 0.01 per cycle (no protected frees at all);
#   strict: at least 1.5 per cycle (every freed block is protected and
#     opened again at reuse), which shows the count sees the protection.
# Usage: large_syscalls_test.sh WORKLOADS LIBNITROHEAP_SO
set -eu
workloads=$1
lib=$2
if ! command -v strace >/dev/null 2>&1; then
  echo "large_syscalls_test: strace is not installed (tools/install_deps.sh installs it)" >&2
  exit 1
fi
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0

# check NAME OPTIONS CYCLES MIN_PER_1000 MAX_PER_1000 (bounds in calls per 1000 cycles)
check() {
  name=$1 opts=$2 cycles=$3 lo=$4 hi=$5
  out=$tmp/strace.$name
  scale=$(awk "BEGIN { print $cycles / 100000 }")
  if ! NITROHEAP_OPTIONS=$opts LD_PRELOAD=$lib strace -f -c -o "$out" \
      -e trace=mprotect,madvise,mmap,munmap "$workloads" large_cycle --scale="$scale" \
      > "$tmp/stdout.$name" 2> "$tmp/stderr.$name"; then
    echo "FAIL $name: the workload failed:"; cat "$tmp/stdout.$name" "$tmp/stderr.$name"
    failures=$((failures + 1))
    return
  fi
  if ! grep -q "^large_cycle ok .* ops=$cycles\$" "$tmp/stdout.$name"; then
    echo "FAIL $name: unexpected output:"; cat "$tmp/stdout.$name"
    failures=$((failures + 1))
    return
  fi
  # strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall.
  calls=$(awk '$NF ~ /^(mprotect|madvise|mmap|munmap)$/ { n += $4 } END { print n + 0 }' "$out")
  per1000=$((calls * 1000 / cycles))
  echo "$name ($opts): $calls memory system calls in $cycles cycles ($per1000 per 1000 cycles; bounds $lo..$hi)"
  grep -E "mprotect|madvise|mmap|munmap" "$out" | sed 's/^/    /'
  if [ "$per1000" -lt "$lo" ] || [ "$per1000" -ge "$hi" ]; then
    echo "FAIL $name: $per1000 per 1000 cycles is outside $lo..$hi"
    failures=$((failures + 1))
  fi
}

check balanced "mode=balanced" 20000 0 50
check balanced-s0 "mode=balanced,sample_rate=0" 20000 0 10
check fast-s0 "mode=fast,sample_rate=0" 20000 0 10
check strict "mode=strict,sample_rate=0" 2000 1500 1000000

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
