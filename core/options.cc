#include "core/options.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace nitro {
namespace {

constexpr OptionSpec kTable[] = {
    {"mode", OptionType::kChoice, offsetof(Options, mode), 0, 2,
     "hardening: fast, balanced (misuse detection, quarantine) or strict (also zero on "
     "free, canaries, checked thread-cache entries, randomized reuse)",
     "fast|balanced|strict"},
    {"quarantine", OptionType::kSize, offsetof(Options, quarantine), 0, uint64_t{1} << 32,
     "bytes of freed small objects each thread holds back before reuse (default by mode: "
     "fast 0, balanced 64K, strict 4M); freed large blocks wait in a quarantine of 64 times "
     "this (at least 8M)",
     nullptr},
    {"sample_rate", OptionType::kUint, offsetof(Options, sample_rate), 0, uint64_t{1} << 40,
     "guard one allocation in N, at random, with guard pages (0: off, 1: every allocation; "
     "default by mode: fast 0, balanced 100000, strict 10000)",
     nullptr},
    {"large_protect_burst", OptionType::kUint, offsetof(Options, large_protect_burst), 0, 1u << 20,
     "outside strict, every freed large block that fits the quarantine has its first MiB made "
     "PROT_NONE (use after free faults) while a per-partition budget has tokens: it holds "
     "this many and starts full",
     nullptr},
    {"large_protect_per_sec", OptionType::kUint, offsetof(Options, large_protect_per_sec), 0,
     1u << 20,
     "tokens added to that budget each second; beyond it one freed large block in 256 at "
     "random has its first 16 KiB protected (strict: every block, whole)",
     nullptr},
    {"tcache_max_bytes", OptionType::kSize, offsetof(Options, tcache_max_bytes), 0,
     uint64_t{1} << 30, "a thread's cache holding more than this returns half of each class, checked when one "
     "of its magazines overflows", nullptr},
    {"max_free_committed", OptionType::kSize, offsetof(Options, max_free_committed), 0,
     uint64_t{1} << 40,
     "most bytes of free pages a partition keeps committed; beyond it the oldest are "
     "returned to the kernel on the background thread's next tick (at once without it)", nullptr},
    {"decay_ms", OptionType::kUint, offsetof(Options, decay_ms), 0, 3600 * 1000,
     "free pages idle this long are returned to the kernel (0: at once)", nullptr},
    {"compact_interval_ms", OptionType::kUint, offsetof(Options, compact_interval_ms), 0,
     3600 * 1000,
     "the background thread compacts the movable heap this often (0: only nitro_compact)",
     nullptr},
    {"compact_budget", OptionType::kSize, offsetof(Options, compact_budget), 0, uint64_t{1} << 40,
     "most bytes one background compaction of the movable heap moves", nullptr},
    {"compact_budget_us", OptionType::kUint, offsetof(Options, compact_budget_us), 0, 60 * 1000 * 1000,
     "most microseconds one background or pressure compaction spends copying (0: no bound); "
     "what is left waits for the next one", nullptr},
    {"background_thread", OptionType::kBool, offsetof(Options, background_thread), 0, 1,
     "run a thread (started on first need) that returns idle memory on time and publishes "
     "telemetry, even when the program makes no calls",
     nullptr},
    {"stats_print", OptionType::kBool, offsetof(Options, stats_print), 0, 1,
     "print the heap report to stderr at exit", nullptr},
    {"telemetry", OptionType::kBool, offsetof(Options, telemetry), 0, 1,
     "publish live statistics in /dev/shm/nitroheap.<pid> for nitroheap.attach(pid) (written "
     "by the background thread: none with background_thread=0)",
     nullptr},
    {"profile_rate", OptionType::kSize, offsetof(Options, profile_rate), 0, uint64_t{1} << 40,
     "mean bytes between allocations sampled into the flight recorder (0: off)", nullptr},
    {"flight_recorder_events", OptionType::kUint, offsetof(Options, flight_recorder_events), 16,
     1u << 20, "events the flight recorder's ring buffer holds", nullptr},
    {"flight_recorder", OptionType::kString, offsetof(Options, flight_recorder), 0, 256,
     "write the flight recording to this path at exit (%p becomes the pid)", nullptr},
    {"flight_recorder_signal", OptionType::kSignal, offsetof(Options, flight_recorder_signal), 0, 64,
     "on this signal write a numbered recording and heap profile, "
     "<profile_prefix>.<pid>.<seq>.rec.pb and .heap.pb.gz: a name (SIGUSR1, USR1) or number "
     "(0 or none: off)",
     nullptr},
    {"heap_profile", OptionType::kString, offsetof(Options, heap_profile), 0, 256,
     "write a gzip-compressed pprof heap profile to this path at exit (%p becomes the pid)", nullptr},
    {"heap_profile_interval", OptionType::kSize, offsetof(Options, heap_profile_interval), 0, uint64_t{1} << 50,
     "write a numbered heap profile, <profile_prefix>.<pid>.<seq>.heap.pb.gz, each time about this many "
     "bytes have been allocated, as the samples estimate (0: off)",
     nullptr},
    {"heap_profile_seconds", OptionType::kUint, offsetof(Options, heap_profile_seconds), 0, 30 * 86400,
     "write a numbered heap profile every this many seconds (0: off)", nullptr},
    {"profile_prefix", OptionType::kString, offsetof(Options, profile_prefix), 0, 256,
     "path prefix of numbered profiles and recordings (%p becomes the pid; default: nitroheap in the "
     "working directory)",
     nullptr},
    {"output_mode", OptionType::kFileMode, offsetof(Options, output_mode), 0, 0777,
     "permission bits (octal) of the files written for flight_recorder and heap_profile; "
     "they are created exclusively and renamed into place, never written through a link",
     nullptr},
    {"lock_audit", OptionType::kBool, offsetof(Options, lock_audit), 0, 1,
     "testing: abort when a lock is taken that the fork handler does not take, or out of rank "
     "order",
     nullptr},
    {"memory_limit", OptionType::kSize, offsetof(Options, memory_limit), 0, uint64_t{1} << 46,
     "the process's heap limit: allocations past it fail with ENOMEM, at 7/8 of it free pages go "
     "back (cgroup: the cgroup v2 memory.max and memory.high; 0: none); per partition: "
     "contract.<partition>=SIZE and .soft, .actions (README, Heap contracts)",
     nullptr},
    {nullptr, OptionType::kBool, 0, 0, 0, nullptr, nullptr},
};

__attribute__((format(printf, 3, 4))) void Report(OptionErrorSink sink, void* ctx,
                                                  const char* fmt, ...) {
  char line[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (sink) sink(line, ctx);
}

enum class NumberParse { kOk, kNotANumber, kTooLarge };
constexpr uint64_t kMaxContractBytes = uint64_t{1} << 46;

// Parses a decimal number with an optional K/M/G/T suffix (sizes only).
NumberParse ParseNumber(const char* s, bool allow_suffix, uint64_t* out) {
  uint64_t v = 0;
  const char* p = s;
  bool too_large = false;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = static_cast<uint64_t>(*p - '0');
    if (v > (~uint64_t{0} - d) / 10) too_large = true;
    v = v * 10 + d;
  }
  if (p == s) return NumberParse::kNotANumber;
  if (*p != '\0') {
    if (!allow_suffix || p[1] != '\0') return NumberParse::kNotANumber;
    int shift;
    switch (*p) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      default: return NumberParse::kNotANumber;
    }
    if (v > (~uint64_t{0} >> shift)) too_large = true;
    v <<= shift;
  }
  if (too_large) return NumberParse::kTooLarge;
  *out = v;
  return NumberParse::kOk;
}

