#!/usr/bin/env bash
# Exit and fork torture (issue 8, defects 1 and 3): multithreaded programs
# exit while their threads allocate, and fork while their threads allocate,
# sample and dump, many times, TORTURE_JOBS (3) at a time on purpose (the
# exit race shows under load: about 1 exit in 25 on the baseline), under
# every option set. Any non-zero exit, crash or hang (`timeout 30`) fails.
#
# Usage: run_torture.sh SO_PATH [ROUNDS] [BIN_DIR | PROGRAM...]
#   SO_PATH  libnitroheap.so ("none": the C library's malloc, a check of the
#            programs themselves)
#   ROUNDS   rounds; "default" (or none): $TORTURE_ROUNDS, else 6, which
#            takes 2-3 minutes on a 2-core machine (the baseline: 160 s; a
#            build without the defects about as long). One round runs, under
#            each option set: the C++ exit program forking 20 children that
#            exit racing (then itself), the Python exit program forking 3
#            (then itself), and the fork torture program (6 forks). Run long
#            by hand: run_torture.sh SO 100
#   BIN_DIR / PROGRAM... / NITRO_LIFECYCLE_COMPILE=1: as run_lifecycle_tests.sh
# Environment: TORTURE_JOBS (3) runs at a time; TORTURE_OPTION_SETS, a
# ';'-separated list (default ';mode=strict;mode=fast;sample_rate=1;decay_ms=0',
# the first being the default options); TORTURE_TIMEOUT (30) seconds a run.
#
# Output: a line per failed run, a summary per program and option set, then
# "torture: N passed, M failed"; exit status 1 if any run failed.
set -u

SO_ARG=${1:-}
ROUNDS=${2:-default}
[[ "$ROUNDS" == default ]] && ROUNDS=${TORTURE_ROUNDS:-6}
shift $(($# < 2 ? $# : 2))
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -gt 0 ]] || { echo "error: ROUNDS must be a positive number" >&2; exit 2; }

source "$(dirname "${BASH_SOURCE[0]}")/lifecycle_lib.sh"
lc_init "$SO_ARG" "$@"

JOBS=${TORTURE_JOBS:-3}
LIMIT=${TORTURE_TIMEOUT:-30}
IFS=';' read -r -a OPTION_SETS <<<"${TORTURE_OPTION_SETS-;mode=strict;mode=fast;sample_rate=1;decay_ms=0}"
[[ ${#OPTION_SETS[@]} -gt 0 ]] || OPTION_SETS=("")
[[ "$SO" == none ]] && OPTION_SETS=("")

EXIT_CC=$(lc_bin exit_race)
EXIT_PY=$(lc_bin exit_race.py)
FORK=$(lc_bin fork_torture)
RESULTS="$LC_WORK/results"
mkdir -p "$RESULTS"

# one_run ID PROGRAM OPTIONS CMD...: writes "RC PROGRAM OPTIONS" to a result
# file, and keeps the run's stderr when it failed.
one_run() {
  local id=$1 prog=$2 opts=$3
  shift 3
  lc_run "$LIMIT" "$opts" "$RESULTS/$id.out" "$RESULTS/$id.err" "$@"
  if [[ $RC -eq 0 ]]; then
    rm -f "$RESULTS/$id.out" "$RESULTS/$id.err"
  fi
  echo "$RC $prog ${opts:-default}" >"$RESULTS/$id.rc"
}

start=$SECONDS
n=0
running=0
launch() {  # launch PROGRAM OPTIONS CMD...: in the background, JOBS at a time
  if ((running >= JOBS)); then
    wait -n
    running=$((running - 1))
  fi
  n=$((n + 1))
  one_run "$n" "$@" &
  running=$((running + 1))
}

for ((round = 1; round <= ROUNDS; round++)); do
  for opts in "${OPTION_SETS[@]}"; do
    launch exit_race "$opts" "$EXIT_CC" 20
    launch exit_race.py "$opts" "$PY" "$EXIT_PY" 20 3
    launch fork_torture "$opts" "$FORK" 6
  done
done
wait

PASSED=0
FAILED=0
declare -A RUNS=() FAILS=()
for ((id = 1; id <= n; id++)); do
  f="$RESULTS/$id.rc"
  if [[ ! -f "$f" ]]; then  # cannot happen: one_run always writes it
    echo "FAIL run $id: no result"
    FAILED=$((FAILED + 1))
    continue
  fi
  read -r rc prog opts <"$f"
  key="$prog [$opts]"
  RUNS[$key]=$((${RUNS[$key]:-0} + 1))
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    continue
  fi
  FAILED=$((FAILED + 1))
  FAILS[$key]=$((${FAILS[$key]:-0} + 1))
  echo "FAIL $key run $id: $(lc_describe "$rc" "$LIMIT")"
  if ((FAILED <= 10)) && [[ -s "$RESULTS/$id.err" ]]; then
    tail -n 6 "$RESULTS/$id.err" | sed 's/^/  /'
  fi
done
printf '%s\n' "${!RUNS[@]}" | sort | while IFS= read -r key; do
  echo "  $key: ${FAILS[$key]:-0} of ${RUNS[$key]} runs failed"
done
echo "(${ROUNDS} rounds, $((PASSED + FAILED)) runs, $JOBS at a time, $((SECONDS - start)) s)"
echo "torture: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
