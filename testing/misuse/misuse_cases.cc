// One heap misuse per run: `misuse_cases CASE`. NOT linked with NitroHeap:
// misuse_test.py runs it under LD_PRELOAD=libnitroheap.so with each
// NITROHEAP_OPTIONS mode and checks how the process dies and what NitroHeap
// printed. `misuse_cases list` prints the case names.
//
// Protocol on stdout (written with write(2), so nothing is lost when the
// process dies):
//   EXPECT <lo> <hi>   the address the first diagnostic line must name lies
//                      in [lo, hi] (EXPECT any: any address)
//   NOT DETECTED       the misuse happened and the process went on
//   other lines        facts the runner may check (GUARDED, ZEROED, ...)
//
// Every case is an exported, never-inlined function `case_<name>` (the
// binary is linked with -rdynamic), so NitroHeap's dladdr symbolization
// names it in the reported stack and the runner checks that it does.
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <new>

#define CASE extern "C" __attribute__((noinline, used, visibility("default"))) int

namespace {

// Hides a pointer's provenance from the optimizer (and from GCC's
// -Wfree-nonheap-object / -Wuse-after-free): the misuse must really happen.
// noipa: the compiler may not look through it (no inlining, no
// interprocedural propagation).
__attribute__((noipa)) void* OpaqueVoid(void* p) { return p; }
template <typename T>
T* Opaque(T* p) {
  return static_cast<T*>(OpaqueVoid(const_cast<void*>(static_cast<const volatile void*>(p))));
}

void Say(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// Addresses travel as integers: GCC assumes a function taking a const
// pointer reads the (here deliberately uninitialized or freed) memory.
void ExpectRange(uintptr_t lo, uintptr_t hi) {
  char line[96];
  snprintf(line, sizeof(line), "EXPECT %#lx %#lx\n", static_cast<unsigned long>(lo),
           static_cast<unsigned long>(hi));
  Say(line);
}
template <typename T>
void Expect(T* at) {
  ExpectRange(reinterpret_cast<uintptr_t>(at), reinterpret_cast<uintptr_t>(at));
}
void ExpectAny() { Say("EXPECT any\n"); }

int NotDetected() {
  Say("NOT DETECTED\n");
  return 0;
}

template <typename F>
F Sym(const char* name) {
  void* f = dlsym(RTLD_DEFAULT, name);
  if (f == nullptr) {
    char line[128];
    snprintf(line, sizeof(line), "MISSING SYMBOL %s (not run under NitroHeap?)\n", name);
    Say(line);
    _exit(3);
  }
  return reinterpret_cast<F>(f);
}

using FreeSizedFn = void (*)(void*, size_t);
using FreeAlignedSizedFn = void (*)(void*, size_t, size_t);
using RustDeallocFn = void (*)(void*, size_t, size_t);
using PartCreateFn = void* (*)(const char*);
using PartMallocFn = void* (*)(void*, size_t);
using PartFreeFn = void (*)(void*, void*);

void Fill(void* p, size_t n, unsigned char v) { memset(Opaque(p), v, n); }

// An overflow into canary bytes that always changes the byte it hits: the
// canaries are random per process, so writing a constant would match one
// by chance (1 run in 256, or 128 for the guarded pool's odd byte) and
// the case would pass undetected.
void CorruptByte(char* p, size_t off) { Opaque(p)[off] = static_cast<char>(~Opaque(p)[off]); }

// Allocation the optimizer cannot see through: GCC deletes a malloc/free
// pair whose memory it considers unused, and with it the misuse.
__attribute__((noipa)) void* Malloc(size_t n) { return malloc(n); }
__attribute__((noipa)) void* Calloc(size_t n, size_t size) { return calloc(n, size); }
__attribute__((noipa)) void* AlignedAlloc(size_t align, size_t n) { return aligned_alloc(align, n); }

// n malloc/free pairs of one size (through Opaque: the compiler may delete a
// malloc/free pair it can see).
void Churn(size_t size, int n) {
  for (int i = 0; i < n; i++) free(Opaque(Malloc(size)));
}

// ---- signal handler chaining ------------------------------------------------
// The program's own SIGSEGV handler. For chain_* cases it is installed from
// .preinit_array, before any constructor (and so before NitroHeap's first
// allocation installs its own handler, which then chains to this one).
void OwnHandler(int, siginfo_t*, void*) {
  Say("OWN HANDLER\n");
  _exit(42);
}

void InstallOwnHandler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OwnHandler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
}

void PreInit(int argc, char** argv, char**) {
  if (argc > 1 && strncmp(argv[1], "chain_", 6) == 0) InstallOwnHandler();
}

}  // namespace

__attribute__((section(".preinit_array"), used)) static void (*const g_preinit)(int, char**, char**) =
    PreInit;

// Globals for the foreign-free cases: 16-aligned with zero bytes before the
// pointer, so they cannot pass for a C library chunk either.
alignas(64) static char g_global[64];
// Blocks kept live by some cases.
void* volatile g_keep[1000];

// ============================================================================
// Every mode: double and invalid frees.
// ============================================================================

CASE case_double_free_small() {
  char* p = static_cast<char*>(Malloc(40));
  Expect(p);
  free(p);
  free(Opaque(p));
  return NotDetected();
}

// Allocations of other sizes between the two frees.
CASE case_double_free_small_other_sizes() {
  char* p = static_cast<char*>(Malloc(40));
  Expect(p);
  free(p);
  for (int i = 0; i < 300; i++) g_keep[i] = malloc(100 + 300 * (i % 10));
  free(Opaque(p));
  return NotDetected();
}

// Allocations of the same size (none freed) between the two frees: the freed
// object waits in its class's delay line (depth >= 1), so even fast mode
// catches it.
CASE case_double_free_small_same_size() {
  char* p = static_cast<char*>(Malloc(40));
  Expect(p);
  free(p);
  for (int i = 0; i < 1000; i++) g_keep[i] = malloc(40);
  free(Opaque(p));
  return NotDetected();
}

