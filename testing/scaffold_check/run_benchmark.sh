#!/bin/sh
set -e
exec "$1" --benchmark_min_time=0.01
