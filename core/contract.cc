#include "core/contract.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

namespace nitro {
namespace {

uint64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The process limit: one budget over every partition's use.
struct ProcessLimit {
  Budget budget;
  std::atomic<uint64_t> crossings{0};
  std::atomic<uint64_t> refusals{0};
  std::atomic<uint64_t> last_pressure_ns{0};
  std::atomic<uint32_t> undelivered{0};
  std::atomic<int> source{static_cast<int>(LimitSource::kNone)};
};
ProcessLimit g_process;

ContractOption g_configured[kMaxContractOptions];

// Crossings this thread caused and has not yet delivered. A thread crosses
// at most one partition's limit per allocation, so a few slots are plenty;
// a crossing that finds them full stays counted in its contract and goes
// out with that contract's next delivery.
constexpr int kPendingSlots = 4;
__thread Contract* tls_pending[kPendingSlots] __attribute__((tls_model("initial-exec")));
__thread bool tls_process_pending __attribute__((tls_model("initial-exec")));
__thread bool tls_any_pending __attribute__((tls_model("initial-exec")));
__thread bool tls_refused __attribute__((tls_model("initial-exec")));

void QueueDelivery(Contract* c) {
  tls_any_pending = true;
  for (Contract*& slot : tls_pending) {
    if (slot == c) return;
    if (slot == nullptr) {
      slot = c;
      return;
    }
  }
}

bool ChargeProcess(size_t bytes) {
  ChargeResult r = g_process.budget.Charge(bytes);
  if (r == ChargeResult::kRefused) {
    g_process.refusals.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (r == ChargeResult::kCrossed) {
    g_process.crossings.fetch_add(1, std::memory_order_relaxed);
    g_process.last_pressure_ns.store(RealtimeNs(), std::memory_order_relaxed);
    g_process.undelivered.fetch_add(1, std::memory_order_relaxed);
    tls_process_pending = true;
    tls_any_pending = true;
  }
  return true;
}

// "max" (none: 0) or a number of bytes, as cgroup v2 writes them.
bool ReadLimitFile(const char* dir, const char* file, size_t* out) {
  char path[512];
  size_t dn = strlen(dir), fn = strlen(file);
  if (dn + 1 + fn + 1 > sizeof(path)) return false;
  memcpy(path, dir, dn);
  path[dn] = '/';
  memcpy(path + dn + 1, file, fn + 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  if (strncmp(buf, "max", 3) == 0) {
    *out = 0;
    return true;
  }
  size_t v = 0;
  const char* p = buf;
  if (*p < '0' || *p > '9') return false;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (~size_t{0} - 9) / 10) return false;
    v = v * 10 + static_cast<size_t>(*p - '0');
  }
  *out = v;
  return true;
}

size_t Smaller(size_t a, size_t b) { return a == 0 ? b : (b == 0 || a < b ? a : b); }

}  // namespace

// ---- Budget ----

ChargeResult Budget::Charge(size_t bytes) {
  size_t hard = hard_.load(std::memory_order_relaxed);
  size_t soft = soft_.load(std::memory_order_relaxed);
  size_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    size_t used = w & ~kArmedBit;
    size_t now = used + bytes;
    if (now < used || (hard != 0 && now > hard)) return ChargeResult::kRefused;
    bool armed = (w & kArmedBit) != 0;
    bool crossed = armed && soft != 0 && now >= soft;
    size_t next = now | (armed && !crossed ? kArmedBit : 0);
    if (word_.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return crossed ? ChargeResult::kCrossed : ChargeResult::kOk;
    }
  }
}

void Budget::ChargeAnyway(size_t bytes) { word_.fetch_add(bytes & ~kArmedBit, std::memory_order_acq_rel); }

void Budget::Uncharge(size_t bytes) {
  size_t soft = soft_.load(std::memory_order_relaxed);
  size_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    size_t used = w & ~kArmedBit;
    size_t now = used - (bytes & ~kArmedBit);
    bool armed = (w & kArmedBit) != 0 || soft == 0 || now < RearmPoint(soft);
    size_t next = now | (armed ? kArmedBit : 0);
    if (word_.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed)) return;
  }
}

void Budget::SetLimits(size_t hard, size_t soft) {
  hard_.store(hard, std::memory_order_relaxed);
  soft_.store(soft, std::memory_order_relaxed);
}

// ---- Contract ----

