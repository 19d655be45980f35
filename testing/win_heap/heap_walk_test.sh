#!/bin/bash
# The ported HeapWalk example behaves as its documentation says: a growable
# heap lists its three allocated blocks; a fixed-size heap lists its region
# first, then the three blocks (busy) and the free rest (a plain "Block");
# the walk ends with ERROR_NO_MORE_ITEMS (no "HeapWalk failed"), and lock,
# unlock and destroy succeed.
set -u
bin="$1"
fail=0
check() {  # check NAME OUTPUT PATTERN COUNT
  local got
  got=$(grep -c -- "$3" <<<"$2")
  if [ "$got" -ne "$4" ]; then
    echo "FAIL: $1: $4 lines matching '$3' expected, $got found"
    fail=1
  fi
}
for mode in growable fixed; do
  out=$("$bin" $([ "$mode" = fixed ] && echo fixed)) || { echo "FAIL: $mode: exit $?"; fail=1; }
  echo "---- $mode"
  echo "$out"
  check "$mode" "$out" '^Walking heap 0x' 1
  check "$mode" "$out" '^Allocated block$' 3
  check "$mode" "$out" 'failed\|Failed' 0
  if [ "$mode" = fixed ]; then
    check "$mode" "$out" '^Region$' 1
    check "$mode" "$out" '^Block$' 1
    check "$mode" "$out" '^  Overhead: 16 bytes$' 4
    # Sizes are usable sizes: 100, 200, 300 rounded up to 16.
    for size in 112 208 304; do check "$mode" "$out" "^  Size: $size bytes\$" 1; done
  else
    check "$mode" "$out" '^Region$' 0
    for size in 112 208 320; do check "$mode" "$out" "^  Size: $size bytes\$" 1; done
  fi
done
[ "$fail" -eq 0 ] && echo "PASS" || exit 1
