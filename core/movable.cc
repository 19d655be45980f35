#include "core/movable.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "core/base.h"
#include "core/contract.h"
#include "core/lock.h"
#include "core/lock_registry.h"
#include "core/os.h"
#include "core/report.h"

namespace nitro::movable {
namespace {

constexpr const char* kPartitionName = "movable";
constexpr const char* kInvalidHandle = "invalid handle";
constexpr const char* kStaleHandle = "stale handle";
constexpr const char* kFreePinned = "free of a pinned handle";
constexpr const char* kUnpinUnpinned = "unpin of a handle that is not pinned";

// ---- Size classes: 16-byte steps to 512, 32-byte steps to 1024, then eight
// classes per doubling (about 2 percent of a slot lost to rounding for sizes
// spread evenly over 16..1024, against 4 with 16-byte steps to 256 only;
// each class costs at most one partly used slab).
constexpr int kClassCount = 72;
constexpr uint32_t kClassSizes[kClassCount] = {
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
    272, 288, 304, 320, 336, 352, 368, 384, 400, 416, 432, 448, 464, 480, 496, 512,
    544, 576, 608, 640, 672, 704, 736, 768, 800, 832, 864, 896, 928, 960, 992, 1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
    4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192,
};
static_assert(kClassSizes[kClassCount - 1] == kMaxClassSize, "the last class is the largest");

int ClassIndex(size_t size) {
  if (size == 0) size = 1;
  int lo = 0, hi = kClassCount - 1;  // first class >= size
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (kClassSizes[mid] >= size) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// ---- Handle table: one 64-bit word per handle, changed only as a whole
// (one atomic load gives a consistent generation, address and state):
//   bits  0-29  where the object is: its offset in the arena / 16; for an
//               object above the largest class, the offset of a 16-byte
//               cell holding its address (kLarge). While free: the next
//               free index + 1 (0: none).
//   bits 30-49  generation, odd while live
//   bits 50-60  pin count
//   bit  61     kLarge
//   bit  62     kPending: marked by the compactor, waiting for a grace period
//   bit  63     kCopying: being copied, readers wait
// Eight bytes per handle: the table is sized by the peak number of objects
// and never compacted (handles are the program's names for its objects).
using Word = uint64_t;
constexpr int kGenShift = 30, kGenBits = 20, kPinShift = 50, kPinBits = 11;
constexpr Word kLocMask = (Word{1} << kGenShift) - 1;
constexpr Word kGenMask = ((Word{1} << kGenBits) - 1) << kGenShift;
constexpr Word kPinOne = Word{1} << kPinShift;
constexpr Word kPinMask = ((Word{1} << kPinBits) - 1) << kPinShift;
constexpr Word kLarge = Word{1} << 61;
constexpr Word kPending = Word{1} << 62;
constexpr Word kCopying = Word{1} << 63;
constexpr uint32_t kMaxPins = (1u << kPinBits) - 1;

struct Entry {
  std::atomic<Word> word;
};
static_assert(sizeof(Entry) == 8, "handle entries stay small: the table is never compacted");

constexpr size_t kMaxHandles = size_t{1} << 26;
constexpr size_t kGrain = 16;  // location unit; the arena spans at most 2^30 of them

uint32_t GenOf(Word w) { return static_cast<uint32_t>((w & kGenMask) >> kGenShift); }
Word WithGen(uint32_t gen) { return (Word{gen} << kGenShift) & kGenMask; }

// ---- Slabs: the metadata at the start of the slab itself, sized by its
// class (a header, a bitmap of used slots, a bitmap of sampled ones, the
// owning handle of each slot: about 4.25 bytes per slot), then the slots. Out of line, metadata sized for
// the smallest class cost a page per 64 KiB slab (6% of every slab); in
// line it costs what the class needs and goes back with the slab.
enum SlabState : uint8_t { kUnused = 0, kActive = 1, kEvacuating = 2 };
constexpr uint32_t kNone = 0xffffffffu;

struct SlabMeta {
  uint8_t cls;
  uint8_t state;
  uint16_t capacity;
  uint16_t live;
  uint16_t on_partial;     // 1 while on its class's partial list
  uint32_t prev, next;     // the partial list
  // Then uint64_t used[words], uint64_t sampled[words] (objects the flight
  // recorder sampled: their moves and frees are reported) and uint32_t
  // owner[capacity] (SlabLayout).
};
static_assert(sizeof(SlabMeta) == 16, "the bitmap follows the header 8-byte aligned");

// Where a class's metadata ends and its slots begin.
struct SlabLayout {
  uint16_t capacity;     // slots
  uint16_t words;        // 64-bit words of each bitmap (used, sampled)
  uint32_t data_offset;  // first slot, a multiple of 64 bytes
};
constexpr size_t MetaBytes(size_t capacity) {
  return sizeof(SlabMeta) + 2 * ((capacity + 63) / 64 * 8) + capacity * 4;
}
constexpr SlabLayout LayoutFor(size_t size) {
  size_t capacity = kSlabBytes / size;
  while (RoundUp(MetaBytes(capacity), 64) + capacity * size > kSlabBytes) capacity--;
  return SlabLayout{static_cast<uint16_t>(capacity), static_cast<uint16_t>((capacity + 63) / 64),
                    static_cast<uint32_t>(RoundUp(MetaBytes(capacity), 64))};
}
struct LayoutTable {
  SlabLayout of[kClassCount];
  constexpr LayoutTable() : of{} {
    for (int cls = 0; cls < kClassCount; cls++) of[cls] = LayoutFor(kClassSizes[cls]);
  }
};
constexpr LayoutTable kLayouts;

// ---- Threads that hold unpinned pointers (QSBR records).
constexpr int kMaxThreads = 1024;
struct alignas(64) ThreadRecord {
  std::atomic<uint32_t> in_use;
  std::atomic<uint64_t> epoch;  // the global epoch at its last quiescent point; 0: offline
};

struct LargeHeader {  // at the start of a large object's own mapping
  uint64_t magic;
  uint64_t map_bytes;
};
constexpr uint64_t kLargeMagic = 0x6e6974726f4d4f56ull;  // "nitroMOV"
constexpr size_t kLargeHeaderBytes = 64;                   // keeps the object 64-byte aligned

struct Counters {
  std::atomic<uint64_t> live_objects, live_bytes, slabs, large_bytes, objects_moved, bytes_moved,
      slabs_freed, pages_returned, pinned_skipped, busy_skipped, grace_timeouts, compactions,
      compact_ns, time_budget_stops, pressure_compactions;
};

// ---- The heap (one per process today).
SpinLock g_lock{LockRank::kMovableHeap};
std::atomic<bool> g_ready{false};
std::atomic<int> g_compacting{0};  // pid of the process compacting; 0: none
std::atomic<uint64_t> g_epoch{1};
ThreadRecord g_threads[kMaxThreads];
pthread_key_t g_thread_key;
int g_pid = 0;
__thread ThreadRecord* tls_record __attribute__((tls_model("initial-exec"))) = nullptr;

Entry* g_table = nullptr;
std::atomic<uint32_t> g_table_used{0};  // entries ever handed out (bound for validation)
// Freed handles wait in FIFO order (index + 1; 0: none), so that an index
// comes back as late as possible: a stale handle keeps failing validation
// until its index went round the whole free list 2^19 times.
uint32_t g_free_head = 0, g_free_tail = 0;

char* g_arena = nullptr;
size_t g_arena_slabs = 0;
uint32_t g_slab_top = 0;     // slabs ever carved
uint32_t* g_free_slabs = nullptr;  // stack of released slab numbers
uint32_t g_free_slab_count = 0;
uint32_t* g_scratch = nullptr;  // compaction's slab lists
size_t g_source_count = 0;      // slabs at the start of g_scratch being evacuated
// Class + 1 of every slab in use, 0 for a released one: the compactor scans
// this, never the metadata of released slabs (reading those pages would
// fault in a zero page per slab, counted in RSS).
uint8_t* g_slab_class = nullptr;
uint32_t g_partial[kClassCount];
Counters g_stats;
uint64_t g_last_background_ms = 0;
// The movable partition's contract once it exists (AttachContract); set
// and read under g_lock.
Contract* g_contract = nullptr;
std::atomic<const RecorderHooks*> g_recorder{nullptr};
// Moves of sampled objects made by the compaction in progress, reported to
// the recorder once the lock is released (the recorder's lock ranks before
// the heap's). Beyond kMaxSampledMoves per compaction, sampled objects stay.
struct SampledMove {
  uintptr_t from, to;
  size_t size;
};
constexpr size_t kMaxSampledMoves = 4096;
SampledMove* g_sampled_moves = nullptr;
size_t g_sampled_move_count = 0;

char* SlabBase(uint32_t slab) { return g_arena + size_t{slab} * kSlabBytes; }
SlabMeta* Meta(uint32_t slab) { return reinterpret_cast<SlabMeta*>(SlabBase(slab)); }
uint64_t* UsedBits(SlabMeta* m) { return reinterpret_cast<uint64_t*>(m + 1); }
uint64_t* SampledBits(SlabMeta* m) { return UsedBits(m) + kLayouts.of[m->cls].words; }
uint32_t* Owners(SlabMeta* m) { return reinterpret_cast<uint32_t*>(UsedBits(m) + 2 * kLayouts.of[m->cls].words); }
bool SlotUsed(SlabMeta* m, size_t slot) { return UsedBits(m)[slot / 64] & (uint64_t{1} << (slot % 64)); }
uintptr_t SlotAddress(uint32_t slab, int cls, size_t slot) {
  return reinterpret_cast<uintptr_t>(SlabBase(slab)) + kLayouts.of[cls].data_offset + slot * kClassSizes[cls];
}
uint32_t SlabOf(uintptr_t a) { return static_cast<uint32_t>((a - reinterpret_cast<uintptr_t>(g_arena)) / kSlabBytes); }

void Add(std::atomic<uint64_t>& c, uint64_t v) { c.fetch_add(v, std::memory_order_relaxed); }
void Sub(std::atomic<uint64_t>& c, uint64_t v) { c.fetch_sub(v, std::memory_order_relaxed); }

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void ThreadExit(void* arg) {
  auto* r = static_cast<ThreadRecord*>(arg);
  tls_record = nullptr;  // a later destructor's nitro_hptr registers again
  r->epoch.store(0, std::memory_order_seq_cst);
  r->in_use.store(0, std::memory_order_release);
}

// Reserves the largest of `bytes`, bytes/2, ... (down to `min`) the kernel
// grants (ulimit -v); *got receives the size.
void* ReserveUpTo(size_t bytes, size_t min, size_t align, size_t* got) {
  for (; bytes >= min; bytes /= 2) {
    if (void* p = os::Reserve(bytes, align)) {
      *got = bytes;
      return p;
    }
  }
  return nullptr;
}

bool InitLocked() {
  size_t got;
  size_t table_bytes = kMaxHandles * sizeof(Entry);
  g_table = static_cast<Entry*>(ReserveUpTo(table_bytes, size_t{1} << 20, kPageSize, &got));
  if (g_table == nullptr) return false;
  // The arena: up to 16 GiB of address space, backed only where touched.
  g_arena = static_cast<char*>(ReserveUpTo(kLocMask * kGrain + kGrain, size_t{16} << 20, kSlabBytes, &got));
  if (g_arena == nullptr) return false;
  g_arena_slabs = got / kSlabBytes;
  g_free_slabs = static_cast<uint32_t*>(os::Reserve(RoundUp(g_arena_slabs * 4, kPageSize), kPageSize));
  g_scratch = static_cast<uint32_t*>(os::Reserve(RoundUp(g_arena_slabs * 4, kPageSize), kPageSize));
  g_slab_class = static_cast<uint8_t*>(os::Reserve(RoundUp(g_arena_slabs, kPageSize), kPageSize));
  g_sampled_moves = static_cast<SampledMove*>(
      os::Reserve(RoundUp(kMaxSampledMoves * sizeof(SampledMove), kPageSize), kPageSize));
  if (g_sampled_moves == nullptr || g_free_slabs == nullptr || g_scratch == nullptr || g_slab_class == nullptr) {
    return false;
  }
  for (uint32_t& head : g_partial) head = kNone;
  if (pthread_key_create(&g_thread_key, ThreadExit) != 0) return false;
  g_pid = getpid();
  return true;
}

bool EnsureReady() {
  if (NITRO_LIKELY(g_ready.load(std::memory_order_acquire))) return true;
  RegisterLock(&g_lock);
  g_lock.Lock();
  bool ok = g_ready.load(std::memory_order_relaxed) || InitLocked();
  if (ok) g_ready.store(true, std::memory_order_release);
  g_lock.Unlock();
  return ok;
}

// ---- Handle validation: every entry point, before anything else.
[[noreturn]] NITRO_NOINLINE void ReportBadHandle(const char* kind, const char* call, Handle h,
                                                 const char* why) {
  ReportMisuse(kind, reinterpret_cast<const void*>(static_cast<uintptr_t>(h)), kPartitionName,
               "%s(0x%llx): %s", call, static_cast<unsigned long long>(h), why);
}

// The entry of a plausible handle (the generation is checked against each
// word the caller reads: CheckGen).
Entry* EntryOf(Handle h, const char* call) {
  uint32_t index = static_cast<uint32_t>(h);
  uint64_t gen = h >> 32;
  if (NITRO_UNLIKELY((gen & 1) == 0 || gen >= (uint64_t{1} << kGenBits) ||
                     !g_ready.load(std::memory_order_acquire) ||
                     index >= g_table_used.load(std::memory_order_acquire))) {
    ReportBadHandle(kInvalidHandle, call, h, "not a handle nitro_halloc returned");
  }
  return &g_table[index];
}

[[noreturn]] NITRO_NOINLINE void ReportGenMismatch(Handle h, Word w, const char* call) {
  // Generations only grow (modulo 2^20): an older one is a handle that was freed.
  uint32_t current = GenOf(w), gen = static_cast<uint32_t>(h >> 32);
  uint32_t ahead = (current - gen) & ((1u << kGenBits) - 1);
  if (ahead != 0 && ahead < (1u << (kGenBits - 1))) ReportBadHandle(kStaleHandle, call, h, "the object was freed");
  ReportBadHandle(kInvalidHandle, call, h, "not a handle nitro_halloc returned");
}

NITRO_ALWAYS_INLINE void CheckGen(Handle h, Word w, const char* call) {
  if (NITRO_UNLIKELY(GenOf(w) != static_cast<uint32_t>(h >> 32))) ReportGenMismatch(h, w, call);
}

// A live word's object address (a large object's through its cell).
uintptr_t AddressOf(Word w) {
  uintptr_t at = reinterpret_cast<uintptr_t>(g_arena) + (w & kLocMask) * kGrain;
  if (w & kLarge) return *reinterpret_cast<const uintptr_t*>(at);
  return at;
}
Word LocationOf(uintptr_t slot) { return (slot - reinterpret_cast<uintptr_t>(g_arena)) / kGrain; }

// ---- QSBR.
ThreadRecord* RegisterThisThread() {
  for (ThreadRecord& r : g_threads) {
    uint32_t expected = 0;
    if (r.in_use.load(std::memory_order_relaxed) == 0 &&
        r.in_use.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      tls_record = &r;
      pthread_setspecific(g_thread_key, &r);
      return &r;
    }
  }
  Fatal("movable heap: more than %d threads hold pointers from nitro_hptr at once", kMaxThreads);
}

// The calling thread starts holding pointers: it must be online, so that a
// compactor either sees it online (and waits for its next quiescent point)
// or it sees the compactor's marks (seq_cst on both sides: Dekker).
NITRO_ALWAYS_INLINE void EnsureOnline() {
  ThreadRecord* r = tls_record;
  if (NITRO_LIKELY(r != nullptr && r->epoch.load(std::memory_order_relaxed) != 0)) return;
  if (r == nullptr) r = RegisterThisThread();
  r->epoch.store(g_epoch.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
}

// Waits until every online thread but the caller passed a quiescent point
// after the epoch was advanced. False at the deadline.
bool WaitForGracePeriod(unsigned timeout_ms) {
  if (getpid() != g_pid) {
    // A fork child: the other threads' records are of threads that do not
    // exist here.
    for (ThreadRecord& r : g_threads) {
      if (&r != tls_record) {
        r.epoch.store(0, std::memory_order_relaxed);
        r.in_use.store(0, std::memory_order_relaxed);
      }
    }
    g_pid = getpid();
  }
  uint64_t target = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  uint64_t deadline = NowNs() + uint64_t{timeout_ms} * 1000000u;
  for (ThreadRecord& r : g_threads) {
    if (&r == tls_record) continue;
    for (int spins = 0;; spins++) {
      uint64_t e = r.epoch.load(std::memory_order_seq_cst);
      if (e == 0 || e >= target) break;
      if (NowNs() > deadline) return false;
      if (spins < 64) {
        sched_yield();
      } else {
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, nullptr);
      }
    }
  }
  return true;
}

// Waits out a copy in progress (the compactor holds the lock and waits for
// nothing while copying).
void WaitForCopy() { sched_yield(); }

// ---- Slabs (under g_lock).
void PartialPush(uint32_t slab) {
  SlabMeta* m = Meta(slab);
  m->prev = kNone;
  m->next = g_partial[m->cls];
  if (m->next != kNone) Meta(m->next)->prev = slab;
  g_partial[m->cls] = slab;
  m->on_partial = 1;
}

void PartialRemove(uint32_t slab) {
  SlabMeta* m = Meta(slab);
  if (!m->on_partial) return;
  if (m->prev != kNone) Meta(m->prev)->next = m->next; else g_partial[m->cls] = m->next;
  if (m->next != kNone) Meta(m->next)->prev = m->prev;
  m->on_partial = 0;
}

// Marks the rest of a slab's capacity as used, so that AllocSlot never finds
// the bits past the last slot free.
void SealTail(SlabMeta* m) {
  for (size_t slot = m->capacity; slot % 64 != 0; slot++) UsedBits(m)[slot / 64] |= uint64_t{1} << (slot % 64);
}

uint32_t NewSlab(int cls) {
  // The movable partition's hard limit (or the process's) may refuse it.
  if (g_contract != nullptr && !g_contract->Charge(kSlabBytes)) return kNone;
  uint32_t slab;
  if (g_free_slab_count > 0) {
    slab = g_free_slabs[--g_free_slab_count];
  } else if (g_slab_top < g_arena_slabs) {
    slab = g_slab_top++;
  } else {
    if (g_contract != nullptr) g_contract->Uncharge(kSlabBytes);
    return kNone;
  }
  SlabMeta* m = Meta(slab);
  memset(m, 0, sizeof(SlabMeta) + 2 * kLayouts.of[cls].words * 8);
  m->cls = static_cast<uint8_t>(cls);
  m->state = kActive;
  g_slab_class[slab] = static_cast<uint8_t>(cls + 1);
  m->capacity = kLayouts.of[cls].capacity;
  SealTail(m);
  PartialPush(slab);
  Add(g_stats.slabs, 1);
  return slab;
}

// Gives an empty slab's pages (metadata included) back to the kernel.
void ReleaseSlab(uint32_t slab) {
  SlabMeta* m = Meta(slab);
  PartialRemove(slab);
  m->state = kUnused;
  g_slab_class[slab] = 0;
  os::Release(SlabBase(slab), kSlabBytes);
  if (g_contract != nullptr) g_contract->Uncharge(kSlabBytes);
  g_free_slabs[g_free_slab_count++] = slab;
  Sub(g_stats.slabs, 1);
  Add(g_stats.pages_returned, kSlabBytes / kPageSize);
}

// A slot of class `cls` owned by handle `index`, from the first partial slab;
// a new slab only when `may_grow`.
uintptr_t AllocSlot(int cls, uint32_t index, bool may_grow) {
  uint32_t slab = g_partial[cls];
  if (slab == kNone) {
    if (!may_grow) return 0;
    slab = NewSlab(cls);
    if (slab == kNone) return 0;
  }
  SlabMeta* m = Meta(slab);
  for (size_t w = 0;; w++) {
    uint64_t free_bits = ~UsedBits(m)[w];
    if (free_bits == 0) continue;
    size_t slot = w * 64 + static_cast<size_t>(__builtin_ctzll(free_bits));
    NITRO_ASSERT(slot < m->capacity);
    UsedBits(m)[w] |= uint64_t{1} << (slot % 64);
    Owners(m)[slot] = index;
    if (++m->live == m->capacity) PartialRemove(slab);
    return SlotAddress(slab, cls, slot);
  }
}

void FreeSlot(uintptr_t addr) {
  uint32_t slab = SlabOf(addr);
  SlabMeta* m = Meta(slab);
  size_t slot = (addr - SlotAddress(slab, m->cls, 0)) / kClassSizes[m->cls];
  UsedBits(m)[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  SampledBits(m)[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  bool was_full = m->live == m->capacity;
  m->live--;
  if (m->state == kEvacuating) return;  // the compactor decides its fate
  if (m->live == 0 && (g_partial[m->cls] != slab || m->next != kNone)) {
    ReleaseSlab(slab);  // keep a class's last partial slab, return the others
  } else if (was_full) {
    PartialPush(slab);
  }
}

// The flight recorder's mark on a live word's slot (a large object's cell).
uintptr_t SlotOfWord(Word w) { return reinterpret_cast<uintptr_t>(g_arena) + (w & kLocMask) * kGrain; }
size_t SlotIndex(SlabMeta* m, uint32_t slab, uintptr_t addr) {
  return (addr - SlotAddress(slab, m->cls, 0)) / kClassSizes[m->cls];
}
bool IsSampled(Word w) {
  uintptr_t addr = SlotOfWord(w);
  uint32_t slab = SlabOf(addr);
  SlabMeta* m = Meta(slab);
  size_t slot = SlotIndex(m, slab, addr);
  return SampledBits(m)[slot / 64] & (uint64_t{1} << (slot % 64));
}
void MarkSampled(Word w) {
  uintptr_t addr = SlotOfWord(w);
  uint32_t slab = SlabOf(addr);
  SlabMeta* m = Meta(slab);
  size_t slot = SlotIndex(m, slab, addr);
  SampledBits(m)[slot / 64] |= uint64_t{1} << (slot % 64);
}

// Usable bytes of a live word's object.
size_t UsableOf(Word w) {
  if (!(w & kLarge)) {
    uintptr_t slot = reinterpret_cast<uintptr_t>(g_arena) + (w & kLocMask) * kGrain;
    return kClassSizes[Meta(SlabOf(slot))->cls];
  }
  auto* hdr = reinterpret_cast<const LargeHeader*>(AddressOf(w) - kLargeHeaderBytes);
  if (hdr->magic != kLargeMagic) Fatal("movable heap: corrupted header of a large object at %p", hdr);
  return hdr->map_bytes - kLargeHeaderBytes;
}

// Memory for `size` bytes owned by handle `index` (under g_lock): the
// location bits (and kLarge) of its word, or ~0 when out of memory.
constexpr Word kNoMemory = ~Word{0};
Word AllocObject(size_t size, uint32_t index) {
  if (size <= kMaxClassSize) {
    int cls = ClassIndex(size);
    uintptr_t slot = AllocSlot(cls, index, true);
    if (slot == 0) return kNoMemory;
    Add(g_stats.live_bytes, kClassSizes[cls]);
    return LocationOf(slot);
  }
  if (size > (size_t{1} << 40)) return kNoMemory;
  size_t map_bytes = RoundUp(size + kLargeHeaderBytes, kPageSize);
  uintptr_t cell = AllocSlot(0, index, true);  // holds the address: the word has no room for it
  if (cell == 0) return kNoMemory;
  if (g_contract != nullptr && !g_contract->Charge(map_bytes)) {
    FreeSlot(cell);
    return kNoMemory;
  }
  char* base = static_cast<char*>(os::Reserve(map_bytes, kPageSize));
  if (base == nullptr) {
    if (g_contract != nullptr) g_contract->Uncharge(map_bytes);
    FreeSlot(cell);
    return kNoMemory;
  }
  auto* hdr = reinterpret_cast<LargeHeader*>(base);
  hdr->magic = kLargeMagic;
  hdr->map_bytes = map_bytes;
  *reinterpret_cast<uintptr_t*>(cell) = reinterpret_cast<uintptr_t>(base) + kLargeHeaderBytes;
  Add(g_stats.large_bytes, map_bytes);
  Add(g_stats.live_bytes, map_bytes - kLargeHeaderBytes);
  return LocationOf(cell) | kLarge;
}

void FreeObject(Word w) {
  size_t usable = UsableOf(w);
  Sub(g_stats.live_bytes, usable);
  uintptr_t slot = reinterpret_cast<uintptr_t>(g_arena) + (w & kLocMask) * kGrain;
  if (w & kLarge) {
    size_t map_bytes = usable + kLargeHeaderBytes;
    os::Unmap(reinterpret_cast<char*>(AddressOf(w)) - kLargeHeaderBytes, map_bytes);
    if (g_contract != nullptr) g_contract->Uncharge(map_bytes);
    Sub(g_stats.large_bytes, map_bytes);
    Add(g_stats.pages_returned, map_bytes / kPageSize);
  }
  FreeSlot(slot);
}

uint32_t NewHandleIndex() {
  if (g_free_head != 0) {
    uint32_t index = g_free_head - 1;
    g_free_head = static_cast<uint32_t>(g_table[index].word.load(std::memory_order_relaxed) & kLocMask);
    if (g_free_head == 0) g_free_tail = 0;
    return index;
  }
  uint32_t used = g_table_used.load(std::memory_order_relaxed);
  if (used >= kMaxHandles) return kNone;
  g_table[used].word.store(0, std::memory_order_relaxed);  // generation 0: free
  g_table_used.store(used + 1, std::memory_order_release);
  return used;
}

// A freed entry: generation `gen` (even), at the tail of the free list.
void ReleaseHandleIndex(uint32_t index, uint32_t gen) {
  g_table[index].word.store(WithGen(gen), std::memory_order_release);
  if (g_free_tail != 0) {
    Entry* tail = &g_table[g_free_tail - 1];
    Word w = tail->word.load(std::memory_order_relaxed);
    tail->word.store((w & ~kLocMask) | (index + 1), std::memory_order_relaxed);
  } else {
    g_free_head = index + 1;
  }
  g_free_tail = index + 1;
}

// ---- Compaction (the slab phases under g_lock).
// Chooses the sparsest slabs of each class whose objects fit in the others'
// free slots, marks them evacuating and their movable objects pending.
// Returns how many slabs went to `sources`.
size_t MarkSources(size_t budget, uint32_t* sources, size_t* marked) {
  size_t count = 0, bytes = 0;
  *marked = 0;
  for (int cls = 0; cls < kClassCount; cls++) {
    // This class's active slabs, listed after the slabs chosen so far; the
    // i-th chosen one is written over the i-th candidate, already read.
    uint32_t* slabs = g_scratch + count;
    size_t n = 0, live = 0;
    for (uint32_t s = 0; s < g_slab_top; s++) {
      if (g_slab_class[s] != cls + 1) continue;
      SlabMeta* m = Meta(s);
      if (m->state == kActive) {
        slabs[n++] = s;
        live += m->live;
      }
    }
    size_t capacity = kLayouts.of[cls].capacity;
    size_t needed = (live + capacity - 1) / capacity;
    if (n <= needed) continue;
    std::sort(slabs, slabs + n, [](uint32_t a, uint32_t b) { return Meta(a)->live < Meta(b)->live; });
    for (size_t i = 0; i < n - needed && bytes + kClassSizes[cls] <= budget; i++) {
      SlabMeta* m = Meta(slabs[i]);
      if (m->live * 4 > m->capacity * 3) break;  // too dense to be worth emptying
      m->state = kEvacuating;
      PartialRemove(slabs[i]);
      sources[count++] = slabs[i];
      for (size_t slot = 0; slot < m->capacity; slot++) {
        if (!SlotUsed(m, slot)) continue;
        if (bytes + kClassSizes[cls] > budget) break;  // the rest stays where it is
        Entry* e = &g_table[Owners(m)[slot]];
        Word w = e->word.load(std::memory_order_relaxed);
        if (w & kPinMask) {
          Add(g_stats.pinned_skipped, 1);
        } else if (!(w & (kLarge | kPending | kCopying)) &&  // a large object's cell stays put
                   e->word.compare_exchange_strong(w, w | kPending, std::memory_order_seq_cst)) {
          bytes += kClassSizes[cls];
          ++*marked;
        }
      }
    }
  }
  return count;
}

// After a grace period: copies every object still pending, then returns the
// emptied slabs. With `cancel`, only takes the marks back; past
// `deadline_ns` (0: none) too, for the objects not yet copied (the time
// budget: *stopped says so).
size_t MoveOrCancel(const uint32_t* sources, size_t count, bool cancel, uint64_t deadline_ns, size_t* claimed_out,
                    bool* stopped) {
  size_t moved = 0, claimed = 0;
  bool copying = !cancel;
  *stopped = false;
  for (size_t i = 0; i < count; i++) {
    uint32_t slab = sources[i];
    SlabMeta* m = Meta(slab);
    size_t size = kClassSizes[m->cls];
    for (size_t slot = 0; slot < m->capacity; slot++) {
      if (!SlotUsed(m, slot)) continue;
      uint32_t index = Owners(m)[slot];
      Entry* e = &g_table[index];
      Word w = e->word.load(std::memory_order_relaxed);
      if ((w & (kPending | kPinMask | kCopying)) != kPending) continue;  // not marked, or asked for since
      // The clock is read every 32 claims: a copy is well under a microsecond.
      if (copying && deadline_ns != 0 && claimed % 32 == 31 && NowNs() > deadline_ns) {
        copying = false;
        *stopped = true;
      }
      if (!copying) {
        e->word.compare_exchange_strong(w, w & ~kPending, std::memory_order_seq_cst);
        continue;
      }
      if (!e->word.compare_exchange_strong(w, (w & ~kPending) | kCopying, std::memory_order_seq_cst)) {
        continue;  // asked for (or pinned) this instant
      }
      uintptr_t from = SlotAddress(slab, m->cls, slot);
      bool sampled = SampledBits(m)[slot / 64] & (uint64_t{1} << (slot % 64));
      claimed++;
      uintptr_t to = sampled && g_sampled_move_count == kMaxSampledMoves ? 0 : AllocSlot(m->cls, index, false);
      if (to == 0) {  // no room left in denser slabs (or for its move event): stays
        e->word.store(w & ~kPending, std::memory_order_seq_cst);
        continue;
      }
      memcpy(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(from), size);
      if (sampled) {
        MarkSampled(LocationOf(to));
        g_sampled_moves[g_sampled_move_count++] = SampledMove{from, to, size};
      }
      // The new address and the end of the copy in one store (readers
      // waiting in kCopying go on with it).
      e->word.store((w & ~(kPending | kLocMask)) | LocationOf(to), std::memory_order_seq_cst);
      FreeSlot(from);
      moved += size;
      Add(g_stats.objects_moved, 1);
    }
    m->state = kActive;
    if (m->live == 0) {
      ReleaseSlab(slab);
      if (!cancel) Add(g_stats.slabs_freed, 1);
    } else if (m->live < m->capacity) {
      PartialPush(slab);
    }
  }
  Add(g_stats.bytes_moved, moved);
  *claimed_out = claimed;
  return moved;
}

}  // namespace

size_t ClassSizeFor(size_t size) { return size <= kMaxClassSize ? kClassSizes[ClassIndex(size)] : 0; }

Handle Allocate(size_t size) {
  if (!EnsureReady()) {
    errno = ENOMEM;
    return 0;
  }
  const RecorderHooks* rec = g_recorder.load(std::memory_order_acquire);
  bool sample = rec != nullptr && rec->due(size);  // before the lock: the recorder's ranks first
  g_lock.Lock();
  uint32_t index = NewHandleIndex();
  Word where = index == kNone ? kNoMemory : AllocObject(size, index);
  if (where == kNoMemory) {
    if (index != kNone) ReleaseHandleIndex(index, GenOf(g_table[index].word.load(std::memory_order_relaxed)));
    g_lock.Unlock();
    errno = ENOMEM;
    return 0;
  }
  Entry* e = &g_table[index];
  uint32_t gen = (GenOf(e->word.load(std::memory_order_relaxed)) + 1) & ((1u << kGenBits) - 1);  // even -> odd
  e->word.store(WithGen(gen) | where, std::memory_order_release);
  uintptr_t sampled_at = 0;
  size_t usable = 0;
  if (sample) {
    MarkSampled(where);
    sampled_at = AddressOf(where);
    usable = UsableOf(where);
  }
  g_lock.Unlock();
  if (sample) rec->sampled(reinterpret_cast<void*>(sampled_at), size, usable);
  Add(g_stats.live_objects, 1);
  return (Handle{gen} << 32) | index;
}

void* Pointer(Handle h) {
  Entry* e = EntryOf(h, "nitro_hptr");
  EnsureOnline();  // before the word is read
  for (;;) {
    Word w = e->word.load(std::memory_order_seq_cst);
    CheckGen(h, w, "nitro_hptr");
    if (NITRO_UNLIKELY(w & (kPending | kCopying))) {
      if (w & kPending) {
        e->word.compare_exchange_weak(w, w & ~kPending, std::memory_order_seq_cst);  // cancels the move
      } else {
        WaitForCopy();
      }
      continue;
    }
    return reinterpret_cast<void*>(AddressOf(w));
  }
}

void* Pin(Handle h) {
  Entry* e = EntryOf(h, "nitro_hpin");
  for (;;) {
    Word w = e->word.load(std::memory_order_seq_cst);
    CheckGen(h, w, "nitro_hpin");
    if (NITRO_UNLIKELY(w & kCopying)) {
      WaitForCopy();
      continue;
    }
    if (NITRO_UNLIKELY((w & kPinMask) == kPinMask)) Fatal("movable heap: more than %u pins of one object", kMaxPins);
    Word pinned = (w & ~kPending) + kPinOne;
    if (e->word.compare_exchange_weak(w, pinned, std::memory_order_seq_cst)) return reinterpret_cast<void*>(AddressOf(pinned));
  }
}

void Unpin(Handle h) {
  Entry* e = EntryOf(h, "nitro_hunpin");
  Word w = e->word.load(std::memory_order_relaxed);
  do {
    CheckGen(h, w, "nitro_hunpin");
    if (NITRO_UNLIKELY((w & kPinMask) == 0)) ReportBadHandle(kUnpinUnpinned, "nitro_hunpin", h, "more unpins than pins");
  } while (!e->word.compare_exchange_weak(w, w - kPinOne, std::memory_order_release, std::memory_order_relaxed));
}

size_t UsableSize(Handle h) {
  Entry* e = EntryOf(h, "nitro_hsize");
  g_lock.Lock();  // a large object's header, or a slot being moved
  Word w = e->word.load(std::memory_order_relaxed);
  if (GenOf(w) != static_cast<uint32_t>(h >> 32)) {
    g_lock.Unlock();
    ReportGenMismatch(h, w, "nitro_hsize");
  }
  size_t usable = UsableOf(w);
  g_lock.Unlock();
  return usable;
}

// The word of a live handle, read under g_lock; reports (after unlocking)
// a stale handle. Frees and moves happen under the lock, so it stays valid
// until the unlock except for pins and marks.
Word LockedWord(Handle h, Entry* e, const char* call) {
  Word w = e->word.load(std::memory_order_relaxed);
  if (NITRO_UNLIKELY(GenOf(w) != static_cast<uint32_t>(h >> 32))) {
    g_lock.Unlock();
    ReportGenMismatch(h, w, call);
  }
  return w;
}

void Free(Handle h) {
  if (h == 0) return;
  Entry* e = EntryOf(h, "nitro_hfree");
  g_lock.Lock();
  Word w = LockedWord(h, e, "nitro_hfree");
  // No pin may come between the check and the free: the free takes the
  // word (a pin racing with it fails its compare-and-swap and then finds
  // the handle stale).
  while (!(w & kPinMask) && !e->word.compare_exchange_weak(w, w | kCopying, std::memory_order_seq_cst)) {
  }
  if (NITRO_UNLIKELY(w & kPinMask)) {
    g_lock.Unlock();
    ReportBadHandle(kFreePinned, "nitro_hfree", h, "the object is pinned (nitro_hpin without nitro_hunpin)");
  }
  uintptr_t sampled_at = IsSampled(w) ? AddressOf(w) : 0;
  FreeObject(w);
  ReleaseHandleIndex(static_cast<uint32_t>(h), (GenOf(w) + 1) & ((1u << kGenBits) - 1));  // odd -> even: stale
  g_lock.Unlock();
  if (sampled_at != 0) {
    if (const RecorderHooks* rec = g_recorder.load(std::memory_order_acquire)) rec->freed(reinterpret_cast<void*>(sampled_at));
  }
  Sub(g_stats.live_objects, 1);
}

int Resize(Handle h, size_t size) {
  Entry* e = EntryOf(h, "nitro_hrealloc");
  g_lock.Lock();
  Word w = LockedWord(h, e, "nitro_hrealloc");
  size_t usable = UsableOf(w);
  // In place when it fits and does not waste more than half the slot.
  bool fits = size <= usable && (size > usable / 2 || usable <= 16);
  if (fits || (w & kPinMask)) {
    g_lock.Unlock();
    return fits || size <= usable ? 0 : EBUSY;
  }
  Word where = AllocObject(size, static_cast<uint32_t>(h));
  if (where == kNoMemory) {
    g_lock.Unlock();
    return ENOMEM;
  }
  memcpy(reinterpret_cast<void*>(AddressOf(where)), reinterpret_cast<const void*>(AddressOf(w)),
         size < usable ? size : usable);
  // A pin racing with the move: the compare-and-swap fails, and the pinned
  // object stays where it was (EBUSY).
  Word moved = (w & kGenMask) | where;  // a pending mark is moot: it moved
  while (!(w & kPinMask) && !e->word.compare_exchange_weak(w, moved, std::memory_order_seq_cst)) {
  }
  if (w & kPinMask) {
    FreeObject(where);
    g_lock.Unlock();
    return EBUSY;
  }
  // A sampled object's mark follows it, and its move is reported.
  bool sampled = IsSampled(w);
  uintptr_t from = AddressOf(w), to = AddressOf(where);
  if (sampled) MarkSampled(where);
  FreeObject(w);
  g_lock.Unlock();
  if (sampled) {
    if (const RecorderHooks* rec = g_recorder.load(std::memory_order_acquire)) {
      rec->moved(reinterpret_cast<void*>(from), reinterpret_cast<void*>(to), size);
    }
  }
  return 0;
}

void Quiescent() {
  ThreadRecord* r = tls_record;
  if (r != nullptr) r->epoch.store(g_epoch.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
}

void Offline() {
  ThreadRecord* r = tls_record;
  if (r != nullptr) r->epoch.store(0, std::memory_order_seq_cst);
}

namespace {

// One compaction at a time: the background one gives way, one on demand
// waits for its turn.
bool TakeCompactionTurn(bool wait) {
  int self = getpid();
  for (;;) {
    int expected = 0;
    if (g_compacting.compare_exchange_strong(expected, self, std::memory_order_acquire)) return true;
    // A fork child of a compacting process: that compaction's thread is not
    // here; its marks are taken back and its source slabs serve again.
    if (expected != self && g_compacting.compare_exchange_strong(expected, self, std::memory_order_acquire)) {
      size_t claimed;
      g_lock.Lock();
      bool stopped;
      MoveOrCancel(g_scratch, g_source_count, true, 0, &claimed, &stopped);
      g_source_count = 0;
      g_sampled_move_count = 0;  // that compaction's moves are the parent's to report
      g_lock.Unlock();
      return true;
    }
    if (!wait) return false;
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, nullptr);
  }
}

// The compaction's moves of sampled objects, to the recorder (its lock
// ranks before the heap's: called with no lock held, by the compaction's
// turn holder, the only writer of the list).
void ReportSampledMoves() {
  const RecorderHooks* rec = g_recorder.load(std::memory_order_acquire);
  for (size_t i = 0; i < g_sampled_move_count; i++) {
    const SampledMove& mv = g_sampled_moves[i];
    if (rec != nullptr) rec->moved(reinterpret_cast<void*>(mv.from), reinterpret_cast<void*>(mv.to), mv.size);
  }
  g_sampled_move_count = 0;
}

size_t CompactTurn(size_t budget, unsigned grace_timeout_ms, bool wait, uint64_t time_budget_ns) {
  Offline();  // a quiescent point of the caller, which must not wait for itself
  if (!g_ready.load(std::memory_order_acquire) || budget == 0) return 0;
  if (!TakeCompactionTurn(wait)) return 0;
  uint64_t start = NowNs();
  g_lock.Lock();
  size_t marked;
  size_t count = MarkSources(budget, g_scratch, &marked);
  g_source_count = count;
  g_lock.Unlock();
  size_t moved = 0;
  if (count > 0) {
    bool grace = WaitForGracePeriod(grace_timeout_ms);
    size_t claimed;
    bool stopped;
    // The time budget counts copying, not the wait for the grace period.
    uint64_t deadline = time_budget_ns != 0 ? NowNs() + time_budget_ns : 0;
    g_lock.Lock();
    moved = MoveOrCancel(g_scratch, count, !grace, deadline, &claimed, &stopped);
    g_source_count = 0;
    g_lock.Unlock();
    if (stopped) Add(g_stats.time_budget_stops, 1);
    ReportSampledMoves();
    if (grace) {
      Add(g_stats.busy_skipped, marked - claimed);  // threads asked for them between mark and copy
    } else {
      Add(g_stats.grace_timeouts, 1);
    }
  }
  Add(g_stats.compactions, 1);
  Add(g_stats.compact_ns, NowNs() - start);
  g_compacting.store(0, std::memory_order_release);
  return moved;
}

}  // namespace

size_t Compact(size_t budget, unsigned grace_timeout_ms, uint64_t time_budget_ns) {
  return CompactTurn(budget, grace_timeout_ms, true, time_budget_ns);
}

void SetRecorderHooks(const RecorderHooks* hooks) { g_recorder.store(hooks, std::memory_order_release); }

void AttachContract(Contract* contract) {
  if (!EnsureReady()) return;
  g_lock.Lock();
  contract->ChargeAnyway(g_stats.slabs.load(std::memory_order_relaxed) * kSlabBytes +
                         g_stats.large_bytes.load(std::memory_order_relaxed));
  g_contract = contract;
  g_lock.Unlock();
}

void GetStats(Stats* out) {
  out->live_objects = g_stats.live_objects.load(std::memory_order_relaxed);
  out->live_bytes = g_stats.live_bytes.load(std::memory_order_relaxed);
  out->slabs = g_stats.slabs.load(std::memory_order_relaxed);
  out->slab_bytes = out->slabs * kSlabBytes;
  out->large_bytes = g_stats.large_bytes.load(std::memory_order_relaxed);
  out->handle_capacity = g_table_used.load(std::memory_order_relaxed);
  out->objects_moved = g_stats.objects_moved.load(std::memory_order_relaxed);
  out->bytes_moved = g_stats.bytes_moved.load(std::memory_order_relaxed);
  out->slabs_freed = g_stats.slabs_freed.load(std::memory_order_relaxed);
  out->pages_returned = g_stats.pages_returned.load(std::memory_order_relaxed);
  out->pinned_skipped = g_stats.pinned_skipped.load(std::memory_order_relaxed);
  out->busy_skipped = g_stats.busy_skipped.load(std::memory_order_relaxed);
  out->grace_timeouts = g_stats.grace_timeouts.load(std::memory_order_relaxed);
  out->compactions = g_stats.compactions.load(std::memory_order_relaxed);
  out->compact_ns = g_stats.compact_ns.load(std::memory_order_relaxed);
  out->time_budget_stops = g_stats.time_budget_stops.load(std::memory_order_relaxed);
  out->pressure_compactions = g_stats.pressure_compactions.load(std::memory_order_relaxed);
}

const StatField kStatFields[] = {
    {"live_objects", &Stats::live_objects},     {"live_bytes", &Stats::live_bytes},
    {"slabs", &Stats::slabs},                   {"slab_bytes", &Stats::slab_bytes},
    {"large_bytes", &Stats::large_bytes},       {"handle_capacity", &Stats::handle_capacity},
    {"objects_moved", &Stats::objects_moved},   {"bytes_moved", &Stats::bytes_moved},
    {"slabs_freed", &Stats::slabs_freed},       {"pages_returned", &Stats::pages_returned},
    {"pinned_skipped", &Stats::pinned_skipped}, {"busy_skipped", &Stats::busy_skipped},
    {"grace_timeouts", &Stats::grace_timeouts}, {"compactions", &Stats::compactions},
    {"compact_ns", &Stats::compact_ns},         {"time_budget_stops", &Stats::time_budget_stops},
    {"pressure_compactions", &Stats::pressure_compactions},
};
const size_t kStatFieldCount = sizeof(kStatFields) / sizeof(kStatFields[0]);
static_assert(sizeof(kStatFields) / sizeof(kStatFields[0]) * sizeof(uint64_t) == sizeof(Stats),
              "every counter has a name");

bool StatByName(const char* name, uint64_t* value) {
  Stats s;
  GetStats(&s);
  for (size_t i = 0; i < kStatFieldCount; i++) {
    if (strcmp(kStatFields[i].name, name) == 0) {
      *value = s.*kStatFields[i].field;
      return true;
    }
  }
  return false;
}

void BackgroundTick(uint64_t now_ms, uint64_t interval_ms, size_t budget, uint64_t budget_us, bool pressure) {
  if (!g_ready.load(std::memory_order_acquire)) return;
  bool scheduled = interval_ms != 0 && now_ms - g_last_background_ms >= interval_ms;
  if (!pressure && !scheduled) return;
  g_last_background_ms = now_ms;
  // A short grace period: the background thread never waits long for a
  // program thread that has not reached a quiescent point; it tries again
  // next time.
  CompactTurn(budget, 20, false, budget_us * 1000);
  if (pressure) Add(g_stats.pressure_compactions, 1);
}

}  // namespace nitro::movable
