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

// The span of q, a cached object handed out as class `cls` of
// `partition`, or nullptr when q is not exactly the start of an object of
// that class there (a magazine entry is metadata, but strict checks what it
// hands out all the same).
NITRO_ALWAYS_INLINE Span* StrictSpanOf(const Partition* partition, void* q, int cls) {
  Span* s = GlobalPageMap().Get(q);
  if (s == nullptr || s->state != SpanState::kSlab || s->partition != partition || s->size_class != cls) {
    return nullptr;
  }
  // The span's reciprocal instead of two divisions: the index of the object
  // q falls in, which must start exactly at q.
  uint32_t index = s->ObjectIndex(reinterpret_cast<uintptr_t>(q));
  return index < s->capacity && s->start + uintptr_t{index} * kSizeClasses.info(cls).stride ==
                                    reinterpret_cast<uintptr_t>(q)
             ? s
             : nullptr;
}

// The partition whose free list ValidStrictObject vets (the validator takes
// no context: ThreadCache::Validator).
__thread Partition* tls_vetted __attribute__((tls_model("initial-exec"))) = nullptr;

bool ValidStrictObject(void* q, int cls) { return StrictSpanOf(tls_vetted, q, cls) != nullptr; }

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

// The checks below go a word at a time: objects start 8-byte aligned and
// the pattern repeats every 8 bytes of the object (CanaryAt uses i & 7), so
// past the terminator every aligned word of slack is g_canary_pattern as
// it lies in memory on a little-endian machine. A word that differs is
// scanned byte by byte, so the first bad offset is still the one reported.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the canary words assume little-endian");

uint64_t LoadWord(const unsigned char* p) {
  uint64_t w;
  memcpy(&w, p, sizeof(w));
  return w;
}

// The offset of the first non-zero byte of [p, p + n), or n.
size_t FirstNonZero(const unsigned char* p, size_t n) {
  size_t i = 0;
  // Four words per step: the loads are independent, one branch per 32 bytes.
  for (; i + 32 <= n; i += 32) {
    if ((LoadWord(p + i) | LoadWord(p + i + 8) | LoadWord(p + i + 16) | LoadWord(p + i + 24)) != 0) break;
  }
  for (; i < n; i++) {
    if (p[i] != 0) return i;
  }
  return n;
}

// The offset of the first byte in [from, to) that does not hold the canary
// of a `requested`-byte object, or `to`. from >= requested.
size_t FirstBadCanary(const unsigned char* bytes, size_t requested, size_t from, size_t to) {
  size_t i = from;
  // Up to the first aligned offset past the terminator, one byte at a time.
  for (; i < to && (i <= requested || (i & 7) != 0); i++) {
    if (bytes[i] != CanaryAt(requested, i)) return i;
  }
  for (; i + 8 <= to; i += 8) {
    if (LoadWord(bytes + i) != g_canary_pattern) break;
  }
  for (; i < to; i++) {
    if (bytes[i] != CanaryAt(requested, i)) return i;
  }
  return to;
}

// Writes the canaries of a `requested`-byte object into [from, to).
void FillCanaries(unsigned char* bytes, size_t requested, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && (i <= requested || (i & 7) != 0); i++) bytes[i] = CanaryAt(requested, i);
  for (; i + 8 <= to; i += 8) memcpy(bytes + i, &g_canary_pattern, 8);
  for (; i < to; i++) bytes[i] = CanaryAt(requested, i);
}

// Reports the first byte in [from, to) of the object at p whose canary was
// overwritten, if any.
void CheckCanaries(const Partition* partition, void* p, size_t requested, size_t from, size_t to) {
  auto* bytes = static_cast<unsigned char*>(p);
  size_t bad = FirstBadCanary(bytes, requested, from, to);
  if (bad < to) {
    ReportMisuse(misuse::kOverflow, bytes + bad, partition->name(),
                 "the %zu-byte object at %p was written past its end (canary at offset %zu)", requested,
                 p, bad);
  }
}

