#!/usr/bin/env bash
# Runs hardened_malloc's own test programs (GrapheneOS, MIT; vendored in
# hardened_malloc_tests/) under LD_PRELOAD=libnitroheap.so, in several
# NitroHeap option sets, and classifies every outcome.
#
# Usage: run_hardened_malloc_tests.sh SO [OPTION_SET...]
#   SO          path to libnitroheap.so
#   OPTION_SET  a NITROHEAP_OPTIONS value per column; "" means the defaults.
#               Default sets: "" mode=fast mode=strict sample_rate=1
#               mode=strict,sample_rate=1
# Environment:
#   HM_TIMEOUT  seconds before a run is suspected of hanging (default 90: a
#               loaded 2-core machine needs 30 s for large_array_growth, which
#               takes 9-11 s quiet under glibc and NitroHeap alike). A run
#               past it is run once more with 4 times as long: a hang only if
#               that one too runs out; otherwise it counts by its outcome and
#               is listed under "Slow runs".
#   HM_REPEAT   runs of each test that must succeed, per option set (default 3;
#               exit-time races crash only some runs)
#   HM_GDB=0    do not re-run crashes under gdb to locate the fault
#   HM_SRC      the vendored folder (default: next to this script)
#   CC, CXX     compilers (default gcc, g++)
#   HM_JOBS     option sets run at once (default: the number of CPUs)
#   KEEP_TMP=1  keep the work directory
#
# Outcomes (one cell per test and option set):
#   ok        a correct program exited 0                      (required)
#   detected  misuse: killed by a signal after a "nitroheap:" line
#   reported  misuse: a "nitroheap:" line, but the process went on and exited
#   contained misuse: exited 0 where hardened_malloc's own test passes so:
#             string_overflow printed "overflow by 0 bytes" (strlen stopped
#             at the block's end), read_after_free_small read only zeros
#   missed    misuse: exited normally, nothing reported
#   CRASH     killed by a signal with no "nitroheap:" line     -> failure
#   HANG      still running after HM_TIMEOUT seconds, and again
#             after 4 x HM_TIMEOUT on a second run             -> failure
#   FAIL:x    a correct program exited x (a code, SIGNAME)    -> failure
#   exit:x    an informational test (not misuse, not required) ended with x
# The "glibc" column is the same program without the preload, for reference;
# it is never counted.
#
# Last line: "hardened_malloc: N passed, M failed" (one count per test and
# option set). Exit status: 0 when nothing failed, 1 otherwise, 2 for usage
# or build errors.
set -uo pipefail

SO="${1:-}"
if [[ -z "$SO" ]]; then
  echo "usage: $0 path/to/libnitroheap.so [OPTION_SET...]" >&2
  exit 2
fi
if [[ ! -f "$SO" ]]; then
  echo "error: preload library '$SO' not found" >&2
  exit 2
