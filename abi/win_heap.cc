// The Windows heap API (include/nitroheap/win_heap.h): each growable heap is
// a partition, each fixed-size heap a free-list region over one mapping
// made at HeapCreate, and the process heap is malloc's. The Win32 names are
// the header's inline wrappers; the library exports nitro_win_*.
#define NITRO_WIN_HEAP_NO_WIN32_NAMES
#include "nitroheap/win_heap.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base.h"
#include "core/heap.h"
#include "core/os.h"
#include "core/partition.h"
#include "core/region.h"
#include "core/report.h"
#include "nitroheap/nitroheap.h"

namespace {

using nitro::Partition;
using nitro::Region;

constexpr uint64_t kHeapMagic = 0x6e77696e68656170ull;  // "nwinheap"
constexpr int kMaxHeaps = 1024;
constexpr DWORD kCreateFlags = HEAP_NO_SERIALIZE | HEAP_GENERATE_EXCEPTIONS;
constexpr DWORD kAllocFlags = HEAP_NO_SERIALIZE | HEAP_GENERATE_EXCEPTIONS | HEAP_ZERO_MEMORY;
constexpr DWORD kReAllocFlags = kAllocFlags | HEAP_REALLOC_IN_PLACE_ONLY;

enum class Kind { kProcess, kGrowable, kFixed };

struct WinHeap {
  uint64_t magic;
  Kind kind;
  DWORD flags;
  pthread_mutex_t lock;  // HeapLock's, recursive
  Partition* partition;  // kGrowable
  Region* region;        // kFixed
  void* mapping;         // kFixed: the region's memory
  size_t mapping_bytes;
};

WinHeap g_process_heap;
WinHeap g_heaps[kMaxHeaps];
pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_once_t g_once = PTHREAD_ONCE_INIT;
unsigned g_next_name = 0;
__thread DWORD tls_last_error __attribute__((tls_model("initial-exec"))) = ERROR_SUCCESS;

void InitLock(pthread_mutex_t* m) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
}

// fork: no heap lock may be held by a thread that does not exist in the
// child, so the parent takes them all first (after the table lock).
void ForkPrepare() {
  pthread_mutex_lock(&g_table_lock);
  pthread_mutex_lock(&g_process_heap.lock);
  for (auto& h : g_heaps) {
    if (h.magic == kHeapMagic) pthread_mutex_lock(&h.lock);
  }
}
void ForkParent() {
  for (int i = kMaxHeaps - 1; i >= 0; i--) {
    if (g_heaps[i].magic == kHeapMagic) pthread_mutex_unlock(&g_heaps[i].lock);
  }
  pthread_mutex_unlock(&g_process_heap.lock);
  pthread_mutex_unlock(&g_table_lock);
}
void ForkChild() {
  for (auto& h : g_heaps) {
    if (h.magic == kHeapMagic) InitLock(&h.lock);
  }
  InitLock(&g_process_heap.lock);
  pthread_mutex_init(&g_table_lock, nullptr);
}

void InitOnce() {
  nitro::EnsureStarted();
  InitLock(&g_process_heap.lock);
  g_process_heap.kind = Kind::kProcess;
  g_process_heap.partition = nitro::DefaultPartition();
  g_process_heap.magic = kHeapMagic;
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
}

void SetError(DWORD e) { tls_last_error = e; }

WinHeap* FromHandle(HANDLE h) {
  pthread_once(&g_once, InitOnce);
  auto* heap = static_cast<WinHeap*>(h);
  auto a = reinterpret_cast<uintptr_t>(h);
  auto first = reinterpret_cast<uintptr_t>(&g_heaps[0]);
  bool in_table = a >= first && a < first + sizeof(g_heaps) && (a - first) % sizeof(WinHeap) == 0;
  if ((heap == &g_process_heap || in_table) &&
      __atomic_load_n(&heap->magic, __ATOMIC_ACQUIRE) == kHeapMagic) {
    return heap;
  }
  SetError(ERROR_INVALID_HANDLE);
  return nullptr;
}

