// libFuzzer target: the engine used as a library (nitro::Malloc and friends,
// and Partition objects), driven by the input as a program of operations.
// After every operation it checks the allocator's promises:
//   * every returned pointer is aligned (16, or the alignment asked for);
//   * the usable size is at least the request;
//   * the contents of every live block are intact (each block carries its
//     own fill pattern over its whole usable size);
//   * no two live blocks overlap (a std::map of live ranges; the harness's
//     own containers use the process's malloc, not the engine);
//   * nitro::Lookup(p) names the right partition and object start, for the
//     start and for an interior byte;
//   * calloc memory is zero, realloc keeps the prefix.
// A broken promise prints "heap_fuzz: ..." and aborts, as does any misuse
// report from the engine itself (the harness never misuses the heap: such a
// report is a false positive).
//
// Built two ways: with clang -fsanitize=fuzzer (tools/fuzz.sh) and, for
// `bazel test`, with gcc and heap_fuzz_main.cc, which runs a deterministic
// set of generated inputs. NITROHEAP_OPTIONS selects the mode as usual.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <vector>

#include "core/heap.h"
#include "core/partition.h"
#include "core/span.h"

namespace {

// ---- the input ----------------------------------------------------------------

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return static_cast<uint32_t>(U16()) | (static_cast<uint32_t>(U16()) << 16); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// ---- failures -----------------------------------------------------------------

size_t g_op_index = 0;
const char* g_op_name = "";

[[noreturn]] __attribute__((format(printf, 1, 2))) void Fail(const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "heap_fuzz: operation #%zu (%s): %s\n", g_op_index, g_op_name, msg);
  fflush(stderr);
  abort();
}

#define FUZZ_CHECK(cond, ...)        \
  do {                               \
    if (!(cond)) Fail(__VA_ARGS__);  \
  } while (0)

// ---- blocks -------------------------------------------------------------------

constexpr size_t kMaxLive = 1024;
constexpr size_t kMaxLiveBytes = size_t{48} << 20;
constexpr size_t kFillCap = size_t{256} << 10;  // bytes of a block given a pattern

enum Owner : uint8_t { kDefault = 0, kPartA = 1, kPartB = 2 };

struct Block {
  uintptr_t p;
  size_t requested;
  size_t align;   // the alignment promised (0: the default 16)
  size_t usable;  // what the engine said at allocation
  size_t fill;    // bytes carrying the pattern
  uint32_t seed;
  Owner owner;
  bool sized_align;  // made by AllocateAligned: FreeSized gets the alignment
  bool zero_size;    // strict's malloc(0): no accessible byte
};

