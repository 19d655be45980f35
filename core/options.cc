#include "core/options.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace nitro {
namespace {

constexpr OptionSpec kTable[] = {
    {"mode", OptionType::kChoice, offsetof(Options, mode), 0, 2,
     "hardening: fast, balanced (misuse detection, quarantine) or strict (also zero on "
     "free, canaries, checked free lists, randomized reuse)",
     "fast|balanced|strict"},
    {"quarantine", OptionType::kSize, offsetof(Options, quarantine), 0, uint64_t{1} << 32,
     "bytes of freed small objects each thread holds back before reuse (default by mode: "
     "fast 0, balanced 64K, strict 4M); freed large blocks wait in a quarantine of 64 times "
     "this (at least 8M)",
     nullptr},
    {"sample_rate", OptionType::kUint, offsetof(Options, sample_rate), 0, uint64_t{1} << 40,
     "guard one allocation in N, at random, with guard pages (0: off, 1: every allocation)",
     nullptr},
    {"tcache_max_bytes", OptionType::kSize, offsetof(Options, tcache_max_bytes), 0,
     uint64_t{1} << 30, "most bytes one thread's cache may hold before it returns half", nullptr},
    {"max_free_committed", OptionType::kSize, offsetof(Options, max_free_committed), 0,
     uint64_t{1} << 40,
     "most bytes of free pages a partition keeps committed; beyond it the oldest are "
     "returned to the kernel at once", nullptr},
    {"decay_ms", OptionType::kUint, offsetof(Options, decay_ms), 0, 3600 * 1000,
     "free pages idle this long are returned to the kernel (0: at once)", nullptr},
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
    {"flight_recorder_signal", OptionType::kUint, offsetof(Options, flight_recorder_signal), 0, 64,
     "on this signal write a numbered recording and heap profile, "
     "<profile_prefix>.<pid>.<seq>.rec.pb and .heap.pb.gz (0: none)",
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

// Parses a decimal number with an optional K/M/G suffix (sizes only).
bool ParseNumber(const char* s, bool allow_suffix, uint64_t* out) {
  if (*s == '\0') return false;
  uint64_t v = 0;
  const char* p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = static_cast<uint64_t>(*p - '0');
    if (v > (~uint64_t{0} - d) / 10) return false;
    v = v * 10 + d;
  }
  if (p == s) return false;
  if (*p != '\0') {
    if (!allow_suffix || p[1] != '\0') return false;
    int shift;
    switch (*p) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: return false;
    }
    if (v > (~uint64_t{0} >> shift)) return false;
    v <<= shift;
  }
  *out = v;
  return true;
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

const char* ModeName(HardeningMode m) {
  return m == HardeningMode::kFast ? "fast" : m == HardeningMode::kStrict ? "strict" : "balanced";
}



int ParseOptions(const char* spec, Options* out, bool* help, OptionErrorSink sink, void* ctx) {
  int errors = 0;
  if (spec == nullptr) return 0;
  const char* p = spec;
  while (*p != '\0') {
    const char* end = strchr(p, ',');
    size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    char item[320];
    if (len >= sizeof(item)) {
      char shown[40];
      snprintf(shown, sizeof(shown), "%.32s", p);
      Report(sink, ctx, "NITROHEAP_OPTIONS: item '%s...' is too long", shown);
      errors++;
    } else if (len > 0) {
      memcpy(item, p, len);
      item[len] = '\0';
      char* eq = strchr(item, '=');
      if (strcmp(item, "help") == 0) {
        if (help) *help = true;
      } else if (eq == nullptr) {
        Report(sink, ctx, "NITROHEAP_OPTIONS: '%.127s' is not key=value", item);
        errors++;
      } else {
        *eq = '\0';
        const char* key = item;
        const char* value = eq + 1;
        const OptionSpec* o = kTable;
        while (o->name && strcmp(o->name, key) != 0) o++;
        if (o->name == nullptr) {
          Report(sink, ctx, "NITROHEAP_OPTIONS: unknown option '%.127s' (NITROHEAP_OPTIONS=help lists them)",
                 key);
          errors++;
        } else {
          uint64_t v = 0;
          bool ok;
          if (o->type == OptionType::kString) {
            ok = strlen(value) < o->max;
          } else if (o->type == OptionType::kChoice) {
            int idx = ChoiceIndex(o->choices, value);
            ok = idx >= 0;
            v = static_cast<uint64_t>(idx < 0 ? 0 : idx);
          } else if (o->type == OptionType::kBool) {
            ok = true;
            if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) v = 1;
            else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) v = 0;
            else ok = false;
          } else if (o->type == OptionType::kFileMode) {
            ok = ParseOctal(value, &v) && v <= o->max;
          } else {
            ok = ParseNumber(value, o->type == OptionType::kSize, &v) && v >= o->min && v <= o->max;
          }
          if (!ok) {
            const char* expected = o->type == OptionType::kString ? "a path shorter than 256 bytes"
                                   : o->type == OptionType::kChoice ? o->choices
                                   : o->type == OptionType::kBool ? "0 or 1"
                                   : o->type == OptionType::kFileMode ? "permission bits in octal, 0 to 0777, such as 0600"
                                   : o->type == OptionType::kSize ? "a size such as 512K, 64M or 1G, in range"
                                                                  : "a whole number in range";
            Report(sink, ctx, "NITROHEAP_OPTIONS: option '%.64s' has a malformed value '%.64s'; expected %s",
                   key, value, expected);
            errors++;
          } else {
            char* field = reinterpret_cast<char*>(out) + o->offset;
            if (o->type == OptionType::kString) memcpy(field, value, strlen(value) + 1);
            else if (o->type == OptionType::kChoice) *reinterpret_cast<int*>(field) = static_cast<int>(v);
            else if (o->type == OptionType::kBool) *reinterpret_cast<bool*>(field) = v != 0;
            else if (o->type == OptionType::kSize) *reinterpret_cast<size_t*>(field) = static_cast<size_t>(v);
            else *reinterpret_cast<uint64_t*>(field) = v;
          }
        }
      }
    }
    if (end == nullptr) break;
    p = end + 1;
  }
  return errors;
}

