// NitroHeap benchmark workloads: one program, one mode per workload.
//
// Not linked with NitroHeap: the allocator under test comes from LD_PRELOAD
// (nothing preloaded = glibc). Every mode is deterministic (fixed seeds, fixed
// operation counts), checks the contents of every object it frees, and prints
// one result line
//     <mode> ok checksum=<hex> ops=<n>
// whose checksum is the same under every allocator. A corrupted object prints
// "<mode> CORRUPT ..." on stderr and exits with status 3.
//
// Usage: workloads MODE [--scale=F] [--threads=N]
//   --scale multiplies the operation counts (and, below 1, the live sets):
//   1 is the benchmark size, 0.01 a smoke test.
//   Modes: fastpath working_set prodcons larson realloc large large_cycle
//          large_trap stl memreturn scaling
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

double g_scale = 1.0;
int g_threads = 0;  // 0: the mode's default

// Keeps the compiler from eliding a malloc/free pair or fusing malloc+memset
// into calloc: the pointer escapes into an opaque asm statement.
inline void Escape(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

uint64_t Scaled(double n, uint64_t min = 1) {
  double v = n * g_scale;
  return v < static_cast<double>(min) ? min : static_cast<uint64_t>(v);
}

// Live-set sizes shrink with --scale below 1 but never grow above their
// benchmark size.
uint64_t ScaledLive(double n, uint64_t min) {
  double v = n * std::min(g_scale, 1.0);
  return v < static_cast<double>(min) ? min : static_cast<uint64_t>(v);
}

struct Rng {  // splitmix64: deterministic, fast, no allocation
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Unit() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }
  // A size whose log2 is uniform in [log2(lo), log2(hi)].
  size_t LogSize(size_t lo, size_t hi) {
    double l = std::log2(static_cast<double>(lo)), h = std::log2(static_cast<double>(hi));
    size_t s = static_cast<size_t>(std::exp2(l + (h - l) * Unit()));
    return std::min(std::max(s, lo), hi);
  }
};

[[noreturn]] void Corrupt(const char* mode, const void* p, const char* what) {
  fprintf(stderr, "%s CORRUPT object %p: %s\n", mode, p, what);
  fflush(stderr);
  _exit(3);
}

void Report(const char* mode, uint64_t checksum, uint64_t ops) {
  printf("%s ok checksum=%016llx ops=%llu\n", mode, static_cast<unsigned long long>(checksum),
         static_cast<unsigned long long>(ops));
}

// Objects of at least 16 bytes carry a header {value, size, check} and
// (beyond 16 bytes) a last byte derived from the value; Fill writes them (and one byte per page
// so the whole object is resident), Verify checks them before a free.
struct Header {
  uint64_t value;
  uint32_t size;
  uint32_t check;
};
inline uint32_t CheckOf(uint64_t v, uint32_t size) {
  return static_cast<uint32_t>((v * 0x9E3779B1u) >> 32) ^ size ^ 0xA5A5A5A5u;
}
inline void Fill(void* p, size_t size, uint64_t value, bool every_page) {
  Header* h = static_cast<Header*>(p);
  h->value = value;
  h->size = static_cast<uint32_t>(size);
  h->check = CheckOf(value, h->size);
  unsigned char* b = static_cast<unsigned char*>(p);
  if (every_page) {
    for (size_t off = 4096; off < size; off += 4096) b[off] = static_cast<unsigned char>(off);
  }
  if (size > sizeof(Header)) b[size - 1] = static_cast<unsigned char>(value);
}
inline uint64_t Verify(const char* mode, const void* p) {
  const Header* h = static_cast<const Header*>(p);
  if (h->check != CheckOf(h->value, h->size)) Corrupt(mode, p, "header");
  if (h->size > sizeof(Header) &&
      static_cast<const unsigned char*>(p)[h->size - 1] != static_cast<unsigned char>(h->value)) {
    Corrupt(mode, p, "last byte");
  }
  return h->value;
}

void* Malloc(size_t n) {
  void* p = malloc(n);
  if (p == nullptr) {
    fprintf(stderr, "malloc(%zu) failed\n", n);
    _exit(4);
  }
  Escape(p);
  return p;
}