// The whole slack at once, for allocation and free (the byte-exact forms
// above serve realloc's partial ranges and the reports). Slots are
// multiples of 16 bytes, so the slack [requested, slot) is the aligned
// word holding the terminator, whose bytes below it are the program's
// (masked out), then whole words of g_canary_pattern.
static_assert(kMinAlign % 8 == 0, "slot sizes are whole words");
NITRO_ALWAYS_INLINE uint64_t HeadMask(size_t requested) { return ~uint64_t{0} << (8 * (requested & 7)); }
// The head word's canaries: the terminator 0, then the pattern's bytes
// (HeadMask << 8 is 0 when the terminator is the word's last byte).
NITRO_ALWAYS_INLINE uint64_t HeadCanary(size_t requested) {
  return g_canary_pattern & (HeadMask(requested) << 8);
}

// True when [requested, slot) holds the canaries (requested < slot). Every
// word is read, with no early exit: the slack is small next to the slot.
NITRO_ALWAYS_INLINE bool SlackIntact(const unsigned char* bytes, size_t requested, size_t slot) {
  size_t i = requested & ~size_t{7};
  uint64_t diff = (LoadWord(bytes + i) ^ HeadCanary(requested)) & HeadMask(requested);
  for (i += 8; i < slot; i += 8) diff |= LoadWord(bytes + i) ^ g_canary_pattern;
  return diff == 0;
}

// Writes [requested, slot)'s canaries into an object just checked all
// zero: the head word's bytes below the terminator are written with the
// zero they hold.
NITRO_ALWAYS_INLINE void FillSlackOfZeroObject(unsigned char* bytes, size_t requested, size_t slot) {
  size_t i = requested & ~size_t{7};
  uint64_t head = HeadCanary(requested);
  memcpy(bytes + i, &head, 8);
  for (i += 8; i < slot; i += 8) memcpy(bytes + i, &g_canary_pattern, 8);
}

// True when the slot's n bytes (a multiple of 16) are all zero. Every byte
// is read, 16 at a time into one accumulator, four loads per 64 bytes and
// no branch per load: a slot of up to 128 KiB is read whole on every reuse
// (working_set's objects average several KiB), so this loop is most of
// strict's cost there. GCC's vector extension: SSE2 on x86-64, plain words
// elsewhere.
typedef uint64_t Bytes16 __attribute__((vector_size(16)));
NITRO_ALWAYS_INLINE Bytes16 Load16(const unsigned char* p) {
  Bytes16 v;
  memcpy(&v, p, sizeof(v));
  return v;
}
NITRO_ALWAYS_INLINE bool AllZero(const unsigned char* p, size_t n) {
  Bytes16 any = {0, 0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    any |= (Load16(p + i) | Load16(p + i + 16)) | (Load16(p + i + 32) | Load16(p + i + 48));
  }
  for (; i < n; i += 16) any |= Load16(p + i);
  return (any[0] | any[1]) == 0;
}

[[noreturn]] NITRO_NOINLINE void ReportWrittenAfterFree(const Partition* partition, unsigned char* bytes,
                                                        uint32_t slot) {
  size_t written = FirstNonZero(bytes, slot);
  ReportMisuse(misuse::kWriteAfterFree, bytes + written, partition->name(),
               "byte %zu of a freed %u-byte object at %p was written after it was freed", written, slot,
               static_cast<void*>(bytes));
}

[[noreturn]] NITRO_NOINLINE void ReportCorruptEntry(const Partition* partition, void* p, int cls) {
  ReportMisuse(misuse::kCorruptFreeList, p, partition->name(),
               "a thread-cache entry points outside the %u-byte class", kSizeClasses.size(cls));
}

// What every strict allocation does with the object it took (p, vetted:
// the start of an object of class `cls` in span s): the write-after-free
// check of every byte (free objects hold no link or marker, and were
// zeroed at free), the sampling decision, the exact size and the
// canaries. SECURE_STRICT's zero on allocation needs no memset: the
// object was just checked all zero.
NITRO_ALWAYS_INLINE void* HandOut(Partition* partition, ThreadCache* tc, Span* s, void* p, size_t size,
                                  size_t align, int cls) {
  uint32_t slot = kSizeClasses.size(cls);
  auto* bytes = static_cast<unsigned char*>(p);
  if (NITRO_UNLIKELY(!AllZero(bytes, slot))) ReportWrittenAfterFree(partition, bytes, slot);
  if (tc != nullptr && tc->AccountAlloc(cls, size)) {
    void* q = Sampled(partition, tc, p, size, align, cls);
    if (q != p) return q;  // p went back to the cache, still zero
  }
  if (s->requested_sizes != nullptr) RequestedSize(s, p) = static_cast<uint32_t>(size);
  FillSlackOfZeroObject(bytes, size, slot);
  return p;
}