// "1099511627776" for a number; "1T" style for a size when that is exact.
void FormatBound(uint64_t v, bool size, char* buf, size_t len) {
  static const char kSuffix[] = "KMGT";
  int shift = 0;
  if (size && v != 0) {
    while (shift < 40 && (v & ((uint64_t{1} << (shift + 10)) - 1)) == 0) shift += 10;
  }
  if (shift == 0) {
    snprintf(buf, len, "%llu", static_cast<unsigned long long>(v));
  } else {
    snprintf(buf, len, "%llu%c", static_cast<unsigned long long>(v >> shift), kSuffix[shift / 10 - 1]);
  }
}

// What a value of this option must look like, with its range.
void DescribeExpected(const OptionSpec& o, char* buf, size_t len) {
  char lo[32], hi[32];
  switch (o.type) {
    case OptionType::kString:
      snprintf(buf, len, "a path shorter than %llu bytes", static_cast<unsigned long long>(o.max));
      return;
    case OptionType::kChoice: snprintf(buf, len, "%s", o.choices); return;
    case OptionType::kBool: snprintf(buf, len, "0, 1, false or true"); return;
    case OptionType::kFileMode:
      snprintf(buf, len, "permission bits in octal, 0 to %04llo, such as 0600",
               static_cast<unsigned long long>(o.max));
      return;
    case OptionType::kSignal:
      snprintf(buf, len, "a signal name such as SIGUSR1 or USR1, a number from 1 to %llu, or none (0)",
               static_cast<unsigned long long>(o.max));
      return;
    case OptionType::kSize:
      FormatBound(o.min, true, lo, sizeof(lo));
      FormatBound(o.max, true, hi, sizeof(hi));
      snprintf(buf, len, "a size from %s to %s (bytes, or with a K, M, G or T suffix such as 64M)", lo, hi);
      return;
    case OptionType::kUint:
      FormatBound(o.min, false, lo, sizeof(lo));
      FormatBound(o.max, false, hi, sizeof(hi));
      snprintf(buf, len, "a whole number from %s to %s", lo, hi);
      return;
  }
  snprintf(buf, len, "a valid value");
}