// Each block's pattern: 8-byte words derived from its seed and the word's
// index (blocks are at least 16-aligned, so words are aligned).
inline uint64_t PatternWord(uint32_t seed, size_t w) {
  uint64_t x = (static_cast<uint64_t>(w) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
  return x ^ (x >> 29);
}
inline uint8_t Pattern(uint32_t seed, size_t i) {
  return static_cast<uint8_t>(PatternWord(seed, i / 8) >> (8 * (i % 8)));
}
void FillPattern(uint8_t* m, size_t n, uint32_t seed) {
  size_t words = n / 8;
  for (size_t w = 0; w < words; w++) {
    uint64_t v = PatternWord(seed, w);
    memcpy(m + 8 * w, &v, 8);
  }
  for (size_t i = words * 8; i < n; i++) m[i] = Pattern(seed, i);
}
// The first byte in [from, to) that differs from the pattern, or `to`.
size_t FirstMismatch(const uint8_t* m, size_t from, size_t to, uint32_t seed) {
  size_t i = from;
  for (; i < to && i % 8 != 0; i++) {
    if (m[i] != Pattern(seed, i)) return i;
  }
  for (; i + 8 <= to; i += 8) {
    uint64_t v;
    memcpy(&v, m + i, 8);
    if (v != PatternWord(seed, i / 8)) break;
  }
  for (; i < to; i++) {
    if (m[i] != Pattern(seed, i)) return i;
  }
  return to;
}

nitro::Partition* g_parts[3];  // [kPartA], [kPartB]
uint32_t g_part_generation = 0;
std::vector<Block>* g_live;
std::map<uintptr_t, size_t>* g_ranges;  // start -> end of live usable ranges
size_t g_live_bytes = 0;
uint32_t g_seed = 1;

nitro::Partition* PartitionOf(Owner o) {
  return o == kDefault ? nitro::DefaultPartition() : g_parts[o];
}

void MakePartition(Owner o) {
  nitro::PartitionConfig config;
  char name[32];
  if (o == kPartB) {
    // The other extreme: no guard pages, no large quarantine, nothing kept
    // committed.
    config.large_guard_pages = false;
    config.large_quarantine_bytes = 0;
    config.large_quarantine_spans = 0;
    config.max_free_committed = 0;
  }
  snprintf(name, sizeof(name), "fuzz-%c%u", o == kPartA ? 'a' : 'b', g_part_generation++);
  g_parts[o] = nitro::Partition::Create(name, config);
  FUZZ_CHECK(g_parts[o] != nullptr, "Partition::Create failed");
}

void Setup() {
  if (g_live != nullptr) return;
  g_live = new std::vector<Block>;
  g_ranges = new std::map<uintptr_t, size_t>;
  nitro::EnsureStarted();
  FUZZ_CHECK(nitro::Mode() == nitro::HeapMode::kNitro, "the engine is not in nitro mode");
  MakePartition(kPartA);
  MakePartition(kPartB);
}

size_t UsableOf(const Block& b) {
  return b.owner == kDefault ? nitro::UsableSize(reinterpret_cast<void*>(b.p))
                             : g_parts[b.owner]->UsableSize(reinterpret_cast<void*>(b.p));
}

// The cheap check run on every live block after every operation: the first
// and last bytes of the pattern, and a window that moves with the op count.
void CheckRange(const Block& b, size_t from, size_t to) {
  const uint8_t* m = reinterpret_cast<const uint8_t*>(b.p);
  size_t i = FirstMismatch(m, from, to, b.seed);
  if (i < to) {
    Fail("block %#lx (%zu bytes, owner %d) byte %zu is %#x, expected %#x", b.p, b.requested, b.owner, i,
         m[i], Pattern(b.seed, i));
  }
}

void CheckSignature(const Block& b) {
  size_t n = b.fill;
  if (n == 0) return;
  CheckRange(b, 0, n < 16 ? n : 16);
  CheckRange(b, n > 16 ? n - 16 : 0, n);
  size_t at = (g_op_index * 2654435761u) % n;
  CheckRange(b, at, at + 64 < n ? at + 64 : n);
}

void CheckContents(const Block& b) { CheckRange(b, 0, b.fill); }

void CheckLookup(const Block& b, size_t interior) {
  nitro::PointerInfo info;
  FUZZ_CHECK(nitro::Lookup(reinterpret_cast<void*>(b.p), &info), "Lookup(%#lx) does not know a live block",
             b.p);
  FUZZ_CHECK(info.partition == PartitionOf(b.owner), "Lookup(%#lx) names partition %s, expected %s", b.p,
             info.partition ? info.partition->name() : "(none)", PartitionOf(b.owner)->name());
  FUZZ_CHECK(!info.free_run, "Lookup(%#lx): a live block in a free run", b.p);
  if (b.zero_size) {
    FUZZ_CHECK(info.span->state == nitro::SpanState::kZeroSize, "zero-size block %#lx not in the zero region",
               b.p);
    return;
  }
  FUZZ_CHECK(info.object_start == reinterpret_cast<void*>(b.p), "Lookup(%#lx) says the object starts at %p",
             b.p, info.object_start);
  FUZZ_CHECK(info.object_size >= b.requested, "Lookup(%#lx) object size %zu < requested %zu", b.p,
             info.object_size, b.requested);
  if (b.usable > 0) {
    size_t k = interior % b.usable;
    nitro::PointerInfo inner;
    FUZZ_CHECK(nitro::Lookup(reinterpret_cast<void*>(b.p + k), &inner), "Lookup(%#lx + %zu) failed", b.p, k);
    FUZZ_CHECK(inner.object_start == reinterpret_cast<void*>(b.p),
               "Lookup(%#lx + %zu) says the object starts at %p", b.p, k, inner.object_start);
  }
}

// Registers a fresh block: alignment, usable size, no overlap, Lookup, then
// gives it its pattern. `zeroed`: calloc's promise, checked first.
void Adopt(void* ptr, size_t requested, size_t align, Owner owner, bool sized_align, bool zeroed) {
  FUZZ_CHECK(ptr != nullptr, "allocation of %zu bytes (align %zu) failed", requested, align);
  Block b{};
  b.p = reinterpret_cast<uintptr_t>(ptr);
  b.requested = requested;
  b.align = align;
  b.owner = owner;
  b.sized_align = sized_align;
  b.seed = g_seed = g_seed * 1664525u + 1013904223u;
  size_t want_align = align > 16 ? align : 16;
  nitro::PointerInfo info;
  FUZZ_CHECK(nitro::Lookup(ptr, &info), "Lookup(%p) does not know a fresh block", ptr);
  b.zero_size = info.span != nullptr && info.span->state == nitro::SpanState::kZeroSize;
  if (!b.zero_size) {
    FUZZ_CHECK(b.p % want_align == 0, "%p is not aligned to %zu", ptr, want_align);
  } else {
    FUZZ_CHECK(requested == 0, "a zero-size pointer for a %zu-byte request", requested);
  }
  b.usable = UsableOf(b);
  FUZZ_CHECK(b.usable >= requested, "usable size %zu < requested %zu at %p", b.usable, requested, ptr);
  size_t end = b.p + (b.usable > 0 ? b.usable : 1);
  auto next = g_ranges->lower_bound(b.p);
  FUZZ_CHECK(next == g_ranges->end() || next->first >= end, "%p+%zu overlaps the live block at %#lx", ptr,
             b.usable, next->first);
  if (next != g_ranges->begin()) {
    auto prev = std::prev(next);
    FUZZ_CHECK(prev->second <= b.p, "%p+%zu overlaps the live block %#lx..%#lx", ptr, b.usable, prev->first,
               prev->second);
  }
  (*g_ranges)[b.p] = end;
  CheckLookup(b, b.seed);
  uint8_t* m = static_cast<uint8_t*>(ptr);
  b.fill = b.zero_size ? 0 : (b.usable < kFillCap ? b.usable : kFillCap);
  if (zeroed) {
    size_t n = requested < kFillCap ? requested : kFillCap;
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(m[i] == 0, "calloc byte %zu of %p is %#x", i, ptr, m[i]);
  }
  FillPattern(m, b.fill, b.seed);
  g_live->push_back(b);
  g_live_bytes += b.usable;
}

// Takes block i off the books (after checking it whole); returns it.
Block Retire(size_t i) {
  Block b = (*g_live)[i];
  CheckContents(b);
  CheckLookup(b, b.seed >> 3);
  (*g_live)[i] = g_live->back();
  g_live->pop_back();
  g_ranges->erase(b.p);
  g_live_bytes -= b.usable;
  return b;
}

// ---- operation arguments --------------------------------------------------------

size_t PickSize(Input& in) {
  static const size_t kEdges[] = {0,     1,      15,     16,     17,     127,    128,     129,
                                  1024,  1025,   4095,   4096,   4097,   16383,  16384,   16385,
                                  65536, 131071, 131072, 131073, 262144, 266240, 1048576, 1 << 21};
  uint8_t k = in.U8();
  switch (k % 16) {
    case 0: return in.U8() % 33;
    case 1: case 2: case 3: case 4: return in.U16() % 1025;
    case 5: case 6: return in.U16() % 16385;
    case 7: return 16384 + (static_cast<size_t>(in.U16()) * 2) % (131072 - 16384 + 1);
    case 8: return kEdges[in.U8() % (sizeof(kEdges) / sizeof(kEdges[0]))];
    case 9: return 131073 + static_cast<size_t>(in.U16()) * 8;  // large, up to ~650 KiB
    case 10: return (in.U8() & 3) == 0 ? (static_cast<size_t>(1 + in.U8() % 4) << 20) : in.U8();
    default: return 16 + in.U8() * (1 + (k >> 4));
  }
}

size_t PickAlign(Input& in) {
  static const size_t kAligns[] = {0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536};
  return kAligns[in.U8() % (sizeof(kAligns) / sizeof(kAligns[0]))];
}

// A live block of the given kind of owner, or -1.
long PickBlock(Input& in, int want /* -1 any, 0 default, 1 partition */) {
  size_t n = g_live->size();
  if (n == 0) return -1;
  size_t start = in.U16() % n;
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    const Block& b = (*g_live)[i];
    if (want < 0 || (want == 0) == (b.owner == kDefault)) return static_cast<long>(i);
  }
  return -1;
}

