#!/bin/bash
# Every symbol of the C ABI is exported by the preload library, and nothing
# of the engine leaks out.
set -u
so="$1"
# Global symbols only (upper-case type letter); TLS locals show as lower-case.
syms=$(nm -D --defined-only "$so" | awk '$2 ~ /[A-Z]/ {print $3}')
missing=0
for s in malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign \
    valloc pvalloc malloc_usable_size malloc_trim mallinfo2 free_sized free_aligned_sized \
    cfree mallopt malloc_stats malloc_info __libc_malloc __libc_free __libc_calloc \
    __libc_realloc __libc_memalign __libc_valloc __libc_pvalloc __posix_memalign \
    nitro_rust_alloc nitro_rust_alloc_zeroed nitro_rust_dealloc nitro_rust_realloc \
    nitro_owns nitro_is_active nitro_partition_create nitro_partition_id nitro_ctl \
    mallocx rallocx xallocx sallocx dallocx sdallocx nallocx malloc_stats_print \
    mallctl mallctlnametomib mallctlbymib \
    nitro_partition_calloc nitro_partition_usable_size nitro_partition_strdup nitro_partition_strndup \
    nitro_partition_create_typed nitro_partition_free_typed nitro_partition_for_traits \
    nitro_set_thread_partition nitro_thread_partition \
    nitro_thread_allocated nitro_thread_deallocated nitro_register_output nitro_register_error \
    nitro_partition_reset nitro_partition_visit nitro_partition_create_with nitro_region_create nitro_region_alloc \
    nitro_region_aligned_alloc nitro_region_free nitro_region_realloc nitro_region_usable_size \
    nitro_region_reset nitro_region_stats nitro_region_visit nitro_region_destroy \
    nitro_win_HeapCreate nitro_win_HeapDestroy nitro_win_HeapAlloc nitro_win_HeapReAlloc \
    nitro_win_HeapFree nitro_win_HeapSize nitro_win_HeapValidate nitro_win_HeapCompact \
    nitro_win_HeapLock nitro_win_HeapUnlock nitro_win_HeapWalk nitro_win_GetProcessHeap \
    nitro_win_GetProcessHeaps nitro_win_GetLastError nitro_win_SetLastError \
    nitro_partition_set_limit nitro_partition_on_pressure nitro_set_memory_limit \
    nitro_halloc nitro_hptr nitro_hpin nitro_hunpin nitro_hrealloc nitro_hfree nitro_hsize \
    nitro_quiescent nitro_thread_offline nitro_compact nitro_movable_stats_snapshot \
    _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t \
    _ZnamSt11align_val_t _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t \
    _ZdlPv _ZdaPv _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t _ZdlPvm _ZdaPvm \
    _ZdlPvSt11align_val_t _ZdaPvSt11align_val_t _ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t \
    _ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t; do
  if ! grep -qx "$s" <<<"$syms"; then
    echo "FAIL: $s is not exported by $so"
    missing=$((missing + 1))
  fi
done
# The program's built-in options: a weak reference the program may satisfy,
# never a definition of the library's own (which would hide the program's).
if ! nm -D "$so" | grep -qE '^ +[wv] nitroheap_options$'; then
  echo "FAIL: nitroheap_options is not a weak undefined reference in $so"
  missing=$((missing + 1))
fi
# The Win32 names are the header's inline functions, never the library's.
for s in HeapAlloc HeapFree HeapCreate GetProcessHeap GetLastError; do
  if grep -qx "$s" <<<"$syms"; then
    echo "FAIL: $s is exported: Win32 names must stay out of the preload's namespace"
    missing=$((missing + 1))
  fi
done
leaked=$(grep -c '^_ZN5nitro' <<<"$syms" || true)
if [ "$leaked" -ne 0 ]; then
  echo "FAIL: $leaked engine symbols (nitro::) are exported"
  missing=$((missing + 1))
fi
# The preload library needs the C library only: no C++ runtime (it would be
# loaded into C programs, and an undefined libstdc++ symbol ties the library
# to one runtime's version).
needed=$(readelf -d "$so" | awk '/NEEDED/ {print $NF}' | tr -d '[]' | grep -v '^libc\.so\.6$' || true)
if [ -n "$needed" ]; then
  echo "FAIL: $so needs more than libc.so.6: $needed"
  missing=$((missing + 1))
fi
cxx_undefined=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep '^_Z' || true)
if [ -n "$cxx_undefined" ]; then
  echo "FAIL: $so refers to C++ runtime symbols: $cxx_undefined"
  missing=$((missing + 1))
fi
if [ "$missing" -ne 0 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
echo "all $(wc -w <<<"$syms") exported symbols checked"
echo "1 passed, 0 failed"
