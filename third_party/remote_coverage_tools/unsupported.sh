#!/bin/sh
echo "remote_coverage_tools is an offline stub; bazel coverage is unsupported" >&2
exit 1
