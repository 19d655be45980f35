#!/bin/sh
# Installs the Debian 12 packages NitroHeap's Bazel build and tests need.
# Idempotent and fast: only missing packages are installed, and `apt-get
# update` runs only if something is missing. Run as root.
set -eu

PACKAGES="
  bazel-bootstrap bazel-rules-java
  g++ clang libclang-rt-14-dev git
  libabsl-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  pybind11-dev python3-dev python3-protobuf python3-matplotlib
  libprotobuf-dev protobuf-compiler
  libjemalloc2 libjemalloc-dev libgoogle-perftools4 libmimalloc2.0
  sqlite3 valgrind strace redis-server redis-tools
  cmake make pkg-config
  libpython3.11-testsuite
  golang-go binutils linux-perf
"

# Rust: the rustup toolchain when there is one, else Debian's cargo.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  PACKAGES="$PACKAGES cargo"
fi

missing=""
for pkg in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing="$missing $pkg"
  fi
done

if [ -z "$missing" ]; then
  echo "install_deps: all packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: must run as root to install:$missing" >&2
  exit 1
fi

echo "install_deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086  # word splitting of $missing is intended
apt-get install -y -q --no-install-recommends $missing