struct SignalEntry {
  const char* name;
  int number;
};
// Linux's numbers (x86-64 and arm64 agree on these).
constexpr SignalEntry kSignals[] = {
    {"HUP", 1},   {"INT", 2},     {"QUIT", 3},  {"ILL", 4},   {"TRAP", 5},    {"ABRT", 6},
    {"IOT", 6},   {"BUS", 7},     {"FPE", 8},   {"KILL", 9},  {"USR1", 10},   {"SEGV", 11},
    {"USR2", 12}, {"PIPE", 13},   {"ALRM", 14}, {"TERM", 15}, {"STKFLT", 16}, {"CHLD", 17},
    {"CONT", 18}, {"STOP", 19},   {"TSTP", 20}, {"TTIN", 21}, {"TTOU", 22},   {"URG", 23},
    {"XCPU", 24}, {"XFSZ", 25},   {"VTALRM", 26}, {"PROF", 27}, {"WINCH", 28}, {"IO", 29},
    {"POLL", 29}, {"PWR", 30},    {"SYS", 31},
};

bool SameIgnoringCase(const char* a, const char* b) {
  for (; *a && *b; a++, b++) {
    char x = *a >= 'a' && *a <= 'z' ? static_cast<char>(*a - 32) : *a;
    if (x != *b) return false;
  }
  return *a == *b;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Trims blanks at both ends of the string s in place; returns the new start.
char* Trim(char* s) {
  while (IsBlank(*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && IsBlank(s[n - 1])) s[--n] = '\0';
  return s;
}

// Parses permission bits in octal ("600", "0640"); nothing else.
bool ParseOctal(const char* s, uint64_t* out) {
  if (*s == '\0') return false;
  uint64_t v = 0;
  for (const char* p = s; *p; p++) {
    if (*p < '0' || *p > '7' || v > 07777) return false;
    v = v * 8 + static_cast<uint64_t>(*p - '0');
  }
  *out = v;
  return true;
}

// Finds `value` in "a|b|c"; the index, or -1.
int ChoiceIndex(const char* choices, const char* value) {
  int index = 0;
  const char* p = choices;
  size_t vlen = strlen(value);
  while (*p) {
    const char* end = strchr(p, '|');
    size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    if (len == vlen && strncmp(p, value, len) == 0) return index;
    index++;
    if (!end) break;
    p = end + 1;
  }
  return -1;
}

}  // namespace

const OptionSpec* OptionTable() { return kTable; }

size_t QuarantineBytes(const Options& o) {
  if (o.quarantine != kQuarantineFromMode) return o.quarantine;
  switch (o.mode) {
    case HardeningMode::kFast: return 0;
    case HardeningMode::kBalanced: return size_t{64} << 10;
    case HardeningMode::kStrict: return size_t{4} << 20;
  }
  return 0;
}

void ResolveModeDefaults(Options* o) {
  if (o->sample_rate == kSampleRateFromMode) {
    // A sample costs two system calls, each taking mmap_lock for writing
    // and flushing the other CPUs' TLBs (docs/security.md, "Guarded
    // sampling"): one in 100000 keeps a busy threaded program's cost to
    // about one call per 50,000 allocations; strict, slow anyway, samples
    // ten times as often.
    switch (o->mode) {
      case HardeningMode::kFast: o->sample_rate = 0; break;
      case HardeningMode::kBalanced: o->sample_rate = 100000; break;
      case HardeningMode::kStrict: o->sample_rate = 10000; break;
    }
  }
}

const char* ModeName(HardeningMode m) {
  return m == HardeningMode::kFast ? "fast" : m == HardeningMode::kStrict ? "strict" : "balanced";
}



bool ParseSignal(const char* s, uint64_t* out) {
  if (SameIgnoringCase(s, "NONE")) {
    *out = 0;
    return true;
  }
  uint64_t v = 0;
  if (ParseNumber(s, false, &v) == NumberParse::kOk) {
    if (v > 64) return false;
    *out = v;
    return true;
  }
  const char* name = s;
  if ((s[0] == 'S' || s[0] == 's') && (s[1] == 'I' || s[1] == 'i') && (s[2] == 'G' || s[2] == 'g')) name = s + 3;
  for (const SignalEntry& e : kSignals) {
    if (SameIgnoringCase(name, e.name)) {
      *out = static_cast<uint64_t>(e.number);
      return true;
    }
  }
  return false;
}

const char* SignalName(uint64_t sig, char* buf, size_t len) {
  if (sig == 0) {
    snprintf(buf, len, "none");
    return buf;
  }
  for (const SignalEntry& e : kSignals) {
    if (static_cast<uint64_t>(e.number) == sig) {
      snprintf(buf, len, "SIG%s", e.name);
      return buf;
    }
  }
  snprintf(buf, len, "%llu", static_cast<unsigned long long>(sig));
  return buf;
}

namespace {

// Checks `value` against option `o` and stores it; false (after one
// message to `sink`) when it is refused. `key` and `value` are trimmed.
bool ApplyValue(const OptionSpec& o, const char* value, Options* out, OptionErrorSink sink, void* ctx,
                const char* source) {
  uint64_t v = 0;
  bool ok = true;
  bool out_of_range = false;
  switch (o.type) {
    case OptionType::kString:
      ok = strlen(value) < o.max;
      break;
    case OptionType::kChoice: {
      int idx = ChoiceIndex(o.choices, value);
      ok = idx >= 0;
      v = static_cast<uint64_t>(idx < 0 ? 0 : idx);
      break;
    }
    case OptionType::kBool:
      if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) v = 1;
      else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) v = 0;
      else ok = false;
      break;
    case OptionType::kFileMode:
      ok = ParseOctal(value, &v);
      out_of_range = ok && v > o.max;
      break;
    case OptionType::kSignal:
      ok = ParseSignal(value, &v);
      if (ok && (v == SIGKILL || v == SIGSTOP)) {
        Report(sink, ctx, "%s: option '%s' cannot use signal %llu (%s): it cannot be caught", source, o.name,
               static_cast<unsigned long long>(v), v == SIGKILL ? "SIGKILL" : "SIGSTOP");
        return false;
      }
      break;
    case OptionType::kSize:
      if (o.offset == offsetof(Options, memory_limit) && strcmp(value, "cgroup") == 0) {
        v = kMemoryLimitFromCgroup;
        break;
      }
      [[fallthrough]];
    case OptionType::kUint: {
      NumberParse r = ParseNumber(value, o.type == OptionType::kSize, &v);
      ok = r == NumberParse::kOk;
      out_of_range = r == NumberParse::kTooLarge || (ok && (v < o.min || v > o.max));
      break;
    }
  }
  if (!ok || out_of_range) {
    char expected[160];
    DescribeExpected(o, expected, sizeof(expected));
    if (o.offset == offsetof(Options, memory_limit)) {
      size_t n = strlen(expected);
      snprintf(expected + n, sizeof(expected) - n, ", or cgroup");
    }
    if (out_of_range) {
      Report(sink, ctx, "%s: option '%s' value '%.64s' is out of range; expected %s", source, o.name, value,
             expected);
    } else if (o.type == OptionType::kSignal) {
      Report(sink, ctx, "%s: option '%s' has an unknown signal '%.64s'; expected %s", source, o.name, value,
             expected);
    } else {
      Report(sink, ctx, "%s: option '%s' has a malformed value '%.64s'; expected %s", source, o.name, value,
             expected);
    }
    return false;
  }
  char* field = reinterpret_cast<char*>(out) + o.offset;
  switch (o.type) {
    case OptionType::kString: memcpy(field, value, strlen(value) + 1); break;
    case OptionType::kChoice: *reinterpret_cast<int*>(field) = static_cast<int>(v); break;
    case OptionType::kBool: *reinterpret_cast<bool*>(field) = v != 0; break;
    case OptionType::kSize: *reinterpret_cast<size_t*>(field) = static_cast<size_t>(v); break;
    case OptionType::kUint:
    case OptionType::kFileMode:
    case OptionType::kSignal: *reinterpret_cast<uint64_t*>(field) = v; break;
  }
  return true;
}

