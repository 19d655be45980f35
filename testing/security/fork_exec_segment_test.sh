#!/bin/bash
# A fork child that execs at once (what subprocess and shells do) has a live
# statistics segment of its own after the exec, updated while it allocates,
# and leaves none behind. Until the fork child's segment was made on its
# background thread's first tick (and an exec'd program took over a segment
# of its own pid and pid namespace), the atfork handler made one that the
# exec'd image took for another live writer: it published nothing, the
# pre-exec segment stayed frozen and then stayed in /dev/shm (found by
# CPython's test_subprocess.test_user, which also changes the user).
#   fork_exec_segment_test.sh LIBNITROHEAP VICTIM
set -u
LIB=$1
VICTIM=$2
status=0
# exec at once, and exec after 300 ms of allocating (past the child's first
# tick: its segment exists, and the exec'd program must take it over, by its
# pid and pid namespace).
for late in 0 300; do
  for opts in "" "mode=strict" "mode=fast"; do
    for round in 1 2 3; do
      out=$(NITROHEAP_OPTIONS="$opts" timeout 60 env LD_PRELOAD="$LIB" "$VICTIM" --alloc-ms 400 --fork-exec 4 \
            --exec-after-ms "$late" 2>&1)
      rc=$?
      if [[ $rc != 0 ]]; then
        echo "FAIL [NITROHEAP_OPTIONS=$opts, exec after $late ms] round $round: exit $rc: $out"
        status=1
      fi
    done
  done
done
[[ $status == 0 ]] && echo "PASS: 18 runs of 4 fork+exec children (at once, and after 300 ms) each kept their own updated segments and left none"
exit $status