fi
SO="$(cd "$(dirname "$SO")" && pwd)/$(basename "$SO")"
shift
if (($# > 0)); then
  OPTION_SETS=("$@")
else
  OPTION_SETS=("" "mode=fast" "mode=strict" "sample_rate=1" "mode=strict,sample_rate=1")
fi

HERE="$(dirname "$0")"
SRC="${HM_SRC:-$HERE/hardened_malloc_tests}"
if [[ ! -f "$SRC/test/test_util.h" ]]; then
  echo "error: vendored tests not found in '$SRC'" >&2
  exit 2
fi
SRC="$(cd "$SRC" && pwd)"
TIMEOUT="${HM_TIMEOUT:-90}"
REPEAT="${HM_REPEAT:-3}"
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
for tool in "$CC" "$CXX" timeout; do
  command -v "$tool" >/dev/null || { echo "error: required tool '$tool' not found" >&2; exit 2; }
done
USE_GDB=0
if [[ "${HM_GDB:-1}" != 0 ]] && command -v gdb >/dev/null; then USE_GDB=1; fi

WORK="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/nitroheap_hm.XXXXXX")"
cleanup() {
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "(work directory kept: $WORK)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/bin" "$WORK/run" "$WORK/build"

unset LD_PRELOAD NITROHEAP NITROHEAP_OPTIONS
export LC_ALL=C
ulimit -c 0   # no core files from the crashes this provokes

# ---------------------------------------------------------------------------
# The tests. kind: ok = a correct program that must exit 0; misuse = a heap
# misuse (detection wanted, never a silent crash or hang); info = not misuse,
# but checks a hardened_malloc property (zeroed fresh memory), reported only.
# Not vendored (need hardened_malloc's malloc_object_size extension):
# malloc_object_size, malloc_object_size_offset, malloc_object_size_zero,
# invalid_malloc_object_size_small, invalid_malloc_object_size_small_quarantine.
TESTS=(
  # correct programs
  "ok offset" "ok mallinfo" "ok mallinfo2" "ok malloc_info" "ok large_array_growth"
  "ok realloc_init" "ok impossibly_large_malloc" "ok calloc_overflow" "ok calloc_zeroed"
  "ok malloc_zero_different" "ok malloc_noreuse" "ok free_sized_small" "ok free_sized_large"
  "ok aligned_sized_delete_small" "ok aligned_sized_delete_small_min_align"
  "ok aligned_sized_delete_large"
  # properties of hardened_malloc, not requirements
  "info uninitialized_read_small" "info uninitialized_read_large"
  # misuse
  "misuse double_free_small" "misuse double_free_small_delayed" "misuse double_free_large"
  "misuse double_free_large_delayed" "misuse unaligned_free_small" "misuse unaligned_free_large"
  "misuse read_after_free_small" "misuse read_after_free_large" "misuse write_after_free_small"
  "misuse write_after_free_small_reuse" "misuse write_after_free_large"
  "misuse write_after_free_large_reuse" "misuse read_zero_size" "misuse write_zero_size"
  "misuse invalid_free_protected" "misuse invalid_free_unprotected"
  "misuse invalid_free_small_region" "misuse invalid_free_small_region_far"
  "misuse uninitialized_free" "misuse uninitialized_realloc"
  "misuse uninitialized_malloc_usable_size" "misuse unaligned_malloc_usable_size_small"
  "misuse invalid_malloc_usable_size_small" "misuse invalid_malloc_usable_size_small_quarantine"
  "misuse overflow_small_1_byte" "misuse overflow_small_8_byte" "misuse overflow_large_1_byte"
  "misuse overflow_large_8_byte" "misuse string_overflow" "misuse delete_type_size_mismatch"
  "misuse invalid_aligned_sized_delete_small" "misuse invalid_aligned_sized_delete_large"
)

# ---------------------------------------------------------------------------
# Build (flags from hardened_malloc's test/Makefile; -std=c2x is gcc 12's c23).
CFLAGS=(-std=c2x -O3 -D_GNU_SOURCE -DSLAB_CANARY=1 -DCONFIG_EXTENDED_SIZE_CLASSES=1 -w)
CXXFLAGS=(-std=c++17 -fsized-deallocation -O3 -D_GNU_SOURCE -w)
build_one() {  # build_one NAME
  local name=$1
  if [[ -f "$SRC/test/$name.c" ]]; then
    "$CC" "${CFLAGS[@]}" -o "$WORK/bin/$name" "$SRC/test/$name.c" -lpthread >"$WORK/build/$name.log" 2>&1
  elif [[ -f "$SRC/test/$name.cc" ]]; then
    "$CXX" "${CXXFLAGS[@]}" -o "$WORK/bin/$name" "$SRC/test/$name.cc" -lpthread >"$WORK/build/$name.log" 2>&1
  else
    echo "no source for $name" >"$WORK/build/$name.log"; return 1
  fi
}
# A probe that says whether NitroHeap serves the process (nitro_is_active).
cat >"$WORK/build/probe.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
  int (*active)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "nitro_is_active");
  printf("%d\n", active ? active() : -1);
  return 0;
}
EOF
"$CC" -O2 -o "$WORK/bin/nitro_probe" "$WORK/build/probe.c" -ldl >"$WORK/build/probe.log" 2>&1 ||
  { echo "error: cannot build the probe:"; cat "$WORK/build/probe.log"; exit 2; }

