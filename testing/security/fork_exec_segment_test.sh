#!/bin/bash
# A fork child that execs at once (what subprocess and shells do) has a live
# statistics segment of its own after the exec, updated while it allocates,
# and leaves none behind. Until the fork child's segment was made on its
# background thread's first tick, the atfork handler made one that the
# exec'd image took for another live writer: it published nothing, the
# pre-exec segment stayed frozen and then stayed in /dev/shm (found by
# CPython's test_subprocess.test_user, which also changes the user).
#   fork_exec_segment_test.sh LIBNITROHEAP VICTIM
set -u
LIB=$1
VICTIM=$2
status=0
for opts in "" "mode=strict" "mode=fast"; do
  for round in 1 2 3; do
    out=$(NITROHEAP_OPTIONS="$opts" timeout 60 env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 400 --fork-exec 4 2>&1)
    rc=$?
    if [[ $rc != 0 ]]; then
      echo "FAIL [NITROHEAP_OPTIONS=$opts] round $round: exit $rc: $out"
      status=1
    fi
  done
done
[[ $status == 0 ]] && echo "PASS: 9 runs of 4 fork+exec children each kept their own updated segments and left none"
exit $status