bool Full(size_t more) { return g_live->size() >= kMaxLive || g_live_bytes + more > kMaxLiveBytes; }

void FreeBlock(size_t i, bool sized) {
  Block b = Retire(i);
  void* p = reinterpret_cast<void*>(b.p);
  if (b.owner != kDefault) {
    g_parts[b.owner]->Free(p);
  } else if (sized) {
    nitro::FreeSized(p, b.requested, b.sized_align ? b.align : 0);
  } else {
    nitro::Free(p);
  }
}

void ReallocBlock(size_t i, size_t size, bool via_partition) {
  Block old = (*g_live)[i];
  CheckContents(old);
  Retire(i);
  void* q;
  if (via_partition) {
    q = g_parts[old.owner]->Reallocate(reinterpret_cast<void*>(old.p), size);
  } else {
    q = nitro::Reallocate(reinterpret_cast<void*>(old.p), size);
  }
  if (size == 0 && q == nullptr && !via_partition) return;  // realloc(p, 0) frees
  FUZZ_CHECK(q != nullptr, "realloc of %#lx to %zu failed", old.p, size);
  // The prefix survives the move (checked against the old pattern).
  const uint8_t* m = static_cast<const uint8_t*>(q);
  size_t keep = old.fill < size ? old.fill : size;
  if (old.zero_size) keep = 0;
  size_t lost = FirstMismatch(m, 0, keep, old.seed);
  FUZZ_CHECK(lost == keep, "realloc %#lx (%zu) -> %p (%zu) lost byte %zu", old.p, old.requested, q, size,
             lost);
  // Realloc promises no alignment beyond the default.
  Adopt(q, size, 0, old.owner, false, false);
}