const OptionSpec* FindOption(const char* name) {
  const OptionSpec* o = kTable;
  while (o->name && strcmp(o->name, name) != 0) o++;
  return o->name ? o : nullptr;
}

// "contract.<partition>" (the hard limit), "contract.<partition>.soft" and
// "contract.<partition>.actions". `key` and `value` are trimmed.
bool ApplyContractOption(const char* key, const char* value, Options* out, OptionErrorSink sink, void* ctx,
                         const char* source) {
  const char* name = key + 9;
  const char* last_dot = strrchr(name, '.');
  enum { kHard, kSoft, kActions } field = kHard;
  size_t name_len = strlen(name);
  if (last_dot != nullptr && strcmp(last_dot, ".soft") == 0) {
    field = kSoft;
    name_len = static_cast<size_t>(last_dot - name);
  } else if (last_dot != nullptr && strcmp(last_dot, ".actions") == 0) {
    field = kActions;
    name_len = static_cast<size_t>(last_dot - name);
  } else if (last_dot != nullptr && strcmp(last_dot, ".hard") == 0) {
    name_len = static_cast<size_t>(last_dot - name);
  }
  if (name_len == 0 || name_len >= sizeof(ContractOption{}.partition)) {
    Report(sink, ctx, "%s: option '%.127s' needs a partition name of 1 to %zu bytes (contract.<partition>=SIZE)",
           source, key, sizeof(ContractOption{}.partition) - 1);
    return false;
  }
  ContractOption* entry = nullptr;
  for (ContractOption& c : out->contracts) {
    if (c.partition[0] != '\0' && strlen(c.partition) == name_len && strncmp(c.partition, name, name_len) == 0) {
      entry = &c;
      break;
    }
  }
  ContractOption fresh = {};
  memcpy(fresh.partition, name, name_len);
  fresh.actions = kDefaultContractActions;
  ContractOption updated = entry != nullptr ? *entry : fresh;
  if (field == kActions) {
    uint32_t actions = 0;
    if (strcmp(value, "none") != 0) {
      const char* p = value;
      while (true) {
        size_t n = strcspn(p, "+");
        if (n == 7 && strncmp(p, "release", 7) == 0) actions |= kActionRelease;
        else if (n == 6 && strncmp(p, "caches", 6) == 0) actions |= kActionCaches;
        else if (n == 10 && strncmp(p, "quarantine", 10) == 0) actions |= kActionQuarantine;
        else if (n == 7 && strncmp(p, "compact", 7) == 0) actions |= kActionCompact;
        else {
          Report(sink, ctx, "%s: option '%.127s' has a malformed value '%.64s'; expected none or actions "
                 "joined by '+': release, caches, quarantine, compact", source, key, value);
          return false;
        }
        if (p[n] == '\0') break;
        p += n + 1;
      }
    }
    updated.actions = actions;
  } else {
    uint64_t v = 0;
    NumberParse r = ParseNumber(value, true, &v);
    if (r != NumberParse::kOk || v > kMaxContractBytes) {
      Report(sink, ctx, "%s: option '%.127s' %s '%.64s'; expected a size from 0 (none) to 64T (bytes, or "
             "with a K, M, G or T suffix such as 600M)", source, key,
             r == NumberParse::kNotANumber ? "has a malformed value" : "value is out of range:", value);
      return false;
    }
    (field == kSoft ? updated.soft : updated.hard) = static_cast<size_t>(v);
    if (updated.hard != 0 && updated.soft > updated.hard) {
      Report(sink, ctx, "%s: option '%.127s=%.64s': the soft limit (%zu bytes) would be above the hard limit "
             "(%zu bytes); the contract of '%s' is unchanged", source, key, value, updated.soft, updated.hard,
             updated.partition);
      return false;
    }
  }
  if (entry == nullptr) {
    for (ContractOption& c : out->contracts) {
      if (c.partition[0] == '\0') {
        entry = &c;
        break;
      }
    }
    if (entry == nullptr) {
      Report(sink, ctx, "%s: option '%.127s': at most %d partitions can have a contract in the options "
             "(nitro_partition_set_limit sets more)", source, key, kMaxContractOptions);
      return false;
    }
  }
  *entry = updated;
  return true;
}

}  // namespace