start_s=$SECONDS
pids=()
names=()
jobs_max="$(nproc 2>/dev/null || echo 2)"
for entry in "${TESTS[@]}"; do
  name=${entry#* }
  build_one "$name" &
  pids+=($!); names+=("$name")
  if ((${#pids[@]} >= jobs_max * 2)); then wait "${pids[0]}" || true; pids=("${pids[@]:1}"); fi
done
wait
build_failed=0
for entry in "${TESTS[@]}"; do
  name=${entry#* }
  if [[ ! -x "$WORK/bin/$name" ]]; then
    echo "error: build of $name failed:"; sed 's/^/  /' "$WORK/build/$name.log"; build_failed=1
  fi
done
((build_failed)) && exit 2
echo "built ${#TESTS[@]} programs from $SRC in $((SECONDS - start_s))s"

# Every option set must really run on NitroHeap.
for opts in "${OPTION_SETS[@]}"; do
  got="$(env LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$opts" "$WORK/bin/nitro_probe" 2>/dev/null)"
  if [[ "$got" != 1 ]]; then
    echo "error: with NITROHEAP_OPTIONS='$opts' nitro_is_active() is '$got', not 1: the preload did not take effect" >&2
    exit 2
  fi
done

# ---------------------------------------------------------------------------
signame() { local n; n="$(kill -l "$1" 2>/dev/null)"; echo "SIG${n:-$1}"; }

# run_case NAME OPTS PRELOAD(0/1) OUTBASE CWD [SECONDS] -> sets RC (exit
# status as timeout reports it)
run_case() {
  local name=$1 opts=$2 preload=$3 out=$4 dir=$5 limit=${6:-$TIMEOUT}
  rm -rf "$dir"; mkdir -p "$dir"
  local env=()
  ((preload)) && env=(LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$opts")
  # The group's 2>/dev/null keeps bash's "Aborted"/"Segmentation fault" job
  # notices out of the log; the program's own stderr goes to $out.err.
  { (cd "$dir" && exec timeout -k 5 "$limit" env "${env[@]}" "$WORK/bin/$name") \
      >"$out.out" 2>"$out.err" </dev/null; } 2>/dev/null
  RC=$?
}

# Misuse that hardened_malloc contains rather than detects: its test then
# exits 0, and (string_overflow) says so on stdout.
contained() {  # contained NAME RC OUTFILE
  case $1 in
    string_overflow) (($2 == 0)) && grep -q '^overflow by 0 bytes$' "$3" ;;
    read_after_free_small) (($2 == 0)) ;;
    *) false ;;
  esac
}

# classify KIND RC ERRFILE OUTFILE NAME -> sets CELL and BAD (1 = counts as failure)
classify() {
  local kind=$1 rc=$2 err=$3 out=$4 name=$5 msg=0 how
  grep -q '^nitroheap:' "$err" && msg=1
  BAD=0
  if ((rc == 124 || rc == 137)); then CELL=HANG; BAD=1; return; fi
  if ((rc > 128)); then how="$(signame $((rc - 128)))"; else how=$rc; fi
  case "$kind" in
    ok)
      if ((rc == 0)); then CELL=ok; else CELL="FAIL:$how"; BAD=1; fi ;;
    misuse|info)
      if ((rc > 128)); then
        if ((msg)); then CELL=detected; else CELL=CRASH; BAD=1; fi
      elif [[ $kind == info ]]; then
        CELL="exit:$how"
      elif ((msg)); then CELL=reported
      elif contained "$name" "$rc" "$out"; then CELL=contained
      else CELL=missed
      fi ;;
  esac
}

# Where did a crash happen? One gdb re-run; prints the faulting frames.
locate_crash() {  # locate_crash NAME OPTS
  local name=$1 opts=$2
  ((USE_GDB)) || return 0
  timeout -k 5 60 gdb -q -batch -nx \
    -ex 'set startup-with-shell off' -ex 'set pagination off' \
    -ex "set environment LD_PRELOAD $SO" -ex "set environment NITROHEAP_OPTIONS $opts" \
    -ex 'handle SIGSEGV stop print' -ex 'handle SIGBUS stop print' -ex run \
    -ex 'info symbol $pc' -ex 'bt 8' \
    --args "$WORK/bin/$name" </dev/null 2>&1 |
    grep -E '(received signal|^Program terminated|^#[0-9]|^\[Inferior .* exited| in section )' |
    sed "s| of $SO\$| of $(basename "$SO")|" | head -12 | sed 's/^/      gdb: /'
}