// Out of reach in every mode: once the object was handed to someone else,
// the second free frees *their* object silently; the error surfaces only
// when the new owner frees it, reported there as a double free.
CASE case_double_free_after_reuse() {
  char* p = static_cast<char*>(Malloc(40));
  free(p);
  char* victim = nullptr;
  int pairs = 0;
  for (; pairs < 1000000 && victim == nullptr; pairs++) {
    char* q = static_cast<char*>(Malloc(40));
    if (q == Opaque(p)) {
      victim = q;
    } else {
      free(q);
    }
  }
  if (victim == nullptr) {
    Say("NEVER REUSED\n");
    return 3;
  }
  char line[64];
  snprintf(line, sizeof(line), "REUSED after %d malloc/free pairs\n", pairs - 1);
  Say(line);
  Expect(victim);
  free(Opaque(p));  // the double free: frees the victim's live object
  Say("SECOND FREE NOT DETECTED\n");
  free(Opaque(victim));  // the victim's own, correct free
  return NotDetected();
}

CASE case_double_free_large() {
  char* p = static_cast<char*>(Malloc(1 << 20));
  Expect(p);
  free(p);
  free(Opaque(p));
  return NotDetected();
}

// Another large allocation between the frees (fast mode's large quarantine
// holds 2 runs, so p's run is not reused).
CASE case_double_free_large_after_alloc() {
  char* p = static_cast<char*>(Malloc(1 << 20));
  Expect(p);
  free(p);
  void* x = malloc(1 << 20);
  Fill(x, 1 << 20, 1);
  free(Opaque(p));
  return NotDetected();
}

CASE case_invalid_free_interior() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p + 16);
  free(Opaque(p + 16));
  return NotDetected();
}

CASE case_invalid_free_unaligned() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p + 3);
  free(Opaque(p + 3));
  return NotDetected();
}

CASE case_invalid_free_large_interior() {
  char* p = static_cast<char*>(Malloc(512 << 10));
  Expect(p + 4096);
  free(Opaque(p + 4096));
  return NotDetected();
}

CASE case_realloc_interior() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p + 16);
  void* q = realloc(Opaque(p + 16), 200);
  (void)q;
  return NotDetected();
}

CASE case_realloc_after_free() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  free(p);
  void* q = realloc(Opaque(p), 200);
  (void)q;
  return NotDetected();
}

// The same two with a size that keeps the block in place: realloc's
// in-place fast path (core/heap.cc Reallocate) makes free's checks first.
CASE case_realloc_in_place_interior() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p + 16);
  void* q = realloc(Opaque(p + 16), 40);
  (void)q;
  return NotDetected();
}

CASE case_realloc_in_place_after_free() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  free(p);
  void* q = realloc(Opaque(p), 60);
  (void)q;
  return NotDetected();
}

CASE case_usable_size_interior() {
  char* p = static_cast<char*>(Malloc(64));
  Expect(p + 8);
  volatile size_t n = malloc_usable_size(Opaque(p + 8));
  (void)n;
  return NotDetected();
}

CASE case_sized_delete_interior() {
  char* p = static_cast<char*>(::operator new(64));
  Expect(p + 16);
  ::operator delete(Opaque(p + 16), static_cast<size_t>(48));
  return NotDetected();
}

// ---- memory NitroHeap never handed out -------------------------------------

CASE case_free_stack() {
  alignas(64) char buf[64];
  memset(buf, 0, sizeof(buf));
  Expect(buf + 32);
  free(Opaque(buf + 32));
  return NotDetected();
}

CASE case_free_global() {
  Expect(g_global + 32);
  free(Opaque(g_global + 32));
  return NotDetected();
}

CASE case_free_wild() {
  void* p = reinterpret_cast<void*>(uintptr_t{0x12345670});
  Expect(p);
  free(Opaque(p));
  return NotDetected();
}

CASE case_realloc_stack() {
  alignas(64) char buf[64];
  memset(buf, 0, sizeof(buf));
  Expect(buf + 32);
  void* q = realloc(Opaque(buf + 32), 100);
  (void)q;
  return NotDetected();
}

CASE case_usable_size_wild() {
  void* p = reinterpret_cast<void*>(uintptr_t{0x23456780});
  Expect(p);
  volatile size_t n = malloc_usable_size(Opaque(p));
  (void)n;
  return NotDetected();
}

// ---- sized frees -------------------------------------------------------------

CASE case_sized_free_wrong_size() {
  auto free_sized = Sym<FreeSizedFn>("free_sized");
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  free_sized(Opaque(p), 1000);
  return NotDetected();
}

CASE case_sized_free_below_half() {
  auto free_sized = Sym<FreeSizedFn>("free_sized");
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  free_sized(Opaque(p), 16);
  return NotDetected();
}

// Above half the class: accepted outside strict (class granularity), caught
// by strict (exact sizes).
CASE case_sized_free_class_granularity() {
  auto free_sized = Sym<FreeSizedFn>("free_sized");
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  free_sized(Opaque(p), 40);
  return NotDetected();
}

CASE case_sized_free_large_wrong_size() {
  auto free_sized = Sym<FreeSizedFn>("free_sized");
  char* p = static_cast<char*>(Malloc(200000));
  Expect(p);
  free_sized(Opaque(p), 199999);
  return NotDetected();
}

CASE case_aligned_sized_free_wrong_size() {
  auto free_aligned_sized = Sym<FreeAlignedSizedFn>("free_aligned_sized");
  char* p = static_cast<char*>(AlignedAlloc(256, 512));
  Expect(p);
  free_aligned_sized(Opaque(p), 256, 4096);
  return NotDetected();
}