void DestroyPartition(Owner o) {
  // Every block of the partition dies with it.
  for (size_t i = g_live->size(); i-- > 0;) {
    if ((*g_live)[i].owner == o) Retire(i);
  }
  nitro::Partition::Destroy(g_parts[o]);
  g_parts[o] = nullptr;
  MakePartition(o);
}

void CheckAll() {
  for (const Block& b : *g_live) CheckSignature(b);
}

void RunOne(Input& in) {
  uint8_t op = in.U8();
  switch (op % 23) {
    case 0: case 1: {
      g_op_name = "Malloc";
      size_t size = PickSize(in);
      if (Full(size)) break;
      Adopt(nitro::Malloc(size), size, 0, kDefault, false, false);
      break;
    }
    case 2: {
      g_op_name = "Calloc";
      size_t n = 1 + in.U8() % 8;
      size_t size = PickSize(in) / n;
      if (Full(n * size)) break;
      Adopt(nitro::Calloc(n, size), n * size, 0, kDefault, false, true);
      break;
    }
    case 3: {
      g_op_name = "AllocateAligned";
      size_t align = PickAlign(in);
      size_t size = PickSize(in);
      if (Full(size + align)) break;
      if (align == 0) align = 16;
      Adopt(nitro::AllocateAligned(align, size), size, align, kDefault, true, false);
      break;
    }
    case 4: case 5: {
      g_op_name = "Free";
      long i = PickBlock(in, 0);
      if (i >= 0) FreeBlock(static_cast<size_t>(i), false);
      break;
    }
    case 6: {
      g_op_name = "FreeSized";
      long i = PickBlock(in, 0);
      if (i >= 0) FreeBlock(static_cast<size_t>(i), true);
      break;
    }
    case 7: case 8: {
      g_op_name = "Realloc";
      long i = PickBlock(in, 0);
      size_t size = PickSize(in);
      if ((op >> 5) == 7) size = (*g_live).empty() || i < 0 ? size : (*g_live)[i].requested + in.U8();
      if (i >= 0 && !Full(size)) ReallocBlock(static_cast<size_t>(i), size, false);
      break;
    }
    case 9: {
      g_op_name = "Reallocate(nullptr)";
      size_t size = PickSize(in);
      if (!Full(size)) Adopt(nitro::Reallocate(nullptr, size), size, 0, kDefault, false, false);
      break;
    }
    case 10: {
      g_op_name = "UsableSize/Lookup";
      long i = PickBlock(in, -1);
      if (i < 0) break;
      const Block& b = (*g_live)[i];
      size_t u = UsableOf(b);
      FUZZ_CHECK(u == b.usable, "usable size of %#lx changed from %zu to %zu", b.p, b.usable, u);
      CheckLookup(b, in.U32());
      break;
    }
    case 11: case 12: {
      g_op_name = "Partition::Allocate";
      Owner o = (op & 0x80) ? kPartB : kPartA;
      size_t size = PickSize(in);
      size_t align = (op & 0x40) ? PickAlign(in) : 0;
      if (Full(size + align)) break;
      Adopt(g_parts[o]->Allocate(size, align), size, align, o, false, false);
      break;
    }
    case 13: {
      g_op_name = "Partition::Free";
      long i = PickBlock(in, 1);
      if (i >= 0) FreeBlock(static_cast<size_t>(i), false);
      break;
    }
    case 14: {
      g_op_name = "Partition::Reallocate";
      long i = PickBlock(in, 1);
      size_t size = PickSize(in);
      if (size == 0) size = 1;
      if (i >= 0 && !Full(size)) ReallocBlock(static_cast<size_t>(i), size, true);
      break;
    }
    case 15: {
      // free() and realloc() accept partition pointers too.
      long i = PickBlock(in, 1);
      if (i < 0) break;
      if (op & 0x80) {
        g_op_name = "Reallocate(partition block)";
        size_t size = PickSize(in);
        if (size == 0) size = 1;
        if (!Full(size)) ReallocBlock(static_cast<size_t>(i), size, false);
      } else {
        g_op_name = "Free(partition block)";
        Block b = Retire(static_cast<size_t>(i));
        nitro::Free(reinterpret_cast<void*>(b.p));
      }
      break;
    }
    case 16: {
      // A burst of one size, then every other one freed: batches, refills,
      // the quarantine's delay line.
      g_op_name = "Burst";
      size_t size = PickSize(in) % 4096;
      size_t count = 1 + in.U8() % 64;
      size_t first = g_live->size();
      for (size_t k = 0; k < count && !Full(size); k++) {
        Adopt(nitro::Malloc(size), size, 0, kDefault, false, false);
      }
      for (size_t k = g_live->size(); k-- > first;) {
        if ((k - first) % 2 == 0) FreeBlock(k, (k & 2) != 0);
      }
      break;
    }
    case 17: {
      g_op_name = "Free oldest";
      size_t count = 1 + in.U8() % 32;
      for (size_t k = 0; k < count && !g_live->empty(); k++) FreeBlock(0, (k & 1) != 0);
      break;
    }
    case 18: {
      g_op_name = "Trim";
      if ((op & 0xe0) == 0) nitro::Trim();
      break;
    }
    case 19: {
      g_op_name = "Partition::Destroy";
      if ((op & 0xc0) == 0xc0) DestroyPartition((op & 0x20) ? kPartB : kPartA);
      break;
    }
    case 20: {
      // Rust's realloc: the layout's alignment is kept, and the block (in
      // place or moved) is later freed with its new size and alignment.
      g_op_name = "Reallocate(aligned)";
      long i = PickBlock(in, 0);
      if (i < 0 || !(*g_live)[i].sized_align) break;
      Block old = (*g_live)[i];
      size_t size = (op & 0x80) ? old.requested - old.requested / (2 + in.U8() % 8) : PickSize(in);
      if (size == 0) size = 1;
      if (Full(size + old.align)) break;
      CheckContents(old);
      Retire(static_cast<size_t>(i));
      void* q = nitro::Reallocate(reinterpret_cast<void*>(old.p), size, old.align);
      FUZZ_CHECK(q != nullptr, "aligned realloc of %#lx to %zu failed", old.p, size);
      size_t keep = old.fill < size ? old.fill : size;
      size_t lost = FirstMismatch(static_cast<const uint8_t*>(q), 0, keep, old.seed);
      FUZZ_CHECK(lost == keep, "aligned realloc %#lx -> %p lost byte %zu", old.p, q, lost);
      Adopt(q, size, old.align, kDefault, true, false);
      break;
    }
    case 21: {
      // The extension API's partition calls, on any block: the partition a
      // block belongs to (guarded and zero-size blocks included) frees and
      // reallocates it.
      long i = PickBlock(in, -1);
      if (i < 0) break;
      Block b = (*g_live)[i];
      nitro::Partition* part = nitro::PartitionOf(reinterpret_cast<void*>(b.p));
      FUZZ_CHECK(part != nullptr, "PartitionOf(%#lx) is null", b.p);
      if (op & 0x80) {
        g_op_name = "PartitionReallocate";
        size_t size = PickSize(in);
        if (size == 0) size = 1;
        if (Full(size)) break;
        CheckContents(b);
        Retire(static_cast<size_t>(i));
        void* q = nitro::PartitionReallocate(part, reinterpret_cast<void*>(b.p), size);
        FUZZ_CHECK(q != nullptr, "partition realloc of %#lx to %zu failed", b.p, size);
        FUZZ_CHECK(nitro::PartitionOf(q) == part, "partition realloc moved %#lx to another partition", b.p);
        size_t keep = b.zero_size ? 0 : (b.fill < size ? b.fill : size);
        size_t lost = FirstMismatch(static_cast<const uint8_t*>(q), 0, keep, b.seed);
        FUZZ_CHECK(lost == keep, "partition realloc %#lx -> %p lost byte %zu", b.p, q, lost);
        Adopt(q, size, 0, b.owner, false, false);
      } else {
        g_op_name = "PartitionFree";
        Retire(static_cast<size_t>(i));
        nitro::PartitionFree(part, reinterpret_cast<void*>(b.p));
      }
      break;
    }
    case 22: {
      // fork while blocks are live: the child allocates and frees through
      // every lock the parent's threads may hold, and exits.
      g_op_name = "fork";
      // Rare: a fork and its child's exit cost about 10 ms here.
      if ((op & 0xe0) != 0xe0 || (in.U8() & 15) != 0) break;
      pid_t pid = fork();
      FUZZ_CHECK(pid >= 0, "fork failed");
      if (pid == 0) {
        for (int k = 0; k < 64; k++) nitro::Free(nitro::Malloc(static_cast<size_t>(k) * 97));
        void* big = nitro::Malloc(300000);
        nitro::Free(big);
        _exit(0);
      }
      // libFuzzer's once-a-second timer signal interrupts the wait (EINTR,
      // status untouched): seen as "fork child failed (status 0)".
      int status = 0;
      pid_t waited;
      do {
        waited = waitpid(pid, &status, 0);
      } while (waited < 0 && errno == EINTR);
      FUZZ_CHECK(waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "fork child failed (status %#x, errno %d)", status, waited < 0 ? errno : 0);
      break;
    }
  }
}