// Takes the heap's lock for one call unless the heap or the call says
// HEAP_NO_SERIALIZE.
class CallGuard {
 public:
  CallGuard(WinHeap* h, DWORD flags)
      : lock_(((h->flags | flags) & HEAP_NO_SERIALIZE) ? nullptr : &h->lock) {
    if (lock_ != nullptr) pthread_mutex_lock(lock_);
  }
  ~CallGuard() {
    if (lock_ != nullptr) pthread_mutex_unlock(lock_);
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

 private:
  pthread_mutex_t* lock_;
};

const char* NameOf(WinHeap* h) {
  return h->kind == Kind::kFixed ? h->region->name() : h->partition->name();
}

// Out of memory: the last error, and HEAP_GENERATE_EXCEPTIONS' outcome
// (win_heap.h). Called with the heap's lock released, so a SIGABRT
// handler that jumps away leaves the heap usable.
LPVOID NoMemory(WinHeap* h, DWORD flags, const char* what) {
  SetError(ERROR_NOT_ENOUGH_MEMORY);
  if ((h->flags | flags) & HEAP_GENERATE_EXCEPTIONS) {
    nitro::LogLine("%s: STATUS_NO_MEMORY (%#x) in heap %p (HEAP_GENERATE_EXCEPTIONS)", what,
                   STATUS_NO_MEMORY, static_cast<void*>(h));
    raise(SIGABRT);
  }
  return nullptr;
}

// A live block of this heap, answered without reporting anything. On the
// process heap only "NitroHeap owns it" is known here (its blocks may sit
// in thread caches or the guarded pool), and nothing in legacy mode.
bool IsLive(WinHeap* h, const void* p) {
  if (h->kind == Kind::kFixed) return h->region->IsLiveBlock(p);
  if (h->kind == Kind::kProcess) {
    return p != nullptr && (nitro::Mode() != nitro::HeapMode::kNitro || nitro_owns(p));
  }
  nitro::PointerInfo info;
  if (!nitro::Lookup(p, &info) || info.partition != h->partition || info.free_run) return false;
  switch (info.span->state) {
    case nitro::SpanState::kLarge:
      return info.object_start == p;
    case nitro::SpanState::kSlab: {
      // Free objects, in a thread cache or not, have their flag set.
      return info.object_start == p && !info.span->ObjectIsFree(p);
    }
    default:  // a sampled block: the guarded pool knows where it starts
      return true;
  }
}

size_t UsableSize(WinHeap* h, void* p) {
  switch (h->kind) {
    case Kind::kProcess: return malloc_usable_size(p);
    case Kind::kGrowable: return h->partition->UsableSize(p);
    case Kind::kFixed: return h->region->UsableSize(p);
  }
  return 0;
}

void* Allocate(WinHeap* h, size_t n) {
  switch (h->kind) {
    case Kind::kProcess: return malloc(n);
    case Kind::kGrowable: return h->partition->Allocate(n);
    case Kind::kFixed: return h->region->Allocate(n, nitro::kMinAlign);
  }
  return nullptr;
}

void* Reallocate(WinHeap* h, void* p, size_t n, bool in_place_only) {
  if (!in_place_only) {
    switch (h->kind) {
      case Kind::kProcess: return realloc(p, n);
      case Kind::kGrowable: return h->partition->Reallocate(p, n);
      case Kind::kFixed: return h->region->Reallocate(p, n);
    }
  }
  if (h->kind == Kind::kFixed) return h->region->ResizeInPlace(p, n);
  if (n <= UsableSize(h, p)) return p;
  nitro::PointerInfo info;
  if (h->kind == Kind::kGrowable && nitro::Lookup(p, &info) &&
      info.span->state == nitro::SpanState::kLarge && n > nitro::kMaxSmallSize &&
      h->partition->ResizeLargeInPlace(info.span, n)) {
    return p;
  }
  return nullptr;
}

}  // namespace

