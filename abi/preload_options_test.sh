#!/bin/bash
# A program that defines nitroheap_options and exports it (-rdynamic) gets
# those options under LD_PRELOAD, and NITROHEAP_OPTIONS overrides them key
# by key; a malformed built-in option is reported as "nitroheap_options: ...".
set -u
so="$(realpath "$1")"
probe="$2"
failed=0
check() {  # name, expected stdout, actual stdout
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected '$2', got '$3'"
    failed=$((failed + 1))
  fi
}
out=$(env -u NITROHEAP_OPTIONS LD_PRELOAD="$so" "$probe")
check "built-in options" "sample_rate=4242 decay_ms=77" "$out"
out=$(NITROHEAP_OPTIONS="decay_ms=5" LD_PRELOAD="$so" "$probe")
check "environment overrides" "sample_rate=4242 decay_ms=5" "$out"
out=$(env -u NITROHEAP_OPTIONS "$probe")
check "without the preload" "inactive" "$out"
err=$(NITROHEAP_OPTIONS="decay_ms=soon" LD_PRELOAD="$so" "$probe" 2>&1 >/dev/null)
check "environment errors" "nitroheap: NITROHEAP_OPTIONS: option 'decay_ms' has a malformed value 'soon'; expected a whole number from 0 to 3600000" "$err"
if [ "$failed" -ne 0 ]; then
  echo "0 passed, $failed failed"
  exit 1
fi
echo "4 passed, 0 failed"
