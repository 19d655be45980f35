#include "telemetry/runtime.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "core/fast_math.h"
#include "core/heap.h"
#include "core/lock.h"
#include "core/lock_registry.h"
#include "core/partition.h"
#include "core/options.h"
#include "core/os.h"
#include "core/report.h"
#include "telemetry/event_ring.h"
#include "telemetry/gzip.h"
#include "telemetry/stats.h"
#include "telemetry/symbolizer.h"
#include "telemetry/proto_writer.h"
#include "telemetry/shm_layout.h"

namespace nitro::telemetry {
namespace {

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

__thread uint64_t tls_tid __attribute__((tls_model("initial-exec"))) = 0;
uint64_t ThreadId() {
  if (tls_tid == 0) tls_tid = static_cast<uint64_t>(syscall(SYS_gettid));
  return tls_tid;
}

// ---- flight recorder --------------------------------------------------------

class FlightRecorder {
 public:
  void Add(void* p, size_t requested, size_t usable, size_t align, Partition* partition) {
    Event e;
    memset(&e, 0, sizeof(e));
    e.address = reinterpret_cast<uintptr_t>(p);
    e.requested = requested;
    e.usable = usable;
    e.alignment = align;
    // The name, truncated, then zeros (as snprintf wrote it, at a tenth of
    // the instructions: this runs for every sampled allocation).
    const char* name = partition->name();
    for (size_t i = 0; i + 1 < sizeof(e.partition) && name[i] != '\0'; i++) e.partition[i] = name[i];
    e.thread_id = ThreadId();
    e.cpu = sched_getcpu();
    e.alloc_ns = NowNs();
    uintptr_t raw[kFrames + 8];
    int n = CaptureStack(raw, kFrames + 8, 0);
    // Drop the allocator's own frames: the stack starts at the caller.
    int first = 0;
    while (first < n && InOwnObject(raw[first])) first++;
    for (int i = first; i < n && e.frames < kFrames; i++) e.stack[e.frames++] = raw[i];
    // The bytes this sample stands for (as the profile weighs it): about
    // profile_rate for a small request, the request itself for a large one.
    double rate = static_cast<double>(CurrentOptions().profile_rate);
    double size = static_cast<double>(requested);
    auto stands_for = static_cast<uint64_t>(requested == 0 || rate == 0 ? rate : size / (1.0 - ExpNeg(size / rate)));
    LockGuard g(lock_);
    estimated_bytes_ += stands_for;
    if (!ring_.ready() && !ring_.Init(Capacity())) return;
    ring_.Add(e);
  }

  void Freed(void* p) {
    auto a = reinterpret_cast<uintptr_t>(p);
    uint64_t now = NowNs();
    LockGuard g(lock_);
    if (!ring_.ready()) return;
    // Sampled frees are rare (one per profile_rate bytes): a scan is enough.
    uint64_t seq;
    if (ring_.FindLive(a, &seq)) ring_.SetFreed(seq, now);
  }

  // A sampled movable object moved: its allocation event follows it (so
  // that its free is matched at the new address) and a move event records
  // the move. The allocation may have left the ring already: the move is
  // recorded anyway.
  void Moved(void* from, void* to, size_t size) {
    auto old_address = reinterpret_cast<uintptr_t>(from);
    Event move;
    memset(&move, 0, sizeof(move));
    move.address = reinterpret_cast<uintptr_t>(to);
    move.moved_from = old_address;
    move.requested = size;
    move.usable = size;
    move.thread_id = ThreadId();
    move.cpu = sched_getcpu();
    move.alloc_ns = NowNs();
    snprintf(move.partition, sizeof(move.partition), "movable");
    LockGuard g(lock_);
    if (!ring_.ready() && !ring_.Init(Capacity())) return;
    uint64_t seq;
    if (ring_.FindLive(old_address, &seq)) {
      ring_.SetAddress(seq, move.address);
      Event alloc;
      ring_.Get(seq, &alloc);
      memcpy(move.partition, alloc.partition, sizeof(move.partition));
      move.usable = alloc.usable;
    }
    ring_.Add(move);
  }

  // Copies the events, oldest first, into `out` (capacity events); returns
  // how many, and the count overwritten before.
  size_t Snapshot(Event* out, size_t cap, uint64_t* dropped) {
    LockGuard g(lock_);
    *dropped = ring_.dropped();
    return ring_.ready() ? ring_.Snapshot(out, cap) : 0;
  }
  // The ring's size, fixed by the options before the first sample: a dump
  // sizes its buffers with it whether or not the ring exists yet (reading
  // capacity_ instead raced with the first sample of another thread, which
  // sets it: the dump then copied 2048 events into room for one).
  static size_t Capacity() { return CurrentOptions().flight_recorder_events; }
  // Bytes allocated since start-up, as the samples estimate them.
  uint64_t estimated_bytes() {
    LockGuard g(lock_);
    return estimated_bytes_;
  }
  SpinLock& lock() { return lock_; }

 private:
  // The preload library's own frames lie in its text segment, found once at
  // start-up (dl_iterate_phdr must not run inside malloc). Linked into the
  // executable, the allocator shares the program's text: nothing is dropped.
  static bool InOwnObject(uintptr_t pc) { return pc >= g_own_text_start && pc < g_own_text_end; }

 public:
  static uintptr_t g_own_text_start, g_own_text_end;

  static void FindOwnText() {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&FindOwnText), &self) == 0) return;
    struct Ctx {
      uintptr_t base, start, end;
    } ctx{reinterpret_cast<uintptr_t>(self.dli_fbase), 0, 0};
    dl_iterate_phdr(
        [](struct dl_phdr_info* info, size_t, void* data) {
          auto* c = static_cast<Ctx*>(data);
          if (info->dlpi_addr != c->base || info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') return 0;
          for (int i = 0; i < info->dlpi_phnum; i++) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
              c->start = info->dlpi_addr + ph.p_vaddr;
              c->end = c->start + ph.p_memsz;
            }
          }
          return 1;
        },
        &ctx);
    g_own_text_start = ctx.start;
    g_own_text_end = ctx.end;
  }

 private:
  SpinLock lock_{LockRank::kFlightRecorder};
  EventRing ring_;  // reserved at the first sample
  uint64_t estimated_bytes_ = 0;
};

