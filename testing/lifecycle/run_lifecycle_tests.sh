#!/usr/bin/env bash
# Regression tests for NitroHeap's life-cycle defects (issue 8): exit while
# threads allocate, fork while threads allocate and sample, nothrow new with a
# throwing new-handler, free of a pointer into PROT_NONE memory, descriptors
# the program never opened, swallowed signals, main ending in pthread_exit,
# address-space limits, Rust realloc of over-aligned blocks, and freeing
# guarded / zero-size pointers through the partition API. Every case runs
# under LD_PRELOAD in the default mode, mode=strict, mode=fast and
# sample_rate=1.
#
# Usage: run_lifecycle_tests.sh SO_PATH [BIN_DIR | PROGRAM...]
#   SO_PATH  libnitroheap.so, or "none" to run the cases on the C library's
#            malloc, once (a check of the tests: there the Rust and partition
#            programs print SKIP, and free_protnone need only die)
#   BIN_DIR  prebuilt programs (the sources' names without extension), or
#            PROGRAM... their paths (as Bazel passes them); or set
#            NITRO_LIFECYCLE_COMPILE=1 to compile them with gcc/g++ first.
#   LIFECYCLE_MODES="mode=strict sample_rate=1" runs only those option sets
#   ("default" is the empty set); LIFECYCLE_MIN_MIB is the least heap, in
#   MiB, the address-space case expects under ulimit -v 3000000 (2355);
#   LIFECYCLE_EXIT_CHILDREN (200): exits per mode in the exit-race case.
#
# Output: one "PASS case [mode]" / "FAIL case [mode]: why" line per case,
# then "lifecycle: N passed, M failed"; exit status 1 if any case failed.
set -u

source "$(dirname "${BASH_SOURCE[0]}")/lifecycle_lib.sh"
lc_init "$@"

MIN_MIB=${LIFECYCLE_MIN_MIB:-2355}
if [[ "$SO" == none ]]; then
  MODES=(glibc)
else
  read -r -a MODES <<<"${LIFECYCLE_MODES:-default mode=strict mode=fast sample_rate=1}"
fi

PASSED=0
FAILED=0
OUT="$LC_WORK/out"
ERR="$LC_WORK/err"

CASE_T0=$SECONDS
took() {  # TOOK: the time since the last result, when it is worth saying
  local s=$((SECONDS - CASE_T0))
  CASE_T0=$SECONDS
  TOOK=""
  if ((s >= 3)); then TOOK=" (${s} s)"; fi
}
pass() { took; PASSED=$((PASSED + 1)); echo "PASS $1 [$MODE]$TOOK"; }
fail() {  # fail NAME WHY: also shows the case's output
  took
  FAILED=$((FAILED + 1))
  echo "FAIL $1 [$MODE]$TOOK: $2"
  if [[ -s "$OUT" ]]; then echo "  --- stdout (last 10 lines)"; tail -n 10 "$OUT" | sed 's/^/  /'; fi
  if [[ -s "$ERR" ]]; then echo "  --- stderr (last 10 lines)"; tail -n 10 "$ERR" | sed 's/^/  /'; fi
}

# run TIMEOUT CMD...: the current mode's options.
run() {
  local t=$1
  shift
  lc_run "$t" "$OPTS" "$OUT" "$ERR" "$@"
}

# expect_exit NAME CODE TIMEOUT CMD...: the case passes when CMD exits CODE.
expect_exit() {
  local name=$1 code=$2 t=$3
  shift 3
  run "$t" "$@"
  if [[ $RC -eq $code ]]; then pass "$name"; else fail "$name" "$(lc_describe $RC "$t"), expected exit $code"; fi
}

# expect_signal NAME SIGNUM TIMEOUT CMD...: CMD must die of signal SIGNUM.
expect_signal() {
  local name=$1 sig=$2 t=$3
  shift 3
  run "$t" "$@"
  if [[ $RC -eq $((128 + sig)) ]]; then
    pass "$name"
  else
    fail "$name" "$(lc_describe $RC "$t"), expected death by signal $sig ($(kill -l "$sig"))"
  fi
}

