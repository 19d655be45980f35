# Shared by run_lifecycle_tests.sh and run_torture.sh (sourced, not run).
#
# lc_init SO_PATH [BIN_DIR | FILE...]
#   SO_PATH: the preload library, or "none" to run everything on the C
#   library's malloc (a check of the tests themselves).
#   The programs come from, in this order: NITRO_LIFECYCLE_COMPILE=1 (compile
#   the sources next to this file into a temporary directory with gcc/g++),
#   one directory argument (prebuilt binaries named as the sources), or a
#   list of files (Bazel passes each program's location; matched by name).
# lc_bin NAME   prints the path of program NAME (exit_race.py included).

LC_SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LC_PROGRAMS=(alloc_until_null close_fds exit_race fd_list fork_torture free_protnone
             nothrow_new partition_free partition_threads pthread_exit_main rust_realloc signals stack_walk)
PY=/usr/bin/python3   # Debian's python, never a shim on PATH
declare -A LC_FILES=()
LC_WORK=""

lc_die() { echo "error: $*" >&2; exit 2; }

lc_compile() {  # lc_compile OUT_DIR
  local out=$1 name src
  local flags=(-O2 -g1 -fno-omit-frame-pointer -D_FORTIFY_SOURCE=1 -Wall -Wextra -Werror
               -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers -Wno-unused-function)
  for name in "${LC_PROGRAMS[@]}"; do
    if [[ -f "$LC_SRC_DIR/$name.cc" ]]; then
      src="$LC_SRC_DIR/$name.cc"
      g++ -std=c++17 "${flags[@]}" -o "$out/$name" "$src" -ldl -pthread || lc_die "cannot compile $src"
    else
      src="$LC_SRC_DIR/$name.c"
      gcc "${flags[@]}" -o "$out/$name" "$src" -ldl -pthread || lc_die "cannot compile $src"
    fi
  done
  cp "$LC_SRC_DIR/exit_race.py" "$out/exit_race.py"
}

lc_init() {
  SO=${1:-}
  [[ -n "$SO" ]] || lc_die "no preload library given (a path, or 'none' for the C library's malloc)"
  shift
  if [[ "$SO" != none ]]; then
    [[ -f "$SO" ]] || lc_die "preload library '$SO' not found"
    SO="$(cd "$(dirname "$SO")" && pwd)/$(basename "$SO")"
  fi
  # Hermetic: nothing of the caller's allocator settings leaks in.
  unset LD_PRELOAD NITROHEAP NITROHEAP_OPTIONS
  export LC_ALL=C PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
  ulimit -c 0   # the crashes expected here must not leave core files
  LC_WORK="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/nitro_lifecycle.XXXXXX")"
  trap 'rm -rf "$LC_WORK"' EXIT
  local f
  if [[ "${NITRO_LIFECYCLE_COMPILE:-0}" == 1 ]]; then
    mkdir "$LC_WORK/bin"
    lc_compile "$LC_WORK/bin"
    set -- "$LC_WORK/bin"
  fi
  if [[ $# -eq 1 && -d "$1" ]]; then
    for f in "${LC_PROGRAMS[@]}" exit_race.py; do LC_FILES[$f]="$1/$f"; done
  elif [[ $# -ge 1 ]]; then
    for f in "$@"; do LC_FILES[$(basename "$f")]="$f"; done
  else
    lc_die "no programs: pass a directory of prebuilt binaries (or their paths), or set NITRO_LIFECYCLE_COMPILE=1"
  fi
  [[ -n "${LC_FILES[exit_race.py]:-}" ]] || LC_FILES[exit_race.py]="$LC_SRC_DIR/exit_race.py"
  for f in "${LC_PROGRAMS[@]}" exit_race.py; do
    [[ -f "${LC_FILES[$f]:-}" ]] || lc_die "program '$f' not found (looked for '${LC_FILES[$f]:-}')"
    LC_FILES[$f]="$(cd "$(dirname "${LC_FILES[$f]}")" && pwd)/$(basename "${LC_FILES[$f]}")"
  done
}

lc_bin() { printf '%s\n' "${LC_FILES[$1]}"; }

# lc_run TIMEOUT OPTIONS OUT ERR CMD...: runs CMD with NitroHeap preloaded
# (unless SO is "none") and NITROHEAP_OPTIONS=OPTIONS, stdout to OUT and
# stderr to ERR, under `timeout` (SIGKILL 3 s after SIGTERM: a hung process
# may block SIGTERM). Sets RC. (The braces keep bash's own "Segmentation
# fault" notices out of the log: the expected deaths are reported by status.)
lc_run() {
  local t=$1 opts=$2 out=$3 err=$4
  shift 4
  if [[ "$SO" == none ]]; then
    { timeout -k 3 "$t" "$@" >"$out" 2>"$err" </dev/null; } 2>/dev/null
  else
    { timeout -k 3 "$t" env LD_PRELOAD="$SO" NITROHEAP_OPTIONS="$opts" "$@" >"$out" 2>"$err" </dev/null; } 2>/dev/null
  fi
  RC=$?
}

# lc_describe RC TIMEOUT: the exit status in words.
lc_describe() {
  case "$1" in
    124) echo "hung (timed out after $2 s, ended by SIGTERM)" ;;
    137) echo "hung or killed (SIGKILL; SIGTERM did not end it within 3 s of the $2 s limit)" ;;
    *) if (($1 > 128)); then echo "killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"; else echo "exit $1"; fi ;;
  esac
}
