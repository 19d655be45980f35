#!/bin/bash
# The installed library, used the ways a program outside Bazel uses it:
# tools/install.sh into a temporary prefix, then a C program built with
# pkg-config (shared, static), a CMake project with find_package(NitroHeap)
# (both imported targets), and the Debian package's contents. Each program
# must report that NitroHeap serves its malloc (and, under NITROHEAP=legacy,
# that it does not: the check can fail).
set -u
install_sh="$1" so="$2"
shift 2
static="" linkopts=""
while [ $# -gt 0 ]; do
  case "$1" in
    *.a) static="$1" ;;
    *.linkopts) linkopts="$1" ;;
    *) break ;;
  esac
  shift
done
version_file="$1" probe="$2" cmake_lists="$3"
shift 3
headers_dir=$(dirname "$1")
version=$(cat "$version_file")

work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/install_test.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
passed=0 failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

# A probe reports "active=1 owns=1 usable=N ctl=0 counted=1" under NitroHeap.
expect_nitro() {  # NAME PROGRAM
  local out
  out=$("$2" 2>&1)
  if [[ "$out" =~ ^active=1\ owns=1\ usable=[0-9]+\ ctl=0\ counted=1$ ]]; then
    pass "$1: $out"
  else
    fail "$1: NitroHeap does not serve malloc: '$out'"
  fi
  out=$(NITROHEAP=legacy "$2" 2>&1)
  if [[ "$out" == "active=0 owns=0 "* ]]; then
    pass "$1 under NITROHEAP=legacy: $out"
  else
    fail "$1 under NITROHEAP=legacy: expected active=0 owns=0, got '$out'"
  fi
}

install_args=(--so "$so" --static "$static" --linkopts "$linkopts"
              --headers "$headers_dir" --version "$version")
if "$install_sh" --prefix "$prefix" "${install_args[@]}"; then
  pass "install.sh --prefix"
else
  fail "install.sh --prefix"
  echo "$passed passed, $failed failed"
  exit 1
fi

# The layout: the real file, the soname link, the development link.
lib="$prefix/lib"
major="${version%%.*}"
if [ -f "$lib/libnitroheap.so.$version" ] && [ ! -L "$lib/libnitroheap.so.$version" ] &&
   [ "$(readlink "$lib/libnitroheap.so.$major")" = "libnitroheap.so.$version" ] &&
   [ "$(readlink "$lib/libnitroheap.so")" = "libnitroheap.so.$major" ] &&
   readelf -d "$lib/libnitroheap.so" | grep -q "(SONAME).*\[libnitroheap.so.$major\]" &&
   [ -f "$prefix/include/nitroheap/nitroheap.h" ] && [ -f "$lib/libnitroheap.a" ]; then
  pass "layout: lib/libnitroheap.so.$version, .so.$major and .so links, soname, .a, headers"
else
  fail "layout"; ls -lR "$prefix"
fi

# LD_PRELOAD of the installed soname into a program that knows nothing of
# NitroHeap (the interpreter looks the extension API up at run time).
ask='import ctypes; print(ctypes.CDLL(None).nitro_is_active())'
if [ "$(LD_PRELOAD="$lib/libnitroheap.so.$major" /usr/bin/python3 -c "$ask" 2>&1)" = "1" ] &&
   [ "$(/usr/bin/python3 -c "import ctypes; print(hasattr(ctypes.CDLL(None), 'nitro_is_active'))")" = "False" ]; then
  pass "LD_PRELOAD=lib/libnitroheap.so.$major: python3 runs on NitroHeap"
else
  fail "LD_PRELOAD=lib/libnitroheap.so.$major: nitro_is_active() is not 1 in python3"
fi

# pkg-config, shared: the program records the soname, and finds the library
# through the rpath pkg-config's libdir gives.
export PKG_CONFIG_PATH="$lib/pkgconfig"
if [ "$(pkg-config --modversion nitroheap)" = "$version" ] &&
   cc "$probe" -o "$work/pc_shared" $(pkg-config --cflags --libs nitroheap) \
      -Wl,-rpath,"$(pkg-config --variable=libdir nitroheap)"; then
  if readelf -d "$work/pc_shared" | grep -q "(NEEDED).*\[libnitroheap.so.$major\]"; then
    pass "pkg-config nitroheap: linked, NEEDED libnitroheap.so.$major"
  else
    fail "pkg-config nitroheap: no NEEDED libnitroheap.so.$major"
  fi
  expect_nitro "pkg-config shared" "$work/pc_shared"
else
  fail "pkg-config nitroheap: modversion or build"
fi

# pkg-config, static: nothing of NitroHeap left to load at run time, and the
# whole allocator inside (operator new too, which a C program never names).
if cc "$probe" -o "$work/pc_static" $(pkg-config --cflags --libs nitroheap-static); then
  if ! readelf -d "$work/pc_static" | grep -q "libnitroheap" &&
     nm "$work/pc_static" | grep -q " T malloc$" && nm "$work/pc_static" | grep -q " T _Znwm$"; then
    pass "pkg-config nitroheap-static: malloc and operator new linked in, no libnitroheap.so"
  else
    fail "pkg-config nitroheap-static: not a whole static link"
  fi
  expect_nitro "pkg-config static" "$work/pc_static"
else
  fail "pkg-config nitroheap-static: build"
fi

# CMake: find_package against the installed tree, both imported targets.
mkdir -p "$work/cmake_src" "$work/cmake_build"
cp "$cmake_lists" "$work/cmake_src/CMakeLists.txt"
cp "$probe" "$work/probe.c"  # the project names ../probe.c
if cmake -S "$work/cmake_src" -B "$work/cmake_build" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$work/cmake.log" 2>&1 &&
   cmake --build "$work/cmake_build" >>"$work/cmake.log" 2>&1; then
  pass "CMake find_package(NitroHeap 1.0): configured and built"
  expect_nitro "CMake NitroHeap::nitroheap" "$work/cmake_build/probe_shared"
  expect_nitro "CMake NitroHeap::nitroheap_static" "$work/cmake_build/probe_static"
else
  fail "CMake project"; cat "$work/cmake.log"
fi

# Debian package: the same tree under /usr, files naming /usr.
deb="$work/nitroheap.deb"
if "$install_sh" --deb "$deb" "${install_args[@]}" &&
   contents=$(dpkg-deb --contents "$deb") &&
   [ "$(dpkg-deb --field "$deb" Version)" = "$version" ]; then
  missing=""
  for f in ./usr/lib/libnitroheap.so.$version ./usr/lib/libnitroheap.so.$major \
           ./usr/lib/libnitroheap.so ./usr/lib/libnitroheap.a \
           ./usr/include/nitroheap/nitroheap.h ./usr/lib/pkgconfig/nitroheap.pc \
           ./usr/lib/cmake/NitroHeap/NitroHeapConfig.cmake; do
    grep -q " $f\( ->.*\)\?$" <<<"$contents" || missing+=" $f"
  done
  pc_prefix=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/pkgconfig/nitroheap.pc |
              sed -n 's/^prefix=//p')
  if [ -z "$missing" ] && [ "$pc_prefix" = "/usr" ]; then
    pass "Debian package: contents and prefix=/usr"
  else
    fail "Debian package: missing:$missing; pkg-config prefix '$pc_prefix'"
  fi
else
  fail "Debian package: build or version"
fi

# Bad input: one line, a defined exit status, nothing installed.
err=$("$install_sh" --prefix relative/dir "${install_args[@]}" 2>&1)
if [ $? -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [ ! -e relative ]; then
  pass "relative --prefix refused: $err"
else
  fail "relative --prefix: '$err'"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