void Contract::Init(void* owner, const char* name, PressureActions run_actions) {
  owner_ = owner;
  run_actions_ = run_actions;
  budget_.Reset();
  actions_.store(kDefaultContractActions, std::memory_order_relaxed);
  undelivered_.store(0, std::memory_order_relaxed);
  crossings_.store(0, std::memory_order_relaxed);
  callbacks_.store(0, std::memory_order_relaxed);
  refusals_.store(0, std::memory_order_relaxed);
  last_pressure_ns_.store(0, std::memory_order_relaxed);
  SetCallback(nullptr, nullptr);
  for (const ContractOption& c : g_configured) {
    if (c.partition[0] != '\0' && name != nullptr && strncmp(c.partition, name, sizeof(c.partition)) == 0) {
      budget_.SetLimits(c.hard, c.soft);  // checked when parsed
      actions_.store(c.actions, std::memory_order_relaxed);
    }
  }
}

bool Contract::Charge(size_t bytes) {
  ChargeResult r = budget_.Charge(bytes);
  bool ok = r != ChargeResult::kRefused;
  if (ok && !ChargeProcess(bytes)) {
    budget_.Uncharge(bytes);
    ok = false;
  }
  if (!ok) {
    refusals_.fetch_add(1, std::memory_order_relaxed);
    tls_refused = true;
  }
  // The budget disarmed itself for this crossing: it is signalled even if
  // the process limit then refused the pages, or it would never be.
  if (r == ChargeResult::kCrossed) {
    crossings_.fetch_add(1, std::memory_order_relaxed);
    last_pressure_ns_.store(RealtimeNs(), std::memory_order_relaxed);
    undelivered_.fetch_add(1, std::memory_order_relaxed);
    QueueDelivery(this);
  }
  return ok;
}

void Contract::ChargeAnyway(size_t bytes) {
  budget_.ChargeAnyway(bytes);
  g_process.budget.ChargeAnyway(bytes);
}

void Contract::Uncharge(size_t bytes) {
  budget_.Uncharge(bytes);
  g_process.budget.Uncharge(bytes);
}

int Contract::SetLimits(size_t hard, size_t soft) {
  if (hard != 0 && soft > hard) return EINVAL;
  budget_.SetLimits(hard, soft);
  return 0;
}

void Contract::SetCallback(PressureCallback cb, void* ctx) {
  uint64_t seq = callback_seq_.load(std::memory_order_relaxed);
  for (;;) {
    if ((seq & 1) == 0 &&
        callback_seq_.compare_exchange_weak(seq, seq + 1, std::memory_order_acquire, std::memory_order_relaxed)) {
      break;
    }
    seq = callback_seq_.load(std::memory_order_relaxed);
  }
  // Release: a reader that sees either new value also sees the odd count.
  callback_.store(cb, std::memory_order_release);
  callback_ctx_.store(ctx, std::memory_order_release);
  callback_seq_.store(seq + 2, std::memory_order_release);
}

void Contract::ReadCallback(PressureCallback* cb, void** ctx) const {
  for (;;) {
    uint64_t before = callback_seq_.load(std::memory_order_acquire);
    if (before & 1) continue;
    // Acquire loads: the second look at the count cannot move above them
    // (no fence: ThreadSanitizer does not model fences).
    *cb = callback_.load(std::memory_order_acquire);
    *ctx = callback_ctx_.load(std::memory_order_acquire);
    if (callback_seq_.load(std::memory_order_relaxed) == before) return;
  }
}

ContractState Contract::State() const {
  ContractState s;
  s.hard_limit = budget_.hard();
  s.soft_limit = budget_.soft();
  s.use = budget_.used();
  s.crossings = crossings_.load(std::memory_order_relaxed);
  s.callbacks = callbacks_.load(std::memory_order_relaxed);
  s.refusals = refusals_.load(std::memory_order_relaxed);
  s.last_pressure_ns = last_pressure_ns_.load(std::memory_order_relaxed);
  s.actions = actions_.load(std::memory_order_relaxed);
  return s;
}

void Contract::Deliver() {
  for (uint32_t n = undelivered_.exchange(0, std::memory_order_acq_rel); n > 0; n--) {
    uint32_t actions = actions_.load(std::memory_order_relaxed);
    if (actions != 0 && run_actions_ != nullptr) run_actions_(owner_, actions);
    PressureCallback cb;
    void* ctx;
    ReadCallback(&cb, &ctx);
    if (cb != nullptr) {
      callbacks_.fetch_add(1, std::memory_order_relaxed);
      cb(static_cast<::nitro_partition*>(owner_), budget_.used(), budget_.soft(), ctx);
    }
  }
}

// ---- delivery ----

bool PressurePending() { return tls_any_pending; }

