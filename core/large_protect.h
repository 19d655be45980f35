// Which freed large blocks are made PROT_NONE, so that a use after free
// faults (issue 13). Protecting one costs an mprotect at the free and another
// when its pages are opened again; a process that frees large blocks by the
// thousand each second must not pay that every time, but one that frees them
// now and then should have every one protected. So: every block in strict;
// otherwise every block while a token bucket refilled by time has tokens
// (exact when large frees are rare, at most `per_second` protected blocks a
// second after a burst when they are frequent), then one block in `sample`
// at random, so that no steady stream of frees goes entirely unprotected.
// On this project's virtual machines each protected page costs about a page
// fault when the memory is touched again after reuse (docs/security.md), so
// what is closed is bounded in pages: a block picked by the coin has its
// first kProtectHeadPages pages closed (closing whole blocks one in 256
// doubled the time of a loop of large alloc/free cycles, `large_cycle`:
// 0.94 s against 0.43 s with no coin, 300,000 cycles; the head, where a
// stale pointer most often reads a freed buffer's header, costs nothing
// measurable, 0.43 s), and a token closes the first kProtectFirstMiBPages
// (the first 16 tokens closing 5-8 MiB blocks whole cost `large_trap` a
// quarter of a second). strict closes every page.
#ifndef NITROHEAP_CORE_LARGE_PROTECT_H_
#define NITROHEAP_CORE_LARGE_PROTECT_H_

#include <stddef.h>
#include <stdint.h>

#include "core/base.h"

namespace nitro {

// Which pages of a freed large block are made PROT_NONE: none, its first
// kProtectHeadPages (16 KiB), its first kProtectFirstMiBPages (1 MiB), or
// all of them.
enum class LargeProtection : uint8_t { kNone, kHead, kFirstMiB, kWhole };
constexpr size_t kProtectHeadPages = 4;
constexpr size_t kProtectFirstMiBPages = 256;

struct LargeProtectConfig {
  bool every = false;          // strict: every freed block, no bucket
  uint32_t burst = 16;         // tokens the bucket holds (it starts full)
  uint32_t per_second = 1;     // tokens added per second of the clock
  uint32_t sample = 256;       // beyond the tokens, one block in N (0: none)
};

// Not thread-safe: the partition calls it under its large-block lock.
class LargeProtectBudget {
 public:
  void Init(const LargeProtectConfig& config, uint64_t seed) {
    config_ = config;
    millitokens_ = uint64_t{config.burst} * 1000;
    last_ms_ = 0;
    rng_ = seed | 1;  // xorshift needs a non-zero state
  }

  // What the block freed at `now_ms` (a monotonic clock in milliseconds; a
  // coarse one is enough and costs no system call) gets: every page in
  // strict, its first MiB while there are tokens, its head when the coin
  // picks it.
  LargeProtection ShouldProtect(uint64_t now_ms) {
    if (config_.every) return LargeProtection::kWhole;
    if (now_ms > last_ms_) {
      // per_second tokens a second are per_second thousandths a millisecond
      // (no overflow: per_second <= 2^20 and 2^43 ms are centuries).
      uint64_t refill = (now_ms - last_ms_) * config_.per_second;
      uint64_t room = uint64_t{config_.burst} * 1000 - millitokens_;
      millitokens_ += refill < room ? refill : room;
      last_ms_ = now_ms;
    }
    if (millitokens_ >= 1000) {
      millitokens_ -= 1000;
      return LargeProtection::kFirstMiB;
    }
    return config_.sample != 0 && XorShift64(&rng_) % config_.sample == 0 ? LargeProtection::kHead
                                                                          : LargeProtection::kNone;
  }

 private:
  LargeProtectConfig config_;
  uint64_t millitokens_ = 0;  // thousandths of a token
  uint64_t last_ms_ = 0;
  uint64_t rng_ = 1;
};

}  // namespace nitro

#endif  // NITROHEAP_CORE_LARGE_PROTECT_H_
