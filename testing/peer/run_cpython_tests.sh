#!/usr/bin/env bash
# CPython's own regression tests (Debian's libpython3.11-testsuite) without
# and with NitroHeap under LD_PRELOAD; reports every suite whose result
# differs from the run without the preload.
#
# Usage: run_cpython_tests.sh [--quick] [--suites "test_a test_b"] [--jobs N]
#                             [--repeat N] [--timeout SECONDS] [--logs DIR]
#                             SO [OPTION_SET...]
#   SO          path to libnitroheap.so
#   OPTION_SET  NITROHEAP_OPTIONS values, one run each (default: "" mode=strict)
#   --quick     the quick subset (15 suites, some reduced) instead of the
#               broad one (~60 suites)
#   --suites    these suites instead of a built-in list
#   --jobs      suites run at once (default 2)
#   --repeat N  run each suite up to N times under the preload (races at
#               exit show in some runs only); the first run that does not
#               pass counts
#   --timeout   seconds per suite before it counts as a hang (default 420,
#               120 with --quick; regrtest's own --timeout, with a hard kill
#               60 s later)
#   --logs      keep every suite's log in DIR (otherwise only the logs of the
#               suites that differ are kept, in a folder named at the end)
#
# Needs: apt-get install libpython3.11-testsuite (tests of /usr/bin/python3).
# The driver runs on plain /usr/bin/python3; only the test processes (and
# everything they start) get LD_PRELOAD and NITROHEAP_OPTIONS.
# Suites that do not pass without the preload are excluded from the
# comparison, and listed. Last line: "cpython: N passed, M failed", counting
# (suite, option set) pairs with the same / a different result.
# Exit status: 0 when every compared suite has the same result, 1 when one
# passes without NitroHeap and not with it, 2 for usage errors.
set -euo pipefail
unset LD_PRELOAD NITROHEAP NITROHEAP_OPTIONS
HERE="$(cd "$(dirname "$0")" && pwd)"
if [[ ! -x /usr/bin/python3 ]]; then
  echo "error: /usr/bin/python3 not found" >&2
  exit 2
fi
exec /usr/bin/python3 -I "$HERE/run_cpython_tests.py" "$@"
