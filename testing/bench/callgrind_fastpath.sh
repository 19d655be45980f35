#!/usr/bin/env bash
# Instructions per malloc+free pair of one small size, counted by callgrind
# (repeatable, unlike timings), under LD_PRELOAD of each allocator.
#
# Runs testing/bench:fastpath_pairs with N and with 2N pairs and reports
# (I(2N) - I(N)) / N, which cancels start-up and exit. callgrind, unlike
# memcheck, does not replace malloc, so the preloaded allocator serves the
# program; every run checks that malloc came from the expected library.
#
# Usage: testing/bench/callgrind_fastpath.sh [--no-build] [--n N] [--size BYTES]
#            [--bin PATH] [--nitroheap-so PATH] [--api API]
# API (fastpath_pairs' third argument): malloc (default, every allocator),
# fresh (every allocator: N mallocs then N frees, objects new from fresh slabs),
# usable, aligned, sized-delete, aligned-new (every allocator: a pair with
# malloc_usable_size, aligned_alloc(64), C++ sized delete, aligned new and
# sized aligned delete),
# or NitroHeap's partition, partition-trait, mallocx, mallocx-trait
# (NitroHeap only; mallocx also jemalloc).
# Output: a table, and one machine-readable line per allocator:
#   callgrind <allocator> <instructions per pair> <N> <object defining malloc>
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

BUILD=1
N=200000
SIZE=64
BIN="$ROOT/bazel-bin/testing/bench/fastpath_pairs"
SO="$ROOT/bazel-bin/abi/libnitroheap.so"
API=malloc
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --n) N=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --nitroheap-so) SO=$2; shift ;;
    --api) API=$2; shift ;;
    *) echo "usage: $0 [--no-build] [--n N] [--size BYTES] [--bin PATH] [--nitroheap-so PATH] [--api API]" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "callgrind_fastpath: valgrind not installed" >&2; exit 2; }
if [ "$BUILD" -eq 1 ]; then
  bazel build //abi:libnitroheap.so //testing/bench:fastpath_pairs
fi

LIB=/usr/lib/x86_64-linux-gnu
ALLOCATORS="glibc: nitroheap:$SO mimalloc:$LIB/libmimalloc.so.2 jemalloc:$LIB/libjemalloc.so.2 tcmalloc:$LIB/libtcmalloc_minimal.so.4"
case "$API" in
  malloc|fresh|usable|aligned|sized-delete|aligned-new) ;;
  mallocx) ALLOCATORS="nitroheap:$SO jemalloc:$LIB/libjemalloc.so.2" ;;
  *) ALLOCATORS="nitroheap:$SO" ;;
esac

# NitroHeap's background thread works by the clock (statistics every 100 ms,
# the reclaimer), and valgrind runs the 2N-pair program about twice as long
# as the N-pair one, so its ticks would count as per-pair cost (10-15
# instructions per pair on a loaded machine). Off here unless NITROHEAP_OPTIONS
# is given; other allocators ignore the variable.
export NITROHEAP_OPTIONS=${NITROHEAP_OPTIONS-background_thread=0}

# count PRELOAD PAIRS -> prints "INSTRUCTIONS MALLOC_FROM"
count() {
  local preload=$1 pairs=$2 log out
  log=$(mktemp)
  out=$(env ${preload:+LD_PRELOAD=$preload} valgrind --tool=callgrind --callgrind-out-file=/dev/null \
          "$BIN" "$pairs" "$SIZE" "$API" 2>"$log") || { cat "$log" >&2; rm -f "$log"; return 1; }
  local ir pid
  # The program's own count: valgrind also traces the heap's background
  # clone children (fork without exec), each with its own Collected line.
  pid=$(sed -n 's/^==\([0-9]*\)== Command: .*/\1/p' "$log" | head -n 1)
  ir=$(sed -n "s/^==$pid== Collected : \([0-9]*\).*/\1/p" "$log")
  rm -f "$log"
  [ -n "$ir" ] || { echo "callgrind_fastpath: no instruction count" >&2; return 1; }
  echo "$ir ${out##*malloc_from=}"
}

printf '%-10s %18s %10s  %s\n' allocator "instr/pair ($SIZE B, $API)" N "malloc from"
status=0
machine=
for entry in $ALLOCATORS; do
  name=${entry%%:*}
  lib=${entry#*:}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then
    echo "callgrind_fastpath: $name: $lib not found, skipped" >&2
    continue
  fi
  read -r i1 from < <(count "$lib" "$N") || { status=1; continue; }
  read -r i2 _ < <(count "$lib" $((2 * N))) || { status=1; continue; }
  per=$(awk -v a="$i1" -v b="$i2" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')
  expect=${lib:-libc.so}
  case "$from" in
    *"$(basename "$expect")"*) ;;
    *) echo "callgrind_fastpath: $name: malloc came from $from, not $expect" >&2; status=1 ;;
  esac
  printf '%-10s %18s %10s  %s\n' "$name" "$per" "$N" "$from"
  machine+="callgrind $name $per $N $from"$'\n'
done
printf '%s' "$machine"
exit $status