// (a) The fast path: malloc/free pairs cycling through 16 small size classes
// (16..256 B). Allocators that retire a slab as soon as it becomes empty pay
// a slab creation per pair here.
int Fastpath() {
  static const size_t kSizes[16] = {16,  32,  48,  64,  80,  96,  112, 128,
                                    144, 160, 176, 192, 208, 224, 240, 256};
  const uint64_t n = Scaled(70e6, 1000);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    size_t s = kSizes[i & 15];
    unsigned char* p = static_cast<unsigned char*>(Malloc(s));
    p[0] = static_cast<unsigned char>(i);
    p[s - 1] = static_cast<unsigned char>(i >> 8);
    Escape(p);
    sum += p[0] + p[s - 1];
    free(p);
  }
  Report("fastpath", sum, n);
  return 0;
}

// (b) Random replacement in a large working set: 100k live objects of sizes
// log-uniform in 16 B..64 KiB (about 780 MiB), every page touched.
int WorkingSet() {
  const uint64_t slots = ScaledLive(100000, 1000);
  const uint64_t ops = Scaled(1.5e6, 1000);
  Rng rng(1);
  std::vector<void*> slot(slots);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < slots; i++) {
    size_t s = rng.LogSize(16, 65536);
    slot[i] = Malloc(s);
    Fill(slot[i], s, rng.Next(), true);
  }
  for (uint64_t i = 0; i < ops; i++) {
    uint64_t k = rng.Next() % slots;
    sum += Verify("working_set", slot[k]);
    free(slot[k]);
    size_t s = rng.LogSize(16, 65536);
    slot[k] = Malloc(s);
    Fill(slot[k], s, rng.Next(), true);
  }
  for (uint64_t i = 0; i < slots; i++) {
    sum += Verify("working_set", slot[i]);
    free(slot[i]);
  }
  Report("working_set", sum, ops);
  return 0;
}

// (c) Producer/consumer: one thread allocates batches of 256 objects
// (16..512 B), a bounded queue hands them over, another thread checks and
// frees them: every free is a remote free.
int Prodcons() {
  constexpr int kBatch = 256;
  constexpr int kQueue = 16;
  const uint64_t batches = Scaled(40000, 4);
  struct Batch {
    void* obj[kBatch];
  };
  std::vector<Batch> ring(kQueue);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t head = 0, tail = 0;  // produced, consumed
  uint64_t produced_sum = 0, consumed_sum = 0;

  std::thread consumer([&] {
    for (uint64_t b = 0; b < batches; b++) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return head > b; });
      }
      Batch& batch = ring[b % kQueue];
      for (int i = 0; i < kBatch; i++) {
        consumed_sum += Verify("prodcons", batch.obj[i]);
        free(batch.obj[i]);
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        tail = b + 1;
      }
      cv.notify_all();
    }
  });
  Rng rng(2);
  for (uint64_t b = 0; b < batches; b++) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return b - tail < kQueue; });
    }
    Batch& batch = ring[b % kQueue];
    for (int i = 0; i < kBatch; i++) {
      size_t s = rng.LogSize(16, 512);
      uint64_t v = rng.Next();
      batch.obj[i] = Malloc(s);
      Fill(batch.obj[i], s, v, false);
      produced_sum += v;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      head = b + 1;
    }
    cv.notify_all();
  }
  consumer.join();
  if (produced_sum != consumed_sum) Corrupt("prodcons", nullptr, "sums differ");
  Report("prodcons", produced_sum, batches * kBatch);
  return 0;
}

// (d)/(h) Larson-style server: T threads each replace random slots of one
// shared array of 32768 objects (16..1024 B); whatever a slot held, possibly
// allocated by another thread, is checked and freed. The total work is fixed,
// split among the threads, so any thread count does the same operations.
int Larson() {
  const int threads = g_threads > 0 ? g_threads : 2;
  const uint64_t slots = ScaledLive(32768, 256);
  const uint64_t total_ops = Scaled(12e6, 1000);
  const uint64_t per_thread = total_ops / threads;
  std::vector<std::atomic<void*>> slot(slots);
  std::atomic<uint64_t> alloc_sum{0}, free_sum{0};
  Rng init(3);
  uint64_t init_sum = 0;
  for (uint64_t i = 0; i < slots; i++) {
    size_t s = init.LogSize(16, 1024);
    uint64_t v = init.Next();
    void* p = Malloc(s);
    Fill(p, s, v, false);
    init_sum += v;
    slot[i].store(p, std::memory_order_relaxed);
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      Rng rng(1000 + t);
      uint64_t a = 0, f = 0;
      for (uint64_t i = 0; i < per_thread; i++) {
        size_t s = rng.LogSize(16, 1024);
        uint64_t v = rng.Next();
        void* p = Malloc(s);
        Fill(p, s, v, false);
        a += v;
        void* old = slot[rng.Next() % slots].exchange(p, std::memory_order_acq_rel);
        f += Verify("larson", old);
        free(old);
      }
      alloc_sum += a;
      free_sum += f;
    });
  }
  for (auto& th : pool) th.join();
  uint64_t rest = 0;
  for (uint64_t i = 0; i < slots; i++) {
    void* p = slot[i].load(std::memory_order_relaxed);
    rest += Verify("larson", p);
    free(p);
  }
  if (init_sum + alloc_sum.load() != free_sum.load() + rest) {
    Corrupt("larson", nullptr, "sums differ");
  }
  Report("larson", init_sum + alloc_sum.load(), per_thread * threads);
  return 0;
}