# --- a. exit while threads allocate (defect 1) -----------------------------
# The race window is the background thread's write of the statistics, about
# 100 us per tick; decay_ms=0 makes the tick 10 ms, so about 1 exit in 100
# crashes on the baseline. Each program forks many children that exit
# racing (LIFECYCLE_EXIT_CHILDREN, default 200 C++ and a tenth as many
# Python children), then exits itself. run_torture.sh runs many more.
EXIT_CHILDREN=${LIFECYCLE_EXIT_CHILDREN:-200}
case_exit_race() {
  local opts=$OPTS
  OPTS="${OPTS:+$OPTS,}decay_ms=0"
  [[ "$SO" == none ]] && OPTS=""
  run 300 "$(lc_bin exit_race)" "$EXIT_CHILDREN"
  if [[ $RC -eq 0 ]]; then pass exit_race_cc; else fail exit_race_cc "$(lc_describe $RC 300), expected exit 0"; fi
  run 300 "$PY" "$(lc_bin exit_race.py)" 20 $((EXIT_CHILDREN / 10))
  if [[ $RC -eq 0 && "$(cat "$OUT")" == ok ]]; then
    pass exit_race_py
  else
    fail exit_race_py "$(lc_describe $RC 300), expected exit 0 and 'ok'"
  fi
  OPTS=$opts
}

# --- b. fork while threads allocate (defect 3) ------------------------------
case_fork() {
  # The program kills a child that does not exit within 15 s and says so.
  expect_exit fork_torture 0 200 "$(lc_bin fork_torture)" 10
}

# --- c. nothrow new with a throwing new-handler (defect 5) -------------------
case_nothrow_new() {
  expect_exit nothrow_new 0 30 "$(lc_bin nothrow_new)"
}

# --- d. free of a pointer into PROT_NONE memory (defect 6) -------------------
case_free_protnone() {
  local where
  for where in mid start end; do
    if [[ "$SO" == none ]]; then  # glibc dies of it too, its own way: not checked
      run 30 "$(lc_bin free_protnone)" "$where"
      if ((RC > 128)); then pass "free_protnone_$where"; else fail "free_protnone_$where" "$(lc_describe $RC 30)"; fi
      continue
    fi
    run 30 "$(lc_bin free_protnone)" "$where"
    if [[ $RC -eq 134 ]] && grep -q '^nitroheap:' "$ERR"; then
      pass "free_protnone_$where"
    else
      fail "free_protnone_$where" "$(lc_describe $RC 30); expected SIGABRT after a 'nitroheap:' diagnostic"
    fi
  done
}

# --- e. descriptors (defect 9) ----------------------------------------------
case_fds() {
  local arg plain
  for arg in "" fork; do
    # What the process inherits here, without NitroHeap, is the reference.
    plain=$(timeout -k 5 30 "$(lc_bin fd_list)" $arg 2>/dev/null </dev/null)
    run 30 "$(lc_bin fd_list)" $arg
    if [[ $RC -eq 0 && "$(cat "$OUT")" == "$plain" ]]; then
      pass "fd_list${arg:+_$arg}"
    else
      fail "fd_list${arg:+_$arg}" "$(lc_describe $RC 30); descriptors '$(cat "$OUT")', without NitroHeap '$plain'"
    fi
  done
  expect_exit close_fds 0 60 "$(lc_bin close_fds)"
  # The background thread's files (the stale sweep, numbered profiles every
  # tick) never take a number the program's own open() expects.
  local opts=$OPTS
  OPTS="${OPTS:+$OPTS,}profile_rate=4096,heap_profile_interval=1,profile_prefix=$LC_WORK/fd_steal"
  [[ "$SO" == none ]] && OPTS=""
  expect_exit fd_steal 0 60 "$(lc_bin fd_steal)" 3
  OPTS=$opts
}