CASE case_sized_delete_wrong_size() {
  char* p = static_cast<char*>(::operator new(64));
  Expect(p);
  ::operator delete(Opaque(p), static_cast<size_t>(1000));
  return NotDetected();
}

CASE case_sized_delete_array_wrong_size() {
  char* p = static_cast<char*>(::operator new[](100));
  Expect(p);
  ::operator delete[](Opaque(p), static_cast<size_t>(8));
  return NotDetected();
}

CASE case_rust_dealloc_wrong_size() {
  auto dealloc = Sym<RustDeallocFn>("nitro_rust_dealloc");
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  dealloc(Opaque(p), 2000, 8);
  return NotDetected();
}

// ---- large allocations: guard page and protected quarantine -----------------
// Freed large blocks are protected in strict for every block, in fast and
// balanced while the partition's token bucket lasts (a process's first 16
// frees, then one a second), then the first 16 KiB of one in 256 at random.

CASE case_large_uaf_write() {
  char* p = static_cast<char*>(Malloc(1 << 20));
  Fill(p, 1 << 20, 1);
  free(p);
  Expect(p + 10);
  Opaque(p)[10] = 1;
  return NotDetected();
}

CASE case_large_uaf_read() {
  char* p = static_cast<char*>(Malloc(300000));
  Fill(p, 300000, 1);
  free(p);
  Expect(p + 1000);
  volatile char c = Opaque(p)[1000];
  (void)c;
  return NotDetected();
}

CASE case_large_overflow() {
  char* p = static_cast<char*>(Malloc(300000));
  size_t usable = malloc_usable_size(p);
  Fill(p, usable, 1);  // every usable byte is fine
  Expect(p + usable);
  Opaque(p)[usable] = 1;  // the guard page
  return NotDetected();
}

// ============================================================================
// strict additionally.
// ============================================================================

CASE case_write_after_free_small() {
  char* p = static_cast<char*>(Malloc(64));
  Fill(p, 64, 0x11);
  free(p);
  Expect(p + 40);
  Opaque(p)[40] = 7;
  // Reuse the class until the slot comes back (strict checks it then).
  Churn(64, 200000);
  return NotDetected();
}

CASE case_overflow_small_canary() {
  char* p = static_cast<char*>(Malloc(60));
  Fill(p, 60, 0x22);
  Expect(p + 61);
  CorruptByte(p, 61);  // inside the slot's slack: only strict's canary sees it
  free(p);
  return NotDetected();
}

// strict's in-place realloc checks the slack bytes it hands to the program
// (here byte 61 of a 60-byte object grown to 62)...
CASE case_overflow_small_canary_realloc() {
  char* p = static_cast<char*>(Malloc(60));
  Fill(p, 60, 0x22);
  Expect(p + 61);
  CorruptByte(p, 61);
  char* q = static_cast<char*>(realloc(Opaque(p), 62));
  free(q);
  return NotDetected();
}

// ... and leaves the rest of the slack to the free (byte 63 of the same
// object, grown by one byte in place first).
CASE case_overflow_small_canary_after_realloc() {
  char* p = static_cast<char*>(Malloc(60));
  Fill(p, 60, 0x22);
  Expect(p + 63);
  CorruptByte(p, 63);
  char* q = static_cast<char*>(realloc(Opaque(p), 61));
  free(q);
  return NotDetected();
}

// malloc(0)'s pointer has no accessible byte in every mode
// (hardened_malloc's read_zero_size and write_zero_size).
CASE case_write_zero_size() {
  char* p = static_cast<char*>(Malloc(0));
  Expect(p);
  Opaque(p)[0] = 1;
  free(p);
  return NotDetected();
}

CASE case_read_zero_size() {
  char* p = static_cast<char*>(Malloc(0));
  Expect(p + 5);
  volatile char c = Opaque(p)[5];
  (void)c;
  free(p);
  return NotDetected();
}

CASE case_double_free_zero_size() {
  void* p = Malloc(0);
  Expect(p);
  free(p);
  free(Opaque(p));
  return NotDetected();
}

// Two objects of one class, freed; the first word of the first (where a
// free-list link lived before thread caches became magazines) is
// overwritten; then the class is allocated many times.
CASE case_corrupt_free_list() {
  char* a = static_cast<char*>(Malloc(96));
  char* b = static_cast<char*>(Malloc(96));
  free(a);
  free(b);
  ExpectAny();  // the decoded link is garbage by construction
  uint64_t garbage = 0x4141414141414141ull;
  memcpy(Opaque(a), &garbage, 8);
  Churn(96, 200000);
  return NotDetected();
}

// A use-after-free write plants a pointer to a stack buffer in every word
// of a freed small object; the class is then allocated again and again. No
// link lives in a freed object, so no allocation returns the planted
// address. Prints NOT REDIRECTED (or REDIRECTED and exits 1).
CASE case_uaf_write_redirect() {
  alignas(64) char stack_buffer[256];
  memset(stack_buffer, 0, sizeof(stack_buffer));
  void* planted = Opaque(static_cast<void*>(stack_buffer));
  void** p = static_cast<void**>(Malloc(96));
  void** q = static_cast<void**>(Malloc(96));
  free(p);
  free(q);
  ExpectRange(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(p) + 95);
  for (int w = 0; w < 12; w++) Opaque(p)[w] = planted;  // after free
  for (int i = 0; i < 4000; i++) {
    void* r = Malloc(96);
    if (r == planted || (r > planted && r < static_cast<void*>(stack_buffer + sizeof(stack_buffer)))) {
      Say("REDIRECTED\n");
      return 1;
    }
    if (i % 2 == 0) g_keep[(i / 2) % 1000] = r; else free(r);
  }
  Say("NOT REDIRECTED\n");
  return 0;
}

// Free, wipe the whole freed object (a use-after-free write that erases
// whatever an allocator keeps inside it), free again: the double free is
// still seen, on free's fast path, from the flag outside the object.
CASE case_double_free_after_wipe() {
  void* p = Malloc(64);
  free(p);
  memset(Opaque(p), 0, 64);
  Expect(p);
  free(Opaque(p));
  return NotDetected();
}