# One column (the glibc reference, or one option set) per job; up to
# HM_JOBS columns at once. A column writes "name<TAB>cell<TAB>bad" lines to
# $WORK/col.<c>.cells and its failure reports to $WORK/col.<c>.details.
run_column() {  # run_column COLUMN_ID PRELOAD(0/1) OPTS
  local col=$1 preload=$2 opts=$3 entry kind name reps r cell bad note
  local base="$WORK/run/$col"
  mkdir -p "$base"
  : >"$WORK/col.$col.cells"
  : >"$WORK/col.$col.details"
  : >"$WORK/col.$col.slow"
  for entry in "${TESTS[@]}"; do
    kind=${entry%% *}
    name=${entry#* }
    reps=1
    ((preload)) && [[ $kind == ok ]] && reps=$REPEAT
    cell="" bad=0 note=""
    for ((r = 1; r <= reps; r++)); do
      run_case "$name" "$opts" "$preload" "$base/last" "$base/cwd"
      if ((RC == 124 || RC == 137)); then
        # Slow or hung: a machine loaded by other work slows every run; a
        # hang runs out of four times the time as well.
        local started=$SECONDS
        run_case "$name" "$opts" "$preload" "$base/last" "$base/cwd" $((4 * TIMEOUT))
        if ((RC != 124 && RC != 137)); then
          echo "SLOW $name [NITROHEAP_OPTIONS='${opts}']: over ${TIMEOUT}s (run $r of $reps), then $((SECONDS - started))s" \
            >>"$WORK/col.$col.slow"
        fi
      fi
      classify "$kind" "$RC" "$base/last.err" "$base/last.out" "$name"
      cell=$CELL
      if ((BAD)); then
        bad=1
        ((reps > 1)) && note=" (run $r of $reps)"
        break
      fi
    done
    printf '%s\t%s\t%s\n' "$name" "$cell" "$bad" >>"$WORK/col.$col.cells"
    if ((bad && preload)); then
      {
        echo "FAIL $name [NITROHEAP_OPTIONS='${opts}']: $cell$note"
        if [[ -s "$base/last.err" ]]; then
          echo "    stderr (first 8 lines):"
          head -n 8 "$base/last.err" | cut -c1-200 | sed 's/^/      /'
        else
          echo "    stderr: (empty)"
        fi
        if [[ $cell == CRASH || $cell == FAIL:SIG* ]]; then locate_crash "$name" "$opts"; fi
      } >>"$WORK/col.$col.details"
    fi
  done
}

run_start=$SECONDS
JOBS="${HM_JOBS:-$(nproc 2>/dev/null || echo 2)}"
columns=(ref)
for i in "${!OPTION_SETS[@]}"; do columns+=("$i"); done
running=()
for col in "${columns[@]}"; do
  if [[ $col == ref ]]; then run_column ref 0 "" &
  else run_column "$col" 1 "${OPTION_SETS[$col]}" &
  fi
  running+=($!)
  if ((${#running[@]} >= JOBS)); then wait "${running[0]}"; running=("${running[@]:1}"); fi
done
wait

declare -A CELLS
PASSED=0
FAILED=0
DETAILS="$WORK/details.txt"
: >"$DETAILS"
: >"$WORK/slow.txt"
for col in "${columns[@]}"; do
  key=$col
  [[ $col == ref ]] && key=glibc
  while IFS=$'\t' read -r name cell bad; do
    CELLS["$name|$key"]="$cell"
    [[ $col == ref ]] && continue
    if ((bad)); then FAILED=$((FAILED + 1)); else PASSED=$((PASSED + 1)); fi
  done <"$WORK/col.$col.cells"
  [[ $col == ref ]] || cat "$WORK/col.$col.details" >>"$DETAILS"
  [[ $col == ref ]] || cat "$WORK/col.$col.slow" >>"$WORK/slow.txt"
done
run_s=$((SECONDS - run_start))

# ---------------------------------------------------------------------------
# Table.
labels=("glibc")
for opts in "${OPTION_SETS[@]}"; do labels+=("${opts:-default}"); done
w=12
for l in "${labels[@]}"; do ((${#l} + 1 > w)) && w=$((${#l} + 1)); done
echo
echo "NitroHeap: $SO"
echo "hardened_malloc tests (kind: ok = must exit 0, misuse = should be detected, info = reported only)"
printf '%-46s %-7s' "test" "kind"
for l in "${labels[@]}"; do printf " %-${w}s" "$l"; done
echo
for entry in "${TESTS[@]}"; do
  kind=${entry%% *}
  name=${entry#* }
  printf '%-46s %-7s' "$name" "$kind"
  printf " %-${w}s" "(${CELLS["$name|glibc"]})"
  for i in "${!OPTION_SETS[@]}"; do printf " %-${w}s" "${CELLS["$name|$i"]}"; done
  echo
done
# Per-column counts of detections.
printf '%-46s %-7s' "misuse detected or contained" ""
printf " %-${w}s" ""
for i in "${!OPTION_SETS[@]}"; do
  n=0 m=0
  for entry in "${TESTS[@]}"; do
    [[ ${entry%% *} == misuse ]] || continue
    m=$((m + 1))
    case ${CELLS["${entry#* }|$i"]} in detected | contained) n=$((n + 1)) ;; esac
  done
  printf " %-${w}s" "$n/$m"
done
echo
echo
if [[ -s "$DETAILS" ]]; then
  echo "Failures:"
  cat "$DETAILS"
  echo
fi
if [[ -s "$WORK/slow.txt" ]]; then
  echo "Slow runs (past the timeout once, finished on a second run with 4x; not failures):"
  cat "$WORK/slow.txt"
  echo
fi
echo "(runs took ${run_s}s; timeout ${TIMEOUT}s per run; correct programs run ${REPEAT}x per option set)"
echo "hardened_malloc: $PASSED passed, $FAILED failed"
((FAILED == 0))