int SetOption(const char* name, const char* value, Options* out, OptionErrorSink sink, void* ctx,
              const char* source) {
  const OptionSpec* o = FindOption(name);
  if (o == nullptr) return ENOENT;
  return ApplyValue(*o, value, out, sink, ctx, source) ? 0 : EINVAL;
}

int ParseOptions(const char* spec, Options* out, bool* help, OptionErrorSink sink, void* ctx,
                 const char* source) {
  int errors = 0;
  if (spec == nullptr) return 0;
  if (source == nullptr) source = "NITROHEAP_OPTIONS";
  const char* p = spec;
  while (*p != '\0') {
    const char* end = strchr(p, ',');
    size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    char buf[320];
    if (len >= sizeof(buf)) {
      char shown[40];
      snprintf(shown, sizeof(shown), "%.32s", p);
      Report(sink, ctx, "%s: item '%s...' is too long", source, shown);
      errors++;
    } else {
      memcpy(buf, p, len);
      buf[len] = '\0';
      char* item = Trim(buf);
      char* eq = strchr(item, '=');
      if (*item == '\0') {
        // An empty item (",,", a trailing comma): nothing to do.
      } else if (strcmp(item, "help") == 0) {
        if (help) *help = true;
      } else if (eq == nullptr) {
        Report(sink, ctx, "%s: '%.127s' is not key=value", source, item);
        errors++;
      } else {
        *eq = '\0';
        const char* key = Trim(item);
        const char* value = Trim(eq + 1);
        const OptionSpec* o = FindOption(key);
        if (strncmp(key, "contract.", 9) == 0) {
          if (!ApplyContractOption(key, value, out, sink, ctx, source)) errors++;
        } else if (o == nullptr) {
          Report(sink, ctx, "%s: unknown option '%.127s' (NITROHEAP_OPTIONS=help lists them)", source, key);
          errors++;
        } else if (!ApplyValue(*o, value, out, sink, ctx, source)) {
          errors++;
        }
      }
    }
    if (end == nullptr) break;
    p = end + 1;
  }
  return errors;
}