// Freed by another thread than the one that allocated it (the object now
// waits in that thread's cache), then freed again here while that thread
// still holds it: the flag outside the object says free all the same.
namespace {
sem_t g_freed_there;
void* FreeThenWait(void* p) {
  free(p);
  sem_post(&g_freed_there);
  for (;;) pause();  // keeps its cache until the report ends the process
  return nullptr;
}
}  // namespace

CASE case_double_free_other_thread() {
  void* p = Malloc(64);
  sem_init(&g_freed_there, 0, 0);
  pthread_t t;
  if (pthread_create(&t, nullptr, FreeThenWait, p) != 0) {
    Say("NO THREAD\n");
    return 3;
  }
  while (sem_wait(&g_freed_there) != 0) {
  }
  Expect(p);
  free(Opaque(p));
  return NotDetected();
}

// Not a detection: strict zeroes freed objects, every byte (nothing of the
// heap's lives in a freed object). Prints ZEROED or STALE.
CASE case_read_after_free_small() {
  uint64_t* p = static_cast<uint64_t*>(Malloc(64));
  for (int i = 0; i < 8; i++) Opaque(p)[i] = 0x4141414141414141ull;
  free(p);
  volatile uint64_t* q = Opaque(p);
  bool zero = true;
  for (int i = 0; i < 8; i++) zero = zero && q[i] == 0;
  Say(zero ? "ZEROED\n" : "STALE\n");
  return 0;
}

// ============================================================================
// Partitions made with nitro_partition_create: every mode's checks, named.
// ============================================================================

namespace {
void* MakePartition(const char* name) {
  void* part = Sym<PartCreateFn>("nitro_partition_create")(name);
  if (part == nullptr) {
    Say("NO PARTITION\n");
    _exit(3);
  }
  return part;
}
}  // namespace

CASE case_partition_double_free() {
  void* part = MakePartition("misuse-part");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(part, 64));
  Expect(p);
  free(p);
  free(Opaque(p));
  return NotDetected();
}

// nitro_partition_malloc(p, 0): the partition's zero-size class outside
// strict (a fault); in strict a 0-byte request with canaries from byte 0.
CASE case_partition_zero_size_write() {
  void* part = MakePartition("misuse-part");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(part, 0));
  Expect(p);
  Opaque(p)[0] = 1;
  free(p);
  return NotDetected();
}

CASE case_partition_interior_free() {
  void* part = MakePartition("misuse-part");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(part, 64));
  Expect(p + 16);
  free(Opaque(p + 16));
  return NotDetected();
}

// Freed through the wrong partition: reported by the partition asked.
// A SECURE_STRICT object (a trait partition with strict's checks) in a
// process of any mode: the write after free is caught when the slot is
// reused, exactly as strict mode catches it in the default partition.
CASE case_secure_strict_write_after_free() {
  using ForTraitsFn = void* (*)(int);
  constexpr int kSecureStrict = 0x80 | (1 << 14);  // NITRO_TRAIT_SECURE_STRICT
  void* part = Sym<ForTraitsFn>("nitro_partition_for_traits")(kSecureStrict);
  if (part == nullptr) {
    Say("NO PARTITION\n");
    _exit(3);
  }
  auto part_malloc = Sym<PartMallocFn>("nitro_partition_malloc");
  auto part_free = Sym<PartFreeFn>("nitro_partition_free");
  char* p = static_cast<char*>(part_malloc(part, 64));
  Fill(p, 64, 0x11);
  part_free(part, p);
  Expect(p + 40);
  Opaque(p)[40] = 7;
  for (int i = 0; i < 200000; i++) part_free(part, Opaque(part_malloc(part, 64)));
  return NotDetected();
}

CASE case_partition_wrong_partition() {
  void* a = MakePartition("misuse-a");
  void* b = MakePartition("misuse-b");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(a, 64));
  Expect(p);
  Sym<PartFreeFn>("nitro_partition_free")(b, p);
  return NotDetected();
}

CASE case_partition_large_uaf() {
  void* part = MakePartition("misuse-part");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(part, 1 << 20));
  Fill(p, 1 << 20, 3);
  free(p);
  Expect(p + 100);
  Opaque(p)[100] = 1;
  return NotDetected();
}

// A partition made without a policy takes the process mode's: in strict
// mode its objects have canaries too, so an overflow into the slot's slack
// is seen at free; in the other modes it is not.
CASE case_partition_overflow_slack() {
  void* part = MakePartition("misuse-part");
  char* p = static_cast<char*>(Sym<PartMallocFn>("nitro_partition_malloc")(part, 60));
  Fill(p, 60, 1);
  Expect(p + 62);
  CorruptByte(p, 62);
  free(p);
  return NotDetected();
}

// ============================================================================
// Heaps over a fixed region (nitroheap/region.h), one set per kind: the
// region lies in a static array (memory NitroHeap does not own) and reports
// in its own name, "region@<address>".
// ============================================================================

