// strict mode: every small allocation and free takes this path. Free
// objects are zero (a write after free shows as a non-zero byte when the
// object is reused), the bytes past each request hold canaries (an overflow
// into the slack is caught at free or realloc), every object taken from a
// magazine is checked against its class, and reuse is randomized. Free
// objects hold no link or marker, so every byte of them is checked.
#include <errno.h>
#include <string.h>

#include "core/heap_internal.h"

namespace nitro {
namespace {

bool ValidStrictObject(void* q, int cls) {
  Span* s = GlobalPageMap().Get(q);
  if (s == nullptr || s->state != SpanState::kSlab || s->partition != g_default || s->size_class != cls) {
    return false;
  }
  uintptr_t off = reinterpret_cast<uintptr_t>(q) - s->start;
  return off % kSizeClasses.size(cls) == 0 && off / kSizeClasses.size(cls) < s->capacity;
}

uint32_t& RequestedSize(Span* s, void* p) {
  return s->requested_sizes[s->ObjectIndex(reinterpret_cast<uintptr_t>(p))];
}

void CheckCanaries(void* p, size_t requested, size_t from, size_t slot) {
  auto* bytes = static_cast<unsigned char*>(p);
  for (size_t i = from; i < slot; i++) {
    if (bytes[i] != g_canary) {
      ReportMisuse(misuse::kOverflow, bytes + i, g_default->name(),
                   "the %zu-byte object at %p was written past its end (canary at offset %zu)", requested,
                   p, i);
    }
  }
}

}  // namespace

int StrictClassFor(size_t size, size_t align) {
  if (size >= kMaxSmallSize) return 0;
  return align <= kMinAlign ? kSizeClasses.ClassFor(size + 1)
                            : (align <= kPageSize ? kSizeClasses.ClassForAligned(size + 1, align) : 0);
}

bool StrictAllocate(size_t size, size_t align, void** out) {
  int cls = StrictClassFor(size, align);
  if (cls == 0) return false;  // the caller takes the large path
  *out = nullptr;
  ThreadCache* tc = CacheForThisThread();
  if (size == 0 && align <= kMinAlign) {
    // No accessible byte, whatever the sampling says.
    if (void* q = g_zero.Allocate()) {
      *out = q;
      return true;
    }
  }
  void* p = nullptr;
  if (tc != nullptr) {
    p = tc->PopChecked(cls, 8, ValidStrictObject);
    while (p == nullptr && tc->RefillList(cls)) p = tc->PopChecked(cls, 8, ValidStrictObject);
  } else {
    p = g_default->central(cls).AllocateOne();
  }
  if (p == nullptr) {
    errno = ENOMEM;
    return true;
  }
  if (!ValidStrictObject(p, cls)) {
    ReportMisuse(misuse::kCorruptFreeList, p, g_default->name(),
                 "a cached object lies outside the %u-byte class", kSizeClasses.size(cls));
  }
  uint32_t slot = kSizeClasses.size(cls);
  auto* bytes = static_cast<unsigned char*>(p);
  for (uint32_t i = 0; i < slot; i++) {
    if (bytes[i] != 0) {
      ReportMisuse(misuse::kWriteAfterFree, bytes + i, g_default->name(),
                   "byte %u of a freed %u-byte object at %p was written after it was freed", i, slot, p);
    }
  }
  if (tc != nullptr && tc->AccountAlloc(cls, size)) {
    void* q = Sampled(tc, p, size, align, cls);
    if (q != p) {
      *out = q;  // p went back to the cache, still zero
      return true;
    }
  }
  Span* s = GlobalPageMap().Get(p);
  if (s->requested_sizes != nullptr) RequestedSize(s, p) = static_cast<uint32_t>(size);
  memset(bytes + size, g_canary, slot - size);
  *out = p;
  return true;
}

void StrictFree(Span* s, void* p, int cls) {
  uint32_t slot = kSizeClasses.size(cls);
  size_t req = s->requested_sizes != nullptr ? RequestedSize(s, p) : slot;
  CheckCanaries(p, req, req, slot);
  memset(p, 0, slot);  // a read after free sees no old data
  ThreadCache* tc = CacheForThisThread();
  if (tc == nullptr) {
    g_default->central(cls).FreeOne(p);
    return;
  }
  tc->PushChecked(cls, p);
  tc->AccountFree(cls);
}

bool StrictResizeInPlace(const PointerInfo& info, void* p, size_t size) {
  uint32_t slot = kSizeClasses.size(info.size_class);
  if (info.span->requested_sizes == nullptr || info.partition != g_default || size >= slot ||
      size <= slot / 2) {
    return false;
  }
  // The bytes past the new size become canaries again; those past the old
  // size must still be canaries.
  size_t old = RequestedSize(info.span, p);
  CheckCanaries(p, old, old, slot);
  if (size < old) memset(static_cast<unsigned char*>(p) + size, g_canary, old - size);
  RequestedSize(info.span, p) = static_cast<uint32_t>(size);
  return true;
}

}  // namespace nitro