// NITRO_FUZZ_BREADCRUMB=PATH: every input is written there before it runs
// ("%p" becomes the pid), so an input that kills the process survives it.
// The engine's reports raise SIGABRT with the default action, which
// libFuzzer's crash handler never sees, so it saves no crash file itself.
void LeaveBreadcrumb(const uint8_t* data, size_t size) {
  static int fd = -2;
  if (fd == -2) {
    fd = -1;
    const char* pattern = getenv("NITRO_FUZZ_BREADCRUMB");
    if (pattern != nullptr && *pattern != '\0') {
      char path[512];
      const char* pid = strstr(pattern, "%p");
      if (pid != nullptr) {
        snprintf(path, sizeof(path), "%.*s%d%s", static_cast<int>(pid - pattern), pattern,
                 static_cast<int>(getpid()), pid + 2);
      } else {
        snprintf(path, sizeof(path), "%s", pattern);
      }
      fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
  }
  if (fd < 0) return;
  if (pwrite(fd, data, size, 0) < 0 || ftruncate(fd, static_cast<off_t>(size)) < 0) {
    close(fd);
    fd = -1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  LeaveBreadcrumb(data, size);
  Setup();
  Input in(data, size);
  for (g_op_index = 0; !in.empty(); g_op_index++) {
    RunOne(in);
    g_op_name = "check after";
    CheckAll();
  }
  // Everything goes back, checked whole, so the next input starts afresh.
  g_op_name = "cleanup";
  while (!g_live->empty()) FreeBlock(g_live->size() - 1, false);
  return 0;
}