void DeliverPendingPressure() {
  // Taken first: a callback that allocates may queue (and deliver) more.
  tls_any_pending = false;
  Contract* pending[kPendingSlots];
  for (int i = 0; i < kPendingSlots; i++) {
    pending[i] = tls_pending[i];
    tls_pending[i] = nullptr;
  }
  bool process = tls_process_pending;
  tls_process_pending = false;
  for (Contract* c : pending) {
    if (c != nullptr) c->Deliver();
  }
  if (process && g_process.undelivered.exchange(0, std::memory_order_acq_rel) != 0) {
    ReleaseAllPartitionsForPressure();
    RequestPressureCompaction();
  }
}

namespace {
std::atomic<bool> g_compaction_requested{false};
}  // namespace

void RequestPressureCompaction() { g_compaction_requested.store(true, std::memory_order_release); }

bool TakePressureCompaction() {
  return g_compaction_requested.load(std::memory_order_relaxed) &&
         g_compaction_requested.exchange(false, std::memory_order_acq_rel);
}

bool TakeLimitRefusal() {
  bool refused = tls_refused;
  tls_refused = false;
  return refused;
}

// ---- the process limit ----

const char* LimitSourceName(LimitSource s) {
  switch (s) {
    case LimitSource::kNone: return "none";
    case LimitSource::kCgroup: return "cgroup";
    case LimitSource::kOption: return "option";
    case LimitSource::kApi: return "api";
  }
  return "none";
}

void SetProcessLimit(size_t bytes, size_t pressure_bytes, LimitSource source) {
  size_t pressure = bytes - bytes / 8;
  pressure_bytes &= ~size_t{kPageSize - 1};
  if (pressure_bytes != 0 && (pressure == 0 || pressure_bytes < pressure)) pressure = pressure_bytes;
  g_process.budget.SetLimits(bytes, pressure);
  g_process.source.store(static_cast<int>(bytes == 0 && pressure == 0 ? LimitSource::kNone : source),
                         std::memory_order_relaxed);
}

ProcessLimitState GetProcessLimit() {
  ProcessLimitState s;
  s.limit = g_process.budget.hard();
  s.pressure_point = g_process.budget.soft();
  s.use = g_process.budget.used();
  s.crossings = g_process.crossings.load(std::memory_order_relaxed);
  s.refusals = g_process.refusals.load(std::memory_order_relaxed);
  s.last_pressure_ns = g_process.last_pressure_ns.load(std::memory_order_relaxed);
  s.source = static_cast<LimitSource>(g_process.source.load(std::memory_order_relaxed));
  return s;
}

CgroupLimits ReadCgroupLimits(const char* proc_self_cgroup, const char* cgroup_root) {
  CgroupLimits out = {0, 0, false};
  int fd = open(proc_self_cgroup, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char text[1024];
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return out;
  text[n] = '\0';
  // cgroup v2 is the line "0::<path>" (v1 controllers have other numbers).
  const char* line = text;
  while (line != nullptr && strncmp(line, "0::", 3) != 0) {
    line = strchr(line, '\n');
    if (line != nullptr) line++;
  }
  if (line == nullptr || line[3] != '/') return out;
  const char* path = line + 3;
  size_t path_len = strcspn(path, "\n");
  char dir[512];
  size_t root_len = strlen(cgroup_root);
  if (root_len + path_len + 1 > sizeof(dir)) return out;
  memcpy(dir, cgroup_root, root_len);
  memcpy(dir + root_len, path, path_len);
  size_t len = root_len + path_len;
  while (len > root_len && dir[len - 1] == '/') len--;  // "0::/" is the root itself
  dir[len] = '\0';
  out.found = true;
  // The process may use no more than the tightest limit of any ancestor.
  for (;;) {
    size_t v;
    if (ReadLimitFile(dir, "memory.max", &v)) out.max = Smaller(out.max, v);
    if (ReadLimitFile(dir, "memory.high", &v)) out.high = Smaller(out.high, v);
    if (len <= root_len) break;
    while (len > root_len && dir[len - 1] != '/') len--;
    if (len > root_len) len--;  // the '/' itself
    dir[len] = '\0';
  }
  return out;
}

void ApplyContractOptions(const Options& options) {
  memcpy(g_configured, options.contracts, sizeof(g_configured));
  if (options.memory_limit != kMemoryLimitFromCgroup) {
    SetProcessLimit(options.memory_limit, 0, LimitSource::kOption);
    return;
  }
  CgroupLimits cg = ReadCgroupLimits("/proc/self/cgroup", "/sys/fs/cgroup");
  // memory.max is where the kernel's OOM killer acts: allocations fail
  // there instead. memory.high throttles: free memory goes back from there.
  if (cg.max != 0 || cg.high != 0) SetProcessLimit(cg.max, cg.high, LimitSource::kCgroup);
}

}  // namespace nitro
