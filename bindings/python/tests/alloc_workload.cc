// A plain program with named allocation sites, for the flight-recorder
// tests. It is NOT linked with NitroHeap: the tests run it with
// LD_PRELOAD=libnitroheap.so. Linked with -rdynamic, so dladdr (and so the
// recording's frames) can name the functions below.
//
//   alloc_workload [ROUNDS] [--wait] [--silent]
//     ROUNDS (default 4000) of: a small node (32-95 bytes, a third kept),
//     a string of 100-999 bytes (new char[]) (a fifth kept), every 50th round a
//     64-124 KiB buffer (every 200th kept); pauses every 500 rounds so the
//     lifetimes spread. With --wait it then waits for stdin to close.
//     With --silent each round also makes a node of 32-95 bytes in the
//     TELEMETRY_SILENT partition (mallocx, looked up at run time; a third
//     kept) from make_silent_node, and a 64-124 KiB one every 50th round.
//   alloc_workload fixed SIZE COUNT
//     COUNT blocks of SIZE bytes from make_fixed_block, each freed at once
//     (the sampling-estimate test: what the samples say was allocated).
//   alloc_workload movable
//     1000 movable objects of 100 bytes (nitro_halloc, found with dlsym),
//     90% freed, compacted, then every other survivor freed; prints
//     "moved N" (stats.movable.objects_moved) and "live ADDRESS" for each
//     object still allocated at exit, at its final address.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

extern "C" __attribute__((noinline)) void* make_small_node(size_t i) {
  void* p = malloc(32 + i % 64);
  memset(p, 1, 32);
  return p;
}

// operator new[] directly: std::string would allocate from inside
// libstdc++, which is built without frame pointers, so the stack would end
// there.
extern "C" __attribute__((noinline)) char* build_string(size_t i) {
  size_t n = 100 + i % 900;
  char* s = new char[n];
  memset(s, 'x', n - 1);
  s[n - 1] = '\0';
  return s;
}

extern "C" __attribute__((noinline)) void* grow_big_buffer(size_t i) {
  void* p = malloc(64 * 1024 + (i % 16) * 4096);
  memset(p, 0, 4096);
  return p;
}

extern "C" __attribute__((noinline)) uint64_t make_movable_doc(uint64_t (*halloc)(size_t, int)) {
  return halloc(100, 0);
}

int MovableRun() {
  auto halloc = reinterpret_cast<uint64_t (*)(size_t, int)>(dlsym(RTLD_DEFAULT, "nitro_halloc"));
  auto hptr = reinterpret_cast<void* (*)(uint64_t)>(dlsym(RTLD_DEFAULT, "nitro_hptr"));
  auto hfree = reinterpret_cast<void (*)(uint64_t)>(dlsym(RTLD_DEFAULT, "nitro_hfree"));
  auto compact = reinterpret_cast<size_t (*)(void*, size_t)>(dlsym(RTLD_DEFAULT, "nitro_compact"));
  auto ctl = reinterpret_cast<int (*)(const char*, void*, size_t*, const void*, size_t)>(
      dlsym(RTLD_DEFAULT, "nitro_ctl"));
  if (halloc == nullptr || hptr == nullptr || hfree == nullptr || compact == nullptr || ctl == nullptr) {
    fprintf(stderr, "alloc_workload movable: needs NitroHeap (LD_PRELOAD=libnitroheap.so)\n");
    return 1;
  }
  std::vector<uint64_t> docs;
  for (int i = 0; i < 1000; i++) {
    docs.push_back(make_movable_doc(halloc));
    memset(hptr(docs.back()), i & 0xff, 100);
  }
  std::vector<uint64_t> kept;
  for (int i = 0; i < 1000; i++) {
    if (i % 10 == 0) kept.push_back(docs[i]); else hfree(docs[i]);
  }
  compact(nullptr, SIZE_MAX);
  uint64_t moved = 0;
  size_t len = sizeof(moved);
  ctl("stats.movable.objects_moved", &moved, &len, nullptr, 0);
  printf("moved %llu\n", static_cast<unsigned long long>(moved));
  for (size_t i = 0; i < kept.size(); i++) {
    if (i % 2 == 0) hfree(kept[i]); else printf("live %p\n", hptr(kept[i]));
  }
  return 0;
}

// NITRO_TRAIT_TELEMETRY_SILENT (nitroheap/nitroheap.h).
constexpr int kTelemetrySilent = 0x80 | (1 << 19);
using MallocxFn = void* (*)(size_t, int);
using DallocxFn = void (*)(void*, int);
MallocxFn g_mallocx;
DallocxFn g_dallocx;

extern "C" __attribute__((noinline)) void* make_silent_node(size_t i) {
  void* p = g_mallocx(i % 50 == 0 ? 64 * 1024 + (i % 16) * 4096 : 32 + i % 64, kTelemetrySilent);
  memset(p, 2, 32);
  return p;
}

extern "C" __attribute__((noinline)) void* make_fixed_block(size_t size) {
  void* p = malloc(size);
  __asm__ volatile("" : : "g"(p) : "memory");
  return p;
}

int FixedRun(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: alloc_workload fixed SIZE COUNT\n");
    return 2;
  }
  size_t size = strtoull(argv[2], nullptr, 10);
  long count = atol(argv[3]);
  for (long i = 0; i < count; i++) free(make_fixed_block(size));
  printf("done fixed size=%zu count=%ld\n", size, count);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "movable") == 0) return MovableRun();
  if (argc > 1 && strcmp(argv[1], "fixed") == 0) return FixedRun(argc, argv);
  long rounds = argc > 1 ? atol(argv[1]) : 4000;
  bool wait = false, silent = false;
  for (int a = 2; a < argc; a++) {
    if (strcmp(argv[a], "--wait") == 0) wait = true;
    if (strcmp(argv[a], "--silent") == 0) silent = true;
  }
  if (silent) {
    g_mallocx = reinterpret_cast<MallocxFn>(dlsym(RTLD_DEFAULT, "mallocx"));
    g_dallocx = reinterpret_cast<DallocxFn>(dlsym(RTLD_DEFAULT, "dallocx"));
    if (g_mallocx == nullptr || g_dallocx == nullptr) {
      fprintf(stderr, "alloc_workload: --silent needs NitroHeap's mallocx\n");
      return 2;
    }
  }
  std::vector<void*> kept;
  std::vector<void*> silent_kept;
  std::vector<char*> strings;
  for (long i = 0; i < rounds; i++) {
    if (silent) {
      void* q = make_silent_node(static_cast<size_t>(i));
      if (i % 3 == 0) silent_kept.push_back(q); else g_dallocx(q, kTelemetrySilent);
    }
    void* node = make_small_node(static_cast<size_t>(i));
    if (i % 3 == 0) kept.push_back(node); else free(node);
    char* s = build_string(static_cast<size_t>(i));
    if (i % 5 == 0) strings.push_back(s); else delete[] s;
    if (i % 50 == 0) {
      void* big = grow_big_buffer(static_cast<size_t>(i));
      if (i % 200 == 0) kept.push_back(big); else free(big);
    }
    if (i % 500 == 0) usleep(2000);
  }
  // Free half of what was kept: old objects with long lifetimes.
  for (size_t i = 0; i < kept.size(); i += 2) {
    free(kept[i]);
    kept[i] = nullptr;
  }
  for (void* q : silent_kept) g_dallocx(q, kTelemetrySilent);
  printf("done kept=%zu strings=%zu\n", kept.size() / 2, strings.size());
  fflush(stdout);
  if (wait) {
    char buf[64];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
  }
  return 0;
}
