#!/bin/bash
# Installs NitroHeap's built library into a prefix: what `./nitro install`
# runs after building, and what //tools:install_test runs on the targets it
# depends on.
#   tools/install.sh (--prefix DIR [--destdir DIR] | --deb OUT.deb [--prefix DIR])
#                    --so LIB.so --static LIB.a --linkopts FILE --headers DIR
#                    --version X.Y.Z
# Writes DESTDIR/PREFIX/{lib,include,lib/pkgconfig,lib/cmake/NitroHeap}; the
# pkg-config and CMake files name PREFIX (DESTDIR is a staging root). With
# --deb, the tree (PREFIX /usr unless given) is staged and packed into a
# Debian package instead.
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 2; }

prefix="" destdir="" deb="" so="" static="" linkopts="" headers="" version=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value"
  case "$1" in
    --prefix) prefix="$2" ;;
    --destdir) destdir="$2" ;;
    --deb) deb="$2" ;;
    --so) so="$2" ;;
    --static) static="$2" ;;
    --linkopts) linkopts="$2" ;;
    --headers) headers="$2" ;;
    --version) version="$2" ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
if [ -n "$deb" ]; then
  [ -z "$destdir" ] || die "--deb stages the tree itself; drop --destdir"
  case "$deb" in *.deb) ;; *) die "--deb needs a file name ending in .deb, not '$deb'" ;; esac
  prefix="${prefix:-/usr}"
  destdir=$(mktemp -d)
  trap 'rm -rf "$destdir"' EXIT
fi
for name in prefix so static linkopts headers version; do
  [ -n "${!name}" ] || die "--$name is required"
done
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, not '$prefix'" ;; esac
[[ "$version" =~ ^([0-9]+)\.[0-9]+\.[0-9]+$ ]] || die "--version must be X.Y.Z, not '$version'"
major="${BASH_REMATCH[1]}"
prefix="${prefix%/}"

# The soname is decided in abi/BUILD.bazel, the version in VERSION: they
# must agree on the major number.
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libnitroheap.so.$major" ] ||
  die "$so has soname '$soname', but version $version needs libnitroheap.so.$major"

root="$destdir$prefix"
lib="$root/lib"
mkdir -p "$lib/pkgconfig" "$lib/cmake/NitroHeap" "$root/include/nitroheap"

install -m 0755 "$so" "$lib/libnitroheap.so.$version"
ln -sfn "libnitroheap.so.$version" "$lib/$soname"
ln -sfn "$soname" "$lib/libnitroheap.so"
install -m 0644 "$static" "$lib/libnitroheap.a"
install -m 0644 "$headers"/*.h "$root/include/nitroheap/"

# The static archive is linked whole: its objects that nothing references by
# name (operator new, the telemetry runtime, the __libc_* aliases) must still
# replace the C library's. It needs no C++ runtime (abi/exported_symbols_test
# checks the shared library for that).
static_libs="$(cat "$linkopts")"

cat > "$lib/pkgconfig/nitroheap.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: nitroheap
Description: NitroHeap hardened memory allocator (shared library: malloc, operator new, nitro_* API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lnitroheap
Libs.private: $static_libs
PC

cat > "$lib/pkgconfig/nitroheap-static.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: nitroheap-static
Description: NitroHeap hardened memory allocator, linked into the program (whole archive)
Version: $version
Cflags: -I\${includedir}
Libs: -Wl,--whole-archive,\${libdir}/libnitroheap.a,--no-whole-archive $static_libs
PC

# CMake: the prefix is found from this file's own place, so the tree can be
# moved (and a staged Debian package needs nothing rewritten).
cmake_libs=""
for flag in $static_libs; do
  case "$flag" in
    -pthread) cmake_libs+=";Threads::Threads" ;;
    -l*) cmake_libs+=";${flag#-l}" ;;
    *) cmake_libs+=";$flag" ;;
  esac
done

cat > "$lib/cmake/NitroHeap/NitroHeapConfig.cmake" <<CMAKE
# NitroHeap $version. find_package(NitroHeap) defines:
#   NitroHeap::nitroheap         the shared library (libnitroheap.so.$major)
#   NitroHeap::nitroheap_static  the static library, linked whole
# Linking either makes NitroHeap the program's malloc and operator new.
get_filename_component(_nitroheap_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
include(CMakeFindDependencyMacro)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_dependency(Threads)

if(NOT TARGET NitroHeap::nitroheap)
  add_library(NitroHeap::nitroheap SHARED IMPORTED)
  set_target_properties(NitroHeap::nitroheap PROPERTIES
    IMPORTED_LOCATION "\${_nitroheap_prefix}/lib/libnitroheap.so.$version"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_nitroheap_prefix}/include")
endif()

if(NOT TARGET NitroHeap::nitroheap_static)
  # An interface target, so the archive is named between --whole-archive
  # and --no-whole-archive in one link item that CMake cannot reorder.
  add_library(NitroHeap::nitroheap_static INTERFACE IMPORTED)
  set_target_properties(NitroHeap::nitroheap_static PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${_nitroheap_prefix}/include"
    INTERFACE_LINK_LIBRARIES "-Wl,--whole-archive,\${_nitroheap_prefix}/lib/libnitroheap.a,--no-whole-archive$cmake_libs")
endif()
unset(_nitroheap_prefix)
CMAKE

cat > "$lib/cmake/NitroHeap/NitroHeapConfigVersion.cmake" <<CMAKE
# NitroHeap $version: compatible with requests for the same major version
# that are not newer; 64-bit only.
set(PACKAGE_VERSION "$version")
if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT "\${PACKAGE_FIND_VERSION_MAJOR}" STREQUAL "" AND
       NOT "\${PACKAGE_FIND_VERSION_MAJOR}" STREQUAL "$major")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (64bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
CMAKE

if [ -z "$deb" ]; then
  echo "install.sh: installed NitroHeap $version into $root"
  exit 0
fi

mkdir -p "$destdir/DEBIAN"
cat > "$destdir/DEBIAN/control" <<CONTROL
Package: nitroheap
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: NitroHeap developers <nitroheap@localhost>
Depends: libc6
Section: libs
Priority: optional
Description: hardened, partitioned, observable memory allocator
 libnitroheap.so.$major (for LD_PRELOAD or -lnitroheap), libnitroheap.a,
 the nitroheap/*.h headers, pkg-config files (nitroheap, nitroheap-static)
 and a CMake package (find_package(NitroHeap)).
CONTROL
chmod -R u=rwX,go=rX "$destdir"
dpkg-deb --root-owner-group --build "$destdir" "$deb" >/dev/null
echo "install.sh: packed NitroHeap $version (prefix $prefix) into $deb"