uintptr_t FlightRecorder::g_own_text_start = 0;
uintptr_t FlightRecorder::g_own_text_end = 0;
FlightRecorder g_recorder;

// ---- dumping ----------------------------------------------------------------

// Scratch memory for one dump, straight from the kernel.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : size_(RoundUp(bytes, kPageSize)) {
    mem_ = static_cast<char*>(os::Reserve(size_, kPageSize));
  }
  ~Scratch() {
    if (mem_ != nullptr) os::Unmap(mem_, size_);
  }
  char* get() const { return mem_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  char* mem_;
};

void ExpandPath(const char* path, char* out, size_t len) {
  size_t o = 0;
  for (const char* p = path; *p && o + 1 < len; p++) {
    if (p[0] == '%' && p[1] == 'p') {
      o += static_cast<size_t>(snprintf(out + o, len - o, "%d", os::ProcessId()));
      p++;
    } else {
      out[o++] = *p;
    }
    if (o >= len) o = len - 1;
  }
  out[o] = '\0';
}

int WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += w;
    len -= static_cast<size_t>(w);
  }
  return 0;
}

// Output files are replaced atomically and never written through whatever
// sits at the path: the data goes to a new file (O_EXCL|O_NOFOLLOW, so a
// link or FIFO planted at its name is refused, not followed) in the same
// directory, which is then renamed over the path. A symlink or hard link at
// the path is replaced, its target untouched; a reader sees the old file or
// the whole new one. Mode: output_mode exactly (fchmod, not filtered by the
// umask), 0600 by default: recordings hold addresses and the command line.
int WriteFile(const char* path, const char* data, size_t len) {
  char expanded[512];
  ExpandPath(path, expanded, sizeof(expanded));
  if (expanded[0] == '\0') return EINVAL;
  size_t n = strlen(expanded);
  if (expanded[n - 1] == '/') return EISDIR;
  const char* slash = strrchr(expanded, '/');
  int dir_len = slash ? static_cast<int>(slash - expanded) + 1 : 0;
  const char* base = slash ? slash + 1 : expanded;
  auto mode = static_cast<mode_t>(CurrentOptions().output_mode & 0777);
  static std::atomic<uint32_t> counter{0};
  char tmp[600];
  int fd = -1;
  for (int attempt = 0; attempt < 64 && fd < 0; attempt++) {
    snprintf(tmp, sizeof(tmp), "%.*s.%.200s.%d.%u.tmp", dir_len, expanded, base, os::ProcessId(),
             counter.fetch_add(1) ^ static_cast<uint32_t>(NowNs()));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) return errno;
  }
  if (fd < 0) return EEXIST;
  int err = fchmod(fd, mode) == 0 ? 0 : errno;
  if (err == 0) err = WriteAll(fd, data, len);
  if (close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && rename(tmp, expanded) != 0) err = errno;
  if (err != 0) unlink(tmp);
  return err;
}

