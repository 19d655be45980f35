#!/bin/bash
# A program written against jemalloc's own header (the *allocx API and
# mallctl) gives the same results under NitroHeap (LD_PRELOAD, in every hardening mode and with every
# allocation sampled) as linked with jemalloc itself. The probe prints only
# allocator-independent properties (abi/jemalloc_api_probe.c).
set -u
so="$(realpath "$1")"
probe="$2"
reference="$3"
failed=0
passed=0
expected=$("$reference") || { echo "FAIL: the jemalloc reference run failed"; exit 1; }
# The reference must itself hold every property, or the comparison proves nothing.
bad_property='(nallocx==sallocx|usable>=size|aligned|zero|kept|unchanged|not grown|still usable|at least [0-9KM]+|reported|intact|>=allocated|>=active|is 4096|true|is [0-9]|nonzero) 0'
if grep -qE "$bad_property" <<<"$expected"; then
  echo "FAIL: jemalloc itself breaks a property:"
  grep -E "$bad_property" <<<"$expected"
  exit 1
fi
for options in "" "mode=strict" "mode=fast" "sample_rate=1" "mode=strict,sample_rate=1,lock_audit=1"; do
  actual=$(NITROHEAP_OPTIONS="$options" LD_PRELOAD="$so" "$probe" 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] || [ "$actual" != "$expected" ]; then
    echo "FAIL: NITROHEAP_OPTIONS='$options' (exit $rc) differs from jemalloc:"
    diff <(echo "$expected") <(echo "$actual") | head -20
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
# Without the preload, the stub answers: the run above really was NitroHeap's.
if "$probe" >/dev/null 2>&1; then
  echo "FAIL: the probe ran without NitroHeap; the stub should have aborted"
  failed=$((failed + 1))
else
  passed=$((passed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