void FormatOptionValue(const Options& opts, const OptionSpec* o, char* out, size_t len) {
  const char* field = reinterpret_cast<const char*>(&opts) + o->offset;
  auto u64 = [field] { return static_cast<unsigned long long>(*reinterpret_cast<const uint64_t*>(field)); };
  switch (o->type) {
    case OptionType::kString: snprintf(out, len, "%s", field); break;
    case OptionType::kChoice: snprintf(out, len, "%s", ModeName(*reinterpret_cast<const HardeningMode*>(field))); break;
    case OptionType::kBool: snprintf(out, len, "%d", *reinterpret_cast<const bool*>(field) ? 1 : 0); break;
    case OptionType::kSize:
      if (field == reinterpret_cast<const char*>(&opts.memory_limit) && opts.memory_limit == kMemoryLimitFromCgroup) {
        snprintf(out, len, "cgroup");
        break;
      }
      snprintf(out, len, "%zu",
               field == reinterpret_cast<const char*>(&opts.quarantine) ? QuarantineBytes(opts)
                                                                         : *reinterpret_cast<const size_t*>(field));
      break;
    case OptionType::kSignal: SignalName(u64(), out, len); break;
    case OptionType::kFileMode: snprintf(out, len, "%04llo", u64()); break;
    case OptionType::kUint: snprintf(out, len, "%llu", u64()); break;
  }
}