void PrintOptionHelp(int fd, const Options& defaults) {
  char line[320];
  int n = snprintf(line, sizeof(line),
                   "NITROHEAP_OPTIONS=key=value,... (sizes take K, M, G suffixes)\n");
  if (write(fd, line, static_cast<size_t>(n)) < 0) return;
  for (const OptionSpec* o = kTable; o->name; o++) {
    const char* field = reinterpret_cast<const char*>(&defaults) + o->offset;
    char value[32];
    if (o->type == OptionType::kString) {
      snprintf(value, sizeof(value), "%s", *field ? field : "(none)");
    } else if (o->type == OptionType::kChoice) {
      snprintf(value, sizeof(value), "%s", ModeName(*reinterpret_cast<const HardeningMode*>(field)));
    } else if (o->type == OptionType::kSize && *reinterpret_cast<const size_t*>(field) == kQuarantineFromMode) {
      snprintf(value, sizeof(value), "by mode");
    } else if (o->type == OptionType::kFileMode) {
      snprintf(value, sizeof(value), "%04llo", static_cast<unsigned long long>(*reinterpret_cast<const uint64_t*>(field)));
    } else {
      unsigned long long v = o->type == OptionType::kBool   ? *reinterpret_cast<const bool*>(field)
                             : o->type == OptionType::kSize ? *reinterpret_cast<const size_t*>(field)
                                                            : *reinterpret_cast<const uint64_t*>(field);
      snprintf(value, sizeof(value), "%llu", v);
    }
    n = snprintf(line, sizeof(line), "  %-22s default %-10s %s\n", o->name, value, o->doc);
    if (n > 0 && write(fd, line, static_cast<size_t>(n)) < 0) return;
  }
}

}  // namespace nitro
