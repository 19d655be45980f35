// The options table: every NITROHEAP_OPTIONS key with its type, default,
// range and documentation, in one place. Parsed once at start-up, in place,
// without allocating. `NITROHEAP_OPTIONS=help` prints the table.
#ifndef NITROHEAP_CORE_OPTIONS_H_
#define NITROHEAP_CORE_OPTIONS_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro {

struct Options {
  size_t tcache_max_bytes = size_t{2} << 20;
  size_t max_free_committed = size_t{64} << 20;
  uint64_t decay_ms = 500;
  bool background_thread = true;
  bool stats_print = false;
};

enum class OptionType { kSize, kUint, kBool };

struct OptionSpec {
  const char* name;
  OptionType type;
  size_t offset;  // into Options
  uint64_t min;
  uint64_t max;
  const char* doc;
};

// The table, terminated by an entry with a null name.
const OptionSpec* OptionTable();

// Called with one complete diagnostic line (without "nitroheap: ").
using OptionErrorSink = void (*)(const char* message, void* ctx);

// Parses "key=value,key=value" into *out. Every unknown key and every
// malformed or out-of-range value is reported to `sink` and leaves that
// option at its current value; the rest still apply. Returns the number of
// errors. `help` (alone or among others) sets *help.
int ParseOptions(const char* spec, Options* out, bool* help, OptionErrorSink sink, void* ctx);

// Writes the table, one option per line, to file descriptor `fd`.
void PrintOptionHelp(int fd, const Options& defaults);

}  // namespace nitro

#endif  // NITROHEAP_CORE_OPTIONS_H_