namespace {
using RegionCreateFn = void* (*)(void*, size_t, int);
using RegionAllocFn = void* (*)(void*, size_t);
using RegionFreeFn = void (*)(void*, void*);
using RegionDestroyFn = void (*)(void*);
constexpr int kRegionBump = 1, kRegionFreeList = 2;  // NITRO_REGION_*

alignas(64) char g_region_memory[64 << 10];

void* MakeRegion(int kind) {
  void* r = Sym<RegionCreateFn>("nitro_region_create")(g_region_memory, sizeof(g_region_memory), kind);
  if (r == nullptr) {
    Say("NO REGION\n");
    _exit(3);
  }
  return r;
}
char* RegionAlloc(void* r, size_t n) {
  return static_cast<char*>(Sym<RegionAllocFn>("nitro_region_alloc")(r, n));
}
void RegionFree(void* r, void* p) { Sym<RegionFreeFn>("nitro_region_free")(r, p); }

int RegionDoubleFree(int kind) {
  void* r = MakeRegion(kind);
  char* p = RegionAlloc(r, 64);
  RegionAlloc(r, 64);
  Expect(p);
  RegionFree(r, p);
  RegionFree(r, Opaque(p));
  return NotDetected();
}
int RegionInteriorFree(int kind) {
  void* r = MakeRegion(kind);
  char* p = RegionAlloc(r, 64);
  RegionAlloc(r, 64);
  Expect(p + 32);
  RegionFree(r, Opaque(p + 32));
  return NotDetected();
}
// A pointer from malloc given to the region.
int RegionForeignFree(int kind) {
  void* r = MakeRegion(kind);
  char* p = static_cast<char*>(Malloc(64));
  Expect(p);
  RegionFree(r, Opaque(p));
  return NotDetected();
}
// a's bytes run into b's header; a's free checks the header after it.
int RegionOverflowIntoNeighbour(int kind) {
  void* r = MakeRegion(kind);
  char* a = RegionAlloc(r, 64);
  char* b = RegionAlloc(r, 64);
  Fill(a, 64 + 8, 0x41);
  ExpectRange(reinterpret_cast<uintptr_t>(b) - 16, reinterpret_cast<uintptr_t>(b) - 16);
  RegionFree(r, a);
  return NotDetected();
}
}  // namespace

CASE case_region_bump_double_free() { return RegionDoubleFree(kRegionBump); }
CASE case_region_free_list_double_free() { return RegionDoubleFree(kRegionFreeList); }
CASE case_region_bump_interior_free() { return RegionInteriorFree(kRegionBump); }
CASE case_region_free_list_interior_free() { return RegionInteriorFree(kRegionFreeList); }
CASE case_region_bump_foreign_free() { return RegionForeignFree(kRegionBump); }
CASE case_region_free_list_foreign_free() { return RegionForeignFree(kRegionFreeList); }
CASE case_region_bump_overflow() { return RegionOverflowIntoNeighbour(kRegionBump); }
CASE case_region_free_list_overflow() { return RegionOverflowIntoNeighbour(kRegionFreeList); }

// The overwritten block itself freed: its header no longer checks out.
CASE case_region_free_list_overflow_victim_freed() {
  void* r = MakeRegion(kRegionFreeList);
  char* a = RegionAlloc(r, 64);
  char* b = RegionAlloc(r, 64);
  Fill(a, 64 + 4, 0x41);
  ExpectRange(reinterpret_cast<uintptr_t>(b) - 16, reinterpret_cast<uintptr_t>(b) - 16);
  RegionFree(r, b);
  return NotDetected();
}

// A free-list link overwritten after free (write after free): the next
// allocation's search finds a link that is not a free block.
CASE case_region_free_list_corrupt_link() {
  void* r = MakeRegion(kRegionFreeList);
  char* a = RegionAlloc(r, 64);
  RegionAlloc(r, 64);  // keeps a from merging with the rest
  RegionFree(r, a);
  uintptr_t bogus = reinterpret_cast<uintptr_t>(g_region_memory) + 1000;
  memcpy(Opaque(a), &bogus, sizeof(bogus));
  ExpectRange(bogus, bogus);
  RegionAlloc(r, 60000);
  return NotDetected();
}

CASE case_region_destroyed_handle() {
  void* r = MakeRegion(kRegionBump);
  Sym<RegionDestroyFn>("nitro_region_destroy")(r);
  Expect(r);
  RegionAlloc(Opaque(r), 16);
  return NotDetected();
}

// ============================================================================
// Guarded sampling (run with sample_rate=1).
// ============================================================================

namespace {
// A guarded allocation reports exactly the requested size as usable; a slab
// object of these sizes reports its class size.
void CheckGuarded(void* p, size_t size) {
  Say(malloc_usable_size(p) == size ? "GUARDED\n" : "NOT GUARDED\n");
}

// Whether writing p[off] faults, tried in a child (its report goes to
// /dev/null).
bool FaultsInChild(char* p, long off) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) dup2(fd, 2);
    Opaque(p)[off] = 1;
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

// The placement is random (against the right or left guard): allocate until
// an allocation is placed so that p[off] faults, then do it here.
int GuardedOutOfBounds(void* (*alloc)(size_t), size_t size, long off) {
  for (int attempt = 0; attempt < 64; attempt++) {
    char* p = static_cast<char*>(alloc(size));
    if (attempt == 0) CheckGuarded(p, size);
    if (FaultsInChild(p, off)) {
      Expect(p + off);
      Opaque(p)[off] = 1;
      return NotDetected();
    }
  }
  Say("NO PLACEMENT FAULTED\n");
  return 3;
}

void* NewArray(size_t n) { return new char[n]; }
}  // namespace

CASE case_guarded_overflow() { return GuardedOutOfBounds(Malloc, 128, 128); }
CASE case_guarded_overflow_far() { return GuardedOutOfBounds(Malloc, 100, 200); }
CASE case_guarded_underflow() { return GuardedOutOfBounds(Malloc, 128, -1); }
CASE case_guarded_overflow_new() { return GuardedOutOfBounds(NewArray, 256, 256); }

CASE case_guarded_uaf_write() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  Fill(p, 100, 1);
  free(p);
  Expect(p + 5);
  Opaque(p)[5] = 1;
  return NotDetected();
}

CASE case_guarded_uaf_read() {
  char* p = static_cast<char*>(Calloc(1, 3000));
  CheckGuarded(p, 3000);
  free(p);
  Expect(p + 2999);
  volatile char c = Opaque(p)[2999];
  (void)c;
  return NotDetected();
}

CASE case_guarded_double_free() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  Expect(p);
  free(p);
  free(Opaque(p));
  return NotDetected();
}