// Sorts and dedupes return addresses (no qsort: it may allocate).
size_t UniqueAddresses(uint64_t* a, size_t n) {
  for (size_t gap = n / 2; gap > 0; gap /= 2) {
    for (size_t i = gap; i < n; i++) {
      uint64_t v = a[i];
      size_t j = i;
      for (; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
      a[j] = v;
    }
  }
  size_t u = 0;
  for (size_t i = 0; i < n; i++) {
    if (u == 0 || a[u - 1] != a[i]) a[u++] = a[i];
  }
  return u;
}

size_t IndexOf(const uint64_t* sorted, size_t n, uint64_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (sorted[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

struct Symbol {
  const char* function;
  const char* object;
  uint64_t offset;
};

// The function holding return address `address`: from the object's symbol
// table (which names static and hidden functions too), else from dladdr.
Symbol Symbolize(uint64_t address, Symbolizer& sym) {
  Dl_info info;
  Symbol s{"", "", 0};
  uint64_t pc = address - 1;
  int m = sym.MappingFor(pc);
  bool found = dladdr(reinterpret_cast<void*>(pc), &info) != 0;
  if (m >= 0) s.object = sym.mapping(static_cast<size_t>(m)).path;
  else if (found && info.dli_fname != nullptr) s.object = info.dli_fname;
  uint64_t offset;
  if (const char* name = sym.FunctionName(pc, &offset)) {
    s.function = name;
    s.offset = offset + 1;
  } else if (found && info.dli_sname != nullptr) {
    s.function = info.dli_sname;
    s.offset = address - reinterpret_cast<uintptr_t>(info.dli_saddr);
  } else if (found) {
    s.offset = address - reinterpret_cast<uintptr_t>(info.dli_fbase);
  }
  return s;
}

void ReadSmallFile(const char* path, char* buf, size_t len, bool nul_to_space) {
  buf[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, len - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  if (nul_to_space) {
    for (ssize_t i = 0; i < n; i++) if (buf[i] == '\0') buf[i] = ' ';
    while (n > 0 && buf[n - 1] == ' ') buf[--n] = '\0';
  }
}

// The events and their distinct return addresses, gathered for a dump.
struct Gathered {
  Event* events;
  size_t count;
  uint64_t dropped;
  uint64_t* addresses;
  size_t address_count;
};

bool Gather(Scratch& scratch, Gathered* g) {
  size_t cap = FlightRecorder::Capacity();
  g->events = reinterpret_cast<Event*>(scratch.get());
  g->count = g_recorder.Snapshot(g->events, cap, &g->dropped);
  g->addresses = reinterpret_cast<uint64_t*>(scratch.get() + cap * sizeof(Event));
  size_t n = 0;
  for (size_t i = 0; i < g->count; i++) {
    for (uint32_t f = 0; f < g->events[i].frames; f++) g->addresses[n++] = g->events[i].stack[f];
  }
  g->address_count = UniqueAddresses(g->addresses, n);
  return true;
}

size_t GatherBytes() {
  size_t cap = FlightRecorder::Capacity();
  return cap * sizeof(Event) + cap * kFrames * sizeof(uint64_t);
}

}  // namespace

int DumpFlightRecording(const char* path) {
  Install();
  Scratch gather_mem(GatherBytes());
  if (gather_mem.get() == nullptr) return ENOMEM;
  Gathered g;
  Gather(gather_mem, &g);
  Symbolizer sym;
  Scratch out_mem(g.count * 400 + g.address_count * 1200 + sym.mapping_count() * 400 + (size_t{1} << 20));
  Scratch stats_mem(sizeof(nitro_stats_t) + (size_t{256} << 10));
  if (out_mem.get() == nullptr || stats_mem.get() == nullptr) return ENOMEM;
  ProtoWriter w(out_mem.get(), out_mem.size());
  w.U64(1, 1);  // format_version
  {
    char exe[512], cmdline[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    ReadSmallFile("/proc/self/cmdline", cmdline, sizeof(cmdline), true);
    Scratch buf(4096 + sym.mapping_count() * 400);
    if (buf.get() == nullptr) return ENOMEM;
    ProtoWriter p(buf.get(), buf.size());
    p.U64(1, static_cast<uint64_t>(os::ProcessId()));
    p.String(2, exe);
    p.String(3, cmdline);
    p.U64(4, HeapStartTimeNs());
    p.String(5, Mode() == HeapMode::kNitro ? "nitro" : "legacy");
    p.String(6, ModeName(CurrentMode()));
    for (size_t m = 0; m < sym.mapping_count(); m++) {
      const CodeMapping& cm = sym.mapping(m);
      char mbuf[400];
      ProtoWriter mp(mbuf, sizeof(mbuf));
      mp.U64(1, cm.start);
      mp.U64(2, cm.limit);
      mp.U64(3, cm.file_offset);
      mp.String(4, cm.path);
      mp.String(5, cm.build_id);
      p.Message(7, mp);
    }
    w.Message(2, p);
  }
  const Options& opts = CurrentOptions();
  for (const OptionSpec* o = OptionTable(); o->name; o++) {
    char value[300];
    FormatOptionValue(opts, o, value, sizeof(value));
    char buf[400];
    ProtoWriter p(buf, sizeof(buf));
    p.String(1, o->name);
    p.String(2, value);
    w.Message(3, p);
  }
  {
    auto* st = reinterpret_cast<nitro_stats_t*>(stats_mem.get());
    CollectStats(st);
    char* json = stats_mem.get() + sizeof(nitro_stats_t);
    size_t len = StatsToJson(*st, json, stats_mem.size() - sizeof(nitro_stats_t));
    if (len < stats_mem.size() - sizeof(nitro_stats_t)) w.Bytes(4, json, len);
  }
  for (size_t i = 0; i < g.count; i++) {
    const Event& e = g.events[i];
    char buf[512];
    ProtoWriter p(buf, sizeof(buf));
    p.U64(1, e.address);
    p.U64(2, e.requested);
    p.U64(3, e.usable);
    p.U64(4, e.alignment);
    p.String(5, e.partition);
    p.U64(6, e.thread_id);
    p.I64(7, e.cpu);
    p.U64(8, e.alloc_ns);
    p.U64(9, e.free_ns);
    p.U64(11, e.moved_from);
    uint64_t stack[kFrames];
    for (uint32_t f = 0; f < e.frames; f++) stack[f] = e.stack[f];
    p.Packed(10, stack, e.frames);
    w.Message(5, p);
  }
  for (size_t i = 0; i < g.address_count; i++) {
    Symbol s = Symbolize(g.addresses[i], sym);
    char buf[1600];
    ProtoWriter p(buf, sizeof(buf));
    p.U64(1, g.addresses[i]);
    char fn[600];
    snprintf(fn, sizeof(fn), "%s", s.function);
    p.String(2, fn);
    char obj[600];
    snprintf(obj, sizeof(obj), "%s", s.object);
    p.String(3, obj);
    p.U64(4, s.offset);
    w.Message(6, p);
  }
  w.U64(7, opts.profile_rate);
  w.U64(8, g.dropped);
  w.U64(9, NowNs());
  if (w.overflowed()) return ENOSPC;
  return WriteFile(path, w.data(), w.size());
}

namespace {

// pprof's string table: each distinct string once, by content. The strings
// themselves are not copied: they are literals, the Symbolizer's paths and
// build IDs, and function names in mapped symbol tables or loaded objects,
// all alive until the profile is written.
class StringTable {
 public:
  StringTable(Scratch& mem, size_t max_strings) {
    slots_ = 16;
    while (slots_ < 2 * max_strings) slots_ *= 2;
    strings_ = reinterpret_cast<const char**>(mem.get());
    index_ = reinterpret_cast<int32_t*>(mem.get() + max_strings * sizeof(char*));
    max_ = max_strings;
    memset(index_, 0xFF, slots_ * sizeof(int32_t));
  }
  static size_t Bytes(size_t max_strings) {
    size_t slots = 16;
    while (slots < 2 * max_strings) slots *= 2;
    return max_strings * sizeof(char*) + slots * sizeof(int32_t);
  }
  int64_t Intern(const char* s) {
    uint64_t h = 1469598103934665603ull;
    for (const char* p = s; *p; p++) h = (h ^ static_cast<uint8_t>(*p)) * 1099511628211ull;
    for (size_t i = h & (slots_ - 1);; i = (i + 1) & (slots_ - 1)) {
      if (index_[i] < 0) {
        if (count_ == max_) return 0;  // cannot happen: sized for every string
        index_[i] = static_cast<int32_t>(count_);
        strings_[count_] = s;
        return static_cast<int64_t>(count_++);
      }
      if (strcmp(strings_[index_[i]], s) == 0) return index_[i];
    }
  }
  size_t count() const { return count_; }
  const char* at(size_t i) const { return strings_[i]; }

 private:
  const char** strings_;
  int32_t* index_;
  size_t slots_, max_, count_ = 0;
};

// Leading frames of NitroHeap's own code on an event's stack: the preload
// library's were dropped when the stack was taken; linked into a program,
// NitroHeap's functions are recognized here by name.
uint32_t OwnFrames(const Event& e, Symbolizer& sym) {
  uint32_t first = 0;
  while (first < e.frames && sym.IsNitroHeapCode(e.stack[first] - 1)) first++;
  return first;
}

int WriteHeapProfile(const char* path, const char* default_sample_type) {
  Install();
  Scratch gather_mem(GatherBytes());
  if (gather_mem.get() == nullptr) return ENOMEM;
  Gathered g;
  Gather(gather_mem, &g);
  Symbolizer sym;
  // The events' stacks without NitroHeap's frames, and their distinct
  // return addresses (Gather's address list is rebuilt without them).
  Scratch first_mem(g.count + 1);
  if (first_mem.get() == nullptr) return ENOMEM;
  auto* first = reinterpret_cast<uint8_t*>(first_mem.get());
  size_t n = 0;
  for (size_t i = 0; i < g.count; i++) {
    first[i] = static_cast<uint8_t>(OwnFrames(g.events[i], sym));
    for (uint32_t f = first[i]; f < g.events[i].frames; f++) g.addresses[n++] = g.events[i].stack[f];
  }
  g.address_count = UniqueAddresses(g.addresses, n);

  size_t max_strings = 16 + 2 * sym.mapping_count() + g.address_count;
  Scratch strings_mem(StringTable::Bytes(max_strings) + g.address_count * (sizeof(int64_t) + sizeof(int32_t)) +
                      sym.mapping_count() + max_strings + 1);
  if (strings_mem.get() == nullptr) return ENOMEM;
  StringTable strings(strings_mem, max_strings);
  char* rest = strings_mem.get() + StringTable::Bytes(max_strings);
  auto* name_index = reinterpret_cast<int64_t*>(rest);  // per address: its function's name, 0 if unknown
  auto* mapping_of = reinterpret_cast<int32_t*>(rest + g.address_count * sizeof(int64_t));
  auto* unnamed_in = reinterpret_cast<uint8_t*>(mapping_of + g.address_count);  // per mapping
  uint8_t* function_written = unnamed_in + sym.mapping_count();                   // per string

  enum { kEmpty, kAllocObjects, kAllocSpace, kInuseObjects, kInuseSpace, kCount, kBytes, kFixed };
  const char* fixed[kFixed] = {"", "alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "count", "bytes"};
  for (const char* f : fixed) strings.Intern(f);
  int64_t default_type = strings.Intern(default_sample_type);
  for (size_t i = 0; i < g.address_count; i++) {
    uint64_t pc = g.addresses[i] - 1;  // inside the call instruction
    mapping_of[i] = sym.MappingFor(pc);
    uint64_t offset;
    const char* name = sym.FunctionName(pc, &offset);
    Dl_info info;
    if (name == nullptr && dladdr(reinterpret_cast<void*>(pc), &info) != 0) name = info.dli_sname;
    name_index[i] = name != nullptr && *name ? strings.Intern(name) : 0;
    // A mapping with an unnamed location is left for pprof to symbolize.
    if (name_index[i] == 0 && mapping_of[i] >= 0) unnamed_in[mapping_of[i]] = 1;
  }

  Scratch out_mem(g.count * 300 + g.address_count * 100 + sym.mapping_count() * 80 + (size_t{1} << 20) +
                  [&] {
                    size_t bytes = 0;
                    for (size_t i = 0; i < strings.count(); i++) bytes += strlen(strings.at(i)) + 4;
                    for (size_t i = 0; i < sym.mapping_count(); i++) {
                      bytes += strlen(sym.mapping(i).path) + strlen(sym.mapping(i).build_id) + 8;
                    }
                    return bytes;
                  }());
  if (out_mem.get() == nullptr) return ENOMEM;
  ProtoWriter w(out_mem.get(), out_mem.size());
  auto value_type = [&w](int type, int unit, int field) {
    char buf[32];
    ProtoWriter v(buf, sizeof(buf));
    v.I64(1, type);
    v.I64(2, unit);
    w.Message(field, v);
  };
  value_type(kAllocObjects, kCount, 1);
  value_type(kAllocSpace, kBytes, 1);
  value_type(kInuseObjects, kCount, 1);
  value_type(kInuseSpace, kBytes, 1);
  double rate = static_cast<double>(CurrentOptions().profile_rate);
  for (size_t i = 0; i < g.count; i++) {
    const Event& e = g.events[i];
    if (e.moved_from != 0) continue;  // a move, not an allocation
    // Each sample stands for 1/P allocations of its size, where P is the
    // chance that one allocation of that size is sampled.
    double weight = rate > 0 ? 1.0 / (1.0 - ExpNeg(static_cast<double>(e.requested) / rate)) : 1.0;
    uint64_t objects = static_cast<uint64_t>(weight + 0.5);
    uint64_t bytes = static_cast<uint64_t>(weight * static_cast<double>(e.requested) + 0.5);
    bool live = e.free_ns == 0;
    uint64_t locations[kFrames];
    size_t depth = 0;
    for (uint32_t f = first[i]; f < e.frames; f++) {
      locations[depth++] = IndexOf(g.addresses, g.address_count, e.stack[f]) + 1;
    }
    uint64_t values[4] = {objects, bytes, live ? objects : 0, live ? bytes : 0};
    char buf[400];
    ProtoWriter s(buf, sizeof(buf));
    s.Packed(1, locations, depth);
    s.Packed(2, values, 4);
    w.Message(2, s);
  }
  for (size_t m = 0; m < sym.mapping_count(); m++) {
    const CodeMapping& cm = sym.mapping(m);
    char buf[64];
    ProtoWriter p(buf, sizeof(buf));
    p.U64(1, m + 1);
    p.U64(2, cm.start);
    p.U64(3, cm.limit);
    p.U64(4, cm.file_offset);
    p.I64(5, strings.Intern(cm.path));
    p.I64(6, strings.Intern(cm.build_id));
    p.Bool(7, !unnamed_in[m]);  // has_functions: pprof leaves it as it is
    w.Message(3, p);
  }
  for (size_t i = 0; i < g.address_count; i++) {
    char lbuf[96];
    ProtoWriter loc(lbuf, sizeof(lbuf));
    loc.U64(1, i + 1);
    loc.U64(2, mapping_of[i] >= 0 ? static_cast<uint64_t>(mapping_of[i]) + 1 : 0);
    loc.U64(3, g.addresses[i] - 1);
    if (name_index[i] != 0) {
      char buf[32];
      ProtoWriter line(buf, sizeof(buf));
      line.U64(1, static_cast<uint64_t>(name_index[i]));  // function id: its name's index
      loc.Message(4, line);
    }
    w.Message(4, loc);
  }
  // One function per distinct name; its id is the name's string index.
  for (size_t i = 0; i < g.address_count; i++) {
    if (name_index[i] == 0 || function_written[name_index[i]]) continue;
    function_written[name_index[i]] = 1;
    char buf[48];
    ProtoWriter fn(buf, sizeof(buf));
    fn.I64(1, name_index[i]);
    fn.I64(2, name_index[i]);  // name
    fn.I64(3, name_index[i]);  // system_name
    fn.I64(4, mapping_of[i] >= 0 ? strings.Intern(sym.mapping(static_cast<size_t>(mapping_of[i])).path) : 0);
    w.Message(5, fn);
  }
  for (size_t i = 0; i < strings.count(); i++) w.StringAlways(6, strings.at(i));
  w.I64(9, static_cast<int64_t>(NowNs()));
  value_type(kAllocSpace, kBytes, 11);  // period_type
  w.I64(12, static_cast<int64_t>(rate));
  w.I64(14, default_type);
  if (w.overflowed()) return ENOSPC;
  Scratch gz_mem(GzipBound(w.size()) + kGzipScratchBytes);
  if (gz_mem.get() == nullptr) return ENOMEM;
  size_t gz_len = GzipCompress(reinterpret_cast<const uint8_t*>(w.data()), w.size(),
                               reinterpret_cast<uint8_t*>(gz_mem.get() + kGzipScratchBytes), GzipBound(w.size()),
                               gz_mem.get());
  if (gz_len == 0) return ENOSPC;
  return WriteFile(path, gz_mem.get() + kGzipScratchBytes, gz_len);
}

}  // namespace

// From code (nitro_heap_profile_dump): the live heap is what a caller
// asks about mid-run.
int DumpHeapProfile(const char* path) { return WriteHeapProfile(path, "inuse_space"); }

namespace {

// ---- descriptors on the background thread -----------------------------------

// Work of the background thread that opens descriptors (the stale sweep:
// the directory and the segments; numbered dumps: output files, ELF files,
// /proc). The descriptor table is the program's: a program thread that
// closes a descriptor and then opens one, or dup2()s onto a number, expects
// the number it gets, and a descriptor of ours open at that moment takes it
// (then our close() closes the program's). CPython's test_subprocess caught
// it once the sweep ran on this thread: a child that started with fd 1
// closed got its stdout from our directory descriptor. So this work runs in
// a clone child that shares the memory but has its own copy of the table
// (no CLONE_FILES); CLONE_VFORK makes this thread wait for it, and with no
// exit signal the program gets no SIGCHLD and its wait() does not see it.
// Where clone is refused (a seccomp filter) the work runs here, as before;
// also under ThreadSanitizer, which takes the clone for a fork of a
// multi-threaded process and stops the program.
#if defined(__SANITIZE_THREAD__)
#define NITRO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NITRO_TSAN 1
#endif
#endif
void WithOwnDescriptorTable(void (*work)()) {
#ifdef NITRO_TSAN
  work();
  return;
#endif
  constexpr size_t kStackBytes = size_t{256} << 10;
  // Mapped for each use and unmapped after (the work is rare: the stale
  // sweep once, then numbered dumps), so the pages it touched do not stay
  // resident for the life of the process.
  char* stack = static_cast<char*>(os::Reserve(kStackBytes, kPageSize));
  if (stack != nullptr) {
    auto run = [](void* w) -> int {
      reinterpret_cast<void (*)()>(w)();
      return 0;
    };
    os::SetProcessIdOverride(static_cast<int>(getpid()));
    pid_t child = clone(run, stack + kStackBytes, CLONE_VM | CLONE_VFORK, reinterpret_cast<void*>(work));
    if (child > 0) {
      while (waitpid(child, nullptr, __WCLONE) < 0 && errno == EINTR) {
      }
    }
    os::SetProcessIdOverride(0);
    os::Unmap(stack, kStackBytes);  // CLONE_VFORK: the child has exited, nothing runs on it
    if (child > 0) return;
  }
  work();
}

// ---- live statistics in shared memory -------------------------------------

class ShmPublisher {
 public:
  // The sweep of stale segments runs here, on the background thread's
  // first tick, never on the start-up path: whatever /dev/shm holds cannot
  // delay or block a process's start.
  void Tick() {
    if (sweep_pending_) {
      sweep_pending_ = false;
      WithOwnDescriptorTable(RemoveStale);
    }
    if (create_pending_) {
      create_pending_ = false;
      if (CurrentOptions().telemetry) {
        WithOwnDescriptorTable(CreateForTick);
        Publish(true);
      }
    }
    Publish(false);
  }

  // The background thread only writes into the mapping: it opens and closes
  // no descriptor, which could race with a program (a shell) rearranging its
  // own descriptor numbers.
  void Publish(bool force) {
    if (header_ == nullptr) return;
    uint64_t now = NowNs();
    // Heartbeat once a second when idle (the stale sweep of other processes
    // reads it); every tick while the heap changes.
    nitro_stats_t* st = stats_;
    CollectStats(st);
    bool changed = st->total.allocations != last_allocations_ || st->total.frees != last_frees_;
    if (!force && !changed && now - header_->update_time_ns < 1000000000ull) return;
    last_allocations_ = st->total.allocations;
    last_frees_ = st->total.frees;
    // Odd: writing. An acquire read-modify-write, so that none of the
    // payload's stores below can become visible before it.
    uint64_t seq = __atomic_fetch_add(&header_->sequence, 1, __ATOMIC_ACQ_REL);
    char* payload = reinterpret_cast<char*>(header_) + NITRO_SHM_HEADER_SIZE;
    size_t len = StatsToJson(*st, payload, header_->payload_capacity);
    header_->payload_length = static_cast<uint32_t>(len < header_->payload_capacity ? len : 0);
    header_->update_time_ns = now;
    header_->updates++;
    __atomic_store_n(&header_->sequence, seq + 2, __ATOMIC_RELEASE);
  }

  // At exit, after the background thread has stopped. The name goes; the
  // mapping stays (the process is ending, and whatever still runs in it may
  // keep writing into memory that exists).
  void Remove() {
    if (header_ == nullptr || owner_pid_ != getpid()) return;
    struct stat st;
    char path[80];
    snprintf(path, sizeof(path), "/dev/shm%s", name_);
    // Only if the name still is our segment (in the sticky /dev/shm nobody
    // else can have replaced it, but a privileged cleaner may have).
    if (lstat(path, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) shm_unlink(name_);
  }

  // At start-up, where the process is single-threaded. The sweep of stale
  // segments waits for the first tick (a fork child skips it: its parent
  // did it).
  void CreateAtStart() {
    sweep_pending_ = true;
    if (CurrentOptions().telemetry && CurrentOptions().background_thread && Create()) {
      Publish(true);  // readers find statistics from the start
    }
  }

  // The child of a fork must not write its parent's segment. Its own is
  // made on its background thread's first tick, not here in the atfork
  // handler: a child that execs at once (subprocess, a shell) then never
  // makes one. Made here, its new image found a segment with its own pid
  // written a moment before, took it for a live writer in another pid
  // namespace and published nothing, and the file stayed behind (after a
  // setuid, another user's file: "not this user's segment").
  void ForgetAfterFork() {
    if (header_ != nullptr) munmap(header_, NITRO_SHM_SIZE);
    header_ = nullptr;
    owner_pid_ = 0;
    failed_ = false;
    create_pending_ = true;
    sweep_pending_ = false;  // the parent sweeps
  }

 private:
  // A segment file we may use or remove: a regular file of this user, of
  // the segment's size, not a link, FIFO or device (opened O_NONBLOCK and
  // O_NOFOLLOW, so opening one can neither block nor follow).
  static int OpenOwnSegment(const char* name, int flags, struct stat* st) {
    int fd = shm_open(name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_uid != geteuid() ||
        (st->st_size != 0 && st->st_size != static_cast<off_t>(NITRO_SHM_SIZE))) {
      close(fd);
      errno = EPERM;
      return -1;
    }
    return fd;
  }

  // When the segment behind `fd` was last written: its header's heartbeat,
  // or the file's own times (a segment being created has a zero header for
  // a moment, and its file is new).
  static uint64_t LastWriteNs(int fd, const struct stat& st) {
    auto ns = [](const struct timespec& t) {
      return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
    };
    uint64_t last = ns(st.st_ctim) > ns(st.st_mtim) ? ns(st.st_ctim) : ns(st.st_mtim);
    nitro_shm_header h;
    if (st.st_size != 0 && pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) &&
        h.update_time_ns > last) {
      last = h.update_time_ns;
    }
    return last;
  }

  // Create on the background thread, in a clone with its own descriptor
  // table (WithOwnDescriptorTable), where getpid() is the clone's:
  // os::ProcessId() is the process's.
  static void CreateForTick();

  // The inode of this process's pid namespace, 0 when /proc does not say.
  // One readlink, no descriptor.
  static uint64_t PidNamespace() {
    char link[64];
    ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
    if (n <= 0) return 0;
    link[n] = '\0';
    unsigned long long inode = 0;
    return sscanf(link, "pid:[%llu]", &inode) == 1 ? inode : 0;
  }

  // The segment behind `fd` was written by a process with this pid in this
  // pid namespace: this very process before an exec (a fork child that
  // allocated, then exec'd), or a dead one whose pid came round again.
  // Either way no other writer has it.
  static bool WrittenByThisPid(int fd, const struct stat& st, int pid, uint64_t pid_namespace) {
    nitro_shm_header h;
    return pid_namespace != 0 && st.st_size >= static_cast<off_t>(sizeof(h)) &&
           pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) &&
           memcmp(h.magic, NITRO_SHM_MAGIC, 8) == 0 && h.pid == static_cast<uint64_t>(pid) &&
           h.pid_namespace == pid_namespace;
  }

  bool Create() {
    if (failed_) return false;
    const int pid = os::ProcessId();
    const uint64_t pid_namespace = PidNamespace();
    snprintf(name_, sizeof(name_), "/nitroheap.%d", pid);
    int fd = shm_open(name_, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
      // Left by an earlier process with this pid, or written right now by a
      // process with the same pid number in another pid namespace (sandboxes
      // share /dev/shm). Ours to replace only if it is a segment of this
      // user whose writer has been silent for seconds (a live writer beats
      // every second); a live one keeps it, and this process publishes
      // nothing. Anything else stays too, and telemetry is off rather than
      // writing into a file somebody else controls.
      struct stat st;
      int old = OpenOwnSegment(name_, O_RDONLY, &st);
      if (old >= 0) {
        bool live = !WrittenByThisPid(old, st, pid, pid_namespace) && LastWriteNs(old, st) + 3000000000ull > NowNs();
        close(old);
        if (live) {
          failed_ = true;
          return false;
        }
        shm_unlink(name_);
        fd = shm_open(name_, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
      } else {
        LogLine("telemetry: /dev/shm%s exists and is not this user's segment; live statistics are off",
                name_);
      }
    }
    if (fd < 0) {
      failed_ = true;
      return false;
    }
    struct stat st;
    void* mem = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        ftruncate(fd, NITRO_SHM_SIZE) == 0) {
      mem = mmap(nullptr, NITRO_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    // The mapping keeps the segment: no descriptor stays open in the
    // program's descriptor table.
    close(fd);
    if (mem == MAP_FAILED) {
      shm_unlink(name_);
      failed_ = true;
      return false;
    }
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    memset(mem, 0, NITRO_SHM_HEADER_SIZE);
    if (stats_ == nullptr) stats_ = static_cast<nitro_stats_t*>(os::Reserve(sizeof(nitro_stats_t), kPageSize));
    header_ = static_cast<nitro_shm_header*>(mem);
    memcpy(header_->magic, NITRO_SHM_MAGIC, 8);
    header_->version = NITRO_SHM_VERSION;
    header_->header_size = NITRO_SHM_HEADER_SIZE;
    header_->pid = static_cast<uint64_t>(pid);
    header_->pid_namespace = pid_namespace;
    header_->payload_capacity = NITRO_SHM_SIZE - NITRO_SHM_HEADER_SIZE;
    owner_pid_ = pid;
    return stats_ != nullptr;
  }

  // Segments of this user's processes that died without exiting (a crash,
  // _exit). A segment is removed only when all of these hold: its name's
  // pid does not exist here, it is a regular file of this user, and its
  // writer has not written for a minute (a live writer in another pid
  // namespace, whose pid means nothing here, writes every second). Bounded:
  // it looks at a few hundred names and for a few milliseconds at most.
  // Raw getdents64 into a stack buffer: no heap, no DIR.
  static void RemoveStale() {
    int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (dir < 0) return;
    uint64_t deadline = NowNs() + 5000000;  // 5 ms
    uint64_t stale_before = NowNs() - 60ull * 1000000000ull;
    int examined = 0;
    alignas(8) char buf[4096];
    for (bool more = true; more;) {
      long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
      if (n <= 0 || NowNs() > deadline) break;
      for (long off = 0; off < n;) {
        struct Entry {
          uint64_t ino;
          int64_t off;
          unsigned short reclen;
          unsigned char type;
          char name[1];
        };
        const Entry* e = reinterpret_cast<const Entry*>(buf + off);
        off += e->reclen;
        int pid;
        char rest;
        if (e->type != DT_REG || sscanf(e->name, "nitroheap.%d%c", &pid, &rest) != 1 || pid <= 0) continue;
        if (++examined > 256 || NowNs() > deadline) {
          more = false;
          break;
        }
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive here, or not ours to ask
        char name[300];
        snprintf(name, sizeof(name), "/%.250s", e->name);
        struct stat st;
        int fd = OpenOwnSegment(name, O_RDONLY, &st);
        if (fd < 0) continue;
        bool stale = LastWriteNs(fd, st) < stale_before;
        close(fd);
        if (stale) shm_unlink(name);
      }
    }
    close(dir);
  }

  nitro_shm_header* header_ = nullptr;
  nitro_stats_t* stats_ = nullptr;
  char name_[64] = {};
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  pid_t owner_pid_ = 0;
  bool failed_ = false;
  bool sweep_pending_ = false;
  bool create_pending_ = false;  // a fork child's segment, made on the first tick
  uint64_t last_allocations_ = ~uint64_t{0};
  uint64_t last_frees_ = 0;
};

ShmPublisher g_shm;
void ShmPublisher::CreateForTick() { g_shm.Create(); }
std::atomic<bool> g_dump_requested{false};

void OnSample(void* p, size_t requested, size_t usable, size_t align, Partition* partition) {
  g_recorder.Add(p, requested, usable, align, partition);
}
void OnFree(void* p) { g_recorder.Freed(p); }
void OnMove(void* from, void* to, size_t size) { g_recorder.Moved(from, to, size); }

void ReportWrite(const char* what, const char* path, int err) {
  if (err == 0) return;
  char expanded[512];
  ExpandPath(path, expanded, sizeof(expanded));
  LogLine("%s: cannot write %s: %s", what, expanded, strerror(err));
}

// ---- numbered profiles: periodic and on the signal --------------------------
//
// <prefix>.<pid>.<seq>.heap.pb.gz, and <prefix>.<pid>.<seq>.rec.pb on the
// signal; one sequence per process, so no dump replaces another (nor the
// exit dump, which goes to heap_profile and flight_recorder). Written by the
// background thread only: never inside malloc or a signal handler.
uint64_t g_profile_seq = 0;
uint64_t g_last_profile_ns = 0;
// Outputs whose directory was found unwritable at start-up (and said so
// then): not tried again, so the problem is reported once.
bool g_skip_flight_recorder = false, g_skip_heap_profile = false, g_skip_numbered = false;
uint64_t g_last_profile_bytes = 0;

void NumberedPath(const char* suffix, uint64_t seq, char* out, size_t len) {
  const char* prefix = CurrentOptions().profile_prefix;
  char expanded[300];
  ExpandPath(*prefix ? prefix : "nitroheap", expanded, sizeof(expanded));
  snprintf(out, len, "%s.%d.%llu.%s", expanded, os::ProcessId(), static_cast<unsigned long long>(seq),
           suffix);
}

void WriteNumbered(bool with_recording) {
  if (g_skip_numbered) return;
  uint64_t seq = g_profile_seq++;
  char path[400];
  if (with_recording) {
    NumberedPath("rec.pb", seq, path, sizeof(path));
    ReportWrite("flight recorder", path, DumpFlightRecording(path));
  }
  NumberedPath("heap.pb.gz", seq, path, sizeof(path));
  ReportWrite("heap profile", path, WriteHeapProfile(path, "inuse_space"));
}

// heap_profile_seconds since the last numbered profile, or
// heap_profile_interval bytes allocated since, as the samples estimate.
bool PeriodicProfileDue() {
  const Options& o = CurrentOptions();
  if (o.heap_profile_seconds == 0 && (o.heap_profile_interval == 0 || o.profile_rate == 0)) return false;
  uint64_t now = NowNs();
  uint64_t bytes = g_recorder.estimated_bytes();
  if (g_last_profile_ns == 0) g_last_profile_ns = HeapStartTimeNs();
  bool due = (o.heap_profile_seconds != 0 && now - g_last_profile_ns >= o.heap_profile_seconds * 1000000000ull) ||
             (o.heap_profile_interval != 0 && bytes - g_last_profile_bytes >= o.heap_profile_interval);
  if (due) {
    g_last_profile_ns = now;
    g_last_profile_bytes = bytes;
  }
  return due;
}

void OnTick() {
  g_shm.Tick();
  bool signalled = g_dump_requested.exchange(false);
  if (signalled) WithOwnDescriptorTable([] { WriteNumbered(true); });
  else if (PeriodicProfileDue()) WithOwnDescriptorTable([] { WriteNumbered(false); });
}

void OnExit() {
  const Options& o = CurrentOptions();
  if (o.flight_recorder[0] && !g_skip_flight_recorder) {
    ReportWrite("flight recorder", o.flight_recorder, DumpFlightRecording(o.flight_recorder));
  }
  // At exit most objects are freed: what was allocated is the useful view.
  if (o.heap_profile[0] && !g_skip_heap_profile) {
    ReportWrite("heap profile", o.heap_profile, WriteHeapProfile(o.heap_profile, "alloc_space"));
  }
  g_shm.Remove();
}

// A directory the process cannot write to is said at start-up, once, not
// discovered at exit.
bool OutputDirectoryWritable(const char* option, const char* path) {
  char expanded[512];
  ExpandPath(path, expanded, sizeof(expanded));
  char dir[512];
  const char* slash = strrchr(expanded, '/');
  if (slash == nullptr) snprintf(dir, sizeof(dir), ".");
  else if (slash == expanded) snprintf(dir, sizeof(dir), "/");
  else snprintf(dir, sizeof(dir), "%.*s", static_cast<int>(slash - expanded), expanded);
  struct stat st;
  int err = 0;
  if (stat(dir, &st) != 0) err = errno;
  else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
  else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) err = errno;
  if (err != 0) {
    LogLine("NITROHEAP_OPTIONS: %s=%s: cannot write in %s: %s; these files will not be written", option, expanded,
            dir, strerror(err));
  }
  return err == 0;
}

void CheckOutputDirectories() {
  const Options& o = CurrentOptions();
  if (o.flight_recorder[0]) g_skip_flight_recorder = !OutputDirectoryWritable("flight_recorder", o.flight_recorder);
  if (o.heap_profile[0]) g_skip_heap_profile = !OutputDirectoryWritable("heap_profile", o.heap_profile);
  if ((o.heap_profile_interval != 0 || o.heap_profile_seconds != 0) && !o.background_thread) {
    LogLine("NITROHEAP_OPTIONS: heap_profile_interval and heap_profile_seconds need background_thread=1 (the "
            "thread writes the profiles); with background_thread=0 none is written");
  }
  if (o.flight_recorder_signal != 0 || o.heap_profile_interval != 0 || o.heap_profile_seconds != 0) {
    g_skip_numbered = !OutputDirectoryWritable("profile_prefix", *o.profile_prefix ? o.profile_prefix : "nitroheap");
  }
}

void OnForkChild() {
  // The recorder's lock was reset with every registered lock. A fork made
  // while the parent's background thread worked in its clone
  // (WithOwnDescriptorTable) copied the parent's pid as the override.
  os::SetProcessIdOverride(0);
  g_shm.ForgetAfterFork();  // its segment comes on its background thread's first tick
}

// A signal only raises a flag: the background thread writes the files, so a
// signal arriving inside the allocator cannot deadlock on its locks.
void OnDumpSignal(int) { g_dump_requested.store(true); }

const TelemetryHooks kHooks = {OnSample, OnFree, OnTick, OnExit, OnForkChild, DumpFlightRecording,
                               DumpHeapProfile, OnMove};
std::atomic<bool> g_installed{false};

__attribute__((constructor)) void InstallAtLoad() { Install(); }

}  // namespace

void Install() {
  if (g_installed.exchange(true)) return;
  EnsureStarted();
  if (Mode() != HeapMode::kNitro) return;
  FlightRecorder::FindOwnText();
  RegisterLock(&g_recorder.lock());
  SetTelemetryHooks(&kHooks);
  g_shm.CreateAtStart();
  CheckOutputDirectories();
  uint64_t sig = CurrentOptions().flight_recorder_signal;
  if (sig > 0 && sig < 65) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = OnDumpSignal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(static_cast<int>(sig), &sa, nullptr);
  }
}

}  // namespace nitro::telemetry
