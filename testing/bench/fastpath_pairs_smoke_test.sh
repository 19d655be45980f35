#!/bin/bash
# fastpath_pairs, the loop callgrind_fastpath.sh counts, keeps working for
# every API it offers: each runs a few pairs under NitroHeap (preloaded), and
# the ones every allocator offers run under glibc too; each must finish,
# print its line, and report malloc from the library it ran under.
set -u
bin=$1
so=$2
status=0
check() {  # check PRELOAD EXPECT API
  local out
  if ! out=$(env ${1:+LD_PRELOAD=$1} "$bin" 1000 64 "$3" 2>&1); then
    echo "FAIL: $3 under ${1:-glibc} exited non-zero: $out"
    status=1
  elif [[ "$out" != pairs=1000\ size=64\ *malloc_from=*"$2"* ]]; then
    echo "FAIL: $3 under ${1:-glibc} printed: $out"
    status=1
  else
    echo "ok: $3 under ${1:-glibc}"
  fi
}
for api in malloc fresh usable aligned sized-delete aligned-new partition partition-trait mallocx mallocx-trait; do
  check "$so" libnitroheap.so "$api"
done
for api in malloc fresh usable aligned sized-delete aligned-new; do
  check "" libc.so "$api"
done
# A name it does not know: refused with the list of those it does.
if out=$("$bin" 10 64 no-such-api 2>&1); then
  echo "FAIL: an unknown API was accepted: $out"
  status=1
elif [[ "$out" != *"unknown API no-such-api"*aligned-new* ]]; then
  echo "FAIL: an unknown API got: $out"
  status=1
fi
exit $status