# --- f. signals the program raises (defect 10) ------------------------------
case_signals() {
  expect_signal signal_raise_segv 11 30 "$(lc_bin signals)" raise-segv
  expect_signal signal_kill_segv 11 30 "$(lc_bin signals)" kill-segv
  expect_signal signal_raise_bus 7 30 "$(lc_bin signals)" raise-bus
  expect_signal signal_null_deref 11 30 "$(lc_bin signals)" null-deref
  expect_signal signal_python_faulthandler 11 30 "$PY" -c 'import faulthandler; faulthandler._sigsegv(); print("survived")'
  expect_exit signal_own_handler 0 30 "$(lc_bin signals)" handler
  expect_exit signal_own_fault_handler 0 30 "$(lc_bin signals)" handler-fault
}

# --- g. main ends with pthread_exit (defect 11) -----------------------------
case_pthread_exit() {
  local how
  for how in joined detached running; do
    expect_exit "pthread_exit_main_$how" 0 10 "$(lc_bin pthread_exit_main)" "$how"
  done
}

# --- h. address-space limits (defect 12) ------------------------------------
case_address_limit() {
  # A bash in between sets the limit, then execs the program (NitroHeap
  # loads again in it, under the limit).
  local limited=(bash -c 'ulimit -v "$0" && exec "$@"')
  run 60 "${limited[@]}" 1000000 /bin/bash -c 'echo ok'
  if [[ $RC -eq 0 && "$(cat "$OUT")" == ok ]]; then pass ulimit_1g_bash; else fail ulimit_1g_bash "$(lc_describe $RC 60), expected 'ok'"; fi
  run 60 "${limited[@]}" 1000000 "$PY" -c 'print(sum(len(bytearray(1<<20)) for _ in range(300)))'
  if [[ $RC -eq 0 && "$(cat "$OUT")" == 314572800 ]]; then
    pass ulimit_1g_python
  else
    fail ulimit_1g_python "$(lc_describe $RC 60), expected 314572800"
  fi
  run 120 "${limited[@]}" 3000000 "$(lc_bin alloc_until_null)" "$MIN_MIB"
  local got
  got=$(sed -n 's/^alloc_until_null: \([0-9]*\) MiB$/\1/p' "$OUT")
  if [[ $RC -eq 0 ]]; then
    pass "ulimit_3g_heap (${got} MiB)"
  else
    fail ulimit_3g_heap "$(lc_describe $RC 120), ${got:-?} MiB of 1 MiB blocks, expected at least $MIN_MIB"
  fi
}

# --- i. Rust realloc of over-aligned blocks (defect 2) ----------------------
case_rust() {
  local what
  for what in page small sweep; do
    expect_exit "rust_realloc_$what" 0 60 "$(lc_bin rust_realloc)" "$what"
  done
}

# --- j. guarded and zero-size pointers through the partition API (defect 4) --
case_partitions() {
  expect_exit partition_free 0 60 "$(lc_bin partition_free)"
  # The partition fast paths' thread-pointer offsets in the shared object:
  # new threads, a trait partition, a forked child.
  expect_exit partition_threads 0 60 "$(lc_bin partition_threads)"
}

# --- k. stack walks through frames without frame pointers -------------------
case_stack_walk() {
  local opts=$OPTS extra
  for extra in sample_rate=1 profile_rate=1; do
    OPTS="${opts:+$opts,}$extra"
    [[ "$SO" == none ]] && OPTS=""
    expect_exit "stack_walk_${extra%%=*}" 0 60 "$(lc_bin stack_walk)"
  done
  OPTS=$opts
}

for MODE in "${MODES[@]}"; do
  case "$MODE" in default | glibc) OPTS="" ;; *) OPTS=$MODE ;; esac
  case_exit_race
  case_fork
  case_nothrow_new
  case_free_protnone
  case_fds
  case_signals
  case_pthread_exit
  case_address_limit
  case_rust
  case_partitions
  case_stack_walk
done

echo "(${SECONDS} s)"
echo "lifecycle: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