// Scaling: T threads (--threads, default 1) each replace random slots of
// their own array of 4096 objects (16..2048 B) a fixed number of times, and
// every 16th replaced object is freed by the next thread instead (handed
// over through a per-thread mailbox), so the middle layer sees remote frees
// too. Each thread does the same work whatever T, so ops per second per
// thread against T (scaling.py) shows how the allocator scales, up to
// oversubscription of the cores.
int Scaling() {
  const int threads = g_threads > 0 ? g_threads : 1;
  const uint64_t slots = ScaledLive(4096, 64);
  const uint64_t per_thread = Scaled(2e6, 1000);
  constexpr uint64_t kHandOver = 16;
  struct alignas(64) Mailbox {
    std::atomic<void*> object{nullptr};
  };
  std::vector<Mailbox> mailbox(static_cast<size_t>(threads));
  std::atomic<uint64_t> alloc_sum{0}, free_sum{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      Rng rng(5000 + t);
      uint64_t a = 0, f = 0;
      std::vector<void*> own(slots);
      for (uint64_t i = 0; i < slots; i++) {
        size_t s = rng.LogSize(16, 2048);
        uint64_t v = rng.Next();
        own[i] = Malloc(s);
        Fill(own[i], s, v, false);
        a += v;
      }
      Mailbox& next = mailbox[static_cast<size_t>((t + 1) % threads)];
      for (uint64_t i = 0; i < per_thread; i++) {
        size_t s = rng.LogSize(16, 2048);
        uint64_t v = rng.Next();
        void* p = Malloc(s);
        Fill(p, s, v, false);
        a += v;
        void*& slot = own[rng.Next() % slots];
        void* old = slot;
        slot = p;
        if (i % kHandOver == 0) old = next.object.exchange(old, std::memory_order_acq_rel);
        if (old != nullptr) {
          f += Verify("scaling", old);
          free(old);
        }
      }
      for (void* p : own) {
        f += Verify("scaling", p);
        free(p);
      }
      alloc_sum += a;
      free_sum += f;
    });
  }
  for (auto& th : pool) th.join();
  uint64_t rest = 0;
  for (Mailbox& m : mailbox) {
    void* p = m.object.load(std::memory_order_relaxed);
    if (p != nullptr) {
      rest += Verify("scaling", p);
      free(p);
    }
  }
  if (alloc_sum.load() != free_sum.load() + rest) Corrupt("scaling", nullptr, "sums differ");
  Report("scaling", alloc_sum.load(), per_thread * static_cast<uint64_t>(threads));
  return 0;
}

// (e) Strings grown by small reallocs: 64 strings grow round-robin by 1..16
// bytes each step up to 4..64 KiB, are checked, freed and started again.
int Realloc() {
  constexpr int kStrings = 64;
  const uint64_t total_bytes = Scaled(150e6, 100000);
  struct Str {
    unsigned char* p = nullptr;
    size_t len = 0, target = 0;
    uint64_t id = 0;
  };
  Rng rng(4);
  Str str[kStrings];
  uint64_t next_id = 0, appended = 0, reallocs = 0, sum = 0;
  auto start = [&](Str& s) {
    s.p = nullptr;
    s.len = 0;
    s.target = rng.LogSize(4096, 65536);
    s.id = next_id++;
  };
  auto finish = [&](Str& s) {
    for (size_t j = 0; j < s.len; j++) {
      if (s.p[j] != static_cast<unsigned char>(j * 7 + s.id)) Corrupt("realloc", s.p, "contents");
    }
    sum += s.len * 1000003 + s.id;
    free(s.p);
  };
  for (auto& s : str) start(s);
  while (appended < total_bytes) {
    for (auto& s : str) {
      size_t step = 1 + rng.Next() % 16;
      void* q = realloc(s.p, s.len + step);
      if (q == nullptr) {
        fprintf(stderr, "realloc failed\n");
        _exit(4);
      }
      s.p = static_cast<unsigned char*>(q);
      for (size_t j = s.len; j < s.len + step; j++) s.p[j] = static_cast<unsigned char>(j * 7 + s.id);
      s.len += step;
      appended += step;
      reallocs++;
      if (s.len >= s.target) {
        finish(s);
        start(s);
      }
    }
  }
  for (auto& s : str) {
    if (s.p != nullptr) finish(s);
  }
  Report("realloc", sum, reallocs);
  return 0;
}