void PrintOptionHelp(OptionErrorSink sink, void* ctx, const Options& defaults) {
  char line[320];
  int n = snprintf(line, sizeof(line),
                   "NITROHEAP_OPTIONS=key=value,... (sizes take K, M, G, T suffixes)\n");
  if (n > 0) sink(line, ctx);
  for (const OptionSpec* o = kTable; o->name; o++) {
    const char* field = reinterpret_cast<const char*>(&defaults) + o->offset;
    char value[32];
    if (o->type == OptionType::kString && *field == '\0') {
      snprintf(value, sizeof(value), "(none)");
    } else if ((field == reinterpret_cast<const char*>(&defaults.quarantine) &&
                defaults.quarantine == kQuarantineFromMode) ||
               (field == reinterpret_cast<const char*>(&defaults.sample_rate) &&
                defaults.sample_rate == kSampleRateFromMode)) {
      snprintf(value, sizeof(value), "by mode");
    } else if (field == reinterpret_cast<const char*>(&defaults.memory_limit) &&
               defaults.memory_limit == kMemoryLimitFromCgroup) {
      snprintf(value, sizeof(value), "cgroup");
    } else {
      FormatOptionValue(defaults, o, value, sizeof(value));
    }
    n = snprintf(line, sizeof(line), "  %-22s default %-10s %s\n", o->name, value, o->doc);
    if (n > 0) sink(line, ctx);
  }
}

void PrintOptionHelp(int fd, const Options& defaults) {
  auto to_fd = [](const char* line, void* ctx) {
    if (write(*static_cast<int*>(ctx), line, strlen(line)) < 0) return;
  };
  PrintOptionHelp(to_fd, &fd, defaults);
}

}  // namespace nitro
