#include "core/meta_pool.h"

#include "core/os.h"

namespace nitro {
namespace {

constexpr size_t kChunkBytes = 4 << 20;

struct MetaArena {
  SpinLock lock{LockRank::kMetaArena};
  uintptr_t cursor = 0;
  uintptr_t limit = 0;
  // Written under the lock, read without it by the statistics (relaxed).
  size_t mapped = 0;
};

MetaArena& Arena() {
  static MetaArena arena;
  return arena;
}

}  // namespace

void* MetaAllocRaw(size_t bytes, size_t align) {
  bytes = RoundUp(bytes, 64);  // cache-line aligned: metadata is written by many threads
  if (align < 64) align = 64;
  MetaArena& a = Arena();
  LockGuard g(a.lock);
  if (RoundUp(a.cursor, align) + bytes > a.limit) {
    size_t chunk = bytes + 2 * kPageSize > kChunkBytes ? RoundUp(bytes + 2 * kPageSize, kPageSize)
                                                      : kChunkBytes;
    void* raw = os::Reserve(chunk, kPageSize);
    if (raw == nullptr) return nullptr;
    uintptr_t base = reinterpret_cast<uintptr_t>(raw);
    os::NoHugePages(raw, chunk);  // filled a little at a time
    // Guard pages: an overflow out of, or into, metadata faults.
    os::ProtectNone(raw, kPageSize);
    os::ProtectNone(reinterpret_cast<void*>(base + chunk - kPageSize), kPageSize);
    a.cursor = base + kPageSize;
    a.limit = base + chunk - kPageSize;
    __atomic_store_n(&a.mapped, a.mapped + chunk, __ATOMIC_RELAXED);
  }
  a.cursor = RoundUp(a.cursor, align);  // a fresh chunk's cursor is page-aligned
  void* p = reinterpret_cast<void*>(a.cursor);
  a.cursor += bytes;
  return p;
}

size_t MetaBytesMapped() { return __atomic_load_n(&Arena().mapped, __ATOMIC_RELAXED); }
SpinLock& MetaLock() { return Arena().lock; }

}  // namespace nitro