// (f) Large blocks: 16 live slots replaced at random by blocks of 64 KiB..8 MiB
// (log-uniform), each filled completely.
int Large() {
  constexpr int kSlots = 16;
  const uint64_t ops = Scaled(6000, 20);
  Rng rng(5);
  unsigned char* slot[kSlots] = {};
  size_t size[kSlots] = {};
  uint64_t sum = 0;
  for (uint64_t i = 0; i < ops; i++) {
    int k = static_cast<int>(rng.Next() % kSlots);
    if (slot[k] != nullptr) {
      if (slot[k][0] != slot[k][size[k] - 1]) Corrupt("large", slot[k], "contents");
      sum += slot[k][0] + size[k];
      free(slot[k]);
    }
    size[k] = rng.LogSize(64 << 10, 8 << 20);
    slot[k] = static_cast<unsigned char*>(Malloc(size[k]));
    memset(slot[k], static_cast<int>(i & 0xff), size[k]);
    Escape(slot[k]);
  }
  for (int k = 0; k < kSlots; k++) {
    if (slot[k] != nullptr) {
      sum += slot[k][0] + size[k];
      free(slot[k]);
    }
  }
  Report("large", sum, ops);
  return 0;
}

// (f) Large alloc/free cycles, the loop of issue 13: 16 live blocks of
// 64 KiB..4 MiB (log-uniform), one replaced per cycle, 100,000 cycles. Only
// the first and last byte of a block are written, so the time is the
// allocator's own (system calls, not page faults). testing/bench's
// large_syscalls_test runs it under strace to count system calls per cycle.
int LargeCycle() {
  constexpr int kSlots = 16;
  const uint64_t ops = Scaled(100000, 20);
  Rng rng(9);
  unsigned char* slot[kSlots] = {};
  size_t size[kSlots] = {};
  uint64_t sum = 0;
  for (uint64_t i = 0; i < ops; i++) {
    int k = static_cast<int>(i % kSlots);
    if (slot[k] != nullptr) {
      if (slot[k][0] != slot[k][size[k] - 1]) Corrupt("large_cycle", slot[k], "contents");
      sum += slot[k][0] + size[k];
      free(slot[k]);
    }
    size[k] = rng.LogSize(64 << 10, 4 << 20);
    slot[k] = static_cast<unsigned char*>(Malloc(size[k]));
    slot[k][0] = slot[k][size[k] - 1] = static_cast<unsigned char>(i);
  }
  for (int k = 0; k < kSlots; k++) {
    if (slot[k] != nullptr) {
      sum += slot[k][0] + size[k];
      free(slot[k]);
    }
  }
  Report("large_cycle", sum, ops);
  return 0;
}

// (f) The trap from DESIGN.md: allocate a 5..25 MiB block, zero-fill it, free
// it, again and again. Returning the block to the kernel on each free turns
// every iteration into thousands of page faults.
int LargeTrap() {
  const uint64_t ops = Scaled(1000, 4);
  Rng rng(6);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < ops; i++) {
    size_t s = (5u << 20) + rng.Next() % (20u << 20);
    unsigned char* p = static_cast<unsigned char*>(Malloc(s));
    memset(p, 0, s);
    Escape(p);
    if (p[s / 2] != 0 || p[s - 1] != 0) Corrupt("large_trap", p, "not zero");
    p[s - 1] = 1;
    sum += s + p[s - 1];
    free(p);
  }
  Report("large_trap", sum, ops);
  return 0;
}