extern "C" {

NITRO_EXPORT DWORD nitro_win_GetLastError(void) { return tls_last_error; }
NITRO_EXPORT void nitro_win_SetLastError(DWORD e) { tls_last_error = e; }

NITRO_EXPORT HANDLE nitro_win_GetProcessHeap(void) {
  pthread_once(&g_once, InitOnce);
  return &g_process_heap;
}

NITRO_EXPORT HANDLE nitro_win_HeapCreate(DWORD options, SIZE_T initial, SIZE_T maximum) {
  pthread_once(&g_once, InitOnce);
  if (options & HEAP_CREATE_ENABLE_EXECUTE) {
    SetError(ERROR_NOT_SUPPORTED);
    return nullptr;
  }
  if ((options & ~kCreateFlags) != 0 || (maximum != 0 && initial > maximum) ||
      maximum > nitro::kMaxRequest) {
    SetError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  pthread_mutex_lock(&g_table_lock);
  WinHeap* h = nullptr;
  for (auto& slot : g_heaps) {
    if (slot.magic != kHeapMagic) {
      h = &slot;
      break;
    }
  }
  bool ok = false;
  if (h != nullptr) {
    memset(h, 0, sizeof(*h));
    h->flags = options;
    if (maximum == 0) {
      h->kind = Kind::kGrowable;
      // Names identify partitions in statistics; skip any taken.
      for (int tries = 0; tries < 1000 && h->partition == nullptr; tries++) {
        char name[Partition::kNameMax];
        snprintf(name, sizeof(name), "winheap-%u", g_next_name++);
        h->partition = Partition::Create(name, nitro::PartitionConfig{});
        if (h->partition == nullptr && errno != EEXIST) break;
      }
      ok = h->partition != nullptr;
    } else {
      h->kind = Kind::kFixed;
      h->mapping_bytes = nitro::RoundUp(maximum, nitro::kPageSize);
      h->mapping = nitro::os::Reserve(h->mapping_bytes, nitro::kPageSize);
      if (h->mapping != nullptr) {
        h->region = Region::Create(h->mapping, h->mapping_bytes, nitro::RegionKind::kFreeList,
                                   (options & HEAP_NO_SERIALIZE) == 0);
        if (h->region == nullptr) nitro::os::Unmap(h->mapping, h->mapping_bytes);
      }
      ok = h->region != nullptr;
    }
    if (ok) {
      InitLock(&h->lock);
      __atomic_store_n(&h->magic, kHeapMagic, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&g_table_lock);
  if (!ok) {
    SetError(ERROR_NOT_ENOUGH_MEMORY);
    return nullptr;
  }
  return h;
}

NITRO_EXPORT BOOL nitro_win_HeapDestroy(HANDLE handle) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  if (h->kind == Kind::kProcess) {
    SetError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  pthread_mutex_lock(&g_table_lock);
  pthread_mutex_lock(&h->lock);  // waits for serialized calls in flight
  __atomic_store_n(&h->magic, uint64_t{0}, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&h->lock);
  pthread_mutex_unlock(&g_table_lock);
  if (h->kind == Kind::kGrowable) {
    Partition::Destroy(h->partition);
  } else {
    h->region->Destroy();
    nitro::os::Unmap(h->mapping, h->mapping_bytes);
  }
  return TRUE;
}

NITRO_EXPORT LPVOID nitro_win_HeapAlloc(HANDLE handle, DWORD flags, SIZE_T bytes) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return nullptr;
  if ((flags & ~kAllocFlags) != 0) {
    SetError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  void* p;
  {
    CallGuard g(h, flags);
    p = Allocate(h, bytes);
    if (p != nullptr && (flags & HEAP_ZERO_MEMORY)) memset(p, 0, UsableSize(h, p));
  }
  return p != nullptr ? p : NoMemory(h, flags, "HeapAlloc");
}

NITRO_EXPORT LPVOID nitro_win_HeapReAlloc(HANDLE handle, DWORD flags, LPVOID mem, SIZE_T bytes) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return nullptr;
  if ((flags & ~kReAllocFlags) != 0 || mem == nullptr) {
    SetError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  void* q;
  {
    CallGuard g(h, flags);
    if (!IsLive(h, mem)) {
      nitro::ReportMisuse(nitro::misuse::kInvalidFree, mem, NameOf(h),
                          "HeapReAlloc of a pointer that is not a live block of heap %p", handle);
    }
    size_t old_usable = UsableSize(h, mem);
    q = Reallocate(h, mem, bytes, (flags & HEAP_REALLOC_IN_PLACE_ONLY) != 0);
    if (q != nullptr && (flags & HEAP_ZERO_MEMORY)) {
      size_t usable = UsableSize(h, q);
      if (usable > old_usable) memset(static_cast<char*>(q) + old_usable, 0, usable - old_usable);
    }
  }
  return q != nullptr ? q : NoMemory(h, flags, "HeapReAlloc");
}

NITRO_EXPORT BOOL nitro_win_HeapFree(HANDLE handle, DWORD flags, LPVOID mem) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  if ((flags & ~HEAP_NO_SERIALIZE) != 0) {
    SetError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  if (mem == nullptr) return TRUE;
  CallGuard g(h, flags);
  // Each heap's own free reports a foreign, interior or double free.
  switch (h->kind) {
    case Kind::kProcess: free(mem); break;
    case Kind::kGrowable: nitro_partition_free(reinterpret_cast<nitro_partition_t*>(h->partition), mem); break;
    case Kind::kFixed: h->region->Free(mem); break;
  }
  return TRUE;
}

NITRO_EXPORT SIZE_T nitro_win_HeapSize(HANDLE handle, DWORD flags, LPCVOID mem) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return static_cast<SIZE_T>(-1);
  CallGuard g(h, flags);
  if ((flags & ~HEAP_NO_SERIALIZE) != 0 || !IsLive(h, mem)) {
    SetError(ERROR_INVALID_PARAMETER);
    return static_cast<SIZE_T>(-1);
  }
  return UsableSize(h, const_cast<void*>(mem));
}

NITRO_EXPORT BOOL nitro_win_HeapValidate(HANDLE handle, DWORD flags, LPCVOID mem) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  CallGuard g(h, flags);
  if (mem != nullptr) return IsLive(h, mem) ? TRUE : FALSE;
  // The whole heap: a region's headers and links; a partition's metadata
  // is out of line, out of the program's reach.
  return h->kind != Kind::kFixed || h->region->Validate() ? TRUE : FALSE;
}

NITRO_EXPORT SIZE_T nitro_win_HeapCompact(HANDLE handle, DWORD flags) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return 0;
  CallGuard g(h, flags);
  SetError(ERROR_SUCCESS);
  switch (h->kind) {
    case Kind::kProcess: nitro_release_free_memory(); return 0;
    case Kind::kGrowable: h->partition->ReleaseFreeMemory(); return 0;
    case Kind::kFixed: return h->region->Stats().largest_free;
  }
  return 0;
}

NITRO_EXPORT BOOL nitro_win_HeapLock(HANDLE handle) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  pthread_mutex_lock(&h->lock);
  return TRUE;
}

