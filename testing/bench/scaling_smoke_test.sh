#!/bin/sh
# scaling.py keeps working: the `scaling` workload at a tiny scale with 1, 2
# and 5 threads (more threads than cores), under NitroHeap and glibc, one
# round. Checks that every run finished with its checksum line and that both
# tables have a row per allocator with a number per thread count; never
# timings. Also checks that a bad --threads list is refused in one line.
# Usage: scaling_smoke_test.sh SCALING_PY WORKLOADS LIBNITROHEAP_SO
set -eu
out=$(/usr/bin/python3 "$1" --rounds 1 --threads 1,2,5 --scale 0.01 --allocators nitroheap,glibc \
      --workloads-bin "$2" --nitroheap-so "$3" --nitroheap-options mode=fast 2>&1) || {
  echo "$out"; echo "FAIL: scaling.py exited non-zero"; exit 1; }
echo "$out"
for row in "nitroheap" "nitroheap mode=fast" "glibc"; do
  n=$(echo "$out" | grep -c "^| $row | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* |$" || true)
  [ "$n" -eq 2 ] || { echo "FAIL: expected a throughput row and a CPU row for '$row', found $n"; exit 1; }
done
echo "$out" | grep -q "^scaling: nitroheap retention [0-9.]*, best peer glibc [0-9.]*: \(met\|MISSED\)$" ||
  { echo "FAIL: no verdict line"; exit 1; }
if err=$(/usr/bin/python3 "$1" --threads 1,x --workloads-bin "$2" --nitroheap-so "$3" 2>&1); then
  echo "FAIL: --threads 1,x accepted"; exit 1
fi
[ "$(echo "$err" | wc -l)" -eq 1 ] || { echo "FAIL: the refusal is not one line: $err"; exit 1; }
echo "$err" | grep -q "threads" || { echo "FAIL: the refusal does not name --threads: $err"; exit 1; }
echo ok
