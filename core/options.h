// The options table: every NITROHEAP_OPTIONS key with its type, default,
// range and documentation, in one place. Parsed once at start-up, in place,
// without allocating. `NITROHEAP_OPTIONS=help` prints the table.
#ifndef NITROHEAP_CORE_OPTIONS_H_
#define NITROHEAP_CORE_OPTIONS_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro {

enum class HardeningMode : int { kFast = 0, kBalanced = 1, kStrict = 2 };

inline constexpr size_t kQuarantineFromMode = ~size_t{0};
// sample_rate's default by mode: fast 0 (no guarded sampling), balanced
// 100000, strict 10000.
inline constexpr uint64_t kSampleRateFromMode = ~uint64_t{0};
// memory_limit's default: the cgroup's (core/contract.h).
inline constexpr size_t kMemoryLimitFromCgroup = ~size_t{0};

// Actions a partition takes when it crosses its soft limit (bits;
// contract.<partition>.actions=release+caches+quarantine+compact, or none).
enum ContractAction : uint32_t {
  kActionRelease = 1,     // return the partition's free pages to the kernel
  kActionCaches = 2,      // return the middle layer's cached objects and empty slabs
  kActionQuarantine = 4,  // double the large-block quarantine (the seed's example)
  kActionCompact = 8,     // compact the movable heap (the movable partition's default)
};
inline constexpr uint32_t kDefaultContractActions = kActionRelease;

// A contract given in NITROHEAP_OPTIONS, applied when a partition of that
// name is created (the default partition is "default").
struct ContractOption {
  char partition[32];  // "" : unused entry
  size_t hard;         // contract.<partition>=SIZE (0: none)
  size_t soft;         // contract.<partition>.soft=SIZE (0: none)
  uint32_t actions;    // contract.<partition>.actions=...
};
inline constexpr int kMaxContractOptions = 8;

struct Options {
  HardeningMode mode = HardeningMode::kBalanced;
  // Bytes of freed small objects each thread holds back before reuse;
  // kQuarantineFromMode picks the mode's default (QuarantineBytes()).
  size_t quarantine = kQuarantineFromMode;
  // One allocation in sample_rate (on average, at random) gets guard pages;
  // kSampleRateFromMode until ResolveModeDefaults() picks the mode's.
  uint64_t sample_rate = kSampleRateFromMode;
  // Freed large blocks protected outside strict (core/large_protect.h): a
  // token bucket per partition, full at start, refilled by time.
  uint64_t large_protect_burst = 16;
  uint64_t large_protect_per_sec = 1;
  size_t tcache_max_bytes = size_t{1} << 20;
  size_t max_free_committed = size_t{256} << 20;
  uint64_t decay_ms = 500;
  bool background_thread = true;
  bool stats_print = false;
  // Telemetry (docs/telemetry.md).
  bool telemetry = true;
  size_t profile_rate = size_t{512} << 10;
  uint64_t flight_recorder_events = 2048;
  uint64_t flight_recorder_signal = 0;
  char flight_recorder[256] = {};
  char heap_profile[256] = {};
  // Numbered heap profiles, <profile_prefix>.<pid>.<seq>.heap.pb.gz, every
  // heap_profile_interval bytes allocated and every heap_profile_seconds.
  size_t heap_profile_interval = 0;
  uint64_t heap_profile_seconds = 0;
  char profile_prefix[256] = {};
  // Permission bits of the files NitroHeap writes (recordings, profiles).
  uint64_t output_mode = 0600;
  // Testing: check every lock against the fork handler's registry.
  bool lock_audit = false;
  // Heap contracts (core/contract.h): the process limit (0: none) and the
  // per-partition contracts, parsed from the contract.<partition> keys.
  size_t memory_limit = kMemoryLimitFromCgroup;
  ContractOption contracts[kMaxContractOptions] = {};
  // The movable heap's background compaction (docs/movable.md): every
  // compact_interval_ms (0: only on demand), at most compact_budget bytes moved.
  uint64_t compact_interval_ms = 1000;
  size_t compact_budget = size_t{16} << 20;
  // The CPU time one background or pressure compaction may spend copying
  // (0: no bound): past it the rest of its marked objects stay for later.
  uint64_t compact_budget_us = 20000;
};

// The quarantine actually in force.
size_t QuarantineBytes(const Options& o);
// Replaces the by-mode defaults that the engine reads directly (sample_rate)
// with the mode's value: fast samples nothing unless sample_rate is given
// (a guarded sample costs two system calls, each a TLB shootdown in a
// threaded process), balanced one allocation in 100000, strict one in 10000.
void ResolveModeDefaults(Options* o);
const char* ModeName(HardeningMode m);

// kFileMode: permission bits, written and printed in octal (0600), stored
// as a uint64_t. kSignal: a signal number, written as a number, a name
// ("SIGUSR1", "USR1") or "none" (0), stored as a uint64_t.
enum class OptionType { kSize, kUint, kBool, kChoice, kString, kFileMode, kSignal };

struct OptionSpec {
  const char* name;
  OptionType type;
  size_t offset;  // into Options
  uint64_t min;
  uint64_t max;
  const char* doc;
  const char* choices;  // kChoice: "a|b|c", stored as the index (an int)
  // kString: `max` is the buffer size (value length + 1 at most).
};

// The table, terminated by an entry with a null name.
const OptionSpec* OptionTable();

// Called with one complete diagnostic line (without "nitroheap: ").
using OptionErrorSink = void (*)(const char* message, void* ctx);

// Parses "key=value,key=value" into *out. Blanks around items, keys and
// values are ignored ("a=1, b=2"). Every unknown key and every malformed or
// out-of-range value is reported to `sink` (the message names the option,
// the value, and what is expected, with the range) and leaves that option
// at its current value; the rest still apply. Returns the number of errors.
// `help` (alone or among others) sets *help. `source` names where the text
// came from in messages ("NITROHEAP_OPTIONS"); null means that.
int ParseOptions(const char* spec, Options* out, bool* help, OptionErrorSink sink, void* ctx,
                 const char* source = nullptr);

// Parses one option's value as ParseOptions would (same checks and
// messages, reported to `sink` with `source` as the prefix) and stores it.
// Returns 0, ENOENT for an unknown name, or EINVAL for a refused value.
int SetOption(const char* name, const char* value, Options* out, OptionErrorSink sink, void* ctx,
              const char* source);

// Signal numbers and names: "SIGUSR1", "USR1", "10" -> 10; "none" or "0" -> 0.
// Returns false for an unknown name or a number outside 0..64.
bool ParseSignal(const char* s, uint64_t* out);
// "SIGUSR1" for 10, "none" for 0, "signal 40" style numbers written into buf.
const char* SignalName(uint64_t sig, char* buf, size_t len);

// The value of option `o` in `opts` as NITROHEAP_OPTIONS would take it
// (sizes in bytes, file modes in octal, signals and choices by name); the
// quarantine's "by mode" default as the bytes in force. One formatting for
// the help text, nitro_ctl and recordings.
void FormatOptionValue(const Options& opts, const OptionSpec* o, char* out, size_t len);

// Writes the table, one option per line, to file descriptor `fd`.
void PrintOptionHelp(int fd, const Options& defaults);
// The same, one line at a time (each ending in '\n') to `sink`.
void PrintOptionHelp(OptionErrorSink sink, void* ctx, const Options& defaults);

}  // namespace nitro

#endif  // NITROHEAP_CORE_OPTIONS_H_