// What every strict free does before the object goes back: the canaries
// checked (the size recorded at allocation; none without a size table),
// then every byte zeroed, so a read after free sees no old data.
NITRO_ALWAYS_INLINE void CheckAndZero(Span* s, void* p, int cls) {
  uint32_t slot = kSizeClasses.size(cls);
  size_t req = s->requested_sizes != nullptr ? RequestedSize(s, p) : slot;
  auto* bytes = static_cast<unsigned char*>(p);
  if (req < slot && NITRO_UNLIKELY(!SlackIntact(bytes, req, slot))) {
    CheckCanaries(s->partition, p, req, req, slot);  // reports the first bad byte
  }
  memset(p, 0, slot);
}

}  // namespace

int StrictClassFor(size_t size, size_t align) {
  if (size >= kMaxSmallSize) return 0;
  return align <= kMinAlign ? kSizeClasses.ClassFor(size + 1)
                            : (align <= kPageSize ? kSizeClasses.ClassForAligned(size + 1, align) : 0);
}

void* StrictAllocateFast(ThreadCache* tc, size_t size) {
  // Size 0 is the zero-size region's (StrictAllocate), and a request with
  // no small class the large path's.
  int cls = size != 0 ? StrictClassFor(size, 0) : 0;
  if (NITRO_UNLIKELY(cls == 0)) return nullptr;
  ThreadCache::Entry e = tc->PopRandom(cls);
  if (NITRO_UNLIKELY(e.object == nullptr)) return nullptr;
  Partition* partition = tc->partition();
  Span* s = StrictSpanOf(partition, e.object, cls);
  if (NITRO_UNLIKELY(s == nullptr)) ReportCorruptEntry(partition, e.object, cls);
  ThreadCache::Claim(e);
  return HandOut(partition, tc, s, e.object, size, 0, cls);
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
    p = tc->PopChecked(cls, ThreadCache::kStrictPick, ValidStrictObject);
    while (p == nullptr && tc->RefillList(cls)) {
      p = tc->PopChecked(cls, ThreadCache::kStrictPick, ValidStrictObject);
    }
  } else {
    p = partition->central(cls).AllocateOne();
  }
  if (p == nullptr) {
    errno = ENOMEM;
    return true;
  }
  // PopChecked vetted a cached object; one from the middle layer is vetted here.
  Span* s = StrictSpanOf(partition, p, cls);
  if (s == nullptr) {
    ReportMisuse(misuse::kCorruptFreeList, p, partition->name(),
                 "a cached object lies outside the %u-byte class", kSizeClasses.size(cls));
  }
  *out = HandOut(partition, tc, s, p, size, align, cls);
  return true;
}

void StrictFreeFast(ThreadCache* tc, Span* s, void* p, int cls, uint8_t* free_flag) {
  CheckAndZero(s, p, cls);
  if (!tc->PushStrict(cls, p, free_flag)) tc->PushChecked(cls, p);
  tc->AccountFree(cls);
}

void StrictFree(Span* s, void* p, int cls) {
  CheckAndZero(s, p, cls);
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
  // Only the slack bytes that change role are checked and rewritten, so the
  // cost follows the change, not the slot (a string grown byte by byte in a
  // 32 KiB slot): growing, [old, size] (the bytes handed to the program and
  // the new terminator's place); shrinking, the old terminator, then
  // [size, old] becomes slack. The rest of the slack keeps its canaries
  // untouched, checked when the object is freed (StrictFree checks all).
  size_t old = RequestedSize(info.span, p);
  auto* bytes = static_cast<unsigned char*>(p);
  size_t changed_end = (size > old ? size : old) + 1;
  if (changed_end > slot) changed_end = slot;
  CheckCanaries(info.partition, p, old, old, size > old ? changed_end : old + 1);
  FillCanaries(bytes, size, size, changed_end);
  RequestedSize(info.span, p) = static_cast<uint32_t>(size);
  return true;
}

}  // namespace nitro