// (g) STL-heavy C++ through operator new: std::map<std::string,
// std::vector<int>>, std::unordered_map, string concatenation.
int Stl() {
  const uint64_t rounds = Scaled(40, 1);
  const int kKeys = 60000;
  uint64_t sum = 0;
  Rng rng(7);
  for (uint64_t r = 0; r < rounds; r++) {
    std::map<std::string, std::vector<int>> m;
    std::unordered_map<std::string, uint64_t> u;
    for (int i = 0; i < kKeys; i++) {
      uint64_t k = rng.Next() % 20000;
      std::string key = "key/" + std::to_string(k) + "/" + std::to_string(k * 31 % 97);
      m[key].push_back(i);
      u[key] += static_cast<uint64_t>(i);
      if ((i & 7) == 0) {
        auto it = m.lower_bound("key/" + std::to_string(rng.Next() % 20000));
        if (it != m.end()) {
          u.erase(it->first);
          m.erase(it);
        }
      }
    }
    std::string text;
    for (const auto& kv : m) {
      text += kv.first;
      text += '=';
      for (int v : kv.second) text += std::to_string(v) + ",";
      text += ';';
    }
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    uint64_t usum = 0;
    for (const auto& kv : u) usum += kv.second + kv.first.size();
    sum += h ^ (usum + m.size() * 7 + text.size());
  }
  Report("stl", sum, rounds * kKeys);
  return 0;
}

// (j) Memory return: RSS read from /proc/self/statm without allocating.
long RssKib() {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* q = buf;
  while (*q != 0 && *q != ' ') q++;  // skip "size"
  long pages = strtol(q, nullptr, 10);
  return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

// With MEMRETURN_SMAPS=PREFIX set, copies /proc/self/smaps to PREFIX.TAG
// (testing/bench/memreturn_breakdown.py reads them), without allocating.
void SaveSmaps(const char* tag) {
  const char* prefix = getenv("MEMRETURN_SMAPS");
  if (prefix == nullptr || *prefix == 0) return;
  char path[512];
  snprintf(path, sizeof path, "%s.%s", prefix, tag);
  int in = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0) {
    fprintf(stderr, "memreturn: cannot copy /proc/self/smaps to %s\n", path);
    exit(2);
  }
  char buf[8192];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    if (write(out, buf, static_cast<size_t>(n)) != n) break;
  }
  close(in);
  close(out);
}