NITRO_EXPORT BOOL nitro_win_HeapUnlock(HANDLE handle) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  if (pthread_mutex_unlock(&h->lock) != 0) {  // not held by this thread
    SetError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  return TRUE;
}

NITRO_EXPORT BOOL nitro_win_HeapWalk(HANDLE handle, LPPROCESS_HEAP_ENTRY entry) {
  WinHeap* h = FromHandle(handle);
  if (h == nullptr) return FALSE;
  if (entry == nullptr) {
    SetError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  if (h->kind == Kind::kProcess) {
    SetError(ERROR_NOT_SUPPORTED);
    return FALSE;
  }
  CallGuard g(h, 0);
  auto after = reinterpret_cast<uintptr_t>(entry->lpData);
  if (h->kind == Kind::kFixed && entry->lpData == nullptr) {
    auto capacity = static_cast<DWORD>(h->region->data_end() - h->region->data_start());
    memset(entry, 0, sizeof(*entry));
    entry->lpData = reinterpret_cast<void*>(h->region->data_start());
    entry->cbData = capacity;
    entry->wFlags = PROCESS_HEAP_REGION;
    entry->Region.dwCommittedSize = capacity;
    entry->Region.lpFirstBlock = reinterpret_cast<void*>(h->region->data_start() + Region::kBlockHeader);
    entry->Region.lpLastBlock = reinterpret_cast<void*>(h->region->data_end());
    return TRUE;
  }
  // The first block above the previous entry.
  uintptr_t best = UINTPTR_MAX;
  size_t best_usable = 0;
  bool best_busy = true;
  if (h->kind == Kind::kFixed) {
    h->region->Visit([&](void* block, size_t usable, bool in_use) {
      auto a = reinterpret_cast<uintptr_t>(block);
      if (a > after && a < best) {
        best = a;
        best_usable = usable;
        best_busy = in_use;
      }
    });
  } else {
    h->partition->Visit([&](void* block, size_t usable) {
      auto a = reinterpret_cast<uintptr_t>(block);
      if (a > after && a < best) {
        best = a;
        best_usable = usable;
      }
      return true;
    });
  }
  if (best == UINTPTR_MAX) {
    SetError(ERROR_NO_MORE_ITEMS);
    return FALSE;
  }
  memset(entry, 0, sizeof(*entry));
  entry->lpData = reinterpret_cast<void*>(best);
  entry->cbData = static_cast<DWORD>(best_usable);
  entry->cbOverhead = h->kind == Kind::kFixed ? Region::kBlockHeader : 0;
  entry->wFlags = best_busy ? PROCESS_HEAP_ENTRY_BUSY : 0;
  return TRUE;
}

NITRO_EXPORT DWORD nitro_win_GetProcessHeaps(DWORD count, PHANDLE heaps) {
  pthread_once(&g_once, InitOnce);
  pthread_mutex_lock(&g_table_lock);
  DWORD n = 0;
  if (heaps != nullptr && n < count) heaps[n] = &g_process_heap;
  n++;
  for (auto& h : g_heaps) {
    if (h.magic != kHeapMagic) continue;
    if (heaps != nullptr && n < count) heaps[n] = &h;
    n++;
  }
  pthread_mutex_unlock(&g_table_lock);
  return n;
}

}  // extern "C"