CASE case_guarded_invalid_free() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  Expect(p + 16);
  free(Opaque(p + 16));
  return NotDetected();
}

// strict's checks hold for guarded objects too: a write into the slack
// between the end of a guarded block and its page's end hits a canary.
CASE case_guarded_overflow_slack() {
  char* p = static_cast<char*>(Malloc(13));
  CheckGuarded(p, 13);
  Fill(p, 13, 0x33);
  Expect(p + 13);
  CorruptByte(p, 13);
  free(p);
  return NotDetected();
}

CASE case_guarded_usable_size_interior() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  Expect(p + 1);
  size_t n = malloc_usable_size(Opaque(p + 1));
  (void)n;
  return NotDetected();
}

CASE case_guarded_usable_size_freed() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  free(p);
  Expect(p);
  size_t n = malloc_usable_size(Opaque(p));
  (void)n;
  return NotDetected();
}

// A wild pointer into a guarded slot whose allocation was freed: an invalid
// free, not a double free or an overflow.
CASE case_guarded_free_into_freed_slot() {
  char* p = static_cast<char*>(Malloc(100));
  CheckGuarded(p, 100);
  free(p);
  Expect(p + 48);
  free(Opaque(p + 48));
  return NotDetected();
}

// A free into a PROT_NONE mapping: the foreign-pointer check must read the
// would-be chunk header without faulting.
CASE case_free_prot_none() {
  char* map = static_cast<char*>(mmap(nullptr, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (map == MAP_FAILED) return 3;
  Expect(map + 4096 + 16);
  free(Opaque(map + 4096 + 16));
  return NotDetected();
}

// ============================================================================
// Fault handler chaining.
// ============================================================================

// The program's handler was installed first (preinit): a fault that is not
// NitroHeap's reaches it through NitroHeap's handler.
CASE case_chain_nonheap_fault() {
  free(Opaque(Malloc(1)));  // NitroHeap is up (and its handler installed)
  ExpectAny();
  *Opaque(reinterpret_cast<volatile int*>(16)) = 1;
  return NotDetected();
}

// The same program handler, and a fault that is NitroHeap's: NitroHeap
// reports it and the process dies of SIGSEGV (the program's handler is not
// run).
CASE case_chain_heap_fault() {
  char* p = static_cast<char*>(Malloc(1 << 20));
  size_t usable = malloc_usable_size(p);
  Expect(p + usable);
  Opaque(p)[usable] = 1;  // the guard page: a NitroHeap fault in every mode
  return NotDetected();
}

// A handler installed after NitroHeap's replaces it: the fault reaches the
// program's handler and NitroHeap prints nothing (a documented limit).
CASE case_handler_installed_after() {
  char* p = static_cast<char*>(Malloc(1 << 20));
  size_t usable = malloc_usable_size(p);
  InstallOwnHandler();
  Opaque(p)[usable] = 1;  // the guard page
  return NotDetected();
}

// ============================================================================
// The control: correct use of the whole API, across threads. Must exit 0
// with nothing on stderr in every mode.
// ============================================================================

namespace {

std::atomic<int> g_errors{0};

void Complain(const char* what) {
  // stderr must stay empty in a correct run unless something is wrong.
  char line[160];
  snprintf(line, sizeof(line), "control: %s\n", what);
  if (write(2, line, strlen(line)) < 0) {
  }
  g_errors.fetch_add(1);
}

uint64_t Next(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

enum Kind : uint8_t { kMalloc, kCalloc, kRealloc, kMemalign, kPosix, kAligned, kNew, kNewArr,
                      kNewAligned, kValloc };

struct Block {
  unsigned char* p;
  size_t size;
  size_t align;
  Kind kind;
  unsigned char tag;
};

void Stamp(Block& b) {
  if (b.size == 0) return;
  memset(b.p, b.tag, b.size < 256 ? b.size : 256);
  b.p[b.size - 1] = static_cast<unsigned char>(b.tag ^ 0x5a);
}

void Verify(const Block& b) {
  if (b.size == 0) return;
  size_t n = b.size < 256 ? b.size : 256;
  for (size_t i = 0; i < n - (n == b.size ? 1 : 0); i++) {
    if (b.p[i] != b.tag) {
      Complain("block contents changed");
      return;
    }
  }
  if (b.p[b.size - 1] != static_cast<unsigned char>(b.tag ^ 0x5a)) Complain("block tail changed");
}

size_t PickSize(uint64_t* rng) {
  uint64_t r = Next(rng);
  switch (r % 16) {
    case 0: return 0;
    case 1: return 200000 + (r >> 8) % 900000;          // large
    case 2: return 16385 + (r >> 8) % (128 << 10);      // medium classes
    case 3: case 4: return 1 + (r >> 8) % 16384;
    default: return 1 + (r >> 8) % 512;
  }
}

Block Make(uint64_t* rng, unsigned char tag) {
  Block b{nullptr, PickSize(rng), 0, kMalloc, tag};
  uint64_t r = Next(rng);
  static const size_t kAligns[] = {16, 32, 64, 128, 256, 4096, 8192};
  switch (r % 10) {
    case 0: b.kind = kMalloc; b.p = static_cast<unsigned char*>(malloc(b.size)); break;
    case 1: {
      b.kind = kCalloc;
      size_t n = 1 + (r >> 8) % 8;
      b.size = b.size / n * n;
      b.p = static_cast<unsigned char*>(calloc(n, b.size / n));
      for (size_t i = 0; i < b.size; i++) {
        if (b.p[i] != 0) {
          Complain("calloc memory not zero");
          break;
        }
      }
      break;
    }
    case 2: {
      b.kind = kRealloc;
      void* p = malloc(1 + (r >> 8) % 100);
      b.p = static_cast<unsigned char*>(realloc(p, b.size == 0 ? 1 : b.size));
      if (b.size == 0) b.size = 1;
      break;
    }
    case 3: {
      b.kind = kMemalign;
      b.align = kAligns[(r >> 8) % 7];
      b.p = static_cast<unsigned char*>(memalign(b.align, b.size));
      break;
    }
    case 4: {
      b.kind = kPosix;
      b.align = kAligns[(r >> 8) % 7];
      void* p = nullptr;
      if (posix_memalign(&p, b.align, b.size) != 0) Complain("posix_memalign failed");
      b.p = static_cast<unsigned char*>(p);
      break;
    }
    case 5: {
      b.kind = kAligned;
      b.align = kAligns[(r >> 8) % 7];
      b.size = (b.size + b.align - 1) / b.align * b.align;
      b.p = static_cast<unsigned char*>(aligned_alloc(b.align, b.size));
      break;
    }
    case 6: b.kind = kNew; b.p = static_cast<unsigned char*>(::operator new(b.size)); break;
    case 7: b.kind = kNewArr; b.p = new unsigned char[b.size]; break;
    case 8: {
      b.kind = kNewAligned;
      b.align = kAligns[(r >> 8) % 7];
      b.p = static_cast<unsigned char*>(::operator new(b.size, std::align_val_t(b.align)));
      break;
    }
    default: {
      b.kind = kValloc;
      b.align = 4096;
      b.p = static_cast<unsigned char*>(valloc(b.size));
      break;
    }
  }
  if (b.p == nullptr) {
    Complain("allocation failed");
    b.size = 0;
    return b;
  }
  if (b.align != 0 && reinterpret_cast<uintptr_t>(b.p) % b.align != 0) Complain("misaligned");
  if (reinterpret_cast<uintptr_t>(b.p) % 16 != 0) Complain("not 16-aligned");
  if (malloc_usable_size(b.p) < b.size) Complain("usable size below the request");
  Stamp(b);
  return b;
}

FreeSizedFn g_free_sized;
FreeAlignedSizedFn g_free_aligned_sized;

void Release(Block& b, uint64_t* rng) {
  if (b.p == nullptr) return;
  Verify(b);
  uint64_t r = Next(rng);
  switch (b.kind) {
    case kNew:
      if (r & 1) ::operator delete(b.p, b.size); else ::operator delete(b.p);
      break;
    case kNewArr:
      if (r & 1) ::operator delete[](b.p, b.size); else delete[] b.p;
      break;
    case kNewAligned:
      if (r & 1) ::operator delete(b.p, b.size, std::align_val_t(b.align));
      else ::operator delete(b.p, std::align_val_t(b.align));
      break;
    case kMalloc: case kCalloc: case kRealloc:
      if ((r & 3) == 0 && g_free_sized != nullptr) g_free_sized(b.p, b.size);
      else free(b.p);
      break;
    case kAligned: case kMemalign: case kPosix:
      if ((r & 3) == 0 && g_free_aligned_sized != nullptr) g_free_aligned_sized(b.p, b.align, b.size);
      else free(b.p);
      break;
    default:
      free(b.p);
      break;
  }
  b.p = nullptr;
}

// Grows or shrinks a malloc-family block with realloc, keeping the prefix.
void Resize(Block& b, uint64_t* rng) {
  if (b.p == nullptr || b.kind == kNew || b.kind == kNewArr || b.kind == kNewAligned) return;
  Verify(b);
  size_t n = PickSize(rng);
  if (n == 0) n = 1;
  size_t keep = b.size < n ? b.size : n;
  keep = keep < 256 ? keep : 256;
  unsigned char* q = static_cast<unsigned char*>(realloc(b.p, n));
  if (q == nullptr) {
    Complain("realloc failed");
    return;
  }
  for (size_t i = 0; i < keep && i + 1 < b.size; i++) {
    if (q[i] != b.tag) {
      Complain("realloc lost the prefix");
      break;
    }
  }
  b.p = q;
  b.size = n;
  b.kind = kRealloc;  // no longer carries an alignment promise
  b.align = 0;
  Stamp(b);
}

// Blocks handed between threads: freed by a thread that did not allocate them.
constexpr int kMailbox = 64;
pthread_mutex_t g_mail_lock = PTHREAD_MUTEX_INITIALIZER;
Block g_mail[kMailbox];
int g_mail_count = 0;

void* ControlThread(void* arg) {
  uint64_t rng = 0x9E3779B97F4A7C15ull ^ (reinterpret_cast<uintptr_t>(arg) * 0x100000001B3ull);
  constexpr int kLive = 96;
  Block live[kLive] = {};
  for (int iter = 0; iter < 12000; iter++) {
    int i = static_cast<int>(Next(&rng) % kLive);
    uint64_t op = Next(&rng) % 10;
    if (live[i].p != nullptr && op < 6) {
      if (op == 0) {
        Resize(live[i], &rng);
      } else if (op == 1) {
        // Hand it to another thread.
        pthread_mutex_lock(&g_mail_lock);
        if (g_mail_count < kMailbox) {
          Verify(live[i]);
          g_mail[g_mail_count++] = live[i];
          live[i].p = nullptr;
        }
        pthread_mutex_unlock(&g_mail_lock);
      } else {
        Release(live[i], &rng);
      }
    } else if (live[i].p == nullptr) {
      live[i] = Make(&rng, static_cast<unsigned char>(Next(&rng) | 1));
    }
    if (op == 9) {
      Block got{};
      pthread_mutex_lock(&g_mail_lock);
      if (g_mail_count > 0) got = g_mail[--g_mail_count];
      pthread_mutex_unlock(&g_mail_lock);
      Release(got, &rng);
    }
  }
  for (Block& b : live) Release(b, &rng);
  return nullptr;
}

}  // namespace

CASE case_control() {
  g_free_sized = reinterpret_cast<FreeSizedFn>(dlsym(RTLD_DEFAULT, "free_sized"));
  g_free_aligned_sized = reinterpret_cast<FreeAlignedSizedFn>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  // A few single-threaded basics first.
  for (int i = 0; i < 1000; i++) {
    char* s = strdup("nitroheap control");
    char* t = static_cast<char*>(reallocarray(nullptr, 10, 10));
    void* z = malloc(0);  // a unique pointer with no accessible byte: never touched
    free(z);
    free(t);
    free(s);
    free(realloc(Opaque(malloc(10)), 0));  // realloc(p, 0) frees and returns NULL
  }
  // A large block grown and shrunk in place and moved.
  char* big = static_cast<char*>(malloc(150000));
  memset(big, 7, 150000);
  big = static_cast<char*>(realloc(big, 3 << 20));
  if (big[149999] != 7) Complain("large realloc lost data");
  memset(big, 8, 3 << 20);
  big = static_cast<char*>(realloc(big, 200000));
  if (big[0] != 8 || big[199999] != 8) Complain("large shrink lost data");
  free(big);

  constexpr int kThreads = 8;
  pthread_t threads[kThreads];
  for (long t = 0; t < kThreads; t++) {
    if (pthread_create(&threads[t], nullptr, ControlThread, reinterpret_cast<void*>(t + 1)) != 0) {
      Complain("pthread_create failed");
      return 1;
    }
  }
  for (pthread_t& t : threads) pthread_join(t, nullptr);
  uint64_t rng = 1;
  for (int i = 0; i < g_mail_count; i++) Release(g_mail[i], &rng);

  // A child process allocates after fork, then exits.
  pid_t pid = fork();
  if (pid == 0) {
    uint64_t r = 7;
    for (int i = 0; i < 1000; i++) {
      Block b = Make(&r, 0x33);
      Release(b, &r);
    }
    _exit(g_errors.load() == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Complain("forked child failed");
  }
  if (g_errors.load() != 0) return 1;
  Say("CONTROL OK\n");
  return 0;
}

// ============================================================================

namespace {
struct Case {
  const char* name;
  int (*fn)();
};

#define ENTRY(n) {#n, case_##n}
const Case kCases[] = {
    ENTRY(double_free_small),
    ENTRY(double_free_small_other_sizes),
    ENTRY(double_free_small_same_size),
    ENTRY(double_free_after_reuse),
    ENTRY(double_free_large),
    ENTRY(double_free_large_after_alloc),
    ENTRY(invalid_free_interior),
    ENTRY(invalid_free_unaligned),
    ENTRY(invalid_free_large_interior),
    ENTRY(realloc_interior),
    ENTRY(realloc_after_free),
    ENTRY(realloc_in_place_interior),
    ENTRY(realloc_in_place_after_free),
    ENTRY(usable_size_interior),
    ENTRY(sized_delete_interior),
    ENTRY(free_stack),
    ENTRY(free_global),
    ENTRY(free_wild),
    ENTRY(realloc_stack),
    ENTRY(usable_size_wild),
    ENTRY(sized_free_wrong_size),
    ENTRY(sized_free_below_half),
    ENTRY(sized_free_class_granularity),
    ENTRY(sized_free_large_wrong_size),
    ENTRY(aligned_sized_free_wrong_size),
    ENTRY(sized_delete_wrong_size),
    ENTRY(sized_delete_array_wrong_size),
    ENTRY(rust_dealloc_wrong_size),
    ENTRY(large_uaf_write),
    ENTRY(large_uaf_read),
    ENTRY(large_overflow),
    ENTRY(write_after_free_small),
    ENTRY(overflow_small_canary),
    ENTRY(overflow_small_canary_realloc),
    ENTRY(overflow_small_canary_after_realloc),
    ENTRY(write_zero_size),
    ENTRY(read_zero_size),
    ENTRY(double_free_zero_size),
    ENTRY(corrupt_free_list),
    ENTRY(uaf_write_redirect),
    ENTRY(double_free_after_wipe),
    ENTRY(double_free_other_thread),
    ENTRY(read_after_free_small),
    ENTRY(partition_double_free),
    ENTRY(partition_interior_free),
    ENTRY(partition_zero_size_write),
    ENTRY(partition_wrong_partition),
    ENTRY(secure_strict_write_after_free),
    ENTRY(partition_large_uaf),
    ENTRY(partition_overflow_slack),
    ENTRY(region_bump_double_free),
    ENTRY(region_free_list_double_free),
    ENTRY(region_bump_interior_free),
    ENTRY(region_free_list_interior_free),
    ENTRY(region_bump_foreign_free),
    ENTRY(region_free_list_foreign_free),
    ENTRY(region_bump_overflow),
    ENTRY(region_free_list_overflow),
    ENTRY(region_free_list_overflow_victim_freed),
    ENTRY(region_free_list_corrupt_link),
    ENTRY(region_destroyed_handle),
    ENTRY(guarded_overflow),
    ENTRY(guarded_overflow_far),
    ENTRY(guarded_underflow),
    ENTRY(guarded_overflow_new),
    ENTRY(guarded_uaf_write),
    ENTRY(guarded_uaf_read),
    ENTRY(guarded_double_free),
    ENTRY(guarded_invalid_free),
    ENTRY(guarded_overflow_slack),
    ENTRY(guarded_usable_size_interior),
    ENTRY(guarded_usable_size_freed),
    ENTRY(guarded_free_into_freed_slot),
    ENTRY(free_prot_none),
    ENTRY(chain_nonheap_fault),
    ENTRY(chain_heap_fault),
    ENTRY(handler_installed_after),
    ENTRY(control),
};
#undef ENTRY
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE | list\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "list") == 0) {
    for (const Case& c : kCases) printf("%s\n", c.name);
    return 0;
  }
  for (const Case& c : kCases) {
    if (strcmp(argv[1], c.name) == 0) return c.fn();
  }
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