// The file that defines a symbol, as the dynamic linker resolves it.
const char* DefiningObject(const char* name, void** sym) {
  *sym = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  if (*sym == nullptr || dladdr(*sym, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

// Allocates 1 GiB (half in 64 B..4 KiB objects, half in 1 MiB blocks,
// interleaved), touches all of it, frees it all, then idles and trims,
// printing the RSS at each step. Bookkeeping lives in mmap'ed memory, not in
// the heap under test.
int Memreturn() {
  const uint64_t half = ScaledLive(512.0 * (1 << 20), 8 << 20);
  // Warm-up: the allocator's own start-up (tables, threads) counts as the
  // pre-allocation state.
  {
    void* a = Malloc(64);
    void* b = Malloc(256 << 10);
    free(a);
    free(b);
  }
  // So does the program's own code: the loop below runs libm's exp2 and log2
  // (LogSize, whose tables it reads by value), libc's memset of a small
  // object and of a 1 MiB block (another variant), Fill, Verify, mmap,
  // munmap and nanosleep. Run here on memory that is not the heap's, their
  // pages are resident before the first reading, so that the growth after
  // the free is the allocator's alone (libm's tables and libc's code were
  // 128 KiB of it, which every allocator's run touched).
  {
    Rng warm(1);
    size_t spread = 0;
    for (int i = 0; i < 4096; i++) spread += warm.LogSize(64, 4096);
    Escape(&spread);
    struct timespec no_time = {0, 1};
    nanosleep(&no_time, nullptr);
    const size_t bytes = 1 << 20;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      fprintf(stderr, "mmap failed\n");
      return 4;
    }
    size_t s = warm.LogSize(64, 4096);
    memset(m, 1, s);
    Fill(m, s, 1, false);
    uint64_t v = Verify("memreturn", m);
    memset(m, 1, bytes);
    Fill(m, bytes, 2, false);
    v += Verify("memreturn", m);
    Escape(&v);
    munmap(m, bytes);
  }
  // The symbol lookups the end of the run makes (dlsym and dladdr: the
  // dynamic linker's pages, which counted in the reading after malloc_trim).
  void* malloc_sym = nullptr;
  void* trim_sym = nullptr;
  void* stats_sym = nullptr;
  std::string malloc_from = DefiningObject("malloc", &malloc_sym);
  std::string trim_from = DefiningObject("malloc_trim", &trim_sym);
  DefiningObject("malloc_stats_print", &stats_sym);
  long before = RssKib();
  SaveSmaps("before");

  const uint64_t max_small = half / 64 + 16, max_large = half / (1 << 20) + 16;
  void** small = static_cast<void**>(mmap(nullptr, max_small * sizeof(void*), PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  void** large = static_cast<void**>(mmap(nullptr, max_large * sizeof(void*), PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (small == MAP_FAILED || large == MAP_FAILED) {
    fprintf(stderr, "mmap failed\n");
    return 4;
  }
  Rng rng(8);
  uint64_t n_small = 0, n_large = 0, small_bytes = 0, large_bytes = 0, sum = 0;
  while (small_bytes < half || large_bytes < half) {
    // About 1 MiB of small objects, then one 1 MiB block.
    uint64_t goal = std::min<uint64_t>(half, small_bytes + (1 << 20));
    while (small_bytes < goal && n_small < max_small) {
      size_t s = rng.LogSize(64, 4096);
      small[n_small] = Malloc(s);
      memset(small[n_small], static_cast<int>(n_small & 0xff), s);
      Fill(small[n_small], s, n_small, false);
      n_small++;
      small_bytes += s;
    }
    if (large_bytes < half && n_large < max_large) {
      large[n_large] = Malloc(1 << 20);
      memset(large[n_large], 1, 1 << 20);
      Fill(large[n_large], 1 << 20, n_large, false);
      n_large++;
      large_bytes += 1 << 20;
    }
  }
  long peak = RssKib();
  // Small objects first, then the large blocks; with MEMRETURN_SMALL_LAST
  // set, the other way round (the thread's last frees are then small ones).
  const bool small_last = getenv("MEMRETURN_SMALL_LAST") != nullptr;
  for (int pass = 0; pass < 2; pass++) {
    if ((pass == 0) != small_last) {
      for (uint64_t i = 0; i < n_small; i++) {
        sum += Verify("memreturn", small[i]);
        free(small[i]);
      }
    } else {
      for (uint64_t i = 0; i < n_large; i++) {
        sum += Verify("memreturn", large[i]);
        free(large[i]);
      }
    }
  }
  munmap(small, max_small * sizeof(void*));
  munmap(large, max_large * sizeof(void*));
  long after_free = RssKib();
  struct timespec one_second = {1, 0};
  nanosleep(&one_second, nullptr);
  long after_sleep = RssKib();
  SaveSmaps("after_1s");
  if (getenv("MEMRETURN_SMAPS") != nullptr) {
    // The allocator's own account of the same moment, when it has one.
    if (stats_sym != nullptr) {
      reinterpret_cast<void (*)(void (*)(void*, const char*), void*, const char*)>(stats_sym)(
          nullptr, nullptr, nullptr);
    }
  }

  // malloc_trim of the allocator that serves malloc, if it has one: a
  // malloc_trim found in another object (glibc's, under a preloaded
  // allocator that lacks one) would trim a heap nobody uses.
  char trim_text[32] = "n/a";
  if (trim_sym != nullptr && trim_from == malloc_from) {
    reinterpret_cast<int (*)(size_t)>(trim_sym)(0);
    snprintf(trim_text, sizeof trim_text, "%ld", RssKib());
  }
  printf("memreturn rss_kib before=%ld peak=%ld after_free=%ld after_1s=%ld after_trim=%s"
         " malloc_from=%s\n",
         before, peak, after_free, after_sleep, trim_text, malloc_from.c_str());
  Report("memreturn", sum + n_small * 3 + n_large, n_small + n_large);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODE [--scale=F] [--threads=N]\n", argv[0]);
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if (strncmp(argv[i], "--scale=", 8) == 0) {
      g_scale = atof(argv[i] + 8);
    } else if (strncmp(argv[i], "--threads=", 10) == 0) {
      g_threads = atoi(argv[i] + 10);
    } else {
      fprintf(stderr, "unknown argument: %s\n", argv[i]);
      return 2;
    }
  }
  if (!(g_scale > 0)) {
    fprintf(stderr, "--scale must be positive\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "fastpath") return Fastpath();
  if (mode == "working_set") return WorkingSet();
  if (mode == "prodcons") return Prodcons();
  if (mode == "larson") return Larson();
  if (mode == "realloc") return Realloc();
  if (mode == "large") return Large();
  if (mode == "large_cycle") return LargeCycle();
  if (mode == "large_trap") return LargeTrap();
  if (mode == "stl") return Stl();
  if (mode == "memreturn") return Memreturn();
  if (mode == "scaling") return Scaling();
  fprintf(stderr, "unknown mode: %s\n", mode.c_str());
  return 2;
}
