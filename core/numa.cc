#include "core/numa.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace nitro::numa {
namespace {

constexpr int kMpolInterleave = 3;  // <linux/mempolicy.h>

std::atomic<uint64_t> g_calls{0};
// Read once: bit 63 set when computed, the mask below it (nodes < 63).
std::atomic<uint64_t> g_process_mask{0};
std::atomic<int> g_online_nodes{0};
constexpr uint64_t kComputed = uint64_t{1} << 63;

// Reads a small file into buf (NUL-terminated); false when it cannot.
bool ReadSmallFile(const char* path, char* buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t n = 0;
  while (n + 1 < len) {
    ssize_t r = read(fd, buf + n, len - 1 - n);
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  close(fd);
  buf[n] = '\0';
  return n > 0;
}

bool ReadDecimal(const char*& s, unsigned* out) {
  if (*s < '0' || *s > '9') return false;
  unsigned v = 0;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + static_cast<unsigned>(*s - '0');
    if (v > 1u << 20) return false;
    s++;
  }
  *out = v;
  return true;
}

int Popcount(uint64_t m) { return __builtin_popcountll(m); }

}  // namespace

bool ParseNodeList(const char* text, uint64_t* mask) {
  *mask = 0;
  const char* s = text;
  uint64_t m = 0;
  while (*s != '\0' && *s != '\n') {
    unsigned lo, hi;
    if (!ReadDecimal(s, &lo)) return false;
    hi = lo;
    if (*s == '-') {
      s++;
      if (!ReadDecimal(s, &hi) || hi < lo) return false;
    }
    for (unsigned n = lo; n <= hi && n < static_cast<unsigned>(kMaxNodes); n++) m |= uint64_t{1} << n;
    if (*s == ',') {
      s++;
    } else if (*s != '\0' && *s != '\n') {
      return false;
    }
  }
  *mask = m;
  return m != 0;
}

uint64_t InterleaveMask(uint64_t online, uint64_t allowed) {
  uint64_t m = online & allowed;
  return Popcount(m) >= 2 ? m : 0;
}

uint64_t ProcessInterleaveMask() {
  uint64_t cached = g_process_mask.load(std::memory_order_acquire);
  if (cached & kComputed) return cached & ~kComputed;
  char buf[4096];
  uint64_t online = 0, allowed = 0;
  if (ReadSmallFile("/sys/devices/system/node/online", buf, sizeof(buf))) ParseNodeList(buf, &online);
  if (ReadSmallFile("/proc/self/status", buf, sizeof(buf))) {
    const char* line = strstr(buf, "Mems_allowed_list:");
    if (line != nullptr) {
      line += strlen("Mems_allowed_list:");
      while (*line == ' ' || *line == '\t') line++;
      ParseNodeList(line, &allowed);
    }
  }
  g_online_nodes.store(online == 0 ? 1 : Popcount(online), std::memory_order_relaxed);
  uint64_t mask = InterleaveMask(online, allowed) & ~kComputed;
  g_process_mask.store(mask | kComputed, std::memory_order_release);
  return mask;
}

int OnlineNodes() {
  ProcessInterleaveMask();
  return g_online_nodes.load(std::memory_order_relaxed);
}

bool Interleave(void* p, size_t size, uint64_t mask) {
  if (mask == 0) return false;
  g_calls.fetch_add(1, std::memory_order_relaxed);
  unsigned long nodes = mask;
  return syscall(SYS_mbind, p, size, kMpolInterleave, &nodes, kMaxNodes + 1, 0) == 0;
}

uint64_t InterleaveCalls() { return g_calls.load(std::memory_order_relaxed); }

}  // namespace nitro::numa
