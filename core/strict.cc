// strict mode: every small allocation and free takes this path. Free
// objects are zero (a write after free shows as a non-zero byte when the
// object is reused), the bytes past each request hold canaries (an overflow
// into the slack is caught at free or realloc), every object taken from a
// magazine is checked against its class, and reuse is randomized. Free
// objects hold no link or marker, so every byte of them is checked. Every
// partition whose policy is strict takes it: the default one in strict
// mode, SECURE_STRICT ones in every mode.
#include <errno.h>
#include <string.h>

#include "core/heap_internal.h"

namespace nitro {
namespace {

// The partition whose free list ValidStrictObject vets (the validator takes
// no context: ThreadCache::Validator).
__thread Partition* tls_vetted __attribute__((tls_model("initial-exec"))) = nullptr;

bool ValidStrictObject(void* q, int cls) {
  Span* s = GlobalPageMap().Get(q);
  if (s == nullptr || s->state != SpanState::kSlab || s->partition != tls_vetted || s->size_class != cls) {
    return false;
  }
  uintptr_t off = reinterpret_cast<uintptr_t>(q) - s->start;
  return off % kSizeClasses.size(cls) == 0 && off / kSizeClasses.size(cls) < s->capacity;
}

uint32_t& RequestedSize(Span* s, void* p) {
  return s->requested_sizes[s->ObjectIndex(reinterpret_cast<uintptr_t>(p))];
}

// The slack after a request of `requested` bytes: its first byte is zero,
// so a C string filling the request ends there instead of running on into
// the next object (hardened_malloc's rule; an off-by-one write of the
// terminator itself lands in the slot and harms nothing); the others come
// from a random per-process pattern, so an overflow of any value is seen.
unsigned char CanaryAt(size_t requested, size_t i) {
  return i == requested ? 0 : static_cast<unsigned char>(g_canary_pattern >> (8 * (i & 7)));
}

void FillCanaries(void* p, size_t requested, size_t slot) {
  auto* bytes = static_cast<unsigned char*>(p);
  for (size_t i = requested; i < slot; i++) bytes[i] = CanaryAt(requested, i);
}

void CheckCanaries(const Partition* partition, void* p, size_t requested, size_t slot) {
  auto* bytes = static_cast<unsigned char*>(p);
  for (size_t i = requested; i < slot; i++) {
    if (bytes[i] != CanaryAt(requested, i)) {
      ReportMisuse(misuse::kOverflow, bytes + i, partition->name(),
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

bool StrictAllocate(Partition* partition, size_t size, size_t align, void** out) {
  int cls = StrictClassFor(size, align);
  if (cls == 0) return false;  // the caller takes the large path
  *out = nullptr;
  ThreadCache* tc = CacheFor(partition);
  // The zero-size region is the default partition's (made in strict mode).
  if (size == 0 && align <= kMinAlign && partition == g_default) {
    // No accessible byte, whatever the sampling says.
    if (void* q = g_zero.Allocate()) {
      *out = q;
      return true;
    }
  }
  void* p = nullptr;
  tls_vetted = partition;
  if (tc != nullptr) {
    p = tc->PopChecked(cls, 8, ValidStrictObject);
    while (p == nullptr && tc->RefillList(cls)) p = tc->PopChecked(cls, 8, ValidStrictObject);
  } else {
    p = partition->central(cls).AllocateOne();
  }
  if (p == nullptr) {
    errno = ENOMEM;
    return true;
  }
  if (!ValidStrictObject(p, cls)) {
    ReportMisuse(misuse::kCorruptFreeList, p, partition->name(),
                 "a cached object lies outside the %u-byte class", kSizeClasses.size(cls));
  }
  uint32_t slot = kSizeClasses.size(cls);
  auto* bytes = static_cast<unsigned char*>(p);
  for (uint32_t i = 0; i < slot; i++) {
    if (bytes[i] != 0) {
      ReportMisuse(misuse::kWriteAfterFree, bytes + i, partition->name(),
                   "byte %u of a freed %u-byte object at %p was written after it was freed", i, slot, p);
    }
  }
  if (tc != nullptr && tc->AccountAlloc(cls, size)) {
    void* q = Sampled(partition, tc, p, size, align, cls);
    if (q != p) {
      *out = q;  // p went back to the cache, still zero
      return true;
    }
  }
  // The list link and free marker were the only non-zero bytes: the object
  // reads as zero (SECURE_STRICT's zero on allocation).
  memset(bytes, 0, 16);
  Span* s = GlobalPageMap().Get(p);
  if (s->requested_sizes != nullptr) RequestedSize(s, p) = static_cast<uint32_t>(size);
  FillCanaries(p, size, slot);
  *out = p;
  return true;
}

void StrictFree(Span* s, void* p, int cls) {
  uint32_t slot = kSizeClasses.size(cls);
  size_t req = s->requested_sizes != nullptr ? RequestedSize(s, p) : slot;
  CheckCanaries(s->partition, p, req, slot);
  memset(p, 0, slot);  // a read after free sees no old data
  ThreadCache* tc = CacheFor(s->partition);
  if (tc == nullptr) {
    s->partition->central(cls).FreeOne(p);
    return;
  }
  tc->PushChecked(cls, p);
  tc->AccountFree(cls);
}

bool StrictResizeInPlace(const PointerInfo& info, void* p, size_t size) {
  uint32_t slot = kSizeClasses.size(info.size_class);
  if (info.span->requested_sizes == nullptr || !info.partition->strict() || size >= slot ||
      size <= slot / 2) {
    return false;
  }
  // The bytes past the old size must still be canaries; those past the new
  // size become canaries.
  size_t old = RequestedSize(info.span, p);
  CheckCanaries(info.partition, p, old, slot);
  FillCanaries(p, size, slot);
  RequestedSize(info.span, p) = static_cast<uint32_t>(size);
  return true;
}

}  // namespace nitro
