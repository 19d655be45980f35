#!/usr/bin/env bash
# Fuzzes the engine with libFuzzer: builds testing/fuzz/heap_fuzz.cc with
# clang++ -fsanitize=fuzzer,address,undefined (no Bazel; the core/*.cc files
# the engine needs are compiled directly) and runs it for the given time.
#
# Usage: tools/fuzz.sh [SECONDS] [NITROHEAP_OPTIONS...]
#   SECONDS             total fuzzing time (default 60), split evenly between
#                       the option sets
#   NITROHEAP_OPTIONS   one run per option set (default: three, one per mode:
#                       "mode=fast,sample_rate=0" "mode=balanced,sample_rate=50"
#                       "mode=strict,sample_rate=50")
# Environment:
#   FUZZ_DIR        work directory (default /tmp/nitroheap-fuzz): the binary,
#                   one corpus per option set (kept between runs), crash-*
#                   artifacts and fuzz-*.log
#   FUZZ_SANITIZERS default "fuzzer,address,undefined"
#   FUZZ_JOBS       parallel libFuzzer workers per option set (default 1)
#   FUZZ_ARGS       extra libFuzzer flags
#
# ASan brings its own malloc; that is fine here: the engine is used as a
# library (nitro::Malloc, Partition objects), not as the process's malloc.
# Replay a crash with this build (tools/fuzz.sh keeps the binary):
#   NITROHEAP_OPTIONS=... $FUZZ_DIR/heap_fuzz CRASH_FILE
# or with the gcc build: bazel-bin/testing/fuzz/heap_fuzz_test --options=... CRASH_FILE
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SECONDS_TOTAL="${1:-60}"
shift || true
if [[ $# -gt 0 ]]; then
  OPTION_SETS=("$@")
else
  OPTION_SETS=("mode=fast,sample_rate=0" "mode=balanced,sample_rate=50" "mode=strict,sample_rate=50")
fi
FUZZ_DIR="${FUZZ_DIR:-/tmp/nitroheap-fuzz}"
SANITIZERS="${FUZZ_SANITIZERS:-fuzzer,address,undefined}"
JOBS="${FUZZ_JOBS:-1}"
mkdir -p "$FUZZ_DIR"

CXX="$(command -v clang++-14 || command -v clang++ || true)"
if [[ -z "$CXX" ]]; then
  echo "error: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

# The engine as //core:heap + //core:engine link it (no abi/: that would
# replace the process's malloc; no telemetry: the engine does not need it).
# The sources of //core:engine and //core:heap (bazel query 'kind("source
# file", deps(//core:heap) union deps(//core:engine))'), the fuzz target's deps.
CORE_SRCS=(
  core/base.cc core/lock.cc core/lock_registry.cc core/numa.cc core/os.cc core/options.cc
  core/cache_slots.cc core/central_free_list.cc core/contract.cc core/guarded_pool.cc
  core/meta_pool.cc core/page_heap.cc core/page_map.cc core/partition.cc core/report.cc
  core/thread_cache.cc core/movable.cc core/libc_heap.cc core/background.cc core/fork.cc
  core/heap.cc core/heap_report.cc core/reclaimer.cc core/sampling.cc core/strict.cc
  core/thread_registry.cc core/traits.cc
)
for f in "${CORE_SRCS[@]}"; do
  [[ -f "$f" ]] || { echo "error: $f is missing: update CORE_SRCS in tools/fuzz.sh" >&2; exit 2; }
done

BIN="$FUZZ_DIR/heap_fuzz"
echo "fuzz: building $BIN with $CXX -fsanitize=$SANITIZERS"
UBSAN_FLAGS=()
if [[ "$SANITIZERS" == *undefined* ]]; then UBSAN_FLAGS=(-fno-sanitize-recover=undefined); fi
"$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -fno-builtin \
  -fsanitize="$SANITIZERS" "${UBSAN_FLAGS[@]}" \
  -I"$ROOT" -I"$ROOT/abi/include" \
  "${CORE_SRCS[@]}" testing/fuzz/heap_fuzz.cc \
  -o "$BIN" -ldl -pthread

PER_SET=$(( SECONDS_TOTAL / ${#OPTION_SETS[@]} ))
(( PER_SET > 0 )) || PER_SET=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:handle_segv=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
for opts in "${OPTION_SETS[@]}"; do
  tag="$(echo "$opts" | tr -c 'a-zA-Z0-9_\n' '_')"
  corpus="$FUZZ_DIR/corpus-$tag"
  mkdir -p "$corpus"
  log="$FUZZ_DIR/fuzz-$tag.log"
  echo "fuzz: NITROHEAP_OPTIONS=$opts for ${PER_SET}s (corpus $corpus, log $log)"
  rm -f "$FUZZ_DIR"/current-"$tag".*
  JOB_FLAGS=()
  if (( JOBS > 1 )); then JOB_FLAGS=(-jobs="$JOBS" -workers="$JOBS"); fi
  set +e
  # -len_control=0: inputs of any length from the start (an input is a
  # program; short ones only reach shallow heap states). Run from FUZZ_DIR:
  # libFuzzer's job mode writes fuzz-N.log to the working directory.
  # shellcheck disable=SC2086
  (cd "$FUZZ_DIR" && NITRO_FUZZ_BREADCRUMB="$FUZZ_DIR/current-$tag.%p" NITROHEAP_OPTIONS="$opts" \
    "$BIN" -max_total_time="$PER_SET" -max_len=4096 -len_control=0 -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/crash-$tag-" \
    "${JOB_FLAGS[@]}" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1)
  rc=$?
  set -e
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$log" | tail -3 || true
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "fuzz: FOUND A PROBLEM with NITROHEAP_OPTIONS=$opts (exit $rc):"
    grep -E "^(nitroheap: [a-z]|heap_fuzz:|==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$log" | head -4 || true
    if ! grep -E "Test unit written to" "$log" | tail -1; then
      # An engine report (SIGABRT with the default action) bypasses
      # libFuzzer's handler: the breadcrumb of the process that died holds
      # the input.
      last="$(ls -t "$FUZZ_DIR"/current-"$tag".* 2>/dev/null | head -1 || true)"
      if [[ -n "$last" ]]; then
        cp "$last" "$FUZZ_DIR/crash-$tag-last-input"
        echo "fuzz: the input that was running: $FUZZ_DIR/crash-$tag-last-input"
      fi
    fi
    echo "fuzz: replay with: NITROHEAP_OPTIONS=$opts $BIN FILE"
  else
    echo "fuzz: no problem found with NITROHEAP_OPTIONS=$opts"
  fi
  rm -f "$FUZZ_DIR"/current-"$tag".*
done
exit $status
